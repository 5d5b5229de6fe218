// SPDX-License-Identifier: GPL-2.0-or-later
#include <catch2/catch.hpp>
#include <random>

#include "flattened.h"
#include "test_support.h"

using namespace nmimgr::testing;
using nmimgr::vmcore::Verdict;

namespace {

void PutLe(Bytes& b, uint64_t off, uint64_t val, int n) {
  for (int i = 0; i < n; ++i) b[off + i] = static_cast<uint8_t>(val >> (8 * i));
}

}  // namespace

TEST_CASE("reads a complete ELF vmcore and its notes", "[unit][elf]") {
  DumpSpec spec = SampleSpec();
  spec.cpus = 4;
  auto r = CheckBytes(BuildElf(spec), "vmcore", ScanOpts(true));
  INFO(Codes(r));
  CHECK(r.verdict == Verdict::kComplete);
  CHECK(r.facts.format == "elf64");
  CHECK(r.facts.compression == "none");
  CHECK(r.facts.cpus == 4u);
  CHECK(r.facts.kernel_release == "6.1.0-56-amd64");
  CHECK(r.facts.crash_time == spec.crash_time);
  CHECK_FALSE(r.facts.dump_level.has_value());
  CHECK(r.facts.pages_dumped == spec.pages.size());
  CHECK(r.scan.pages_decoded == spec.pages.size());
}

TEST_CASE(
    "never calls an ELF vmcore complete when cut at a structural "
    "boundary or at random",
    "[unit][elf][truncation]") {
  Layout lay;
  Bytes full = BuildElf(SampleSpec(), &lay);
  std::vector<uint64_t> cuts = lay.Boundaries();
  std::mt19937_64 rng(7);
  for (int i = 0; i < 40; ++i) cuts.push_back(rng() % full.size());
  for (uint64_t cut : cuts) {
    CAPTURE(cut);
    Bytes part(full.begin(), full.begin() + static_cast<long>(cut));
    auto r = CheckBytes(part, "vmcore", ScanOpts(false, 1));
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kIncomplete);
    CHECK(r.findings.HasCode("truncated"));
  }
}

TEST_CASE("names the first load segment cut by the end of the file",
          "[unit][elf]") {
  Layout lay;
  Bytes full = BuildElf(SampleSpec(), &lay);
  REQUIRE(lay.segment_at.size() == 4);  // pfns 0-2, 10-19, 21, 40
  uint64_t cut = lay.segment_at[1] + 5000;
  Bytes part(full.begin(), full.begin() + static_cast<long>(cut));
  auto r = CheckBytes(part);
  CHECK(r.verdict == Verdict::kIncomplete);
  CHECK_THAT(Codes(r), Catch::Contains("segment 2 (paddr 0xa000)"));
  CHECK_THAT(Codes(r), Catch::Contains("3 of 4 load segments are cut"));
  // The whole pages before the cut are still scanned.
  CHECK(r.scan.pages_decoded == 3 + 2);
}

TEST_CASE("tells corruption of ELF headers from truncation",
          "[unit][elf][corrupt]") {
  Layout lay;
  const Bytes good = BuildElf(SampleSpec(), &lay);
  const uint64_t ph1 = 64 + 56, ph2 = 64 + 2 * 56;
  auto [what, off, value, width, verdict, code] = GENERATE_COPY(
      table<const char*, uint64_t, uint64_t, int, Verdict, const char*>({
          {"32-bit class", 4, 1, 1, Verdict::kCorrupt, "unsupported"},
          {"big-endian", 5, 2, 1, Verdict::kCorrupt, "unsupported"},
          {"class 7", 4, 7, 1, Verdict::kCorrupt, "corrupt"},
          {"not a core file", 16, 2, 2, Verdict::kCorrupt, "corrupt"},
          {"program header size", 54, 32, 2, Verdict::kCorrupt, "corrupt"},
          {"no program headers", 56, 0, 2, Verdict::kCorrupt, "corrupt"},
          {"incomplete flag", 48, 1, 4, Verdict::kIncomplete,
           "incomplete-flag"},
          {"filesz beyond memsz", ph1 + 32, 1 << 20, 8, Verdict::kCorrupt,
           "corrupt"},
          {"segments overlap", ph2 + 8, lay.segment_at[0] + 4096, 8,
           Verdict::kCorrupt, "overlap"},
          {"segment over the headers", ph1 + 8, 0, 8, Verdict::kCorrupt,
           "corrupt"},
          {"segment offset overflows", ph1 + 8, ~0ull - 10, 8,
           Verdict::kCorrupt, "corrupt"},
          {"note runs past its segment", lay.notes_off + 4, 1 << 20, 4,
           Verdict::kCorrupt, "bad-note"},
          {"program headers past the end", 32, 1 << 30, 8, Verdict::kIncomplete,
           "truncated"},
      }));
  CAPTURE(what);
  Bytes bad = good;
  PutLe(bad, off, value, width);
  auto r = CheckBytes(bad);
  INFO(Codes(r));
  CHECK(r.verdict == verdict);
  CHECK(r.findings.HasCode(code));
}

