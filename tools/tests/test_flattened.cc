// SPDX-License-Identifier: GPL-2.0-or-later
#include <catch2/catch.hpp>
#include <random>

#include "codec.h"
#include "flattened.h"
#include "test_support.h"

using namespace nmimgr::testing;
using nmimgr::vmcore::OuterKind;
using nmimgr::vmcore::Verdict;
namespace v = nmimgr::vmcore;

namespace {

void PutBe(Bytes& b, uint64_t off, int64_t sv) {
  uint64_t val = static_cast<uint64_t>(sv);
  for (int i = 0; i < 8; ++i)
    b[off + i] = static_cast<uint8_t>(val >> (56 - 8 * i));
}

}  // namespace

TEST_CASE("reads a flattened dump in place, later records winning",
          "[unit][flattened]") {
  auto [record_size, rewrite] = GENERATE(table<uint64_t, bool>(
      {{4096, false}, {1000, true}, {65536, true}, {24, false}}));
  CAPTURE(record_size, rewrite);
  DumpSpec spec = SampleSpec(v::kDumpZlib);
  Bytes kd = BuildKdump(spec);
  FlatOptions o;
  o.record_size = record_size;
  o.rewrite_header = rewrite;
  Bytes flat = Flatten(kd, o);

  v::MemorySource file(flat);
  v::Findings f;
  v::FlattenedSource view(file, f);
  CHECK(f.all().empty());
  REQUIRE(view.Size() == kd.size());
  Bytes back(kd.size());
  REQUIRE(view.ReadAt(0, back) == kd.size());
  CHECK(back == kd);

  auto r = CheckBytes(flat, "dump.202611261455", ScanOpts(true));
  INFO(Codes(r));
  CHECK(r.verdict == Verdict::kComplete);
  CHECK(r.container == "flattened");
  CHECK(r.facts.format == "kdump-compressed");
  CHECK(r.facts.pages_dumped == spec.pages.size());
}

TEST_CASE("reads an ELF dump carried in the flattened format",
          "[unit][flattened][elf]") {
  auto r = CheckBytes(Flatten(BuildElf(SampleSpec())));
  CHECK(r.verdict == Verdict::kComplete);
  CHECK(r.facts.format == "elf64");
  CHECK(r.container == "flattened");
}

TEST_CASE("never calls a flattened dump complete when cut anywhere",
          "[unit][flattened][truncation]") {
  std::vector<uint64_t> at;
  Bytes flat = Flatten(BuildKdump(SampleSpec(v::kDumpLzo)), {}, &at);
  std::vector<uint64_t> cuts = {0, 1, 12, 100, 4095, 4096};
  for (uint64_t r : at) cuts.insert(cuts.end(), {r, r + 8, r + 16, r + 17});
  std::mt19937_64 rng(99);
  for (int i = 0; i < 40; ++i) cuts.push_back(rng() % flat.size());
  cuts.push_back(flat.size() - 16);  // exactly without the end marker
  cuts.push_back(flat.size() - 1);
  for (uint64_t cut : cuts) {
    CAPTURE(cut);
    Bytes part(flat.begin(), flat.begin() + static_cast<long>(cut));
    auto r = CheckBytes(part, "dump.202611261455", ScanOpts(false, 1));
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kIncomplete);
  }
}

TEST_CASE(
    "reports a flattened stream that stops cleanly without its end "
    "marker",
    "[unit][flattened]") {
  FlatOptions o;
  o.end_marker = false;
  auto r = CheckBytes(Flatten(BuildKdump(SampleSpec()), o));
  CHECK(r.verdict == Verdict::kIncomplete);
  REQUIRE(r.findings.HasCode("no-end-marker"));
  // The dump it carries is whole: that is the only finding.
  CHECK(r.findings.all().size() == 1);
}

TEST_CASE("names the flattened record cut by the end of the file",
          "[unit][flattened]") {
  std::vector<uint64_t> at;
  Bytes flat = Flatten(BuildKdump(SampleSpec()), {}, &at);
  Bytes part(flat.begin(), flat.begin() + static_cast<long>(at[3] + 100));
  auto r = CheckBytes(part);
  CHECK_THAT(Codes(r), Catch::Contains("flattened record 3 at offset " +
                                       std::to_string(at[3])));
}

