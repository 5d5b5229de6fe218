// SPDX-License-Identifier: GPL-2.0-or-later
//
// Consistency the structure already proves, without --deep and under
// --no-scan: holes a flattened stream's record map leaves in page data,
// files that are zeros after their first blocks, bitmaps that contradict
// the descriptor table and the page data after it, split parts whose
// bitmaps disagree, and truncations inside ELF segments that repeat
// memory another segment holds.
#include <catch2/catch.hpp>

#include "codec.h"
#include "test_support.h"

using namespace nmimgr::testing;
using nmimgr::vmcore::Verdict;
namespace v = nmimgr::vmcore;

namespace {

// Every way of running the check that does not decode every page.
v::CheckOptions Shallow(bool scan) {
  v::CheckOptions o = ScanOpts();
  o.scan = scan;
  return o;
}

void PutBe(Bytes& b, uint64_t off, int64_t sv) {
  uint64_t val = static_cast<uint64_t>(sv);
  for (int i = 0; i < 8; ++i)
    b[off + i] = static_cast<uint8_t>(val >> (56 - 8 * i));
}

void ClearBit(Bytes& b, uint64_t base, uint64_t pfn) {
  b[base + pfn / 8] &= static_cast<uint8_t>(~(1u << (pfn % 8)));
}

void SetBit(Bytes& b, uint64_t base, uint64_t pfn) {
  b[base + pfn / 8] |= static_cast<uint8_t>(1u << (pfn % 8));
}

// The flattened record (index into `at`) that carries dump offset `off`.
size_t RecordFor(const Bytes& flat, const std::vector<uint64_t>& at,
                 uint64_t off) {
  for (size_t i = 0; i < at.size(); ++i) {
    uint64_t o = 0, n = 0;
    for (int k = 0; k < 8; ++k) {
      o = o << 8 | flat[at[i] + k];
      n = n << 8 | flat[at[i] + 8 + k];
    }
    if (off >= o && off < o + n) return i;
  }
  FAIL("no record carries offset " << off);
  return 0;
}

}  // namespace

TEST_CASE(
    "a flattened stream whose record map leaves page data unwritten is "
    "incomplete without --deep",
    "[unit][flattened][consistency]") {
  bool scan = GENERATE(false, true);
  auto [elf, codec] = GENERATE(table<bool, uint32_t>(
      {{false, 0}, {false, v::kDumpZlib}, {false, v::kDumpLzo}, {true, 0}}));
  CAPTURE(scan, elf, codec);
  Layout lay;
  DumpSpec spec = SampleSpec(codec);
  Bytes dump = elf ? BuildElf(spec, &lay) : BuildKdump(spec, &lay);
  std::vector<uint64_t> at;
  FlatOptions fo;
  fo.record_size = 512;  // several records over the page data
  Bytes flat = Flatten(dump, fo, &at);
  // A record in the middle of the page data: page 6 of the dump.
  const uint64_t page = lay.page_at[6];
  const size_t rec = RecordFor(flat, at, page);
  REQUIRE(rec + 1 < at.size());

  SECTION("a record missing, the end marker present") {
    Bytes holed(flat.begin(), flat.begin() + static_cast<long>(at[rec]));
    holed.insert(holed.end(), flat.begin() + static_cast<long>(at[rec + 1]),
                 flat.end());
    auto r = CheckBytes(holed, "dump.202612021200", Shallow(scan));
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kIncomplete);
    CHECK(r.findings.HasCode("flattened-hole"));
  }
  SECTION("a record shifted past where the dump ends") {
    Bytes shifted = flat;
    PutBe(shifted, at[rec], static_cast<int64_t>(dump.size() + 8192));
    auto r = CheckBytes(shifted, "dump.202612021200", Shallow(scan));
    INFO(Codes(r));
    CHECK(r.verdict != Verdict::kComplete);
    CHECK(r.findings.HasCode("flattened-hole"));
  }
  SECTION("the whole stream has no hole") {
    auto r = CheckBytes(flat, "dump.202612021200", Shallow(scan));
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kComplete);
  }
}

