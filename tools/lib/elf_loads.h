// SPDX-License-Identifier: GPL-2.0-or-later
//
// The PT_LOAD segments of an ELF64 vmcore (elf_phdrs.h finds them), after
// libkdumpfile's elfdump.c (its load segment table and read_page): physical
// memory [p_paddr, p_paddr + p_memsz), of which the first p_filesz bytes are
// in the file at p_offset (makedumpfile -E leaves the rest out: excluded
// pages).  Pages are the page-sized pieces of each segment's file data; a
// segment whose p_paddr is not page-aligned gives pieces that straddle pfns
// (PageJob::pfn_skew).
//
// On-disk layout: for each PT_LOAD, p_filesz bytes of raw memory at
// p_offset; segments do not overlap in the file.  /proc/vmcore maps the
// kernel image twice: a segment whose physical range lies inside another's
// is the same memory.
#ifndef NMIMGR_TOOLS_LIB_ELF_LOADS_H_
#define NMIMGR_TOOLS_LIB_ELF_LOADS_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "elf_phdrs.h"
#include "findings.h"
#include "reader.h"

namespace nmimgr::vmcore {

// Checks the load segments (overlaps in the file, segments cut by the end
// of the file), keeps each piece of memory once in `loads`, and counts the
// pages dumped and excluded into `facts`.
void CheckLoadSegments(std::vector<Segment>& loads, uint64_t file_size,
                       uint64_t page_size, DumpFacts& facts,
                       Findings& findings);

// Pages NextBatch hands out for `loads`: the pieces of the data in the
// file.
uint64_t LoadPages(const std::vector<Segment>& loads, uint64_t page_size);

// The page of `s` that starts `at` bytes into its data.
inline PageJob LoadPiece(Source& src, const Segment& s, uint64_t at,
                         uint64_t page_size) {
  PageJob j;
  j.src = &src;
  j.pfn = (s.paddr + at) / page_size;
  j.pfn_skew = static_cast<uint32_t>((s.paddr + at) % page_size);
  j.index = s.index;
  j.offset = s.offset + at;
  j.size = static_cast<uint32_t>(std::min<uint64_t>(page_size, s.avail - at));
  j.flags = 0;
  return j;
}

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_ELF_LOADS_H_
