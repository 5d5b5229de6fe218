// SPDX-License-Identifier: GPL-2.0-or-later
//
// The trigger record found through the crashed kernel's page tables
// (record_search.h, kernel_vm.h) rather than by decoding every page.
#include <catch2/catch.hpp>
#include <cstring>
#include <sstream>

#include "codec.h"
#include "kdump_reader.h"
#include "kernel_vm.h"
#include "nmimgr_record.h"
#include "test_support.h"

using namespace nmimgr::testing;
using nmimgr::vmcore::Verdict;
namespace v = nmimgr::vmcore;

namespace {

// A dump of 64 pfns with a printk ring (the log the walk needs), the kernel
// page tables, module pages at pfns 20 (module area page 0) and 30 (page 1:
// virtually next to 20, physically not) and filler pages elsewhere.
DumpSpec ModuleSpec(bool l5 = false) {
  DumpSpec spec;
  spec.max_mapnr = 64;
  spec.codec = v::kDumpZlib;
  spec.pgtable_l5 = l5;
  for (uint64_t pfn = 0; pfn < 40; ++pfn)
    spec.pages[pfn] = Page(4096, static_cast<uint8_t>(0x40 + pfn));
  AddCrashLog(spec);
  AddKernelPageTables(spec, {{{0, 20}, {1, 30}, {2, 31, false}}});
  return spec;
}

// The record PlaceRecord would write, written at `pa` instead.
void PutBytes(DumpSpec& spec, uint64_t pa, const Bytes& b) {
  for (size_t i = 0; i < b.size(); ++i)
    spec.pages[(pa + i) / 4096][(pa + i) % 4096] = b[i];
}

}  // namespace

TEST_CASE("walks the kernel's own page tables over the module area",
          "[unit][record_search]") {
  bool l5 = GENERATE(false, true);
  CAPTURE(l5);
  DumpSpec spec = ModuleSpec(l5);
  Bytes dump = BuildKdump(spec);
  TempDir dir;
  WriteFile(dir / "vmcore", dump);
  v::FileSource src(dir / "vmcore");
  auto reader = v::OpenKdumpReader(src);
  v::DumpFacts facts;
  v::Findings findings;
  reader->CheckStructure(facts, findings);
  v::Vmcoreinfo vi(facts.vmcoreinfo);
  v::KernelVm vm(*reader, vi);
  CHECK(vm.levels() == (l5 ? 5 : 4));
  CHECK(vm.CheckSelfMapped().empty());
  CHECK(vm.Translate(KernelTextVa(45), "image", false) == 45 * 4096);
  std::vector<std::pair<uint64_t, uint64_t>> all, writable;
  v::KernelRanges k = v::KernelRangesOf(vi);
  CHECK(k.modules_lo == kModuleArea);
  auto st = vm.ForEachPage(k.modules_lo, k.modules_hi, false,
                           [&](uint64_t va, uint64_t pa) {
                             all.push_back({va, pa});
                           });
  vm.ForEachPage(k.modules_lo, k.modules_hi, true,
                 [&](uint64_t va, uint64_t pa) {
                   writable.push_back({va, pa});
                 });
  CHECK(all == std::vector<std::pair<uint64_t, uint64_t>>{
                   {kModuleArea, 20 * 4096},
                   {kModuleArea + 4096, 30 * 4096},
                   {kModuleArea + 8192, 31 * 4096}});
  CHECK(writable.size() == 2);
  CHECK(st.tables_missing == 0);
  // PUD, PMD, PTE of the module area (and the P4D), and the top table.
  CHECK(st.tables_read == (l5 ? 5u : 4u));
}

