// SPDX-License-Identifier: GPL-2.0-or-later
//
// Split sets of kdump-compressed files (makedumpfile --split): each part is
// a whole kdump-compressed file (kdump_reader.h) whose sub-header marks it
// split and names the pfns [start_pfn, end_pfn) whose pages it holds; every
// part carries both whole bitmaps of the same memory.
//
// On-disk fields a part is known by (kdump_header.h reads them):
//
//   disk_dump_header   8 header_version (2..6: the sub-header has `split`)
//                     12 utsname nodename, release
//                    408 timestamp (tv_sec)
//                    428 block_size
//                    440 max_mapnr (32-bit, before v6)
//   kdump_sub_header  12 split (nonzero in a part)
//                     16 start_pfn, 24 end_pfn (before v6)
//                     80 start_pfn_64, 88 end_pfn_64, 96 max_mapnr_64 (v6+)
//
// The parts of a set cover [0, max_mapnr) without gaps or overlaps once
// sorted by start_pfn.
#ifndef NMIMGR_TOOLS_LIB_KDUMP_SPLIT_H_
#define NMIMGR_TOOLS_LIB_KDUMP_SPLIT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "reader.h"
#include "source.h"

namespace nmimgr::vmcore {

// Identity of one part of a split set, read from its headers.
struct SplitIdentity {
  bool split = false;
  uint64_t start_pfn = 0, end_pfn = 0, max_mapnr = 0;
  std::string utsname_release, nodename;
  int64_t timestamp = 0;
};

// Reads the split identity of a kdump-compressed file; nullopt when `src`
// is not one or its headers cannot be read.  Reads only the headers.
std::optional<SplitIdentity> ReadSplitIdentity(Source& src);

// A reader over the parts of a split set (each a kdump-compressed source,
// sorted by start pfn by the caller); reports missing parts.
std::unique_ptr<DumpReader> OpenSplitSetReader(std::vector<Source*> parts,
                                               std::vector<std::string> names);

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_KDUMP_SPLIT_H_
