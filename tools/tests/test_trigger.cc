// SPDX-License-Identifier: GPL-2.0-or-later
#include <catch2/catch.hpp>
#include <cstring>

#include "codec.h"
#include "nmimgr_record.h"
#include "test_support.h"
#include "trigger.h"

using namespace nmimgr::testing;
using nmimgr::vmcore::Verdict;
namespace v = nmimgr::vmcore;

namespace {

Bytes WithRecordAt(Bytes page, const Bytes& rec, size_t off) {
  std::memcpy(page.data() + off, rec.data(), rec.size());
  return page;
}

}  // namespace

TEST_CASE(
    "accepts a record only when magic, version, size, fired flag and "
    "checksum hold",
    "[unit][trigger]") {
  const Bytes good = Record(0x21, 0xcf, NMIMGR_TYPE_UNKNOWN, 0);
  auto ok = v::ParseRecord(good);
  REQUIRE(ok);
  CHECK(ok->raw_code == 0x21);
  CHECK(ok->masked_code == 0x01);
  CHECK(ok->event_mask == 0xcf);
  CHECK(ok->real_ns == 1764099990123456789ull);
  CHECK(ok->version == NMIMGR_RECORD_VERSION);

  auto [what, off, value] = GENERATE(table<const char*, size_t, uint8_t>({
      {"magic", 0, 'X'},
      {"version", 8, 3},
      {"version 1 in a version 2 record", 8, 1},
      {"size", 10, 127},
      {"size 96 in a version 2 record", 10, 96},
      {"a data byte (checksum no longer holds)", 40, 0x77},
      {"a version 2 field (checksum no longer holds)", 100, 0x77},
      {"the checksum", 125, 0x00},
  }));
  CAPTURE(what);
  Bytes bad = good;
  bad[off] = bad[off] == value ? static_cast<uint8_t>(value + 1) : value;
  CHECK_FALSE(v::ParseRecord(bad));
}

TEST_CASE(
    "ignores a record whose fired flag is clear even with a valid "
    "checksum",
    "[unit][trigger]") {
  Bytes armed = Record(0x21, 0xcf, NMIMGR_TYPE_UNKNOWN, 0, 1, /*flags=*/0);
  REQUIRE(std::memcmp(armed.data(), NMIMGR_RECORD_MAGIC, 8) == 0);
  CHECK_FALSE(v::ParseRecord(armed));
}

TEST_CASE("parses nmimgr's panic line in its fixed form", "[unit][trigger]") {
  using Row = std::tuple<std::string, bool, int, int, int, std::string, int>;
  auto [line, valid, raw, mask, masked, type,
        cpu] = GENERATE(table<std::string, bool, int, int, int, std::string,
                              int>({
      Row{"nmimgr: panic on NMI event 0x21 (33) type=unknown cpu=0 mask=0xcf",
          true, 0x21, 0xcf, 0x01, "unknown", 0},
      Row{"nmimgr: panic on NMI event 0x3c (60) type=serr cpu=12", true, 0x3c,
          -1, 0x3c, "serr", 12},
      Row{"nmimgr: panic on NMI event 0x31 (49) type=unknown cpu=0 "
          "mask=0xcfcf",
          true, 0x31, 0xcf, 0x01, "unknown", 0},
      Row{"nmimgr: panic on NMI event 0x3c (61) type=serr cpu=1", false, 0, 0,
          0, "", 0},
      Row{"nmimgr: panic on NMI event 0x3c type=serr cpu=1", false, 0, 0, 0, "",
          0},
      Row{"nmimgr: panic on NMI event 0x1ff (511) type=iochk cpu=1", false, 0,
          0, 0, "", 0},
      Row{"nmimgr: panic on NMI event 0x2c (44) type= cpu=1", false, 0, 0, 0,
          "", 0},
  }));
  CAPTURE(line);
  auto p = v::ParsePanicLine(line);
  REQUIRE(p.has_value() == valid);
  if (!valid) return;
  CHECK(p->raw_code == raw);
  CHECK(p->mask.has_value() == (mask >= 0));
  if (mask >= 0) CHECK(*p->mask == mask);
  CHECK(p->masked_code == masked);
  CHECK(p->nmi_type == type);
  CHECK(p->cpu == static_cast<uint32_t>(cpu));
  CHECK(v::ParsePanicLine(v::FormatPanicLine(*p))->raw_code == p->raw_code);
}

