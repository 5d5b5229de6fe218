// SPDX-License-Identifier: GPL-2.0-or-later
#include "record_search.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <utility>

#include "checked.h"
#include "kernel_vm.h"
#include "scan.h"

namespace nmimgr::vmcore {
namespace {

constexpr uint64_t kPage = 4096;

struct Mapped {
  uint64_t va, pa;
};

// Shows `scanner` every page of `pages` (virtual order), each with a prefix
// of the next one when that is the next virtual page.  That next page is
// read whole into the second buffer, so that it is not read again when its
// turn comes; a page whose whole read fails still gives the prefix it can.
void ScanMapped(DumpReader& reader, const std::vector<Mapped>& pages,
                TriggerScanner& scanner, uint64_t& seq, RecordSearch& s) {
  std::array<std::array<uint8_t, kPage>, 2> bufs;
  std::array<uint8_t, kNextPrefix> next;
  size_t cur = 0;      // bufs[cur] is the page being shown
  bool ahead = false;  // it already holds pages[i]
  for (size_t i = 0; i < pages.size(); ++i) {
    const Mapped& m = pages[i];
    std::span<const uint8_t> page = bufs[cur];
    if (!ahead && !reader.ReadPhysical(m.pa, bufs[cur])) {
      ++s.pages_missing;
      continue;
    }
    ++s.pages_read;
    ahead = false;
    std::span<const uint8_t> prefix;
    if (i + 1 < pages.size() && pages[i + 1].va == m.va + kPage) {
      std::array<uint8_t, kPage>& after = bufs[1 - cur];
      if (reader.ReadPhysical(pages[i + 1].pa, after)) {
        prefix = std::span<const uint8_t>(after).first(kNextPrefix);
        ahead = true;
      } else if (reader.ReadPhysical(pages[i + 1].pa, next)) {
        prefix = next;
      }
    }
    scanner.Visit(seq++, m.pa / kPage, m.pa, page, prefix);
    if (ahead) cur = 1 - cur;
  }
}

}  // namespace

bool SearchByPageTables(DumpReader& reader, const DumpFacts& facts,
                        bool builtin_wanted, TriggerScanner& scanner,
                        RecordSearch& search) {
  if (!facts.machine.empty() && facts.machine != "x86_64") {
    search.reason =
        "the page-table walk knows x86_64 only, not " + facts.machine;
    return false;
  }
  if (facts.page_size != kPage) {
    search.reason = fmt::format("pages of {} bytes, not 4096", facts.page_size);
    return false;
  }
  if (facts.vmcoreinfo.empty()) {
    search.reason = "the dump has no VMCOREINFO to find the page tables by";
    return false;
  }
  try {
    Vmcoreinfo vi(facts.vmcoreinfo);
    KernelVm vm(reader, vi);
    if (std::string why = vm.CheckSelfMapped(); !why.empty()) {
      search.reason = why;
      return false;
    }
    const KernelRanges k = KernelRangesOf(vi);
    std::vector<std::pair<const char*, std::pair<uint64_t, uint64_t>>> ranges =
        {{"modules", {k.modules_lo, k.modules_hi}}};
    if (builtin_wanted)
      ranges.push_back({"kernel-image", {k.image_lo, k.image_hi}});
    uint64_t seq = 0;
    for (const auto& [name, range] : ranges) {
      std::vector<Mapped> pages;
      VmWalkStats st = vm.ForEachPage(range.first, range.second, true,
                                      [&](uint64_t va, uint64_t pa) {
                                        pages.push_back({va, pa});
                                      });
      search.ranges.push_back(name);
      search.tables_read += st.tables_read;
      search.tables_missing += st.tables_missing;
      ScanMapped(reader, pages, scanner, seq, search);
      if (!scanner.records().empty()) break;
    }
    if (!k.image_size_known)
      search.reason = fmt::format(
          "VMCOREINFO has no KERNEL_IMAGE_SIZE: the module area was taken "
          "to start at {:#x}",
          k.modules_lo);
  } catch (const VmError& e) {
    search.reason = e.what();
    return false;
  } catch (const CorruptError& e) {
    search.reason = e.what();
    return false;
  } catch (const TruncatedError& e) {
    search.reason = e.what();
    return false;
  }
  if (!scanner.records().empty()) return true;
  if (search.tables_missing || search.pages_missing) {
    search.reason = fmt::format(
        "no record in the pages the page tables map, and {} page tables "
        "and {} pages there are not in the dump",
        search.tables_missing, search.pages_missing);
    return false;
  }
  return true;
}

}  // namespace nmimgr::vmcore