TEST_CASE("tells corrupt flattened headers and records from truncation",
          "[unit][flattened][corrupt]") {
  std::vector<uint64_t> at;
  const Bytes good = Flatten(BuildKdump(SampleSpec()), {}, &at);
  auto [what, off, value, verdict, code] = GENERATE_COPY(
      table<const char*, uint64_t, int64_t, Verdict, const char*>({
          {"type", 16, 2, Verdict::kCorrupt, "bad-version"},
          {"version", 24, 7, Verdict::kCorrupt, "bad-version"},
          {"negative offset", at[2], -5, Verdict::kCorrupt, "impossible-size"},
          {"negative size", at[2] + 8, -2, Verdict::kCorrupt,
           "impossible-size"},
          {"offset + size overflow", at[2], INT64_MAX - 10, Verdict::kCorrupt,
           "impossible-size"},
          {"size past the end", at[2] + 8, 1ll << 40, Verdict::kIncomplete,
           "truncated"},
      }));
  CAPTURE(what);
  Bytes bad = good;
  PutBe(bad, off, value);
  auto r = CheckBytes(bad);
  INFO(Codes(r));
  CHECK(r.verdict == verdict);
  CHECK(r.findings.HasCode(code));
}

TEST_CASE("reads whole-file compressed dumps as a stream", "[unit][outer]") {
  auto [kind, suffix] =
      GENERATE(table<OuterKind, std::string>({{OuterKind::kXz, ".xz"},
                                              {OuterKind::kGzip, ".gz"},
                                              {OuterKind::kBzip2, ".bz2"},
                                              {OuterKind::kLz4, ".lz4"}}));
  CAPTURE(suffix);
  DumpSpec spec = SampleSpec(v::kDumpZstd);
  // Big enough to span several 1 MiB stream blocks.
  spec.max_mapnr = 2000;
  for (uint64_t p = 100; p < 900; ++p)
    spec.pages[p] = Page(4096, static_cast<uint8_t>(p * 7), std::to_string(p));
  spec.codec = 0;
  Bytes flat = Flatten(BuildKdump(spec));
  Bytes packed = Compress(kind, flat);
  auto r = CheckBytes(packed, "dump.202611261455" + suffix, ScanOpts(true));
  INFO(Codes(r));
  CHECK(r.verdict == Verdict::kComplete);
  CHECK(r.outer == v::OuterName(kind));
  CHECK(r.container == "flattened");
  CHECK(r.facts.pages_dumped == spec.pages.size());
  CHECK(r.scan.pages_decoded == spec.pages.size() - 2);

  SECTION("a compressed file cut short is incomplete") {
    Bytes cut(packed.begin(),
              packed.begin() + static_cast<long>(packed.size() * 2 / 3));
    auto rc = CheckBytes(cut, "dump.202611261455" + suffix);
    INFO(Codes(rc));
    CHECK(rc.verdict == Verdict::kIncomplete);
    CHECK(rc.findings.HasCode("outer-truncated"));
  }
  SECTION(
      "garbage inside the compressed stream is corrupt or incomplete, "
      "never complete") {
    Bytes bad = packed;
    for (size_t i = bad.size() / 2; i < bad.size() / 2 + 64; ++i)
      bad[i] ^= 0x5a;
    auto rb = CheckBytes(bad, "dump.202611261455" + suffix);
    INFO(Codes(rb));
    CHECK(rb.verdict != Verdict::kComplete);
  }
}

TEST_CASE("reads a split set and reports a missing part", "[unit][split]") {
  DumpSpec spec = SampleSpec(v::kDumpZlib);
  std::vector<Bytes> parts = BuildSplit(spec, {12, 30});
  REQUIRE(parts.size() == 3);
  TempDir dir;
  std::vector<std::string> names = {"vmcore_1", "vmcore_2", "vmcore_3"};
  for (size_t i = 0; i < 3; ++i) WriteFile(dir / names[i], parts[i]);
  v::DumpSet set;
  set.dir = dir.path();
  set.split = true;
  set.layout = "unknown";
  SECTION("complete") {
    for (auto& n : names) set.files.push_back(dir / n);
    auto r = v::CheckDump(set, ScanOpts(true));
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kComplete);
    CHECK(r.facts.split);
    CHECK(r.facts.pages_dumped == spec.pages.size());
    CHECK(r.facts.pages_excluded == spec.excluded.size());
    CHECK(r.scan.pages_bad == 0);
  }
  SECTION("middle part missing") {
    set.files = {dir / names[0], dir / names[2]};
    auto r = v::CheckDump(set, ScanOpts());
    CHECK(r.verdict == Verdict::kIncomplete);
    CHECK_THAT(Codes(r), Catch::Contains("no part covers pfns [12, 30)"));
  }
  SECTION("last part missing") {
    set.files = {dir / names[0], dir / names[1]};
    auto r = v::CheckDump(set, ScanOpts());
    CHECK(r.verdict == Verdict::kIncomplete);
    CHECK_THAT(Codes(r), Catch::Contains("no part covers pfns [30, 80)"));
  }
  SECTION("a part cut short") {
    Bytes cut(parts[1].begin(), parts[1].end() - 100);
    WriteFile(dir / names[1], cut);
    for (auto& n : names) set.files.push_back(dir / n);
    auto r = v::CheckDump(set, ScanOpts());
    CHECK(r.verdict == Verdict::kIncomplete);
    CHECK_THAT(Codes(r), Catch::Contains("split part vmcore_2: "));
  }
}

