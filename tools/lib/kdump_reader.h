// SPDX-License-Identifier: GPL-2.0-or-later
//
// Reader for makedumpfile's kdump-compressed format (header versions 1-6),
// and for split sets of it (makedumpfile --split).
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
//   (1 + sub_hdr_size) * B       bitmaps, bitmap_blocks * B bytes: the first
//                                half has a bit per pfn for memory that
//                                exists, the second a bit per dumped pfn
//                                (LSB first within each byte)
//   (1 + sub_hdr_size +          page descriptors, 24 bytes, one per set bit
//    bitmap_blocks) * B          of the second bitmap in pfn order (in a
//                                split part: those in [start_pfn, end_pfn)):
//                                  0 8 offset of the page data
//                                  8 4 size of the stored data
//                                 12 4 flags (codec bit, 0 = raw)
//                                 16 8 page_flags
//   after the descriptors        page data; with dump level bit 0 (exclude
//                                zero pages) a shared zero page comes first
//                                and every zero page's descriptor points at
//                                it
//   offset_eraseinfo             eraseinfo text (v5+, optional)
//
// A write that was killed leaves descriptors zero inside a file that has
// been extended past them, or a file cut anywhere; makedumpfile itself sets
// status bit 0x8 only when the disk filled.
#ifndef NMIMGR_TOOLS_LIB_KDUMP_READER_H_
#define NMIMGR_TOOLS_LIB_KDUMP_READER_H_

#include <memory>
#include <string>
#include <vector>

#include "reader.h"

namespace nmimgr::vmcore {

inline constexpr std::string_view kKdumpSignature = "KDUMP   ";
inline constexpr uint64_t kKdumpHeaderSize = 464;
inline constexpr uint64_t kKdumpSubHeaderSize = 104;
inline constexpr uint64_t kPageDescSize = 24;

// Identity of one part of a split set, read from its headers.
struct SplitIdentity {
  bool split = false;
  uint64_t start_pfn = 0, end_pfn = 0, max_mapnr = 0;
  std::string utsname_release, nodename;
  int64_t timestamp = 0;
};

// Reads the split identity of a kdump-compressed file; nullopt when `src`
// is not one or its headers cannot be read.
std::optional<SplitIdentity> ReadSplitIdentity(Source& src);

// A reader over the parts of a split set (each a kdump-compressed source,
// sorted by start pfn by the caller); reports missing parts.
std::unique_ptr<DumpReader> OpenSplitSetReader(std::vector<Source*> parts,
                                               std::vector<std::string> names);

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_KDUMP_READER_H_
