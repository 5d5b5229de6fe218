// SPDX-License-Identifier: GPL-2.0-or-later
//
// Bounded work: what the tool reads and allocates follows the bytes a dump
// holds on disk, not the sizes its header claims.  Measured through the
// kernel's own accounting of this process (/proc/self/io rchar, the bytes
// read(2) and pread(2) returned, and the peak resident set), not by time.
#include <sys/resource.h>

#include <catch2/catch.hpp>
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
  auto [scan, deep] = GENERATE(table<bool, bool>(
      {{false, false}, {true, false}, {true, true}}));
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
