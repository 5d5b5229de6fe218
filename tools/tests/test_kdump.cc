// SPDX-License-Identifier: GPL-2.0-or-later
#include <catch2/catch.hpp>
#include <cstring>
#include <mutex>
#include <random>

#include "codec.h"
#include "kdump_reader.h"
#include "scan.h"
#include "test_support.h"

using namespace nmimgr::testing;
using nmimgr::vmcore::Severity;
using nmimgr::vmcore::Verdict;
namespace v = nmimgr::vmcore;

namespace {

void PutLe(Bytes& b, uint64_t off, uint64_t val, int n) {
  for (int i = 0; i < n; ++i) b[off + i] = static_cast<uint8_t>(val >> (8 * i));
}

// Collects every page the engine decodes.
class Collector : public v::PageVisitor {
 public:
  void Visit(uint64_t, uint64_t pfn, uint64_t, std::span<const uint8_t> page,
             std::span<const uint8_t>) override {
    std::lock_guard lock(mu);
    pages[pfn] = Bytes(page.begin(), page.end());
  }
  std::mutex mu;
  std::map<uint64_t, Bytes> pages;
};

}  // namespace

TEST_CASE(
    "reads a complete kdump-compressed dump with each codec and "
    "header version",
    "[unit][kdump]") {
  auto [codec, version] = GENERATE(table<uint32_t, int>({{0, 6},
                                                         {v::kDumpZlib, 6},
                                                         {v::kDumpLzo, 6},
                                                         {v::kDumpSnappy, 6},
                                                         {v::kDumpZstd, 6},
                                                         {v::kDumpZlib, 5},
                                                         {v::kDumpLzo, 4},
                                                         {v::kDumpSnappy, 3},
                                                         {v::kDumpZlib, 2},
                                                         {0, 1}}));
  CAPTURE(codec, version);
  DumpSpec spec = SampleSpec(codec);
  spec.header_version = version;
  auto r = CheckBytes(BuildKdump(spec), "vmcore", ScanOpts(true));
  INFO(Codes(r));
  CHECK(r.verdict == Verdict::kComplete);
  CHECK(r.facts.format == "kdump-compressed");
  CHECK(r.facts.compression == v::CodecName(codec));
  CHECK(r.facts.pages_dumped == spec.pages.size());
  CHECK(r.facts.pages_excluded == spec.excluded.size());
  CHECK(r.facts.dump_level == 31);
  CHECK(r.facts.pages_zero == 2u);
  CHECK(r.facts.cpus == 2u);  // NT_PRSTATUS notes (v4+) or nr_cpus
  CHECK(r.facts.kernel_release == "6.1.0-56-amd64");
  if (version >= 3) {
    CHECK(r.facts.crash_time == spec.crash_time);
  } else {
    CHECK_FALSE(r.facts.crash_time.has_value());
  }
  CHECK(r.scan.pages_bad == 0);
  // Zero pages are not decoded one by one: 16 stored pages remain.
  CHECK(r.scan.pages_decoded == spec.pages.size() - 2);
}

TEST_CASE("decodes every page back to the content it was built from",
          "[unit][kdump]") {
  uint32_t codec =
      GENERATE(0u, v::kDumpZlib, v::kDumpLzo, v::kDumpSnappy, v::kDumpZstd);
  CAPTURE(codec);
  DumpSpec spec = SampleSpec(codec);
  v::MemorySource src(BuildKdump(spec));
  auto reader = v::OpenKdumpReader(src);
  v::DumpFacts facts;
  v::Findings findings;
  reader->CheckStructure(facts, findings);
  REQUIRE(findings.all().empty());
  Collector c;
  v::ScanOptions so;
  so.threads = 2;
  so.deep = true;
  v::ScanPages(*reader, 4096, c, so, findings);
  CHECK(findings.all().empty());
  for (const auto& [pfn, data] : spec.pages) {
    CAPTURE(pfn);
    bool zero =
        std::all_of(data.begin(), data.end(), [](uint8_t b) { return !b; });
    if (zero) {
      CHECK(c.pages.count(pfn) == 0);  // the shared zero page is not rescanned
    } else {
      REQUIRE(c.pages.count(pfn) == 1);
      CHECK(c.pages[pfn] == data);
    }
  }
}

TEST_CASE(
    "never calls a kdump-compressed dump complete when cut at a "
    "structural boundary",
    "[unit][kdump][truncation]") {
  uint32_t codec = GENERATE(0u, v::kDumpZlib, v::kDumpZstd);
  CAPTURE(codec);
  Layout lay;
  Bytes full = BuildKdump(SampleSpec(codec), &lay);
  for (uint64_t cut : lay.Boundaries()) {
    CAPTURE(cut);
    Bytes part(full.begin(), full.begin() + static_cast<long>(cut));
    auto r = CheckBytes(part);
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kIncomplete);
    CHECK(r.findings.HasCode("truncated"));
  }
}