TEST_CASE(
    "reports a flattened stream that kept its end marker but lost "
    "records the dump needs",
    "[unit][flattened]") {
  std::vector<uint64_t> at;
  DumpSpec spec = SampleSpec();  // raw pages: zeros would pass unnoticed
  Bytes flat = Flatten(BuildKdump(spec), {}, &at);
  REQUIRE(at.size() > 8);
  // Drop record 7 (4 KiB of page data) and keep everything else.
  Bytes holed(flat.begin(), flat.begin() + static_cast<long>(at[7]));
  holed.insert(holed.end(), flat.begin() + static_cast<long>(at[8]),
               flat.end());
  // The structure proves it: no --deep needed, and not even the scan.
  auto [scan, deep] = GENERATE(
      table<bool, bool>({{false, false}, {true, false}, {true, true}}));
  CAPTURE(scan, deep);
  v::CheckOptions o = ScanOpts(deep);
  o.scan = scan;
  auto r = CheckBytes(holed, "vmcore", o);
  INFO(Codes(r));
  CHECK(r.verdict == Verdict::kIncomplete);
  CHECK(r.findings.HasCode("flattened-hole"));
  CHECK_THAT(Codes(r), Catch::Contains("was never written from offset " +
                                       std::to_string(7 * 4096) + " on"));
  // The whole stream has no holes where the dump reads.
  auto whole = CheckBytes(flat, "vmcore", ScanOpts(true));
  CHECK_FALSE(whole.findings.HasCode("flattened-hole"));
}

TEST_CASE("reports bytes after the flattened end marker", "[unit][flattened]") {
  Bytes flat = Flatten(BuildKdump(SampleSpec()));
  flat.insert(flat.end(), {1, 2, 3, 4});
  auto r = CheckBytes(flat);
  CHECK(r.verdict == Verdict::kCorrupt);
  CHECK_THAT(Codes(r), Catch::Contains("4 bytes after the end marker"));
}

TEST_CASE("reports split parts that disagree or overlap", "[unit][split]") {
  DumpSpec spec = SampleSpec();
  std::vector<Bytes> parts = BuildSplit(spec, {30});
  DumpSpec other = spec;
  other.max_mapnr = 96;
  TempDir dir;
  v::DumpSet set;
  set.dir = dir.path();
  set.split = true;
  SECTION("parts of different sizes of memory") {
    WriteFile(dir / "a", parts[0]);
    WriteFile(dir / "b", BuildSplit(other, {30})[1]);
    set.files = {dir / "a", dir / "b"};
    auto r = v::CheckDump(set, ScanOpts());
    CHECK(r.verdict == Verdict::kCorrupt);
    CHECK(r.findings.HasCode("split-mismatch"));
  }
  SECTION("parts that overlap") {
    WriteFile(dir / "a", parts[0]);
    WriteFile(dir / "b", BuildSplit(spec, {20})[1]);
    set.files = {dir / "a", dir / "b"};
    auto r = v::CheckDump(set, ScanOpts());
    CHECK(r.verdict == Verdict::kCorrupt);
    CHECK_THAT(Codes(r), Catch::Contains("parts overlap at pfn 20"));
  }
  SECTION("a part that is no split part") {
    WriteFile(dir / "a", parts[0]);
    WriteFile(dir / "b", BuildKdump(spec));
    set.files = {dir / "a", dir / "b"};
    auto r = v::CheckDump(set, ScanOpts());
    CHECK(r.verdict == Verdict::kCorrupt);
    CHECK_THAT(Codes(r), Catch::Contains("part 2 is not a split part"));
  }
}