TEST_CASE(
    "renders nmimgr's message from its fields when read from memory, "
    "so trailing bytes do not leak in",
    "[unit][trigger]") {
  DumpSpec spec;
  spec.max_mapnr = 8;
  spec.pages[3] = Page(4096, 0x20,
                       "Kernel panic - not syncing: nmimgr: panic on NMI "
                       "event 0x31 (49) type=unknown cpu=0 mask=0xcfcf\x01",
                       300);
  auto r = CheckBytes(BuildKdump(spec));
  REQUIRE(r.trigger.panic_message);
  CHECK(*r.trigger.panic_message ==
        "nmimgr: panic on NMI event 0x31 (49) type=unknown cpu=0 mask=0xcf");
  REQUIRE(r.trigger.line);
  CHECK(r.trigger.line->mask == 0xcf);
}

TEST_CASE("finds the panic message and nmimgr's line in a saved kernel log",
          "[unit][trigger]") {
  const std::string log =
      "[    1.000000] Linux version 6.1.0\n"
      "[   42.123456] nmimgr: panic on NMI event 0x31 (49) type=unknown cpu=0 "
      "mask=0xcf\n"
      "[   42.123500] Kernel panic - not syncing: nmimgr: panic on NMI event "
      "0x31 (49) type=unknown cpu=0 mask=0xcf\n";
  v::KernelLogFacts k = v::ScanKernelLog(log);
  REQUIRE(k.nmimgr);
  CHECK(k.nmimgr->raw_code == 0x31);
  CHECK(k.nmimgr->masked_code == 0x01);
  REQUIRE(k.panic_message);
  CHECK(*k.panic_message ==
        "nmimgr: panic on NMI event 0x31 (49) type=unknown cpu=0 mask=0xcf");
  CHECK(k.panic_log_time == Approx(42.1235));
}

TEST_CASE("finds the trigger record in dump memory with every format",
          "[unit][trigger]") {
  DumpSpec spec = SampleSpec(v::kDumpZlib);
  spec.pages[15] = Page(4096, 0x33);
  RecordSpec serr;
  serr.raw = 0x2c;
  serr.mask = 0xef;
  serr.type = NMIMGR_TYPE_SERR;
  serr.cpu = 3;
  PlaceRecord(spec, 15, 2048, serr);
  // A copy that never fired (the module image in the page cache).
  spec.pages[16] =
      WithRecordAt(Page(4096, 0x34), Record(0, 0xcf, 0, 0, 0, /*flags=*/0), 64);
  auto [name, data] = GENERATE_COPY(table<std::string, Bytes>({
      {"kdump", BuildKdump(spec)},
      {"elf", BuildElf(spec)},
      {"flattened", Flatten(BuildKdump(spec))},
  }));
  CAPTURE(name);
  auto r = CheckBytes(data);
  INFO(Codes(r));
  CHECK(r.verdict == Verdict::kComplete);
  REQUIRE(r.trigger.records.size() == 1);
  const auto& rec = r.trigger.records[0];
  CHECK(rec.raw_code == 0x2c);
  CHECK(rec.masked_code == (0x2c & 0xef));
  CHECK(rec.nmi_type == NMIMGR_TYPE_SERR);
  CHECK(rec.cpu == 3);
  CHECK(rec.pfn == 15);
  CHECK(rec.page_offset == 2048);
  CHECK(rec.paddr == 15 * 4096 + 2048);
  CHECK(rec.bound());
  CHECK(r.trigger.magic_hits == 2);
  auto j = v::DumpToJson(r);
  CHECK(j["trigger"]["nmimgr"] == true);
  CHECK(j["trigger"]["source"] == "record");
  CHECK(j["trigger"]["raw_code"]["hex"] == "0x2c");
  CHECK(j["trigger"]["nmi_type"] == "serr");
}

TEST_CASE("finds a version 1 record that crosses into the physically next page",
          "[unit][trigger]") {
  // Version 2 records are 128-aligned and never cross; version 1 ones are
  // 8-aligned only.
  Bytes rec = RecordV1(0x21, 0xcf, NMIMGR_TYPE_UNKNOWN, 1);
  DumpSpec spec;
  spec.max_mapnr = 16;
  spec.codec = v::kDumpLzo;
  Bytes a = Page(4096, 0x41), b = Page(4096, 0x42);
  std::memcpy(a.data() + 4048, rec.data(), 48);  // 8-aligned, crosses
  std::memcpy(b.data(), rec.data() + 48, 48);
  SECTION("adjacent pfns: found") {
    spec.pages[4] = a;
    spec.pages[5] = b;
    auto r = CheckBytes(BuildKdump(spec));
    REQUIRE(r.trigger.records.size() == 1);
    CHECK(r.trigger.records[0].pfn == 4);
    CHECK(r.trigger.records[0].page_offset == 4048);
  }
  SECTION("pages not adjacent: seen but not trusted") {
    spec.pages[4] = a;
    spec.pages[9] = b;
    auto r = CheckBytes(BuildKdump(spec));
    CHECK(r.trigger.records.empty());
    CHECK(r.trigger.magic_hits == 1);
  }
}

