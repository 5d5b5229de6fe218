// SPDX-License-Identifier: GPL-2.0-or-later
#include "elf_notes.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

#include "checked.h"
#include "notes.h"

namespace nmimgr::vmcore {
void ReadNoteSegments(Source& src, uint64_t file_size,
                      const std::vector<Segment>& notes, DumpFacts& facts,
                      Findings& findings) {
  for (const Segment& n : notes) {
    if (n.avail < n.filesz)
      throw TruncatedError(fmt::format(
          "note segment {}: {} bytes at offset {} end past the end of the "
          "file ({})",
          n.index, n.filesz, n.offset, file_size));
    if (n.filesz > kMaxNoteBytes)
      throw CorruptError(fmt::format("note segment {}: size {} is impossible",
                                     n.index, n.filesz));
    std::vector<uint8_t> nb = ReadVector(
        src, n.offset, n.filesz, fmt::format("note segment {}", n.index));
    // The kernel's notes (a PRSTATUS per CPU, VMCOREINFO) are never
    // zeros: these bytes were allocated but never written.
    if (!nb.empty() &&
        std::all_of(nb.begin(), nb.end(), [](uint8_t b) { return !b; })) {
      findings.Add(FindingCode::kZeroFilled,
                   fmt::format("note segment {}: its {} bytes at offset {} "
                               "are zeros: the dump's data never reached "
                               "the disk",
                               n.index, n.filesz, n.offset));
      continue;
    }
    NoteSummary ns = ParseNotes(nb, n.offset, findings);
    facts.cpus = facts.cpus.value_or(0) + ns.prstatus;
    if (facts.vmcoreinfo.empty()) ApplyVmcoreinfo(ns.vmcoreinfo, facts);
  }
  if (facts.cpus && *facts.cpus == 0) facts.cpus.reset();
}

uint64_t ElfPageSize(const DumpFacts& facts) {
  if (auto ps = VmcoreinfoValue(facts.vmcoreinfo, "PAGESIZE")) {
    uint64_t v = std::strtoull(ps->c_str(), nullptr, 10);
    if (v >= 512 && v <= (1u << 20) && (v & (v - 1)) == 0) return v;
  }
  return 4096;
}

}  // namespace nmimgr::vmcore