TEST_CASE(
    "finds the record through the page tables, reading only the module "
    "area's writable pages",
    "[unit][record_search]") {
  DumpSpec spec = ModuleSpec();
  uint64_t at = PlaceRecord(spec, 30, 1024);
  // A second valid record in a page the module area does not map: the page
  // scan would see it, the walk never reads it.
  RecordSpec other;
  other.raw = 0x31;
  PlaceRecord(spec, 12, 128, other);
  auto r = CheckBytes(BuildKdump(spec));
  INFO(Codes(r));
  CHECK(r.verdict == Verdict::kComplete);
  CHECK(r.trigger.search.method == "page-tables");
  CHECK(r.trigger.search.reason.empty());
  CHECK(r.trigger.search.ranges == std::vector<std::string>{"modules"});
  CHECK(r.trigger.search.pages_read == 2);
  CHECK(r.scan.pages_decoded == 2);
  REQUIRE(r.trigger.records.size() == 1);
  CHECK(r.trigger.records[0].paddr == at);
  CHECK(r.trigger.record()->bound());
  CHECK(r.trigger.magic_hits == 1);
  auto j = v::DumpToJson(r)["trigger"]["record_search"];
  CHECK(j["method"] == "page-tables");
  CHECK(j["reason"].is_null());
  CHECK(j["pages_read"] == 2);
  std::ostringstream text;
  v::PrintTable({r}, text);
  CHECK_THAT(text.str(), Catch::Contains("record searched through the page "
                                         "tables (modules: 4 tables, 2 "
                                         "pages read)"));
  // --deep decodes every page, and finds both.
  auto deep = CheckBytes(BuildKdump(spec), "vmcore", ScanOpts(true));
  CHECK(deep.trigger.search.method == "page-scan");
  CHECK(deep.trigger.search.reason == "--deep decodes every page");
  CHECK(deep.trigger.records.size() == 2);
}

TEST_CASE("settles on no record when the module area has none",
          "[unit][record_search]") {
  DumpSpec spec = ModuleSpec();
  // A valid record outside the module area, as a copy or a stale one: the
  // page scan would report it.
  PlaceRecord(spec, 12, 128);
  // A record in a read-only module page: the module could not have written
  // it there.
  PlaceRecord(spec, 31, 0);
  auto r = CheckBytes(BuildKdump(spec));
  INFO(Codes(r));
  CHECK(r.verdict == Verdict::kComplete);
  CHECK(r.trigger.search.method == "page-tables");
  CHECK(r.trigger.records.empty());
  CHECK(r.trigger.magic_hits == 0);
  CHECK(r.trigger.search.pages_read == 2);
  CHECK_FALSE(r.trigger.nmimgr());
}

TEST_CASE(
    "reads a version 1 record that crosses into a page that is virtually "
    "but not physically next",
    "[unit][record_search]") {
  DumpSpec spec = ModuleSpec();
  Bytes v1 = RecordV1(0x21, 0xcf, NMIMGR_TYPE_UNKNOWN, 0);
  // 56 bytes at the end of pfn 20, the rest at the start of pfn 30.
  Bytes head(v1.begin(), v1.begin() + 56), tail(v1.begin() + 56, v1.end());
  PutBytes(spec, 20 * 4096 + 4040, head);
  PutBytes(spec, 30 * 4096, tail);
  auto walked = CheckBytes(BuildKdump(spec));
  CHECK(walked.trigger.search.method == "page-tables");
  REQUIRE(walked.trigger.records.size() == 1);
  CHECK(walked.trigger.records[0].version == NMIMGR_RECORD_V1);
  CHECK(walked.trigger.records[0].paddr == 20 * 4096 + 4040);
  CHECK(walked.trigger.record());
  // The page scan sees pfn 21 after pfn 20: the record is not whole there.
  auto deep = CheckBytes(BuildKdump(spec), "vmcore", ScanOpts(true));
  CHECK(deep.trigger.records.empty());
  CHECK(deep.trigger.magic_hits == 1);
}

