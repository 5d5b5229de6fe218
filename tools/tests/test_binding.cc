// SPDX-License-Identifier: GPL-2.0-or-later
//
// Binding a version 2 trigger record to its dump: phys, crash time, boot
// epoch and the panic line's nonce (trigger.h), and what the report says.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <sstream>

#include "codec.h"
#include "nmimgr_record.h"
#include "test_support.h"
#include "trigger.h"

using namespace nmimgr::testing;
using nmimgr::vmcore::Check;
using nmimgr::vmcore::Verdict;
namespace v = nmimgr::vmcore;

namespace {

constexpr uint64_t kNonce = 0x0123456789abcdefull;
constexpr uint64_t kHour = 3600ull * 1000000000ull;

// nmimgr's panic message, version 2 form, naming `nonce`.
std::string NmimgrPanic(uint64_t nonce = kNonce, bool confirmed = false) {
  return fmt::format(
      "nmimgr: panic on NMI event 0x21 (33) type=unknown cpu=0 mask=0xcf "
      "code=0x01 record={:016x}{}",
      nonce, confirmed ? " confirmed" : "");
}

// A dump with a printk ring whose last line is `panic` at 5.12 s, and
// CRASHTIME 1764099990 (DumpSpec's default): the crashed kernel booted at
// 1764099984.88.
DumpSpec CrashSpec(const std::string& panic = NmimgrPanic()) {
  DumpSpec s;
  s.max_mapnr = 1024;
  s.codec = v::kDumpLzo;
  s.pages[0] = Page(4096, 0x11, "first page");
  AddCrashLog(s, 5120000000ull, panic);
  return s;
}

const v::TriggerRecord* Rejected(const v::DumpResult& r, uint64_t pfn) {
  for (const auto& rec : r.trigger.records)
    if (rec.pfn == pfn && rec.binding.rejected()) return &rec;
  return nullptr;
}

std::string Table(const v::DumpResult& r) {
  std::ostringstream out;
  v::PrintTable({r}, out);
  return out.str();
}

}  // namespace

TEST_CASE(
    "binds a version 2 record found where it says it lives, in every "
    "format",
    "[unit][trigger][binding]") {
  DumpSpec spec = CrashSpec();
  const uint64_t at = PlaceRecord(spec, 20, 1024);
  auto [name, data] = GENERATE_COPY(table<std::string, Bytes>({
      {"kdump", BuildKdump(spec)},
      {"elf", BuildElf(spec)},
      {"flattened", Flatten(BuildKdump(spec))},
  }));
  CAPTURE(name);
  auto r = CheckBytes(data);
  INFO(Codes(r));
  CHECK(r.verdict == Verdict::kComplete);
  REQUIRE(r.trigger.record());
  const v::TriggerRecord& rec = *r.trigger.record();
  CHECK(rec.version == NMIMGR_RECORD_VERSION);
  CHECK(rec.paddr == at);
  CHECK(rec.bound());
  CHECK(rec.binding.phys == Check::kMatch);
  CHECK(rec.binding.crash_time == Check::kMatch);
  CHECK(rec.binding.boot_epoch == Check::kMatch);
  CHECK(rec.binding.nonce == Check::kMatch);
  CHECK_FALSE(r.trigger.during_other_panic);
  CHECK(r.trigger.binding.uptime_source == "dump-printk");
  CHECK(r.trigger.binding.uptime_ns == 5120000000ull);

  auto j = v::DumpToJson(r)["trigger"];
  CHECK(j["nmimgr"] == true);
  CHECK(j["triggered_by_nmimgr"] == true);
  CHECK(j["during_other_panic"] == false);
  CHECK(j["source"] == "record");
  CHECK(j["record"]["version"] == 2);
  CHECK(j["record"]["bound"] == true);
  CHECK(j["record"]["paddr"] == at);
  CHECK(j["record"]["phys"] == at);
  CHECK(j["record"]["nonce"] == "0123456789abcdef");
  CHECK(j["record"]["binding"]["phys"] == "match");
  CHECK(j["record"]["binding"]["boot_epoch"] == "match");
  CHECK(j["record"]["binding"]["nonce"] == "match");
  CHECK(j["records_rejected"].empty());
  CHECK(j["binding"]["time_checked"] == true);
  CHECK(j["binding"]["tolerance_seconds"].get<double>() == Approx(5.000512));
  CHECK(j["panic_line"]["record"] == "0123456789abcdef");
  CHECK(Table(r).find("(record v2, bound)") != std::string::npos);
}