TEST_CASE(
    "a flattened stream that leaves block padding unwritten, as makedumpfile "
    "-F does, is complete",
    "[unit][flattened][consistency]") {
  // makedumpfile writes each bitmap half only as far as the bytes that
  // cover max_mapnr (a real 1 GiB guest: max_mapnr 262109, 32764 of 32768
  // bytes) and the header block only as far as the header.
  auto [deep, codec] = GENERATE(table<bool, uint32_t>(
      {{false, 0}, {false, v::kDumpLzo}, {true, v::kDumpLzo}, {true, 0}}));
  CAPTURE(deep, codec);
  Layout lay;
  DumpSpec spec = SampleSpec(codec);
  spec.max_mapnr = 75;  // cover: 10 bytes of each half
  Bytes dump = BuildKdump(spec, &lay);
  const uint64_t half = lay.bitmap_len / 2, cover = (spec.max_mapnr + 7) / 8;
  REQUIRE(half % 8 == 0);
  REQUIRE(cover % 8 != 0);
  FlatOptions fo;
  fo.unwritten = {{lay.header_end, lay.sub_off},
                  {lay.bitmap_off + cover, lay.bitmap_off + half},
                  {lay.bitmap_off + half + cover, lay.bitmap_off + 2 * half}};
  SECTION("only the padding unwritten") {
    auto r = CheckBytes(Flatten(dump, fo), "dump.202612021200", ScanOpts(deep));
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kComplete);
    CHECK(r.facts.pages_dumped == spec.pages.size());
  }
  SECTION("a byte that covers max_mapnr unwritten as well") {
    fo.unwritten[2].first -= 1;
    auto r = CheckBytes(Flatten(dump, fo), "dump.202612021200", ScanOpts(deep));
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kIncomplete);
    CHECK(r.findings.HasCode("flattened-hole"));
  }
}

TEST_CASE("a dump that is zeros after its first blocks is not complete",
          "[unit][consistency]") {
  bool scan = GENERATE(false, true);
  // An ELF dump's headers and notes fill its first block: zeros from the
  // notes on (memory that is zeros after intact notes cannot be told from a
  // machine's memory without --deep, see docs/vmcore-check.md).
  Layout elf_lay;
  BuildElf(SampleSpec(), &elf_lay);
  auto [kind, keep] =
      GENERATE_COPY(table<std::string, uint64_t>({{"kdump", 2 * 4096},
                                                  {"kdump", 4096 + 200},
                                                  {"elf", elf_lay.notes_off},
                                                  {"flattened", 4096},
                                                  {"flattened", 3 * 4096}}));
  CAPTURE(scan, kind, keep);
  DumpSpec spec = SampleSpec(kind == "elf" ? 0 : v::kDumpZlib);
  Bytes dump = kind == "elf"         ? BuildElf(spec)
               : kind == "flattened" ? Flatten(BuildKdump(spec))
                                     : BuildKdump(spec);
  REQUIRE(dump.size() > keep);
  std::fill(dump.begin() + static_cast<long>(keep), dump.end(), 0);
  auto r = CheckBytes(dump, "vmcore", Shallow(scan));
  INFO(Codes(r));
  CHECK(r.verdict != Verdict::kComplete);
  CHECK(r.verdict != Verdict::kUnreadable);
}

TEST_CASE("bitmaps that contradict the descriptor table are corrupt",
          "[unit][kdump][consistency]") {
  bool scan = GENERATE(false, true);
  uint32_t codec = GENERATE(0u, v::kDumpZlib);
  CAPTURE(scan, codec);
  Layout lay;
  DumpSpec spec = SampleSpec(codec);
  Bytes dump = BuildKdump(spec, &lay);
  const uint64_t bm1 = lay.bitmap_off, bm2 = bm1 + lay.bitmap_len / 2;

  SECTION("a zeroed second bitmap") {
    std::fill(dump.begin() + static_cast<long>(bm2),
              dump.begin() + static_cast<long>(bm1 + lay.bitmap_len), 0);
    auto r = CheckBytes(dump, "vmcore", Shallow(scan));
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kCorrupt);
    CHECK(r.findings.HasCode("bitmap-mismatch"));
  }
  SECTION("a second bitmap that is not a subset of the first") {
    ClearBit(dump, bm1, 12);  // dumped, but no longer memory
    auto r = CheckBytes(dump, "vmcore", Shallow(scan));
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kCorrupt);
    CHECK_THAT(Codes(r),
               Catch::Contains("1 dumped pfns are not memory in the first "
                               "bitmap (the first is pfn 12)"));
  }
  SECTION("a second bitmap with an extra page, and the first with it") {
    SetBit(dump, bm1, 60);
    SetBit(dump, bm2, 60);
    auto r = CheckBytes(dump, "vmcore", Shallow(scan));
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kCorrupt);
    CHECK(r.findings.HasCode("bitmap-mismatch"));
  }
  SECTION("both bitmaps zeroed: they were never written") {
    std::fill(dump.begin() + static_cast<long>(bm1),
              dump.begin() + static_cast<long>(bm1 + lay.bitmap_len), 0);
    auto r = CheckBytes(dump, "vmcore", Shallow(scan));
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kIncomplete);
    CHECK(r.findings.HasCode("empty-bitmap"));
  }
}

