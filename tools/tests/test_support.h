// SPDX-License-Identifier: GPL-2.0-or-later
//
// Helpers shared by the test files: check a dump built in memory as if it
// were a file in a dump directory.
#ifndef NMIMGR_TOOLS_TESTS_TEST_SUPPORT_H_
#define NMIMGR_TOOLS_TESTS_TEST_SUPPORT_H_

#include <string>
#include <vector>

#include "check.h"
#include "dump_builder.h"

namespace nmimgr::testing {

inline vmcore::CheckOptions ScanOpts(bool deep = false, unsigned threads = 2) {
  vmcore::CheckOptions o;
  o.deep = deep;
  o.threads = threads;
  return o;
}

// Writes `data` as <tmp>/<name> and checks it as a one-file dump.
inline vmcore::DumpResult CheckBytes(const Bytes& data,
                                     const std::string& name = "vmcore",
                                     vmcore::CheckOptions opts = ScanOpts(),
                                     const std::string& dmesg = {}) {
  TempDir dir;
  WriteFile(dir / name, data);
  vmcore::DumpSet set;
  set.dir = dir.path();
  set.files = {dir / name};
  set.layout = "unknown";
  if (!dmesg.empty()) {
    WriteFile(dir / "vmcore-dmesg.txt", Bytes(dmesg.begin(), dmesg.end()));
    set.dmesg_file = dir / "vmcore-dmesg.txt";
  }
  return vmcore::CheckDump(set, opts);
}

inline std::string Codes(const vmcore::DumpResult& r) {
  std::string s;
  for (const auto& f : r.findings.all()) s += f.code + ": " + f.message + "\n";
  return s;
}

// A small dump description with varied pages: text, a zero page, and
// excluded pages.
inline DumpSpec SampleSpec(uint32_t codec = 0) {
  DumpSpec s;
  s.codec = codec;
  s.max_mapnr = 80;
  s.pages[0] = Page(4096, 0x11, "first page");
  s.pages[1] = Page(4096, 0);  // zero page
  s.pages[2] = Page(4096, 0xab);
  for (uint64_t p = 10; p < 20; ++p)
    s.pages[p] =
        Page(4096, static_cast<uint8_t>(p), "page " + std::to_string(p));
  s.pages[21] = Page(4096, 0);
  s.pages[40] = Page(4096, 0x5a, "last");
  s.excluded = {3, 4, 5, 30};
  return s;
}

}  // namespace nmimgr::testing

#endif  // NMIMGR_TOOLS_TESTS_TEST_SUPPORT_H_