TEST_CASE(
    "takes the physical address of an ELF page from p_paddr, also when a "
    "segment does not start on a page boundary",
    "[unit][trigger][binding][elf]") {
  DumpSpec spec = CrashSpec();
  spec.pages[20] = Page(4096, 0x5c);
  Layout lay;
  // The record claims the address it has once the segment moves 0x100 up.
  RecordSpec rs;
  rs.phys = 20 * 4096 + 1024 + 0x100;
  PlaceRecord(spec, 20, 1024, rs);
  Bytes elf = BuildElf(spec, &lay);
  // Move the PT_LOAD of pfn 20 (a run of its own) by 0x100.
  bool moved = false;
  for (uint64_t ph = lay.phdr_off; ph < lay.phdr_end; ph += 56) {
    uint64_t paddr = 0;
    std::memcpy(&paddr, elf.data() + ph + 24, 8);
    if (paddr != 20 * 4096) continue;
    paddr += 0x100;
    std::memcpy(elf.data() + ph + 24, &paddr, 8);
    moved = true;
  }
  REQUIRE(moved);
  auto r = CheckBytes(elf);
  INFO(Codes(r));
  REQUIRE(r.trigger.record());
  CHECK(r.trigger.record()->paddr == 20 * 4096 + 1024 + 0x100);
  CHECK(r.trigger.record()->bound());
}