TEST_CASE(
    "never calls a kdump-compressed dump complete when cut at random "
    "offsets",
    "[unit][kdump][truncation]") {
  Bytes full = BuildKdump(SampleSpec(v::kDumpLzo));
  std::mt19937_64 rng(20261126);
  for (int i = 0; i < 60; ++i) {
    uint64_t cut = rng() % full.size();
    CAPTURE(cut);
    Bytes part(full.begin(), full.begin() + static_cast<long>(cut));
    auto r = CheckBytes(part, "vmcore", ScanOpts(false, 1));
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kIncomplete);
  }
}

TEST_CASE("names the first descriptor that lies past the end",
          "[unit][kdump]") {
  Layout lay;
  Bytes full = BuildKdump(SampleSpec(), &lay);
  Bytes part(full.begin(), full.begin() + static_cast<long>(lay.desc_at[5]));
  auto r = CheckBytes(part);
  REQUIRE(r.verdict == Verdict::kIncomplete);
  const auto& f = r.findings.all().front();
  CHECK(f.code == "truncated");
  CHECK_THAT(f.message,
             Catch::Contains("page descriptor 5 (pfn 12) at offset " +
                             std::to_string(lay.desc_at[5])));
  CHECK_THAT(f.message, Catch::Contains("10 of 15 descriptors are missing"));
}

TEST_CASE("names the first page whose data lies past the end",
          "[unit][kdump]") {
  Layout lay;
  Bytes full = BuildKdump(SampleSpec(), &lay);
  uint64_t cut = lay.page_at[7] + 10;  // inside the page of descriptor 7
  Bytes part(full.begin(), full.begin() + static_cast<long>(cut));
  auto r = CheckBytes(part);
  REQUIRE(r.verdict == Verdict::kIncomplete);
  CHECK_THAT(Codes(r), Catch::Contains("page descriptor 7 (pfn 14)"));
  CHECK_THAT(Codes(r), Catch::Contains("end past the end of the file (" +
                                       std::to_string(cut) + ")"));
}

TEST_CASE("reports descriptors left zero inside the file by a killed write",
          "[unit][kdump]") {
  Layout lay;
  Bytes full = BuildKdump(SampleSpec(v::kDumpZlib), &lay);
  for (size_t i = 9; i < lay.desc_at.size(); ++i)
    std::memset(full.data() + lay.desc_at[i], 0, 24);
  auto r = CheckBytes(full);
  INFO(Codes(r));
  CHECK(r.verdict == Verdict::kIncomplete);
  REQUIRE(r.findings.HasCode("zero-descriptors"));
  CHECK_THAT(Codes(r), Catch::Contains("6 page descriptors inside the file "
                                       "are zero"));
  CHECK_THAT(Codes(r), Catch::Contains("descriptor 9 (pfn 16)"));
}

TEST_CASE("reports the incomplete flag of the kdump header", "[unit][kdump]") {
  DumpSpec spec = SampleSpec(v::kDumpSnappy);
  spec.incomplete_flag = true;
  auto r = CheckBytes(BuildKdump(spec));
  CHECK(r.verdict == Verdict::kIncomplete);
  CHECK(r.findings.HasCode("incomplete-flag"));
  CHECK(r.facts.compression == "snappy");
}

TEST_CASE(
    "tells corruption of kdump-compressed headers and descriptors "
    "from truncation",
    "[unit][kdump][corrupt]") {
  Layout lay;
  const Bytes good = BuildKdump(SampleSpec(v::kDumpZlib), &lay);
  struct Case {
    const char* what;
    uint64_t off;
    uint64_t value;
    int width;
    Verdict verdict;
    const char* code;
  };
  const uint64_t d3 = lay.desc_at[3], d4 = lay.desc_at[4];
  auto c = GENERATE_COPY(table<const char*, uint64_t, uint64_t, int, Verdict,
                               const char*>({
      {"signature", 0, 0x58, 1, Verdict::kCorrupt, "unknown-format"},
      {"version 0", 8, 0, 4, Verdict::kCorrupt, "corrupt"},
      {"version 7", 8, 7, 4, Verdict::kCorrupt, "corrupt"},
      {"block size not a power of two", 428, 3000, 4, Verdict::kCorrupt,
       "corrupt"},
      {"block size negative", 428, 0xfffff000u, 4, Verdict::kCorrupt,
       "corrupt"},
      {"sub-header size zero", 432, 0, 4, Verdict::kCorrupt, "corrupt"},
      {"odd bitmap blocks", 436, 3, 4, Verdict::kCorrupt, "corrupt"},
      {"two codecs in status", 424, 0x3, 4, Verdict::kCorrupt, "corrupt"},
      {"incomplete flag", 424, 0x9, 4, Verdict::kIncomplete, "incomplete-flag"},
      {"max_mapnr beyond the bitmap", 4096 + 96, 1ull << 40, 8,
       Verdict::kCorrupt, "corrupt"},
      {"vmcoreinfo in the bitmap", 4096 + 32, lay.bitmap_off, 8,
       Verdict::kCorrupt, "corrupt"},
      {"notes size impossible", 4096 + 56, 1ull << 40, 8, Verdict::kCorrupt,
       "corrupt"},
      {"page data inside the descriptors", d3, lay.desc_off + 8, 8,
       Verdict::kCorrupt, "overlap"},
      {"page data over an earlier page", d4, lay.page_at[3], 8,
       Verdict::kCorrupt, "overlap"},
      {"page size bigger than a page", d3 + 8, 5000, 4, Verdict::kCorrupt,
       "bad-descriptor"},
      {"page size zero", d3 + 8, 0, 4, Verdict::kCorrupt, "bad-descriptor"},
      {"unknown page flag", d3 + 12, 0x40, 4, Verdict::kCorrupt,
       "bad-descriptor"},
      {"two page codecs", d3 + 12, 0x3, 4, Verdict::kCorrupt, "bad-descriptor"},
      {"negative page offset", d3, 1ull << 63, 8, Verdict::kCorrupt, "overlap"},
      {"page offset past the end", d3, 1ull << 50, 8, Verdict::kIncomplete,
       "truncated"},
      {"wrong codec on a page", d3 + 12, v::kDumpLzo, 4, Verdict::kCorrupt,
       "bad-page"},
      {"page data garbage", lay.page_at[3] + 2, 0xdeadbeefdeadbeefull, 8,
       Verdict::kCorrupt, "bad-page"},
  }));
  auto [what, off, value, width, verdict, code] = c;
  CAPTURE(what);
  Bytes bad = good;
  PutLe(bad, off, value, width);
  auto r = CheckBytes(bad);
  INFO(Codes(r));
  CHECK(r.verdict == verdict);
  CHECK(r.findings.HasCode(code));
}

