/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nmimgr trigger record: the one fixed-layout structure that ties a crash
 * dump to the NMI that caused it.
 *
 * The module keeps one record in its own data.  At load it writes the
 * header (magic, version, size), a per-load random nonce and the record's
 * own physical address; the rest stays zero until nmimgr decides to panic.
 * Then the handler fills every field, sets NMIMGR_RECORD_FIRED and writes
 * the checksum last.  The crash dump carries module memory, so
 * nmimgr-vmcore-check finds the record by scanning the dump for the magic.
 *
 * The magic alone proves nothing: every copy of nmimgr.ko in memory (page
 * cache, the initramfs, the module's own unused .data) carries it too.  A
 * record counts only when the FIRED flag is set and the checksum holds, and
 * (version 2) only where it is bound to this dump:
 *   - phys must equal the physical address the reader found it at, so a
 *     copy of a fired record elsewhere in memory is not the record;
 *   - real_ns must not be later than the dump's VMCOREINFO CRASHTIME (plus
 *     its one-second resolution), and real_ns - boot_ns (the wall-clock time
 *     the record's boot began) must match the crashed kernel's boot, so a
 *     record left in RAM by an earlier boot (warm reset, kexec reboot) is
 *     not this dump's trigger;
 *   - nonce is printed in nmimgr's panic line ("record=%016llx"), which
 *     ties the record to the panic message of this boot's log.
 *
 * Layout, version 2, little-endian, naturally aligned, 128 bytes, no padding
 * (checked by static asserts below).  The module aligns it to 128 bytes, so
 * it never straddles a page:
 *
 *   off size field
 *     0    8 magic          "NMIMGRtr"
 *     8    2 version        NMIMGR_RECORD_VERSION (2)
 *    10    2 size           sizeof(struct nmimgr_record) (128)
 *    12    4 flags          NMIMGR_RECORD_* below
 *    16    1 raw_code       port 0x61 byte read by the handler
 *    17    1 masked_code    raw_code & event_mask: the code that matched
 *    18    1 event_mask     mask in force
 *    19    1 nmi_type       NMIMGR_TYPE_* (unknown, serr, iochk)
 *    20    4 cpu            CPU that took the NMI
 *    24    8 mono_ns        CLOCK_MONOTONIC at the decision
 *    32    8 real_ns        CLOCK_REALTIME at the decision (ns since epoch)
 *    40    8 boot_ns        CLOCK_BOOTTIME at the decision
 *    48    8 nmis           NMIs seen by nmimgr so far, this one included
 *    56    8 dropped        NMIs dropped so far
 *    64    8 ignored        NMIs left to the kernel by events_ignore
 *    72    8 unmanaged      NMIs in no list
 *    80    8 would_panic    dry-run panic decisions
 *    88    8 nonce          random, drawn once per load
 *    96    8 phys           physical address of this record
 *   104    8 confirm_ns     CLOCK_MONOTONIC of the first press (CONFIRMED)
 *   112    4 confirm_min_ms confirmation window in force, or 0 when off
 *   116    4 confirm_max_ms
 *   120    4 oops_depth     oops_in_progress when the record fired
 *   124    4 checksum       FNV-1a 32 over bytes 0..123
 *
 * Version 1 (96 bytes, nmimgr before the binding) is the same up to
 * would_panic, then reserved (4, zero) and checksum (4) at 92 over bytes
 * 0..91; its flags DRY_RUN (bit 1) and CAPTURE (bit 2) were never set.
 * Readers accept both, and say that a version 1 record is not bound.
 *
 * Readers must check magic, version, size, FIRED and the checksum, in that
 * order, and ignore a record that fails any of them.  A later layout gets a
 * new version number; fields and flag bits are never reused.
 */
#ifndef NMIMGR_RECORD_H
#define NMIMGR_RECORD_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/build_bug.h>
typedef u8 nmimgr_u8;
typedef u16 nmimgr_u16;
typedef u32 nmimgr_u32;
typedef u64 nmimgr_u64;
#define NMIMGR_STATIC_ASSERT(e, m) static_assert(e, m)
/* Reached from the NMI handler: inlined into it, never a kprobe target. */
#define NMIMGR_NMI_INLINE static __always_inline
#else
#define NMIMGR_NMI_INLINE static inline
#include <stddef.h>
#include <stdint.h>
typedef uint8_t nmimgr_u8;
typedef uint16_t nmimgr_u16;
typedef uint32_t nmimgr_u32;
typedef uint64_t nmimgr_u64;
#ifdef __cplusplus
#define NMIMGR_STATIC_ASSERT(e, m) static_assert(e, m)
#else
#define NMIMGR_STATIC_ASSERT(e, m) _Static_assert(e, m)
#endif
#endif

#define NMIMGR_RECORD_MAGIC "NMIMGRtr"
#define NMIMGR_RECORD_MAGIC_LEN 8
#define NMIMGR_RECORD_VERSION 2
#define NMIMGR_RECORD_V1 1

#define NMIMGR_RECORD_FIRED (1u << 0)	/* nmimgr decided to panic */
/* bits 1 and 2: version 1's DRY_RUN and CAPTURE, never set, retired */
/* oops_in_progress was raised when it fired: an oops or a panic under way */
#define NMIMGR_RECORD_OOPS_UNDER_WAY (1u << 3)
/*
 * nmi_panic() returned: this CPU was already in a panic that something
 * else started, so this record did not start the dump.
 */
#define NMIMGR_RECORD_PANIC_UNDER_WAY (1u << 4)
/* Fired on the confirming second NMI (confirm= window in force). */
#define NMIMGR_RECORD_CONFIRMED (1u << 5)
/*
 * Fired on the NMI that a write of "crash" to /sys/kernel/nmimgr/test sent
 * (nmimgrctl test): the real NMI path, started on purpose.
 */
#define NMIMGR_RECORD_TEST (1u << 6)

/* NMI types as stored in the record and printed in messages. */
#define NMIMGR_TYPE_UNKNOWN 1
#define NMIMGR_TYPE_SERR 2
#define NMIMGR_TYPE_IOCHK 3

struct nmimgr_record {
	char magic[NMIMGR_RECORD_MAGIC_LEN];
	nmimgr_u16 version;
	nmimgr_u16 size;
	nmimgr_u32 flags;
	nmimgr_u8 raw_code;
	nmimgr_u8 masked_code;
	nmimgr_u8 event_mask;
	nmimgr_u8 nmi_type;
	nmimgr_u32 cpu;
	nmimgr_u64 mono_ns;
	nmimgr_u64 real_ns;
	nmimgr_u64 boot_ns;
	nmimgr_u64 nmis;
	nmimgr_u64 dropped;
	nmimgr_u64 ignored;
	nmimgr_u64 unmanaged;
	nmimgr_u64 would_panic;
	nmimgr_u64 nonce;
	nmimgr_u64 phys;
	nmimgr_u64 confirm_ns;
	nmimgr_u32 confirm_min_ms;
	nmimgr_u32 confirm_max_ms;
	nmimgr_u32 oops_depth;
	nmimgr_u32 checksum;
};

#define NMIMGR_RECORD_SIZE 128
#define NMIMGR_RECORD_CHECKSUM_OFFSET 124
/* Version 1: fields up to would_panic as above, then these. */
#define NMIMGR_RECORD_V1_SIZE 96
#define NMIMGR_RECORD_V1_CHECKSUM_OFFSET 92

NMIMGR_STATIC_ASSERT(sizeof(struct nmimgr_record) == NMIMGR_RECORD_SIZE,
		     "nmimgr_record layout changed");
NMIMGR_STATIC_ASSERT(offsetof(struct nmimgr_record, checksum) ==
		     NMIMGR_RECORD_CHECKSUM_OFFSET,
		     "nmimgr_record checksum moved");
NMIMGR_STATIC_ASSERT(offsetof(struct nmimgr_record, mono_ns) == 24,
		     "nmimgr_record timestamps moved");
NMIMGR_STATIC_ASSERT(offsetof(struct nmimgr_record, nonce) ==
		     NMIMGR_RECORD_V1_CHECKSUM_OFFSET - 4,
		     "nmimgr_record version 2 fields must follow version 1's");

/*
 * FNV-1a, 32 bits, over the first @len bytes: tiny, no tables, the same in
 * the kernel and in tools.  Version 2 covers NMIMGR_RECORD_CHECKSUM_OFFSET
 * bytes, version 1 NMIMGR_RECORD_V1_CHECKSUM_OFFSET.
 */
NMIMGR_NMI_INLINE nmimgr_u32 nmimgr_record_checksum_n(const void *rec,
						  unsigned int len)
{
	const nmimgr_u8 *p = (const nmimgr_u8 *)rec;
	nmimgr_u32 h = 2166136261u;
	unsigned int i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= 16777619u;
	}
	return h;
}

NMIMGR_NMI_INLINE nmimgr_u32 nmimgr_record_checksum(const void *rec)
{
	return nmimgr_record_checksum_n(rec, NMIMGR_RECORD_CHECKSUM_OFFSET);
}

NMIMGR_NMI_INLINE const char *nmimgr_type_name(unsigned int type)
{
	switch (type) {
	case NMIMGR_TYPE_UNKNOWN:
		return "unknown";
	case NMIMGR_TYPE_SERR:
		return "serr";
	case NMIMGR_TYPE_IOCHK:
		return "iochk";
	}
	return "invalid";
}

#endif /* NMIMGR_RECORD_H */
