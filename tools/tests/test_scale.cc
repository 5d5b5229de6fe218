// SPDX-License-Identifier: GPL-2.0-or-later
#include <sys/resource.h>

#include <catch2/catch.hpp>
#include <chrono>

#include "test_support.h"

using namespace nmimgr::testing;
using nmimgr::vmcore::Verdict;
namespace v = nmimgr::vmcore;

TEST_CASE(
    "checks the structure of a sparse dump describing 1 TiB quickly "
    "and in little memory",
    "[unit][scale]") {
  TempDir tmp;
  std::string path = tmp / "vmcore";
  const SparseKdump sparse = WriteSparseKdump1TiB(path);
  const uint64_t max_mapnr = sparse.max_mapnr;
  const uint64_t npages = sparse.dumped_pages;

  v::DumpSet set;
  set.dir = tmp.path();
  set.files = {path};
  v::CheckOptions o = ScanOpts();
  bool scan = GENERATE(false, true);
  CAPTURE(scan);
  o.scan = scan;
  auto t0 = std::chrono::steady_clock::now();
  auto r = v::CheckDump(set, o);
  double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  INFO(Codes(r));
  CHECK(r.verdict == Verdict::kComplete);
  CHECK(r.facts.max_mapnr == max_mapnr);
  CHECK(r.facts.pages_dumped == npages);
  CHECK(r.facts.pages_excluded == npages);
  CHECK(secs < 2.0);
#ifndef __SANITIZE_ADDRESS__  // ASan's shadow memory is not ours
  // Peak of the whole process, so run this test alone (ctest does).
  struct rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  CHECK(ru.ru_maxrss < 64 * 1024);  // KiB
#endif
}