TEST_CASE("binds records to the dump, and never names a rejected one",
          "[unit][trigger][binding]") {
  enum Kind {
    kBound,
    kVersion1,
    kCopy,
    kStale,
    kLaterThanCrash,
    kNonceMismatch,
    kPanicUnderWay,
    kOtherPanic,
    kSuspended,
    kConfirmedOops,
    kTest,
  };
  using Row =
      std::tuple<const char*, Kind, bool, std::string, bool, std::string>;
  // name, kind, record chosen, reject code, during another panic, source
  auto [what, kind, chosen, reason, during, source] =
      GENERATE(table<const char*, Kind, bool, std::string, bool, std::string>({
          Row{"a bound version 2 record", kBound, true, "", false, "record"},
          Row{"a version 1 record (read, not bound)", kVersion1, true, "",
              false, "record"},
          Row{"a copy at another physical address", kCopy, false,
              "phys-mismatch", false, "kernel-log:dump-printk"},
          Row{"a record from a boot three hours earlier", kStale, false,
              "boot-epoch-mismatch", false, "kernel-log:dump-printk"},
          Row{"a record newer than the crash time", kLaterThanCrash, false,
              "later-than-crash", false, "kernel-log:dump-printk"},
          Row{"a record whose nonce is not the panic line's", kNonceMismatch,
              false, "nonce-mismatch", false, "kernel-log:dump-printk"},
          Row{"a record with PANIC_UNDER_WAY", kPanicUnderWay, true, "", true,
              "record"},
          Row{"a bound record, but someone else's panic message", kOtherPanic,
              true, "", true, "record"},
          Row{"a record of a machine that was suspended (boot epoch by "
              "CLOCK_MONOTONIC)",
              kSuspended, true, "", false, "record"},
          Row{"a confirmed record fired during an oops", kConfirmedOops, true,
              "", false, "record"},
          Row{"the record of nmimgrctl test's NMI", kTest, true, "", false,
              "record"},
      }));
  CAPTURE(what);
  DumpSpec spec =
      CrashSpec(kind == kOtherPanic      ? "sysrq triggered crash"
                : kind == kNonceMismatch ? NmimgrPanic(0xfeedfacecafebeefull)
                : kind == kConfirmedOops ? NmimgrPanic(kNonce, true)
                : kind == kTest          ? NmimgrPanic() + " test"
                                         : NmimgrPanic());
  RecordSpec rs;
  switch (kind) {
    case kCopy:
      rs.phys = 700 * 4096 + 256;  // where the record really lives
      break;
    case kStale:
      rs.real_ns -= 3 * kHour;  // same uptime, three hours earlier
      break;
    case kLaterThanCrash:  // the same boot epoch, 10 s after CRASHTIME
      rs.real_ns += 10000000000ull;
      rs.boot_ns += 10000000000ull;
      rs.mono_ns += 10000000000ull;
      break;
    case kPanicUnderWay:
      rs.flags |= NMIMGR_RECORD_PANIC_UNDER_WAY | NMIMGR_RECORD_OOPS_UNDER_WAY;
      rs.oops_depth = 1;
      break;
    case kSuspended:  // 2 h asleep: boottime counts it, printk does not
      rs.boot_ns += 2 * kHour;
      break;
    case kConfirmedOops:
      rs.flags |= NMIMGR_RECORD_CONFIRMED | NMIMGR_RECORD_OOPS_UNDER_WAY;
      rs.oops_depth = 1;
      break;
    case kTest:
      rs.flags |= NMIMGR_RECORD_TEST;
      break;
    default:
      break;
  }
  if (kind == kVersion1) {
    spec.pages[20] = Page(4096, 0x5c);
    Bytes rec = RecordV1(0x21, 0xcf, NMIMGR_TYPE_UNKNOWN, 0);
    std::memcpy(spec.pages[20].data() + 1024, rec.data(), rec.size());
  } else {
    PlaceRecord(spec, 20, 1024, rs);
  }
  auto r = CheckBytes(BuildKdump(spec));
  INFO(Codes(r));
  REQUIRE(r.trigger.records.size() == 1);
  const v::TriggerRecord& rec = r.trigger.records[0];
  CHECK(r.trigger.chosen.has_value() == chosen);
  CHECK(rec.binding.reject_code == reason);
  CHECK(r.trigger.during_other_panic == during);

  auto j = v::DumpToJson(r)["trigger"];
  CHECK(j["source"] == source);
  CHECK(j["nmimgr"] == true);  // a record, or nmimgr's panic line
  CHECK(j["triggered_by_nmimgr"] == !during);
  CHECK(j["records_found"] == 1);
  CHECK(j["records_rejected"].size() == (reason.empty() ? 0u : 1u));
  if (!reason.empty()) {
    CHECK(j["records_rejected"][0]["reason"] == reason);
    CHECK(j["records_rejected"][0]["pfn"] == 20);
    CHECK(Table(r).find("rejected record v2 at pfn 20 offset 1024") !=
          std::string::npos);
  }
  const std::string table = Table(r);
  if (during)
    CHECK(table.find("nmimgr fired during another panic") != std::string::npos);
  if (kind == kVersion1) {
    CHECK(j["record"]["version"] == 1);
    CHECK(j["record"]["bound"] == false);
    CHECK(j["record"]["nonce"].is_null());
    CHECK(table.find("(record v1, not bound)") != std::string::npos);
  }
  if (kind == kPanicUnderWay) {
    CHECK(j["record"]["panic_under_way"] == true);
    CHECK(j["record"]["oops_under_way"] == true);
    CHECK(j["record"]["oops_depth"] == 1);
  }
  if (kind == kConfirmedOops) {
    CHECK(j["record"]["confirmed"] == true);
    CHECK(j["record"]["oops_under_way"] == true);
    CHECK(j["panic_line"]["confirmed"] == true);
    CHECK(table.find("confirmed, oops under way") != std::string::npos);
  }
  CHECK(j["test"] == (kind == kTest));
  if (chosen) CHECK(j["record"]["test"] == (kind == kTest));
  if (kind == kTest) {
    CHECK(j["panic_line"]["test"] == true);
    CHECK(table.find("bound, test)") != std::string::npos);
  }
}

