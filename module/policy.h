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
 *   bit 7  SERR#   (PCI system error)        decides the NMI type
 *   bit 6  IOCHK#  (I/O channel check)       decides the NMI type
 *   bit 5  timer 2 output                    free-running
 *   bit 4  refresh toggle                    free-running
 *   bits 0-3 control bits the kernel writes (speaker, timer 2 gate,
 *            SERR and IOCHK enables)
 * Bits 4 and 5 change between two reads of the same NMI (QEMU shows 0x21
 * and 0x31 for one injected NMI), so codes are compared under a mask,
 * default 0xcf, applied to the byte read and to every listed code alike.
 * A mask of 0xff restores the exact match of the 2017 patch.
 *
 * What a code cannot tell apart: every source behind the same NMI line and
 * status bits gives the same byte.  A BMC "diagnostic interrupt", a failing
 * power supply wired to the NMI pin and an FPGA that raises NMI all read
 * alike when neither SERR nor IOCHK is latched; only the platform's event
 * log (SEL, IML) says which it was.
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

#ifdef __cplusplus
extern "C" {
#endif

#define NMIMGR_NR_CODES 256
#define NMIMGR_DEFAULT_MASK 0xcf
/* Longest value accepted for a list or a policy string (without the nul). */
#define NMIMGR_MAX_INPUT 1024
/* Enough for any canonical list (worst case "0,2,4,...,254"). */
#define NMIMGR_LIST_BUF 1024
/* Enough for any canonical policy string. */
#define NMIMGR_POLICY_BUF (3 * NMIMGR_LIST_BUF + 64)
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
	NMIMGR_LATCHED_DROP,	/* panic under way or capture kernel */
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
};

/* The state the decision depends on besides the policy. */
struct nmimgr_state {
	bool latched;		/* panic under way: ours, or any oops/panic */
	bool capture_kernel;	/* loaded in a kdump capture kernel */
	enum nmimgr_capture_drop capture_drop;
};

static inline bool nmimgr_codeset_test(const struct nmimgr_codeset *s,
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

/* The default policy: all lists empty, mask 0xcf, dry_run off. */
void nmimgr_policy_init(struct nmimgr_policy *p);
/*
 * Parse a whole policy: "ignore=LIST drop=LIST panic=LIST mask=BYTE
 * dry_run=BOOL", keys in any order, separated by spaces, tabs or ';', each
 * at most once.  A key left out takes its default, so the string replaces
 * the whole policy.  On success @out is compiled.
 */
int nmimgr_policy_parse(const char *s, struct nmimgr_policy *out,
			char *err, size_t errlen);
/* Canonical form, readable back by nmimgr_policy_parse(). */
size_t nmimgr_policy_format(const struct nmimgr_policy *p, char *buf,
			    size_t len);
/*
 * Derive p->match from p->lists and p->mask.  Masked codes claimed by more
 * than one list go to the first in evaluation order; they are returned in
 * @overlap (may be NULL) so the caller can log them.
 */
void nmimgr_policy_compile(struct nmimgr_policy *p,
			   struct nmimgr_codeset *overlap);

/* The decision for one NMI whose port 0x61 byte is @raw.  NMI-safe. */
enum nmimgr_action nmimgr_decide(const struct nmimgr_policy *p,
				 const struct nmimgr_state *st, uint8_t raw);
/* Whether the handler claims the NMI (NMI_HANDLED) for this action. */
bool nmimgr_action_handled(enum nmimgr_action a);
const char *nmimgr_action_name(enum nmimgr_action a);

/*
 * Clearing and re-arming the SERR / IOCHK latch.  When a handler claims an
 * NMI_SERR or NMI_IO_CHECK NMI the kernel returns before it does this
 * itself (pci_serr_error(), io_check_error()), and until the latch is
 * cleared the chipset raises no further NMI of that kind.  The clear is two
 * writes to port 0x61: the current control bits (0-3) with the type's
 * "clear/disable" bit (SERR 0x04, IOCHK 0x08) set, then with it cleared
 * again.  The upper bits are status and read-only, so they are not written
 * back.  Fills @first and @second; returns false for a type with no latch.
 */
bool nmimgr_rearm_bytes(unsigned int nmi_type, uint8_t reason,
			uint8_t *first, uint8_t *second);

#ifdef __cplusplus
}
#endif

#endif /* NMIMGR_POLICY_H */
