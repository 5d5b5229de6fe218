// SPDX-License-Identifier: GPL-2.0-or-later
#include "elf_loads.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

namespace nmimgr::vmcore {

void CheckLoadSegments(std::vector<Segment>& loads, uint64_t file_size,
                       uint64_t page_size, DumpFacts& facts,
                       Findings& findings) {
  // Overlaps between segments' file data.
  std::vector<const Segment*> by_off;
  for (const Segment& s : loads)
    if (s.filesz) by_off.push_back(&s);
  std::sort(by_off.begin(), by_off.end(),
            [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_off.size(); ++i)
    if (by_off[i]->offset < by_off[i - 1]->offset + by_off[i - 1]->filesz)
      findings.Add(FindingCode::kOverlap,
                   fmt::format("segments {} and {} overlap in the file at "
                               "offset {}",
                               by_off[i - 1]->index, by_off[i]->index,
                               by_off[i]->offset));

  // Cut by the end of the file (unwritten data was reported above).  Every
  // segment counts, also one that repeats memory another segment holds:
  // its bytes are part of the file that was written.
  uint64_t cut = 0;
  std::optional<Segment> first_cut;
  for (const Segment& s : loads)
    if (s.offset >= file_size || s.filesz > file_size - s.offset)
      if (cut++ == 0) first_cut = s;
  const size_t nloads = loads.size();

  // /proc/vmcore maps the kernel image twice: a segment whose physical
  // range lies inside another's is the same memory; count and scan it once.
  std::vector<Segment> unique;
  for (size_t i = 0; i < loads.size(); ++i) {
    const Segment& s = loads[i];
    bool inside = false;
    for (size_t k = 0; k < loads.size() && !inside; ++k) {
      const Segment& o = loads[k];
      if (k == i || s.memsz == 0) continue;
      bool contained = s.paddr >= o.paddr &&
                       s.paddr - o.paddr + s.memsz <= o.memsz &&
                       s.filesz <= s.memsz;
      bool same = s.paddr == o.paddr && s.memsz == o.memsz;
      inside = contained && (!same || k < i) &&
               s.paddr - o.paddr + s.filesz <= o.filesz;
    }
    if (!inside) unique.push_back(s);
  }
  loads = std::move(unique);

  for (const Segment& s : loads) {
    facts.pages_dumped += (s.filesz + page_size - 1) / page_size;
    facts.pages_excluded += (s.memsz - s.filesz) / page_size;
  }
  if (first_cut)
    findings.Add(
        FindingCode::kTruncated,
        fmt::format("segment {} (paddr {:#x}): file range [{}, {}) ends "
                    "past the end of the file ({}); {} of {} load segments "
                    "are cut",
                    first_cut->index, first_cut->paddr, first_cut->offset,
                    first_cut->offset + first_cut->filesz, file_size, cut,
                    nloads));
}

uint64_t LoadPages(const std::vector<Segment>& loads, uint64_t page_size) {
  uint64_t pages = 0;
  for (const Segment& s : loads) pages += (s.avail + page_size - 1) / page_size;
  return pages;
}

}  // namespace nmimgr::vmcore