TEST_CASE("counts the kernel image mapped twice by /proc/vmcore once",
          "[unit][elf]") {
  DumpSpec spec = SampleSpec();
  Layout lay;
  Bytes elf = BuildElf(spec, &lay);
  // Turn the last PT_LOAD (pfn 40) into a second mapping of pfns 12-13 with
  // its own copy of the data at the end of the file, as /proc/vmcore does
  // for the kernel image.
  const uint64_t ph4 = 64 + 4 * 56;
  uint64_t copy_at = elf.size();
  elf.insert(elf.end(),
             elf.begin() + static_cast<long>(lay.segment_at[1] + 2 * 4096),
             elf.begin() + static_cast<long>(lay.segment_at[1] + 4 * 4096));
  PutLe(elf, ph4 + 8, copy_at, 8);
  PutLe(elf, ph4 + 24, 12 * 4096, 8);
  PutLe(elf, ph4 + 32, 2 * 4096, 8);
  PutLe(elf, ph4 + 40, 2 * 4096, 8);
  auto r = CheckBytes(elf, "vmcore", ScanOpts(true));
  INFO(Codes(r));
  CHECK(r.verdict == Verdict::kComplete);
  CHECK(r.facts.pages_dumped == spec.pages.size() - 1);  // pfn 40 is gone
  CHECK(r.scan.pages_decoded == spec.pages.size() - 1);
}

TEST_CASE(
    "reads the program header count from section header 0 when "
    "e_phnum is PN_XNUM",
    "[unit][elf]") {
  DumpSpec spec = SampleSpec();
  Bytes elf = BuildElf(spec);
  // Append section header 0 with sh_info = 5 and point e_shoff at it.
  uint64_t shoff = elf.size();
  elf.resize(elf.size() + 64, 0);
  PutLe(elf, shoff + 44, 5, 4);
  PutLe(elf, 40, shoff, 8);
  PutLe(elf, 58, 64, 2);
  PutLe(elf, 60, 1, 2);
  PutLe(elf, 56, 0xffff, 2);
  auto r = CheckBytes(elf);
  INFO(Codes(r));
  CHECK(r.verdict == Verdict::kComplete);
  CHECK(r.facts.pages_dumped == spec.pages.size());
  SECTION("a section header past the end is truncation") {
    PutLe(elf, 40, elf.size() + 4096, 8);
    CHECK(CheckBytes(elf).verdict == Verdict::kIncomplete);
  }
}

TEST_CASE(
    "reads an empty note segment as no notes, from a plain or a flattened "
    "file",
    "[unit][elf]") {
  Bytes elf = BuildElf(SampleSpec());
  PutLe(elf, 64 + 32, 0, 8);  // PT_NOTE p_filesz
  PutLe(elf, 64 + 40, 0, 8);  // and p_memsz
  bool flat = GENERATE(false, true);
  CAPTURE(flat);
  auto r = CheckBytes(flat ? Flatten(elf) : elf);
  INFO(Codes(r));
  CHECK(r.verdict == Verdict::kComplete);
  CHECK(r.facts.format == "elf64");
  CHECK(!r.facts.cpus);
  CHECK(r.facts.pages_dumped == SampleSpec().pages.size());
}

TEST_CASE("an empty read returns 0 bytes from every kind of source",
          "[unit][elf]") {
  namespace v = nmimgr::vmcore;
  Bytes elf = BuildElf(SampleSpec());
  v::MemorySource plain(elf);
  v::MemorySource flat_file(Flatten(elf));
  v::Findings findings;
  v::FlattenedSource flat(flat_file, findings);
  for (v::Source* s : {static_cast<v::Source*>(&plain),
                       static_cast<v::Source*>(&flat)}) {
    CHECK(s->ReadAt(100, std::span<uint8_t>()) == 0);
    CHECK(v::ReadVector(*s, 100, 0, "nothing").empty());
  }
}
