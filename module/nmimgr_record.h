/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nmimgr trigger record: the one fixed-layout structure that ties a crash
 * dump to the NMI that caused it.
 *
 * The module keeps one record in its own data.  It is zero but for the
 * header (magic, version, size) until nmimgr decides to panic; then the
 * handler fills every field, sets NMIMGR_RECORD_FIRED and writes the
 * checksum last.  The crash dump carries module memory, so
 * nmimgr-vmcore-check finds the record by scanning the dump for the magic.
 *
 * The magic alone proves nothing: every copy of nmimgr.ko in memory (page
 * cache, the initramfs, the module's own unused .data) carries it too.  A
 * record counts only when the FIRED flag is set and the checksum holds.
 *
 * On-disk (in-memory) layout, little-endian, naturally aligned, 96 bytes,
 * no padding (checked by static asserts below):
 *
 *   off size field
 *     0    8 magic          "NMIMGRtr"
 *     8    2 version        NMIMGR_RECORD_VERSION (1)
 *    10    2 size           sizeof(struct nmimgr_record) (96)
 *    12    4 flags          NMIMGR_RECORD_FIRED | _DRY_RUN | _CAPTURE
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
 *    88    4 reserved       zero
 *    92    4 checksum       FNV-1a 32 over bytes 0..91
 *
 * Readers must check magic, version, size, FIRED and the checksum, in that
 * order, and ignore a record that fails any of them.  A later layout gets a
 * new version number; fields are never reused.
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
#else
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
#define NMIMGR_RECORD_VERSION 1

#define NMIMGR_RECORD_FIRED (1u << 0)	/* nmimgr decided to panic */
#define NMIMGR_RECORD_DRY_RUN (1u << 1)	/* dry_run was set (never fires) */
#define NMIMGR_RECORD_CAPTURE (1u << 2)	/* written in a capture kernel */

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
	nmimgr_u32 reserved;
	nmimgr_u32 checksum;
};

#define NMIMGR_RECORD_SIZE 96
#define NMIMGR_RECORD_CHECKSUM_OFFSET 92

NMIMGR_STATIC_ASSERT(sizeof(struct nmimgr_record) == NMIMGR_RECORD_SIZE,
		     "nmimgr_record layout changed");
NMIMGR_STATIC_ASSERT(offsetof(struct nmimgr_record, checksum) ==
		     NMIMGR_RECORD_CHECKSUM_OFFSET,
		     "nmimgr_record checksum moved");
NMIMGR_STATIC_ASSERT(offsetof(struct nmimgr_record, mono_ns) == 24,
		     "nmimgr_record timestamps moved");

/* FNV-1a, 32 bits: tiny, no tables, the same in the kernel and in tools. */
static inline nmimgr_u32 nmimgr_record_checksum(const void *rec)
{
	const nmimgr_u8 *p = (const nmimgr_u8 *)rec;
	nmimgr_u32 h = 2166136261u;
	unsigned int i;

	for (i = 0; i < NMIMGR_RECORD_CHECKSUM_OFFSET; i++) {
		h ^= p[i];
		h *= 16777619u;
	}
	return h;
}

static inline const char *nmimgr_type_name(unsigned int type)
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