TEST_CASE(
    "falls back to the page scan, and says why, when the page tables "
    "cannot settle it",
    "[unit][record_search]") {
  auto [what, reason] = GENERATE(table<const char*, const char*>({
      {"the module area's page table is excluded",
       "no record in the pages the page tables map, and 1 page tables and "
       "0 pages there are not in the dump"},
      {"a module page is excluded",
       "no record in the pages the page tables map, and 0 page tables and "
       "1 pages there are not in the dump"},
      {"the top table does not map the kernel",
       "the page tables do not map the kernel: init_top_pgt at "
       "0xffffffff8000e000 is not mapped"},
      {"the top table maps init_top_pgt elsewhere",
       "the page tables map init_top_pgt (0xffffffff8000e000) to physical "
       "0x2f000, not to 0x36000 where phys_base puts it"},
      {"VMCOREINFO has no init_top_pgt",
       "vmcoreinfo has no SYMBOL(init_top_pgt)"},
  }));
  CAPTURE(what);
  DumpSpec spec = ModuleSpec();
  uint64_t at = PlaceRecord(spec, 30, 1024);
  std::string w = what;
  if (w == "the module area's page table is excluded") {
    spec.pages.erase(61);
    spec.excluded.insert(61);
  } else if (w == "a module page is excluded") {
    spec.pages.erase(20);
    spec.excluded.insert(20);
    // The record is in the page that is not there; a copy of it in pfn 30
    // would be found, so move it out of the module area.
    spec.pages[30] = Page(4096, 0x5c);
    at = PlaceRecord(spec, 12, 256);
  } else if (w == "the top table does not map the kernel") {
    std::fill_n(spec.pages[54].begin() + 511 * 8, 8, 0);
  } else if (w == "the top table maps init_top_pgt elsewhere") {
    // The kernel image's PTE for pfn 54 names pfn 47.
    uint64_t pte = 47 * 4096 | 0x63;
    std::memcpy(spec.pages[59].data() + 14 * 8, &pte, 8);
  } else {
    size_t p = spec.extra_vmcoreinfo.find("SYMBOL(init_top_pgt)");
    REQUIRE(p != std::string::npos);
    spec.extra_vmcoreinfo.replace(p, 6, "SYMBOX");
  }
  // The log from a file: without init_top_pgt the ring cannot be read.
  auto r = CheckBytes(BuildKdump(spec), "vmcore", ScanOpts(),
                      "[    5.120000] Kernel panic - not syncing: sysrq\n");
  INFO(Codes(r));
  CHECK(r.trigger.search.method == "page-scan");
  CHECK(r.trigger.search.reason == reason);
  REQUIRE(r.trigger.records.size() == 1);
  CHECK(r.trigger.records[0].paddr == at);
  auto j = v::DumpToJson(r)["trigger"]["record_search"];
  CHECK(j["method"] == "page-scan");
  CHECK(j["reason"] == reason);
}

TEST_CASE(
    "walks the kernel image's data for a built-in nmimgr when the log has "
    "its panic line",
    "[unit][record_search]") {
  DumpSpec spec;
  spec.max_mapnr = 64;
  for (uint64_t pfn = 0; pfn < 40; ++pfn)
    spec.pages[pfn] = Page(4096, static_cast<uint8_t>(0x40 + pfn));
  AddKernelPageTables(spec, {});
  uint64_t at = PlaceRecord(spec, 45, 512);
  // The log as a saved dmesg file, with nmimgr's panic line.
  v::PanicLine line;
  line.raw_code = 0x21;
  line.mask = 0xcf;
  line.masked_code = 0x01;
  line.nmi_type = "unknown";
  line.code = 0x01;
  line.nonce = 0x0123456789abcdefull;
  std::string log =
      "[    5.120000] Kernel panic - not syncing: " + v::FormatPanicLine(line) +
      "\n";
  auto r = CheckBytes(BuildKdump(spec), "vmcore", ScanOpts(), log);
  INFO(Codes(r));
  CHECK(r.trigger.search.method == "page-tables");
  CHECK(r.trigger.search.ranges ==
        std::vector<std::string>{"modules", "kernel-image"});
  REQUIRE(r.trigger.records.size() == 1);
  CHECK(r.trigger.records[0].paddr == at);
  CHECK(r.trigger.record());
  // Without the panic line the image is not read: no record.
  auto plain = CheckBytes(BuildKdump(spec), "vmcore", ScanOpts(),
                          "[    5.120000] Kernel panic - not syncing: sysrq\n");
  CHECK(plain.trigger.search.method == "page-tables");
  CHECK(plain.trigger.search.ranges == std::vector<std::string>{"modules"});
  CHECK(plain.trigger.records.empty());
}
