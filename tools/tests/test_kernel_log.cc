// SPDX-License-Identifier: GPL-2.0-or-later
#include <catch2/catch.hpp>

#include "codec.h"
#include "kernel_log.h"
#include "test_support.h"

using namespace nmimgr::testing;
namespace v = nmimgr::vmcore;

namespace {

const std::vector<PrintkRecord> kRecords = {
    {1000000, "Linux version 6.1.0-56-amd64"},
    {1910507000, "nmimgr: policy: ignore= drop= panic=1 mask=0xcf dry_run=0"},
    {3449047000,
     "nmimgr: panic on NMI event 0x21 (33) type=unknown cpu=0 "
     "mask=0xcf"},
    {3449047100,
     "Kernel panic - not syncing: nmimgr: panic on NMI event "
     "0x21 (33) type=unknown cpu=0 mask=0xcf"},
    {3449047200, "CPU: 0 PID: 0 Comm: swapper/0\nline two"},
};

const char* kExpected =
    "[    0.001000] Linux version 6.1.0-56-amd64\n"
    "[    1.910507] nmimgr: policy: ignore= drop= panic=1 mask=0xcf "
    "dry_run=0\n"
    "[    3.449047] nmimgr: panic on NMI event 0x21 (33) type=unknown cpu=0 "
    "mask=0xcf\n"
    "[    3.449047] Kernel panic - not syncing: nmimgr: panic on NMI event "
    "0x21 (33) type=unknown cpu=0 mask=0xcf\n"
    "[    3.449047] CPU: 0 PID: 0 Comm: swapper/0\n"
    "               line two\n";

std::optional<v::KernelLog> ReadLog(const Bytes& dump, std::string* why) {
  v::MemorySource src(dump);
  auto reader =
      dump[0] == 0x7f ? v::OpenElfReader(src) : v::OpenKdumpReader(src);
  v::DumpFacts facts;
  v::Findings findings;
  reader->CheckStructure(facts, findings);
  REQUIRE(findings.all().empty());
  return v::ReadKernelLog(*reader, facts, why);
}

}  // namespace

TEST_CASE(
    "reads the printk ring buffer of a dump, wrapped or not, through "
    "either mapping",
    "[unit][kernel-log]") {
  auto [first_id, first_lpos, direct, elf] =
      GENERATE(table<uint64_t, uint64_t, bool, bool>({
          {0, 0, false, false},
          {0, 0, true, false},
          {37, 3 * 4096 + 3900, false, false},  // ids and text wrapped
          {37, 3 * 4096 + 3900, true, true},
      }));
  CAPTURE(first_id, first_lpos, direct, elf);
  DumpSpec spec = SampleSpec(v::kDumpZlib);
  AddPrintkRing(spec, kRecords, first_id, first_lpos, direct);
  std::string why;
  auto log = ReadLog(elf ? BuildElf(spec) : BuildKdump(spec), &why);
  INFO(why);
  REQUIRE(log);
  CHECK(log->records == kRecords.size());
  CHECK(log->text == kExpected);
}

TEST_CASE(
    "takes the trigger from the dump's printk buffer when there is no "
    "saved log",
    "[unit][kernel-log][trigger]") {
  DumpSpec spec = SampleSpec(v::kDumpLzo);
  AddPrintkRing(spec, kRecords);
  auto r = CheckBytes(BuildKdump(spec));
  CHECK(r.trigger.log_source == "dump-printk");
  CHECK(r.trigger.log_records == kRecords.size());
  REQUIRE(r.trigger.line);
  CHECK(r.trigger.line_source == "dump-printk");
  CHECK(r.trigger.line->raw_code == 0x21);
  CHECK(r.trigger.panic_log_time == Approx(3.449047));
  auto j = v::DumpToJson(r);
  CHECK(j["trigger"]["source"] == "kernel-log:dump-printk");
  CHECK(j["trigger"]["kernel_log"]["source"] == "dump-printk");
}

TEST_CASE(
    "falls back to a text scan, and says why, when the printk buffer "
    "cannot be read",
    "[unit][kernel-log][trigger]") {
  DumpSpec spec = SampleSpec(v::kDumpZlib);
  AddPrintkRing(spec, kRecords);
  SECTION("a page of the ring was excluded") {
    spec.pages.erase(52);  // the infos
    auto r = CheckBytes(BuildKdump(spec));
    CHECK(r.trigger.log_source == "dump-memory");
    CHECK_THAT(r.trigger.log_note, Catch::Contains("printk infos"));
    CHECK_THAT(r.trigger.log_note, Catch::Contains("is not in the dump"));
    REQUIRE(r.trigger.line);  // the text is still found in page 53
    CHECK(r.trigger.line_source == "dump-memory");
  }
  SECTION("the page tables do not map the direct map") {
    DumpSpec s2 = SampleSpec(v::kDumpZlib);
    AddPrintkRing(s2, kRecords, 0, 0, /*direct_map=*/true);
    s2.pages[56] = Page(4096, 0);  // PMD without entries
    std::string why;
    auto log = ReadLog(BuildKdump(s2), &why);
    CHECK_FALSE(log);
    CHECK_THAT(why, Catch::Contains("printk descriptors at 0xffff888000033000 "
                                    "is not mapped"));
  }
  SECTION("an older kernel has no SYMBOL(prb)") {
    DumpSpec s3 = SampleSpec(v::kDumpZlib);
    std::string why;
    auto log = ReadLog(BuildKdump(s3), &why);
    CHECK_FALSE(log);
    CHECK_THAT(why, Catch::Contains("SYMBOL(prb)"));
  }
}