TEST_CASE(
    "of two valid records the bound one wins, whichever has the lower pfn",
    "[unit][trigger][binding]") {
  // Batches are 256 pages: pfns 10 and 700 lie in different batches, so a
  // scan that stopped at the first valid record would miss the later one.
  auto [what, bound_pfn, other_pfn, other] =
      GENERATE(table<const char*, uint64_t, uint64_t, std::string>({
          {"a copy below the record", 700, 10, "copy"},
          {"a copy above the record", 10, 700, "copy"},
          {"a stale record in place below the record", 700, 10, "stale"},
          {"a stale record in place above the record", 10, 700, "stale"},
      }));
  CAPTURE(what);
  DumpSpec spec = CrashSpec();
  for (uint64_t p = 100; p < 500; ++p)
    spec.pages[p] = Page(4096, static_cast<uint8_t>(p % 200 + 1));
  const uint64_t real = PlaceRecord(spec, bound_pfn, 256);
  RecordSpec rs;
  if (other == "copy") {
    rs.phys = real;  // the same bytes, elsewhere
  } else {
    rs.real_ns -= 5 * kHour;
    rs.nonce = 0x1111222233334444ull;
  }
  PlaceRecord(spec, other_pfn, 512, rs);
  for (bool deep : {false, true}) {
    CAPTURE(deep);
    auto r = CheckBytes(BuildKdump(spec), "vmcore", ScanOpts(deep));
    INFO(Codes(r));
    REQUIRE(r.trigger.record());
    CHECK(r.trigger.record()->pfn == bound_pfn);
    CHECK(r.trigger.record()->bound());
    // The other record is seen when it comes first, or with --deep.
    if (deep || other_pfn < bound_pfn) {
      REQUIRE(r.trigger.records.size() == 2);
      const v::TriggerRecord* rej = Rejected(r, other_pfn);
      REQUIRE(rej);
      CHECK(rej->binding.reject_code ==
            (other == "copy" ? "phys-mismatch" : "boot-epoch-mismatch"));
    }
  }
}

TEST_CASE(
    "names no trigger from records when a sysrq crash leaves only a stale "
    "record and a copy",
    "[unit][trigger][binding]") {
  // What tests/vm/test_record_binding.py plants in a real guest.
  DumpSpec spec = CrashSpec("sysrq triggered crash");
  RecordSpec stale;
  stale.real_ns -= kHour;
  stale.nonce = 1;
  PlaceRecord(spec, 30, 0, stale);
  RecordSpec copy;
  copy.phys = 31 * 4096;
  copy.nonce = 2;
  PlaceRecord(spec, 32, 0, copy);
  auto r = CheckBytes(BuildKdump(spec), "vmcore", ScanOpts(true));
  INFO(Codes(r));
  CHECK_FALSE(r.trigger.record());
  CHECK_FALSE(r.trigger.nmimgr());
  CHECK_FALSE(r.trigger.during_other_panic);
  auto j = v::DumpToJson(r)["trigger"];
  CHECK(j["nmimgr"] == false);
  CHECK(j["source"].is_null());
  CHECK(j["records_found"] == 2);
  REQUIRE(j["records_rejected"].size() == 2);
  CHECK(j["records_rejected"][0]["reason"] == "boot-epoch-mismatch");
  CHECK(j["records_rejected"][0]["binding"]["boot_epoch_difference_seconds"]
            .get<double>() == Approx(-3599.757).margin(0.01));
  CHECK(j["records_rejected"][1]["reason"] == "phys-mismatch");
  CHECK(j["panic_message"] == "sysrq triggered crash");
  CHECK(Table(r).find("panic: sysrq triggered crash") != std::string::npos);
}

