// SPDX-License-Identifier: GPL-2.0-or-later
//
// The headers of makedumpfile's kdump-compressed format (header versions
// 1-6): the disk_dump_header at offset 0 and the kdump_sub_header in the
// block after it, and where they put everything else (KdumpLayout).  Every
// read of a header field is here (after libkdumpfile's diskdump.c,
// read_dump_header and read_sub_hdr).
//
// On-disk layout (little-endian, x86_64 sizes; B = block_size, normally the
// page size):
//
//   offset                       what
//   0                            disk_dump_header (464 bytes used):
//                                  0   8 signature "KDUMP   "
//                                  8   4 header_version (1..6)
//                                 12 390 utsname: 6 x 65 chars (sysname,
//                                        nodename, release, version,
//                                        machine, domainname)
//                                408  16 timestamp (tv_sec, tv_usec)
//                                424   4 status: 0x1 zlib, 0x2 lzo,
//                                        0x4 snappy, 0x20 zstd,
//                                        0x8 incomplete
//                                428   4 block_size
//                                432   4 sub_hdr_size (blocks)
//                                436   4 bitmap_blocks
//                                440   4 max_mapnr (32-bit, obsolete in v6)
//                                460   4 nr_cpus
//   B                            kdump_sub_header (104 bytes used):
//                                  0   8 phys_base
//                                  8   4 dump_level (v1+)
//                                 12   4 split (v2+)
//                                 16   8 start_pfn, 24 8 end_pfn (v2+)
//                                 32   8 offset_vmcoreinfo, 40 8 size (v3+)
//                                 48   8 offset_note, 56 8 size_note (v4+)
//                                 64   8 offset_eraseinfo, 72 8 size (v5+)
//                                 80   8 start_pfn_64, 88 8 end_pfn_64,
//                                 96   8 max_mapnr_64 (v6+)
//                                followed, inside the sub-header blocks, by
//                                the ELF notes and VMCOREINFO
//   (1 + sub_hdr_size) * B       the bitmaps (kdump_bitmap.h)
//   (1 + sub_hdr_size +          the page descriptors (kdump_descriptors.h)
//    bitmap_blocks) * B
//   offset_eraseinfo             eraseinfo text (v5+, optional)
#ifndef NMIMGR_TOOLS_LIB_KDUMP_HEADER_H_
#define NMIMGR_TOOLS_LIB_KDUMP_HEADER_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "findings.h"
#include "reader.h"
#include "source.h"

namespace nmimgr::vmcore {

inline constexpr std::string_view kKdumpSignature = "KDUMP   ";
inline constexpr uint64_t kKdumpHeaderSize = 464;
inline constexpr uint64_t kKdumpSubHeaderSize = 104;

// The fields of disk_dump_header, as stored.
struct KdumpHeader {
  int32_t version = 0;
  std::string nodename, release, machine;
  int64_t timestamp = 0;  // tv_sec
  uint32_t status = 0;
  int32_t block_size = 0;
  int32_t sub_hdr_size = 0;  // blocks
  uint32_t bitmap_blocks = 0;
  uint32_t max_mapnr32 = 0;
  int32_t nr_cpus = 0;
};

// The fields of kdump_sub_header that `version` has; the others are zero.
// max_mapnr, start_pfn and end_pfn are the 64-bit fields from version 6 on,
// the 32-bit header field and the old pfn fields before.
struct KdumpSubHeader {
  int32_t dump_level = 0;
  bool split = false;
  uint64_t start_pfn = 0, end_pfn = 0, max_mapnr = 0;
  uint64_t vmcoreinfo_off = 0, vmcoreinfo_size = 0;  // v3+
  uint64_t note_off = 0, note_size = 0;              // v4+
  uint64_t eraseinfo_off = 0, eraseinfo_size = 0;    // v5+
};

// Reads the header at offset 0.  Throws TruncatedError when the data ends
// within it and CorruptError when the signature is not "KDUMP   "; checks
// nothing else.
KdumpHeader ReadKdumpHeader(Source& src);

// Reads the sub-header at offset `block_size` for a header of `h.version`.
// Throws TruncatedError when the data ends within it.
KdumpSubHeader ReadKdumpSubHeader(Source& src, const KdumpHeader& h,
                                  uint64_t block_size);

// Where a checked header puts the rest of the file.
struct KdumpLayout {
  uint32_t block_size = 4096;
  uint64_t max_mapnr = 0;
  // The pfns this file dumps: [0, max_mapnr), or a split part's range.
  uint64_t start_pfn = 0, end_pfn = 0;
  uint64_t bitmap_off = 0, bitmap_len = 0, bitmap_half = 0;
  uint64_t desc_off = 0;  // the descriptor table, right after the bitmaps
};

// Reads and checks both headers: the reader's rules for each field (version,
// block size, sub-header size, codec bits, split range, bitmap size).
// Fills `layout` field by field as each is checked, the header's facts
// (format, version, release, machine, dump time, page size, compression,
// dump level, max_mapnr, split) and adds the incomplete-flag finding.
// Throws TruncatedError or CorruptError for a header the rest of the file
// cannot be read by; what was filled before stays.
void ReadKdumpLayout(Source& src, KdumpLayout& layout, KdumpHeader& header,
                     KdumpSubHeader& sub, DumpFacts& facts, Findings& findings,
                     std::string_view prefix);

// The metadata the sub-header points at: VMCOREINFO and the ELF notes
// inside the sub-header blocks (into `facts`; the notes' CPU count, else
// nr_cpus), and the eraseinfo region, which is only checked to lie in the
// file.  Throws CorruptError or TruncatedError for a region that cannot be.
void ReadKdumpMetadata(Source& src, uint64_t file_size, const KdumpHeader& h,
                       const KdumpSubHeader& sub, const KdumpLayout& layout,
                       DumpFacts& facts, Findings& findings);

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_KDUMP_HEADER_H_
