// SPDX-License-Identifier: GPL-2.0-or-later
//
// Bounded work: what the tool reads and allocates follows the bytes a dump
// holds on disk, not the sizes its header claims.  Measured through the
// kernel's own accounting of this process (/proc/self/io rchar, the bytes
// read(2) and pread(2) returned, and the peak resident set), not by time.
#include <sys/resource.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "test_support.h"

using namespace nmimgr::testing;
using nmimgr::vmcore::Verdict;
namespace v = nmimgr::vmcore;

namespace {

uint64_t BytesReadSoFar() {
  std::ifstream io("/proc/self/io");
  std::string key;
  uint64_t value = 0;
  while (io >> key >> value)
    if (key == "rchar:") return value;
  FAIL("no rchar in /proc/self/io");
  return 0;
}

struct Cost {
  v::DumpResult result;
  uint64_t bytes_read;
};

Cost CheckCounted(const std::string& dir, const std::string& path,
                  v::CheckOptions o) {
  v::DumpSet set;
  set.dir = dir;
  set.files = {path};
  uint64_t before = BytesReadSoFar();
  Cost c{v::CheckDump(set, o), 0};
  c.bytes_read = BytesReadSoFar() - before;
  return c;
}

void CheckPeakMemory() {
#ifndef __SANITIZE_ADDRESS__  // ASan's shadow memory is not ours
  // Peak of the whole process, so run this test alone (ctest does).
  struct rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  CHECK(ru.ru_maxrss < 64 * 1024);  // KiB
#endif
}

}  // namespace

TEST_CASE(
    "checks the structure of a sparse dump describing 1 TiB in little memory",
    "[unit][scale]") {
  TempDir tmp;
  std::string path = tmp / "vmcore";
  const SparseKdump sparse = WriteSparseKdump1TiB(path);
  v::CheckOptions o = ScanOpts();
  bool scan = GENERATE(false, true);
  CAPTURE(scan);
  o.scan = scan;
  Cost c = CheckCounted(tmp.path(), path, o);
  const v::DumpResult& r = c.result;
  INFO(Codes(r));
  CHECK(r.verdict == Verdict::kComplete);
  CHECK(r.facts.max_mapnr == sparse.max_mapnr);
  CHECK(r.facts.pages_dumped == sparse.dumped_pages);
  CHECK(r.facts.pages_excluded == sparse.dumped_pages);
  // Two 32 MiB bitmaps that are holes but for a block per GiB of memory:
  // each of the 1024 blocks is read once for the survey and once for the
  // descriptor walk, and the pages once; nowhere near the 64 MiB claimed.
  CAPTURE(c.bytes_read);
  CHECK(c.bytes_read < (32u << 20));
  CheckPeakMemory();
}

TEST_CASE(
    "reads a bitmap that claims hundreds of GiB only as far as the file "
    "holds data",
    "[unit][scale]") {
  // 2^40 pfns (4 PiB of memory): two bitmaps of 128 GiB each in a sparse
  // file, a dumped page every 2^30 pfns.  Counting the bitmaps byte by
  // byte would read 256 GiB.
  TempDir tmp;
  std::string path = tmp / "vmcore";
  const SparseKdump sparse = WriteSparseKdump(path, 1ull << 40, 1ull << 30);
  v::CheckOptions o = ScanOpts();
  auto [scan, deep] = GENERATE(
      table<bool, bool>({{false, false}, {true, false}, {true, true}}));
  CAPTURE(scan, deep);
  o.scan = scan;
  o.deep = deep;
  Cost c = CheckCounted(tmp.path(), path, o);
  const v::DumpResult& r = c.result;
  INFO(Codes(r));
  CHECK(r.verdict == Verdict::kComplete);
  CHECK(r.facts.max_mapnr == sparse.max_mapnr);
  CHECK(r.facts.pages_dumped == sparse.dumped_pages);
  CHECK(r.facts.pages_excluded == sparse.dumped_pages);
  if (deep) CHECK(r.scan.pages_decoded == sparse.dumped_pages);
  CAPTURE(c.bytes_read);
  CHECK(c.bytes_read < (64u << 20));
  CheckPeakMemory();
}

TEST_CASE(
    "finds the record of a server-sized dump through its page tables, "
    "reading the same whatever the pages dumped",
    "[unit][scale][record_search]") {
  // 1 TiB of RAM described in full (two 32 MiB bitmaps on disk), a module
  // area and a record; 2^17 + 4096 and ten times as many dumped pages.
  TempDir tmp;
  uint64_t read[2] = {};
  for (int i = 0; i < 2; ++i) {
    const uint64_t bulk = ((1u << 17) + 4096) * (i ? 10 : 1);
    std::string dir = tmp / std::to_string(i);
    std::filesystem::create_directory(dir);
    WriteFleetKdump(dir + "/vmcore", ServerSpec(1ull << 28), bulk);
    Cost c = CheckCounted(dir, dir + "/vmcore", ScanOpts());
    const v::DumpResult& r = c.result;
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kComplete);
    CHECK(r.trigger.search.method == "page-tables");
    REQUIRE(r.trigger.record());
    CHECK(r.trigger.record()->bound());
    CHECK(r.trigger.search.pages_read == 40);
    CHECK(r.facts.descriptors_unchecked ==
          r.facts.pages_dumped - 2 * (1u << 16));
    read[i] = c.bytes_read;
  }
  CAPTURE(read[0], read[1]);
  // The bitmaps (64 MiB) dominate; the table's ends and the module pages
  // are the same in both, give or take the seek inside one rank block.
  CHECK(read[1] < read[0] + (2u << 20));
  // Peak memory: bench/run.sh measures the tool's own process; this one
  // also wrote the dumps.
}

TEST_CASE(
    "sees a capture killed at the end of a long table by default, and "
    "damage in its middle only with --deep",
    "[unit][scale]") {
  TempDir tmp;
  const uint64_t bulk = (1u << 17) + 4096;
  const std::string path = tmp / "vmcore";
  const DumpSpec spec = ServerSpec(1ull << 28);
  WriteFleetKdump(path, spec, bulk);
  Bytes whole = ReadFile(path);
  // The descriptor table starts after the header blocks and the bitmaps.
  const uint64_t half = (1ull << 28) / 8;
  // After the header block, the sub-header blocks (header offset 432) and
  // the bitmaps.
  uint32_t sub_blocks;
  std::memcpy(&sub_blocks, whole.data() + 432, 4);
  const uint64_t desc_off = (1 + sub_blocks) * 4096ull + 2 * half;
  const uint64_t ndesc = spec.pages.size() + bulk;
  SECTION("zero descriptors at the end: a killed write") {
    std::fill_n(whole.begin() + desc_off + (ndesc - 10) * 24, 10 * 24, 0);
    WriteFile(path, whole);
    auto r = CheckBytes(whole);
    CHECK(r.verdict == Verdict::kIncomplete);
    CHECK(r.findings.HasCode("zero-descriptors"));
  }
  SECTION("an impossible descriptor in the middle") {
    const uint64_t mid = ndesc / 2;
    whole[desc_off + mid * 24 + 12] = 0x7f;  // flags: no codec
    auto r = CheckBytes(whole);
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kComplete);
    CHECK(r.facts.descriptors_unchecked > 0);
    auto deep = CheckBytes(whole, "vmcore", ScanOpts(true));
    CHECK(deep.verdict == Verdict::kCorrupt);
    CHECK(deep.findings.HasCode("bad-descriptor"));
    CHECK(deep.facts.descriptors_unchecked == 0);
  }
}
