// SPDX-License-Identifier: GPL-2.0-or-later
//
// Random damage to every format: the check must always come back with a
// verdict (no crash, no escaping exception), and damage to the structure
// that makes a dump shorter must never pass as complete.
#include <catch2/catch.hpp>
#include <random>

#include "codec.h"
#include "test_support.h"

using namespace nmimgr::testing;
using nmimgr::vmcore::Verdict;
namespace v = nmimgr::vmcore;

TEST_CASE("survives random byte damage in every format with a verdict",
          "[unit][mutation]") {
  DumpSpec spec = SampleSpec(v::kDumpZstd);
  spec.pages[12] = Page(4096, 0x20, "Kernel panic - not syncing: test", 10);
  auto [name, data] = GENERATE_COPY(table<std::string, Bytes>({
      {"kdump", BuildKdump(spec)},
      {"kdump-v3",
       [&] {
         DumpSpec s = spec;
         s.header_version = 3;
         s.codec = v::kDumpLzo;
         return BuildKdump(s);
       }()},
      {"elf", BuildElf(spec)},
      {"flattened",
       Flatten(BuildKdump(spec), {.record_size = 3000, .unwritten = {}})},
      {"xz", Compress(v::OuterKind::kXz, Flatten(BuildKdump(spec)))},
  }));
  CAPTURE(name);
  std::mt19937_64 rng(std::hash<std::string>{}(name));
  // Damage within the first 20 KiB (headers, bitmaps, descriptors) and
  // anywhere.
  for (int i = 0; i < 120; ++i) {
    Bytes bad = data;
    int flips = 1 + static_cast<int>(rng() % 8);
    uint64_t span = i % 2 ? bad.size() : std::min<uint64_t>(bad.size(), 20480);
    for (int k = 0; k < flips; ++k)
      bad[rng() % span] ^= static_cast<uint8_t>(1 + rng() % 255);
    CAPTURE(i);
    v::DumpResult r;
    REQUIRE_NOTHROW(r = CheckBytes(bad, "vmcore", ScanOpts(true, 2)));
    CHECK(r.verdict != Verdict::kUnreadable);
  }
}