TEST_CASE(
    "says a record could not be bound by time when the crash time or the "
    "log's timestamps are missing, and does not reject it for that",
    "[unit][trigger][binding]") {
  DumpSpec spec;
  spec.max_mapnr = 64;
  PlaceRecord(spec, 20, 1024);
  std::string missing;
  SECTION("no printk ring, no saved log") {
    missing = "no kernel log timestamps";
  }
  SECTION("no CRASHTIME") {
    spec.with_crash_time = false;
    AddCrashLog(spec, 5120000000ull, NmimgrPanic());
    missing = "no VMCOREINFO CRASHTIME";
  }
  auto r = CheckBytes(BuildKdump(spec));
  INFO(Codes(r));
  REQUIRE(r.trigger.record());
  const auto& b = r.trigger.record()->binding;
  CHECK(b.phys == Check::kMatch);
  CHECK(b.boot_epoch == Check::kUnchecked);
  CHECK_FALSE(b.rejected());
  auto j = v::DumpToJson(r)["trigger"];
  CHECK(j["binding"]["time_checked"] == false);
  CHECK(j["binding"]["note"].get<std::string>().find(missing) !=
        std::string::npos);
  CHECK(Table(r).find("not checked by time") != std::string::npos);
}

TEST_CASE(
    "takes the uptime at the crash from the saved kernel log's last "
    "timestamp",
    "[unit][trigger][binding]") {
  DumpSpec spec;
  spec.max_mapnr = 64;
  PlaceRecord(spec, 20, 1024);
  SECTION("the log agrees with the record's boot") {
    auto r = CheckBytes(BuildKdump(spec), "vmcore", ScanOpts(),
                        "[    0.000000] Linux version 6.1.0\n"
                        "[    5.120000] Kernel panic - not syncing: " +
                            NmimgrPanic() + "\n");
    REQUIRE(r.trigger.record());
    CHECK(r.trigger.binding.uptime_source == "dmesg-file");
    CHECK(r.trigger.record()->binding.boot_epoch == Check::kMatch);
  }
  SECTION("the log is of a kernel up for a day: the record is stale") {
    auto r = CheckBytes(
        BuildKdump(spec), "vmcore", ScanOpts(),
        "[86400.000000] Kernel panic - not syncing: " + NmimgrPanic() + "\n");
    CHECK_FALSE(r.trigger.record());
    REQUIRE(r.trigger.records.size() == 1);
    CHECK(r.trigger.records[0].binding.reject_code == "boot-epoch-mismatch");
    CHECK(r.trigger.line);  // the trigger comes from the log
    CHECK(v::DumpToJson(r)["trigger"]["source"] == "kernel-log:dmesg-file");
  }
}

TEST_CASE("allows the boot epoch tolerance and no more",
          "[unit][trigger][binding]") {
  v::BindingContext ctx;
  ctx.crash_time = 1764099990;
  ctx.uptime_ns = 100000ull * 1000000000ull;  // 100000 s: 10 s of drift
  REQUIRE(ctx.ToleranceNs() == 15000000000ull);
  const int64_t epoch = *ctx.BootEpochNs();
  auto [offset_s, ok] = GENERATE(table<int64_t, bool>({
      {0, true},
      {14, true},
      {-14, true},
      {16, false},
      {-16, false},
      {-3600, false},
  }));
  CAPTURE(offset_s);
  v::TriggerRecord rec;
  rec.version = NMIMGR_RECORD_VERSION;
  rec.boot_ns = ctx.uptime_ns.value();
  rec.mono_ns = rec.boot_ns;
  rec.real_ns =
      static_cast<uint64_t>(epoch + offset_s * 1000000000ll) + rec.boot_ns;
  rec.phys = rec.paddr = 0x1000;
  v::BindRecord(rec, ctx);
  CHECK(rec.binding.crash_time ==
        (offset_s <= 1 ? Check::kMatch : Check::kMismatch));
  CHECK((rec.binding.boot_epoch == Check::kMatch) == ok);
}