namespace {

void PutLe64(Bytes& b, uint64_t off, uint64_t val, int n = 8) {
  for (int i = 0; i < n; ++i) b[off + i] = static_cast<uint8_t>(val >> (8 * i));
}

// `dump` flattened without its end marker, then a record of `len` bytes at
// dump offset `far`, then the end marker.
Bytes FlattenWithFarRecord(const Bytes& dump, uint64_t far, uint64_t len) {
  FlatOptions o;
  o.end_marker = false;
  Bytes f = Flatten(dump, o);
  uint64_t at = f.size();
  f.resize(at + 16 + len + 16, 0x5a);
  PutBe(f, at, static_cast<int64_t>(far));
  PutBe(f, at + 8, static_cast<int64_t>(len));
  PutBe(f, at + 16 + len, -1);
  PutBe(f, at + 24 + len, -1);
  return f;
}

}  // namespace

TEST_CASE(
    "reports an ELF segment in space a flattened stream never wrote as "
    "missing, without scanning it",
    "[unit][flattened][elf]") {
  Layout lay;
  Bytes elf = BuildElf(SampleSpec(), &lay);
  // The second program header is the first PT_LOAD: move its data far out.
  const uint64_t ph = 64 + 56, far = uint64_t{1} << 57;
  PutLe64(elf, ph + 8, uint64_t{1} << 50);   // p_offset
  PutLe64(elf, ph + 32, uint64_t{1} << 50);  // p_filesz
  PutLe64(elf, ph + 40, uint64_t{1} << 50);  // p_memsz
  auto [len, code] = GENERATE(
      table<uint64_t, const char*>({{0, "truncated"}, {1, "flattened-hole"}}));
  CAPTURE(len);
  auto r =
      CheckBytes(FlattenWithFarRecord(elf, far, len), "vmcore", ScanOpts(true));
  INFO(Codes(r));
  CHECK(r.verdict == Verdict::kIncomplete);
  CHECK(r.findings.HasCode(code));
  if (len == 0) {
    // An empty record writes nothing: the dump ends where the data does.
    CHECK_THAT(Codes(r), Catch::Contains("ends past the end of the file"));
  } else {
    CHECK_THAT(Codes(r), Catch::Contains("was never written from offset " +
                                         std::to_string(uint64_t{1} << 50)));
  }
  CHECK(r.scan.pages_decoded < 100);
}

TEST_CASE(
    "reports a kdump bitmap in space a flattened stream never wrote as "
    "missing, without counting it",
    "[unit][flattened][kdump]") {
  DumpSpec spec = SampleSpec();
  Bytes kd = BuildKdump(spec);
  // A bitmap of 2^28 blocks (1 TiB at 4 KiB) for 2^40 pages: it "fits" in
  // a dump whose last record lies at 2^50.
  PutLe64(kd, 436, uint64_t{1} << 28, 4);     // bitmap_blocks
  PutLe64(kd, 4096 + 96, uint64_t{1} << 40);  // max_mapnr (v6)
  bool no_scan = GENERATE(false, true);
  CAPTURE(no_scan);
  v::CheckOptions o = ScanOpts();
  o.scan = !no_scan;
  auto r =
      CheckBytes(FlattenWithFarRecord(kd, uint64_t{1} << 50, 1), "vmcore", o);
  INFO(Codes(r));
  CHECK(r.verdict == Verdict::kIncomplete);
  CHECK(r.findings.HasCode("flattened-hole"));
  // Each half must be written as far as it covers max_mapnr: 2^37 bytes.
  CHECK_THAT(Codes(r), Catch::Contains("first bitmap: " +
                                       std::to_string(uint64_t{1} << 37) +
                                       " bytes at offset"));
}

TEST_CASE("tells how much of a range a flattened stream wrote",
          "[unit][flattened]") {
  Bytes dump(3 * 4096, 0x11);
  v::MemorySource file(FlattenWithFarRecord(dump, 8 * 4096, 100));
  v::Findings findings;
  v::FlattenedSource flat(file, findings);
  CHECK(flat.Size() == 8 * 4096 + 100);
  CHECK(flat.Written(0, 3 * 4096) == 3 * 4096);
  CHECK(flat.Written(4096, 1 << 20) == 2 * 4096);
  CHECK(flat.Written(3 * 4096, 10) == 0);
  CHECK(flat.Written(8 * 4096 + 50, 1000) == 50);
  CHECK(flat.Written(9 * 4096, 10) == 0);
}
