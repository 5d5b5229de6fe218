// SPDX-License-Identifier: GPL-2.0-or-later
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>

#include "test_support.h"

using namespace nmimgr::testing;
using nmimgr::vmcore::Verdict;
namespace v = nmimgr::vmcore;

namespace {

void PutLe(uint8_t* p, uint64_t val, int n) {
  for (int i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(val >> (8 * i));
}

void Pwrite(int fd, const void* p, size_t n, uint64_t off) {
  REQUIRE(::pwrite(fd, p, n, static_cast<off_t>(off)) ==
          static_cast<ssize_t>(n));
}

}  // namespace

TEST_CASE(
    "checks the structure of a sparse dump describing 1 TiB quickly "
    "and in little memory",
    "[unit][scale]") {
  const uint64_t max_mapnr = 1ull << 28;  // 1 TiB of 4 KiB pages
  const uint64_t half = max_mapnr / 8;    // 32 MiB per bitmap
  const uint64_t bitmap_off = 2 * 4096;
  const uint64_t desc_off = bitmap_off + 2 * half;
  const uint64_t stride = 1 << 18;  // a dumped page every GiB
  const uint64_t npages = max_mapnr / stride;

  DumpSpec spec;
  spec.max_mapnr = 8;
  Bytes head = BuildKdump(spec);
  head.resize(bitmap_off);
  PutLe(&head[436], 2 * half / 4096, 4);
  PutLe(&head[440], max_mapnr, 4);
  PutLe(&head[4096 + 96], max_mapnr, 8);

  TempDir tmp;
  std::string path = tmp / "vmcore";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  Pwrite(fd, head.data(), head.size(), 0);
  uint8_t one = 1;                                          // pfn % 8 == 0
  const uint64_t data_off = desc_off + npages * 24 + 4096;  // after zero page
  std::vector<uint8_t> descs(npages * 24);
  for (uint64_t i = 0; i < npages; ++i) {
    uint64_t pfn = i * stride;
    Pwrite(fd, &one, 1, bitmap_off + pfn / 8);
    Pwrite(fd, &one, 1, bitmap_off + half + pfn / 8);
    Pwrite(fd, &one, 1, bitmap_off + (pfn + 8) / 8);  // an excluded page
    PutLe(&descs[i * 24], data_off + i * 4096, 8);
    PutLe(&descs[i * 24 + 8], 4096, 4);
  }
  Pwrite(fd, descs.data(), descs.size(), desc_off);
  Bytes page = Page(4096, 0x6b);
  for (uint64_t i = 0; i < npages; ++i)
    Pwrite(fd, page.data(), page.size(), data_off + i * 4096);
  ::close(fd);

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
