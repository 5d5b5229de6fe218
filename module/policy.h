/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nmimgr policy core: the grammar of the event lists and of the policy
 * string, their canonical forms, masking, precedence and the panic latch.
 *
 * This file and policy.c have no kernel-only dependencies: the same source
 * is compiled into nmimgr.ko and into the user-space unit tests.  Nothing
 * here allocates, sleeps or locks, and nmimgr_decide() is safe in NMI
 * context.
 *
 * Event codes.  An event code is the byte the NMI handler reads from port
 * 0x61 (the ISA "NMI status and control" register):
 *   bit 7  SERR#   (PCI system error) latched     event state
 *   bit 6  IOCHK#  (I/O channel check) latched    event state
 *   bit 5  timer 2 output                         free-running
 *   bit 4  refresh toggle                         free-running
 *   bit 3  IOCHK# disable   \
 *   bit 2  SERR# disable     | control bits the OS writes and reads back
 *   bit 1  speaker data      |
 *   bit 0  timer 2 gate     /
 * Only bits 7 and 6 say anything about the NMI: default_do_nmi() decides
 * the NMI type from exactly these two (NMI_REASON_SERR 0x80,
 * NMI_REASON_IOCHK 0x40, arch/x86/include/asm/mach_traps.h).  Bits 0-3
 * change under the OS's own hand: pci_serr_error() leaves bit 2 set after
 * an unclaimed SERR for the rest of the boot, io_check_error() holds bit 3
 * for 2 s, the PC speaker and TSC/PIT calibration drive bits 0 and 1.  So
 * codes are compared under a mask, default 0xc0 (NMIMGR_EVENT_BITS),
 * applied to the byte read and to every listed code alike, and a mask must
 * keep both event bits: without them SERR, IOCHK and unknown NMIs would
 * match alike.  Wider masks (up to 0xff, the exact match of the 2017
 * patch) are allowed for whoever asks, and silently stop matching when the
 * OS writes a control bit.
 *
 * What a code cannot tell apart: every NMI without SERR or IOCHK latched
 * reads alike, whatever raised it: a BMC "diagnostic interrupt", a PMU NMI
 * that no handler claimed, a late NMI IPI, a failing power supply wired to
 * the NMI pin.  Only the platform's event log (SEL, IML) says which it was;
 * confirmation (confirm=) tells a deliberate double press from a stray NMI.
 */
#ifndef NMIMGR_POLICY_H
#define NMIMGR_POLICY_H

#ifdef __KERNEL__
#include <linux/types.h>
#else
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#endif

#include "nmimgr_record.h"	/* NMIMGR_NMI_INLINE, NMIMGR_TYPE_* */