TEST_CASE("counts excluded pages from the two bitmaps", "[unit][kdump]") {
  DumpSpec spec;
  spec.max_mapnr = 1000;
  for (uint64_t p = 100; p < 110; ++p) spec.pages[p] = Page(4096, 7);
  for (uint64_t p = 500; p < 800; ++p) spec.excluded.insert(p);
  spec.dump_level = 30;  // zero pages not excluded: no shared zero page
  auto r = CheckBytes(BuildKdump(spec), "vmcore", ScanOpts(true));
  INFO(Codes(r));
  CHECK(r.verdict == Verdict::kComplete);
  CHECK(r.facts.pages_dumped == 10);
  CHECK(r.facts.pages_excluded == 300);
  CHECK_FALSE(r.facts.pages_zero.has_value());
}

TEST_CASE("tells data that never reached the disk from corruption",
          "[unit][kdump]") {
  Layout lay;
  Bytes dump = BuildKdump(SampleSpec(v::kDumpZlib), &lay);
  SECTION("a file of zeros") {
    auto r = CheckBytes(Bytes(dump.size(), 0));
    CHECK(r.verdict == Verdict::kIncomplete);
    CHECK(r.findings.HasCode("zero-filled"));
  }
  SECTION("page data zeroed from some point on") {
    std::fill(dump.begin() + static_cast<long>(lay.page_at[6]), dump.end(), 0);
    auto r = CheckBytes(dump, "vmcore", ScanOpts(true));
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kIncomplete);
    CHECK(r.findings.HasCode("zero-data"));
    CHECK_FALSE(r.findings.HasCode("bad-page"));
    CHECK_THAT(Codes(r), Catch::Contains("the first is the page at pfn 13"));
  }
}

TEST_CASE("reports a second bitmap that disagrees with the descriptor table",
          "[unit][kdump][corrupt]") {
  Layout lay;
  Bytes dump = BuildKdump(SampleSpec(v::kDumpZlib), &lay);
  const uint64_t bitmap2 = lay.bitmap_off + lay.bitmap_len / 2;
  SECTION("a dumped page's bit cleared") {
    dump[bitmap2 + 12 / 8] &= static_cast<uint8_t>(~(1u << (12 % 8)));
    auto r = CheckBytes(dump);
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kCorrupt);
    CHECK(r.findings.HasCode("bitmap-mismatch"));
  }
  SECTION("an excluded page's bit set") {
    dump[bitmap2 + 30 / 8] |= static_cast<uint8_t>(1u << (30 % 8));
    auto r = CheckBytes(dump);
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kCorrupt);
  }
  SECTION("max_mapnr shrunk below dumped pages") {
    for (int i = 0; i < 8; ++i)
      dump[4096 + 96 + i] = static_cast<uint8_t>(i == 0 ? 32 : 0);
    auto r = CheckBytes(dump);
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kCorrupt);
    CHECK_THAT(Codes(r), Catch::Contains("at or past max_mapnr 32 are set"));
  }
}

TEST_CASE("clamps an absurd thread count instead of starting that many threads",
          "[unit][kdump]") {
  unsigned threads = GENERATE(0u, 1u, v::kMaxScanThreads + 1, 4294967295u);
  CAPTURE(threads);
  auto r = CheckBytes(BuildKdump(SampleSpec(v::kDumpZlib)), "vmcore",
                      ScanOpts(true, threads));
  CHECK(r.verdict == v::Verdict::kComplete);
  CHECK(r.scan.pages_decoded > 0);
}