TEST_CASE(
    "a capture that stopped before writing the rest of the second bitmap "
    "is incomplete, not corrupt",
    "[unit][kdump][consistency]") {
  // makedumpfile writes the second bitmap cycle by cycle with the pages:
  // when it stops, the bitmap from the next cycle on and the descriptors
  // after those it wrote are still zero, but the table's room and the page
  // data already written say how many pages there were to be.
  Layout lay;
  DumpSpec spec = SampleSpec(v::kDumpZlib);
  Bytes dump = BuildKdump(spec, &lay);
  const uint64_t bm2 = lay.bitmap_off + lay.bitmap_len / 2;
  // Pfns from 16 on: bits cleared, descriptors zero, the data after cut.
  size_t first_lost = 0;
  for (const auto& [pfn, data] : spec.pages) {
    if (pfn >= 16) break;
    ++first_lost;
  }
  for (uint64_t pfn = 16; pfn < spec.max_mapnr; ++pfn) ClearBit(dump, bm2, pfn);
  for (size_t i = first_lost; i < lay.desc_at.size(); ++i)
    std::fill_n(dump.begin() + static_cast<long>(lay.desc_at[i]), 24, 0);
  dump.resize(lay.page_at[first_lost]);
  auto r = CheckBytes(dump, "vmcore", Shallow(GENERATE(false, true)));
  INFO(Codes(r));
  CHECK(r.verdict == Verdict::kIncomplete);
  CHECK(r.findings.HasCode("bitmap-unwritten"));
}

TEST_CASE(
    "split parts whose bitmaps disagree, or whose bits do not match their "
    "descriptors, are corrupt",
    "[unit][split][consistency]") {
  DumpSpec spec = SampleSpec(v::kDumpZlib);
  std::vector<Layout> lays(3);
  std::vector<Bytes> parts = BuildSplit(spec, {12, 30});
  // Layout of a part: the bitmaps sit where BuildKdump puts them.
  Layout lay;
  BuildKdump(spec, &lay);
  const uint64_t bm1 = lay.bitmap_off, bm2 = bm1 + lay.bitmap_len / 2;
  TempDir dir;
  v::DumpSet set;
  set.dir = dir.path();
  set.split = true;
  set.layout = "unknown";
  auto check = [&](bool scan) {
    set.files.clear();
    for (size_t i = 0; i < parts.size(); ++i) {
      std::string name = dir / ("vmcore_" + std::to_string(i + 1));
      WriteFile(name, parts[i]);
      set.files.push_back(name);
    }
    return v::CheckDump(set, Shallow(scan));
  };
  bool scan = GENERATE(false, true);
  CAPTURE(scan);
  SECTION("the real layout: each part's page data after the whole table") {
    auto r = check(scan);
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kComplete);
  }
  SECTION("one part's copy of the first bitmap differs") {
    SetBit(parts[2], bm1, 70);  // outside part 3's own range
    auto r = check(scan);
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kCorrupt);
    CHECK_THAT(Codes(r), Catch::Contains("the first bitmap of part 3 "
                                         "differs from part 1's"));
  }
  SECTION("one part's copy of the second bitmap differs") {
    ClearBit(parts[1], bm2, 2);  // outside part 2's own range [12, 30)
    auto r = check(scan);
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kCorrupt);
    CHECK(r.findings.HasCode("split-mismatch"));
  }
  SECTION("every copy loses the same dumped page: no part's table fits") {
    for (Bytes& p : parts) ClearBit(p, bm2, 15);
    auto r = check(scan);
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kCorrupt);
    CHECK(r.findings.HasCode("bitmap-mismatch"));
  }
}

TEST_CASE(
    "a truncation inside an ELF segment that repeats memory another segment "
    "holds is still a truncation",
    "[unit][elf][consistency]") {
  // /proc/vmcore shows the kernel image twice; makedumpfile -E and cp keep
  // both.  Make the last segment (one page, pfn 40) a second view of pfn 10,
  // inside the segment for pfns 10-19, and cut the file inside it.
  Layout lay;
  DumpSpec spec = SampleSpec();
  Bytes elf = BuildElf(spec, &lay);
  const uint64_t last_ph = lay.phdr_end - 56;
  for (int i = 0; i < 8; ++i) elf[last_ph + 24 + i] = 0;  // p_paddr
  const uint64_t paddr = 10 * 4096;
  for (int i = 0; i < 8; ++i)
    elf[last_ph + 24 + i] = static_cast<uint8_t>(paddr >> (8 * i));
  SECTION("whole: the repeat is counted once") {
    auto r = CheckBytes(elf, "vmcore", Shallow(true));
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kComplete);
  }
  SECTION("cut inside the repeating segment") {
    elf.resize(elf.size() - 100);
    auto r = CheckBytes(elf, "vmcore", Shallow(GENERATE(false, true)));
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kIncomplete);
    CHECK(r.findings.HasCode("truncated"));
  }
}