#ifdef __cplusplus
extern "C" {
#endif

#define NMIMGR_NR_CODES 256
/* Port 0x61 bits that carry event state: SERR# (7) and IOCHK# (6). */
#define NMIMGR_EVENT_BITS 0xc0
#define NMIMGR_DEFAULT_MASK NMIMGR_EVENT_BITS
/*
 * Confirmation window (confirm=1): a panic code panics only on a second
 * NMI of a panic code 500 ms to 10 s after the first.  500 ms is longer
 * than any burst of stray NMIs (back-to-back NMIs, PMU bursts and late NMI
 * IPIs come microseconds to milliseconds apart) and shorter than a second
 * `ipmitool chassis power diag` (a new IPMI session each) or a second click
 * in a BMC's web interface; 10 s leaves room for a confirmation dialog while
 * keeping the chance that two unrelated stray NMIs pair up small.
 */
#define NMIMGR_CONFIRM_MIN_MS 500
#define NMIMGR_CONFIRM_MAX_MS 10000
/* Bounds an admin may set: never below 100 ms, never above 10 minutes. */
#define NMIMGR_CONFIRM_FLOOR_MS 100
#define NMIMGR_CONFIRM_CEIL_MS 600000
/* Longest value accepted for a list or a policy string (without the nul). */
#define NMIMGR_MAX_INPUT 1024
/* Enough for any canonical list (worst case "0,2,4,...,254"). */
#define NMIMGR_LIST_BUF 1024
/* Enough for any canonical policy string. */
#define NMIMGR_POLICY_BUF (3 * NMIMGR_LIST_BUF + 64)
/*
 * Longest policy string accepted: any canonical form reads back, though
 * its three lists may together exceed NMIMGR_MAX_INPUT.
 */
#define NMIMGR_MAX_POLICY_INPUT (NMIMGR_POLICY_BUF - 1)
/* Enough for a parse error message. */
#define NMIMGR_ERR_BUF 128

/* The lists, in the order they are evaluated. */
enum nmimgr_list {
	NMIMGR_LIST_IGNORE,
	NMIMGR_LIST_DROP,
	NMIMGR_LIST_PANIC,
	NMIMGR_NR_LISTS,
};

/* What the handler does with one NMI. */
enum nmimgr_action {
	NMIMGR_UNMANAGED,	/* in no list: NMI_DONE, discovery line */
	NMIMGR_IGNORE,		/* events_ignore: NMI_DONE, silent */
	NMIMGR_DROP,		/* events_drop: NMI_HANDLED, counted */
	NMIMGR_PANIC,		/* events_panic: record, latch, nmi_panic() */
	NMIMGR_WOULD_PANIC,	/* events_panic under dry_run: NMI_DONE */
	NMIMGR_LATCHED_DROP,	/* nmimgr's panic under way, or capture kernel */
	NMIMGR_PENDING,		/* first press of a panic code under confirm= */
	NMIMGR_NR_ACTIONS,
};

/* What nmimgr does in a kdump capture kernel (capture_drop=). */
enum nmimgr_capture_drop {
	NMIMGR_CAPTURE_DROP_ALL,	/* every NMI that reaches the handler */
	NMIMGR_CAPTURE_DROP_MANAGED,	/* only codes in one of the lists */
};

struct nmimgr_codeset {
	uint64_t bits[NMIMGR_NR_CODES / 64];
};

/*
 * A whole policy.  @lists hold the codes as the admin wrote them (what
 * reading a parameter back prints); @match holds, per list, the masked codes
 * it decides, after precedence (a masked code sits in at most one of them).
 * nmimgr_policy_compile() derives @match; the handler reads only @match.
 */
struct nmimgr_policy {
	struct nmimgr_codeset lists[NMIMGR_NR_LISTS];
	struct nmimgr_codeset match[NMIMGR_NR_LISTS];
	uint8_t mask;
	bool dry_run;
	uint32_t confirm_min_ms;	/* 0: confirmation off */
	uint32_t confirm_max_ms;
};

/* The state the decision depends on besides the policy. */
struct nmimgr_state {
	bool latched;		/* nmimgr's own panic decision was made */
	bool capture_kernel;	/* loaded in a kdump capture kernel */
	enum nmimgr_capture_drop capture_drop;
};

NMIMGR_NMI_INLINE bool nmimgr_codeset_test(const struct nmimgr_codeset *s,
				       unsigned int code)
{
	return code < NMIMGR_NR_CODES &&
	       (s->bits[code / 64] >> (code % 64)) & 1;
}

static inline void nmimgr_codeset_set(struct nmimgr_codeset *s,
				      unsigned int code)
{
	if (code < NMIMGR_NR_CODES)
		s->bits[code / 64] |= (uint64_t)1 << (code % 64);
}

bool nmimgr_codeset_empty(const struct nmimgr_codeset *s);
void nmimgr_codeset_and(struct nmimgr_codeset *out,
			const struct nmimgr_codeset *a,
			const struct nmimgr_codeset *b);

/*
 * Parse a code list ("", "0,13,16-20", "0x21,0x30-0x3f"; a trailing newline
 * is allowed).  Returns 0 and fills @out, or -1 with a message in @err and
 * @out untouched.
 */
int nmimgr_parse_list(const char *s, struct nmimgr_codeset *out,
		      char *err, size_t errlen);
/* Canonical form: ascending decimal codes, runs of 2+ as ranges: "0-2,10". */
size_t nmimgr_format_list(const struct nmimgr_codeset *s, char *buf,
			  size_t len);
/* A mask or a code: decimal or 0x-hex, 0-255. */
int nmimgr_parse_byte(const char *s, uint8_t *out, char *err, size_t errlen);
int nmimgr_parse_bool(const char *s, bool *out, char *err, size_t errlen);
/*
 * A mask is valid when it keeps both event bits (NMIMGR_EVENT_BITS).
 * Returns 0, or -1 with the reason in @err.
 */
int nmimgr_check_mask(uint8_t mask, char *err, size_t errlen);
/* A mask as parsed by nmimgr_parse_byte() and checked by the above. */
int nmimgr_parse_mask(const char *s, uint8_t *out, char *err, size_t errlen);
/*
 * A confirmation window: "0" (off), "1" (on, the default window), or
 * "MIN-MAX" in milliseconds, NMIMGR_CONFIRM_FLOOR_MS <= MIN < MAX <=
 * NMIMGR_CONFIRM_CEIL_MS.  Off is 0-0.
 */
int nmimgr_parse_confirm(const char *s, uint32_t *min_ms, uint32_t *max_ms,
			 char *err, size_t errlen);
/* Canonical form of a window: "0" or "MIN-MAX". */
size_t nmimgr_format_confirm(uint32_t min_ms, uint32_t max_ms, char *buf,
			     size_t len);

/* The default policy: all lists empty, mask 0xc0, dry_run and confirm off. */
void nmimgr_policy_init(struct nmimgr_policy *p);
/*
 * Parse a whole policy: "ignore=LIST drop=LIST panic=LIST mask=BYTE
 * dry_run=BOOL confirm=WINDOW", keys in any order, separated by spaces,
 * tabs or ';', each at most once.  A key left out takes its default, so the
 * string replaces the whole policy.  On success @out is compiled.
 */
int nmimgr_policy_parse(const char *s, struct nmimgr_policy *out,
			char *err, size_t errlen);
/* Canonical form, readable back by nmimgr_policy_parse(). */
size_t nmimgr_policy_format(const struct nmimgr_policy *p, char *buf,
			    size_t len);
/* What compiling a policy found worth telling the admin. */
struct nmimgr_compile_report {
	/* masked codes claimed by more than one list (the first decides) */
	struct nmimgr_codeset overlap;
	/* listed codes that match alike: they differ only in masked-off bits */
	struct nmimgr_codeset folded;
};

/*
 * Derive p->match from p->lists and p->mask.  Masked codes claimed by more
 * than one list go to the first in evaluation order.  @report (may be NULL)
 * receives what the caller should log.
 */
void nmimgr_policy_compile(struct nmimgr_policy *p,
			   struct nmimgr_compile_report *report);

/* The decision for one NMI whose port 0x61 byte is @raw.  NMI-safe. */
enum nmimgr_action nmimgr_decide(const struct nmimgr_policy *p,
				 const struct nmimgr_state *st, uint8_t raw);
/*
 * Confirmation, for an NMI that nmimgr_decide() made NMIMGR_PANIC or
 * NMIMGR_WOULD_PANIC.  @pending_ns is the monotonic time of the unconfirmed
 * first press (0: none), @now_ns this NMI's.  Returns @a when confirmation
 * is off or this NMI confirms (*new_pending 0), else NMIMGR_PENDING with
 * *new_pending = @now_ns: a first press, a press after the window closed,
 * or one too soon after the last, which restarts the window so that a storm
 * of NMIs never confirms itself.  NMI-safe; the caller publishes
 * *new_pending atomically.
 */
enum nmimgr_action nmimgr_confirm_step(const struct nmimgr_policy *p,
				       enum nmimgr_action a,
				       uint64_t pending_ns, uint64_t now_ns,
				       uint64_t *new_pending);
/* Whether the handler claims the NMI (NMI_HANDLED) for this action. */
bool nmimgr_action_handled(const struct nmimgr_policy *p,
			   enum nmimgr_action a);
const char *nmimgr_action_name(enum nmimgr_action a);

/*
 * What a drop of an SERR or IOCHK NMI writes to port 0x61.  When a handler
 * claims one of these the kernel returns before its own clean-up, so nmimgr
 * does what the kernel would have done with an unclaimed one
 * (arch/x86/kernel/nmi.c, 5.10 to 6.12):
 *   pci_serr_error():  outb((reason & 0x0f) | 0x04): SERR# cleared and left
 *                      disabled for the rest of the boot.  Re-enabling it
 *                      would turn a device stuck asserting SERR# into an NMI
 *                      livelock.
 *   io_check_error():  outb((reason & 0x0f) | 0x08), 2 s of udelay() with
 *                      touch_nmi_watchdog(), then the same byte without 0x08:
 *                      IOCHK# re-enabled once the hardware settled.  While a
 *                      panic is under way it writes nothing and returns at
 *                      once (nmi_panic() came back), so that CPU still answers
 *                      the crash shootdown.
 * The upper bits are status and read-only, so they are not written back.
 */
struct nmimgr_port61_plan {
	unsigned int writes;	/* 0, 1 or 2 */
	uint8_t first;
	uint8_t second;		/* after the settle delay */
	bool settle;		/* hold NMIMGR_IOCHK_SETTLE_US between them */
};

#define NMIMGR_IOCHK_SETTLE_US 2000000

/* Fill @plan for a dropped NMI of @nmi_type whose port 0x61 byte is @reason. */
void nmimgr_plan_port61(unsigned int nmi_type, uint8_t reason, bool panicking,
			struct nmimgr_port61_plan *plan);

/*
 * Words of a kernel command line that the kernel or init took from an
 * nmimgr policy the admin meant as one value: the kernel splits at spaces
 * outside double quotes, so `nmimgr.policy=drop=1 panic=33` sets the policy
 * to "drop=1" and the kernel's own panic timeout to 33.  Returns 0 when
 * nothing was split off, 1 with a warning in @msg when a split word may be
 * meant for the kernel (panic=N is also the kernel's panic timeout), -1
 * with the reason in @msg when a word that only nmimgr's grammar knows
 * (ignore=, drop=, mask=, dry_run=, confirm=) stands alone after an
 * nmimgr.policy= or nmimgr.events_*= word.
 */
int nmimgr_cmdline_check(const char *cmdline, char *msg, size_t msglen);

#ifdef __cplusplus
}
#endif

#endif /* NMIMGR_POLICY_H */