TEST_CASE(
    "takes the panic line from the dump's memory when there is no "
    "saved log, and from the saved log when there is",
    "[unit][trigger]") {
  DumpSpec spec = SampleSpec(v::kDumpSnappy);
  // Printk text crossing from pfn 12 into pfn 13.
  std::string text =
      "Kernel panic - not syncing: nmimgr: panic on NMI event 0x21 (33) "
      "type=unknown cpu=0 mask=0xcf";
  Bytes p12 = Page(4096, 0), p13 = Page(4096, 0);
  std::memcpy(p12.data() + 4096 - 40, text.data(), 40);
  std::memcpy(p13.data(), text.data() + 40, text.size() - 40);
  spec.pages[12] = p12;
  spec.pages[13] = p13;
  Bytes dump = BuildKdump(spec);
  SECTION("from memory") {
    auto r = CheckBytes(dump);
    REQUIRE(r.trigger.line);
    CHECK(r.trigger.line_source == "dump-memory");
    CHECK(r.trigger.line->raw_code == 0x21);
    CHECK(r.trigger.line->mask == 0xcf);
    REQUIRE(r.trigger.panic_message);
    CHECK(r.trigger.panic_message->rfind("nmimgr: panic on NMI event", 0) == 0);
    auto j = v::DumpToJson(r);
    CHECK(j["trigger"]["source"] == "kernel-log:dump-memory");
    CHECK(j["trigger"]["masked_code"]["value"] == 1);
  }
  SECTION("from the saved log") {
    auto r = CheckBytes(dump, "vmcore", ScanOpts(),
                        "[ 9.5] Kernel panic - not syncing: sysrq triggered "
                        "crash\n");
    CHECK_FALSE(r.trigger.line);
    REQUIRE(r.trigger.panic_message);
    CHECK(*r.trigger.panic_message == "sysrq triggered crash");
    CHECK(r.trigger.panic_message_source == "dmesg-file");
    CHECK(v::DumpToJson(r)["trigger"]["nmimgr"] == false);
  }
}

TEST_CASE("skips the panic format string of the kernel image",
          "[unit][trigger]") {
  DumpSpec spec;
  spec.max_mapnr = 8;
  spec.pages[2] = Page(4096, 0x20, "Kernel panic - not syncing: %s\n", 100);
  auto r = CheckBytes(BuildKdump(spec));
  CHECK_FALSE(r.trigger.panic_message);
}

TEST_CASE(
    "gives the same report on every run although threads race, and "
    "checks past the trigger only with --deep",
    "[unit][trigger][scan]") {
  DumpSpec spec;
  spec.max_mapnr = 4096;
  spec.codec = v::kDumpZlib;
  for (uint64_t p = 0; p < 3000; ++p)
    spec.pages[p] = Page(4096, static_cast<uint8_t>(p % 251 + 1));
  PlaceRecord(spec, 300, 896);
  // A second, distinct record far later: never part of a non-deep report.
  RecordSpec later;
  later.raw = 0x31;
  later.cpu = 1;
  later.real_ns = 5;
  PlaceRecord(spec, 2900, 16, later);
  Layout lay;
  Bytes dump = BuildKdump(spec, &lay);
  // Garbage in the data of the page at pfn 700 (batch 2).
  for (int i = 0; i < 16; ++i) dump[lay.page_at[700] + 4 + i] ^= 0xa5;
  std::string log = "[ 1.0] Kernel panic - not syncing: something\n";
  std::string first;
  for (int run = 0; run < 20; ++run) {
    auto r = CheckBytes(dump, "vmcore", ScanOpts(false, 2), log);
    INFO(Codes(r));
    CHECK(r.verdict == Verdict::kComplete);
    REQUIRE(r.trigger.records.size() == 1);
    CHECK(r.trigger.records[0].pfn == 300);
    CHECK(r.scan.stopped_early);
    CHECK(r.scan.pages_decoded == 512);  // batches 0 and 1
    auto json = v::DumpToJson(r);
    json.erase("path");  // a new temporary directory each run
    std::string j = json.dump();
    if (run == 0) first = j;
    CHECK(j == first);
  }
  auto deep = CheckBytes(dump, "vmcore", ScanOpts(true, 2), log);
  CHECK(deep.verdict == Verdict::kCorrupt);
  CHECK(deep.findings.HasCode("bad-page"));
  CHECK(deep.trigger.records.size() == 2);
  CHECK_FALSE(deep.scan.stopped_early);
}