TEST_CASE("parses the version 2 panic line: code=, record= and confirmed",
          "[unit][trigger]") {
  using Row = std::tuple<std::string, bool, int, int64_t, bool>;
  // line, valid, code (-1 none), nonce (-1 none), confirmed
  auto [line, valid, code, nonce, confirmed] =
      GENERATE(table<std::string, bool, int, int64_t, bool>({
          Row{"nmimgr: panic on NMI event 0x21 (33) type=unknown cpu=0 "
              "mask=0xc0 code=0x00 record=0123456789abcdef",
              true, 0x00, 0x0123456789abcdefll, false},
          Row{"nmimgr: panic on NMI event 0x21 (33) type=unknown cpu=0 "
              "mask=0xc0 code=0x00 record=0123456789abcdef confirmed",
              true, 0x00, 0x0123456789abcdefll, true},
          // text from memory running on into other bytes
          Row{"nmimgr: panic on NMI event 0xa1 (161) type=unknown cpu=0 "
              "mask=0xc0 code=0x80 record=0123456789abcdef confirmedxx",
              true, 0x80, 0x0123456789abcdefll, true},
          Row{"nmimgr: panic on NMI event 0xa1 (161) type=unknown cpu=0 "
              "mask=0xc0 code=0x80 record=0123456789abcdef0123",
              true, 0x80, 0x0123456789abcdefll, false},
          // cut inside the nonce: the nonce is not known
          Row{"nmimgr: panic on NMI event 0x21 (33) type=unknown cpu=0 "
              "mask=0xc0 code=0x00 record=0123456789ab",
              true, 0x00, -1, false},
          // code= that is not raw & mask: not nmimgr's line
          Row{"nmimgr: panic on NMI event 0x21 (33) type=unknown cpu=0 "
              "mask=0xc0 code=0x21 record=0123456789abcdef",
              false, 0, 0, false},
          // the old forms
          Row{"nmimgr: panic on NMI event 0x21 (33) type=unknown cpu=0 "
              "mask=0xcf",
              true, -1, -1, false},
          Row{"nmimgr: panic on NMI event 0x21 (33) type=unknown cpu=0", true,
              -1, -1, false},
      }));
  CAPTURE(line);
  auto p = v::ParsePanicLine(line);
  REQUIRE(p.has_value() == valid);
  if (!valid) return;
  CHECK(p->code.has_value() == (code >= 0));
  if (code >= 0) CHECK(*p->code == code);
  CHECK(p->nonce.has_value() == (nonce >= 0));
  if (nonce >= 0) CHECK(*p->nonce == static_cast<uint64_t>(nonce));
  CHECK(p->confirmed == confirmed);
  // Rendered and parsed again, it says the same.
  auto again = v::ParsePanicLine(v::FormatPanicLine(*p));
  REQUIRE(again);
  CHECK(again->nonce == p->nonce);
  CHECK(again->code == p->code);
  CHECK(again->confirmed == p->confirmed);
}

TEST_CASE("the panic line of nmimgrctl test's NMI ends in \" test\"",
          "[unit][trigger]") {
  const std::string base =
      "nmimgr: panic on NMI event 0x21 (33) type=unknown cpu=1 mask=0xc0 "
      "code=0x00 record=0123456789abcdef";
  using Row = std::tuple<std::string, bool, bool>;
  auto [tail, confirmed, test] = GENERATE(table<std::string, bool, bool>({
      Row{"", false, false},
      Row{" test", false, true},
      Row{" confirmed test", true, true},
      Row{" confirmed", true, false},
      // " test" before " confirmed" is not a form the module writes
      Row{" test confirmed", false, true},
  }));
  CAPTURE(tail);
  auto p = v::ParsePanicLine(base + tail);
  REQUIRE(p);
  CHECK(p->confirmed == confirmed);
  CHECK(p->test == test);
  auto again = v::ParsePanicLine(v::FormatPanicLine(*p));
  REQUIRE(again);
  CHECK(again->test == test);
  CHECK(again->confirmed == confirmed);
  CHECK(v::FormatPanicLine(*again) == v::FormatPanicLine(*p));
}

TEST_CASE("finds the largest timestamp of a saved kernel log",
          "[unit][trigger]") {
  v::KernelLogFacts k = v::ScanKernelLog(
      "[    0.000000] Linux version 6.1.0\n"
      "<6>[   61.250000] a line with its level\n"
      "               continuation [99999.0] not a stamp\n"
      "[   42.123456] Kernel panic - not syncing: sysrq triggered crash\n");
  REQUIRE(k.last_log_ns);
  CHECK(*k.last_log_ns == 61250000000ull);
  CHECK(v::ScanKernelLog("no stamps\n").last_log_ns == std::nullopt);
}
