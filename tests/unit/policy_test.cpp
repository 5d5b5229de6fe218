// SPDX-License-Identifier: GPL-2.0-or-later
// Unit tests of the policy core (module/policy.c), the same source the
// kernel module is built from.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "nmimgr_record.h"
#include "policy.h"

namespace {

std::vector<unsigned> Codes(const nmimgr_codeset& s) {
  std::vector<unsigned> out;
  for (unsigned c = 0; c < NMIMGR_NR_CODES; ++c)
    if (nmimgr_codeset_test(&s, c)) out.push_back(c);
  return out;
}

std::string Format(const nmimgr_codeset& s) {
  char buf[NMIMGR_LIST_BUF];
  nmimgr_format_list(&s, buf, sizeof(buf));
  return buf;
}

std::string Format(const nmimgr_policy& p) {
  char buf[NMIMGR_POLICY_BUF];
  nmimgr_policy_format(&p, buf, sizeof(buf));
  return buf;
}

nmimgr_policy Parse(const std::string& s) {
  nmimgr_policy p;
  char err[NMIMGR_ERR_BUF] = "";
  INFO("policy: " << s);
  REQUIRE(nmimgr_policy_parse(s.c_str(), &p, err, sizeof(err)) == 0);
  return p;
}

nmimgr_state Normal() { return {false, false, NMIMGR_CAPTURE_DROP_ALL}; }

}  // namespace

TEST_CASE("parses good code lists into the codes they name",
          "[unit][policy]") {
  using Row = std::tuple<std::string, std::vector<unsigned>, std::string>;
  auto [input, codes, canonical] = GENERATE(table<std::string,
                                                  std::vector<unsigned>,
                                                  std::string>({
      Row{"", {}, ""},
      Row{"\n", {}, ""},
      Row{"0", {0}, "0"},
      Row{"255", {255}, "255"},
      Row{"0,1,2-8,10", {0, 1, 2, 3, 4, 5, 6, 7, 8, 10}, "0-8,10"},
      Row{"0,13,16-20", {0, 13, 16, 17, 18, 19, 20}, "0,13,16-20"},
      Row{"10,0-2\n", {0, 1, 2, 10}, "0-2,10"},
      Row{"5-5", {5}, "5"},
      Row{"3,3,3", {3}, "3"},
      Row{"0x21,0x31", {33, 49}, "33,49"},
      Row{"0X0a-0x0C", {10, 11, 12}, "10-12"},
      Row{"007", {7}, "7"},
      Row{"254-255,0", {0, 254, 255}, "0,254-255"},
      Row{"1,2", {1, 2}, "1-2"},
  }));
  CAPTURE(input);
  nmimgr_codeset set;
  char err[NMIMGR_ERR_BUF] = "";
  REQUIRE(nmimgr_parse_list(input.c_str(), &set, err, sizeof(err)) == 0);
  CHECK(Codes(set) == codes);
  CHECK(Format(set) == canonical);
}

TEST_CASE("the whole range round-trips to 0-255", "[unit][policy]") {
  nmimgr_codeset set;
  REQUIRE(nmimgr_parse_list("0-255", &set, nullptr, 0) == 0);
  CHECK(Codes(set).size() == 256);
  CHECK(Format(set) == "0-255");
}

TEST_CASE("rejects malformed code lists with a reason and leaves the output "
          "untouched",
          "[unit][policy]") {
  using Row = std::tuple<std::string, std::string>;
  auto [input, reason] = GENERATE(table<std::string, std::string>({
      Row{"300", "out of range"},
      Row{"256", "out of range"},
      Row{"99999999999999999999", "out of range"},
      Row{"5-3", "reversed"},
      Row{"1-", "expected a code"},
      Row{"-1", "expected a code"},
      Row{"a", "expected a code"},
      Row{"1,,2", "expected a code"},
      Row{",1", "expected a code"},
      Row{"1,", "trailing ','"},
      Row{"1 2", "unexpected character"},
      Row{" 1", "expected a code"},
      Row{"1;2", "unexpected character"},
      Row{"1-2-3", "unexpected character"},
      Row{"0x", "hex digits"},
      Row{"0xg", "hex digits"},
      Row{"0x100", "out of range"},
      Row{"1\n\n", "unexpected character"},
      Row{"1.5", "unexpected character"},
      Row{"+1", "expected a code"},
      Row{std::string(1025, '1'), "longer than"},
      Row{"1," + std::string(2000, '0'), "longer than"},
  }));
  CAPTURE(input);
  nmimgr_codeset set;
  nmimgr_parse_list("7", &set, nullptr, 0);
  char err[NMIMGR_ERR_BUF] = "";
  REQUIRE(nmimgr_parse_list(input.c_str(), &set, err, sizeof(err)) == -1);
  CHECK_THAT(std::string(err), Catch::Contains(reason));
  CHECK(Codes(set) == std::vector<unsigned>{7});
}

TEST_CASE("an input of exactly the maximum length is accepted",
          "[unit][policy]") {
  std::string s;
  while (s.size() + 4 < NMIMGR_MAX_INPUT) s += "255,";
  s += std::string(NMIMGR_MAX_INPUT - s.size(), '0');
  REQUIRE(s.size() == NMIMGR_MAX_INPUT);
  nmimgr_codeset set;
  CHECK(nmimgr_parse_list(s.c_str(), &set, nullptr, 0) == 0);
  CHECK(nmimgr_parse_list((s + "\n").c_str(), &set, nullptr, 0) == 0);
}

TEST_CASE("canonical lists of every alternate code fit the list buffer",
          "[unit][policy]") {
  nmimgr_codeset set{};
  for (unsigned c = 0; c < 256; c += 2) nmimgr_codeset_set(&set, c);
  char buf[NMIMGR_LIST_BUF];
  size_t n = nmimgr_format_list(&set, buf, sizeof(buf));
  CHECK(n < sizeof(buf));
  nmimgr_codeset back;
  REQUIRE(nmimgr_parse_list(buf, &back, nullptr, 0) == 0);
  CHECK(Codes(back) == Codes(set));
}

TEST_CASE("formatting into a short buffer truncates but reports the full "
          "length",
          "[unit][policy]") {
  nmimgr_codeset set;
  REQUIRE(nmimgr_parse_list("1,3,5,100-200", &set, nullptr, 0) == 0);
  char small[5];
  CHECK(nmimgr_format_list(&set, small, sizeof(small)) ==
        std::string("1,3,5,100-200").size());
  CHECK(std::string(small) == "1,3,");
}

TEST_CASE("parses masks and booleans", "[unit][policy]") {
  uint8_t m = 0;
  char err[NMIMGR_ERR_BUF];
  CHECK(nmimgr_parse_byte("0xcf\n", &m, err, sizeof(err)) == 0);
  CHECK(m == 0xcf);
  CHECK(nmimgr_parse_byte("255", &m, err, sizeof(err)) == 0);
  CHECK(m == 0xff);
  for (const char* bad : {"", "256", "0x1ff", "cf", "-1", "1 ", "0xcf,1"}) {
    CAPTURE(bad);
    m = 7;
    CHECK(nmimgr_parse_byte(bad, &m, err, sizeof(err)) == -1);
    CHECK(m == 7);
  }
  bool b = false;
  for (const char* yes : {"1", "y", "Y", "1\n"}) {
    b = false;
    CHECK(nmimgr_parse_bool(yes, &b, err, sizeof(err)) == 0);
    CHECK(b);
  }
  for (const char* no : {"0", "n", "N\n"}) {
    b = true;
    CHECK(nmimgr_parse_bool(no, &b, err, sizeof(err)) == 0);
    CHECK_FALSE(b);
  }
  for (const char* bad : {"", "2", "yes", "true", "00"}) {
    CAPTURE(bad);
    CHECK(nmimgr_parse_bool(bad, &b, err, sizeof(err)) == -1);
  }
}

TEST_CASE("a mask must keep both event bits, so SERR, IOCHK and unknown "
          "NMIs never match alike",
          "[unit][policy]") {
  char err[NMIMGR_ERR_BUF];
  for (const char* good : {"0xc0", "0xcf", "0xff", "192", "0xf0"}) {
    CAPTURE(good);
    uint8_t m = 0;
    CHECK(nmimgr_parse_mask(good, &m, err, sizeof(err)) == 0);
  }
  using Row = std::tuple<std::string, std::string>;
  auto [bad, reason] = GENERATE(table<std::string, std::string>({
      Row{"0", "drops bit 7 (SERR) and 6 (IOCHK)"},
      Row{"0x0f", "drops bit 7 (SERR) and 6 (IOCHK)"},
      Row{"0x80", "drops bit 6 (IOCHK)"},
      Row{"0x4f", "drops bit 7 (SERR)"},
      Row{"0xbf", "drops bit 6 (IOCHK)"},
      Row{"0x1ff", "out of range"},
  }));
  CAPTURE(bad);
  uint8_t m = 0xc0;
  CHECK(nmimgr_parse_mask(bad.c_str(), &m, err, sizeof(err)) == -1);
  CHECK(m == 0xc0);
  CHECK_THAT(std::string(err), Catch::Contains(reason));
}

TEST_CASE("a policy string replaces the whole policy and round-trips",
          "[unit][policy]") {
  using Row = std::tuple<std::string, std::string>;
  auto [input, canonical] = GENERATE(table<std::string, std::string>({
      Row{"", "ignore= drop= panic= mask=0xc0 dry_run=0 confirm=0"},
      Row{"panic=33", "ignore= drop= panic=33 mask=0xc0 dry_run=0 confirm=0"},
      Row{"drop=0-2;panic=10 mask=0xff",
          "ignore= drop=0-2 panic=10 mask=0xff dry_run=0 confirm=0"},
      Row{"  dry_run=1\tignore=5,4,3\n",
          "ignore=3-5 drop= panic= mask=0xc0 dry_run=1 confirm=0"},
      Row{"events_drop=1 events_panic=2 event_mask=207 events_ignore=0",
          "ignore=0 drop=1 panic=2 mask=0xcf dry_run=0 confirm=0"},
      Row{"drop= panic=", "ignore= drop= panic= mask=0xc0 dry_run=0 confirm=0"},
      Row{"panic=0x21 confirm=1",
          "ignore= drop= panic=33 mask=0xc0 dry_run=0 confirm=500-10000"},
      Row{"panic=0x21;confirm=250-3000;dry_run=1",
          "ignore= drop= panic=33 mask=0xc0 dry_run=1 confirm=250-3000"},
      Row{"confirm=0", "ignore= drop= panic= mask=0xc0 dry_run=0 confirm=0"},
  }));
  CAPTURE(input);
  nmimgr_policy p = Parse(input);
  CHECK(Format(p) == canonical);
  nmimgr_policy again = Parse(Format(p));
  CHECK(Format(again) == canonical);
}

TEST_CASE("rejects malformed policy strings", "[unit][policy]") {
  using Row = std::tuple<std::string, std::string>;
  auto [input, reason] = GENERATE(table<std::string, std::string>({
      Row{"panic", "expected key=value"},
      Row{"=1", "unknown key"},
      Row{"boom=1", "unknown key"},
      Row{"panic=300", "panic: code 300 out of range"},
      Row{"drop=1 drop=2", "given twice"},
      Row{"drop=1 events_drop=2", "given twice"},
      Row{"mask=0x1ff", "mask: "},
      Row{"mask=", "mask: expected a value"},
      Row{"mask=0", "mask: mask 0x00 drops bit 7 (SERR) and 6 (IOCHK)"},
      Row{"mask=0xcf dry_run=2", "dry_run: expected 0, 1"},
      Row{"ignore=1,,2", "ignore: expected a code"},
      Row{"panic=5-3", "reversed"},
      Row{"confirm=2", "confirm: expected 0, 1 or MIN-MAX"},
      Row{"confirm=50-1000", "100 <= MIN < MAX <= 600000"},
      Row{"confirm=1000-1000", "100 <= MIN < MAX <= 600000"},
      Row{"confirm=500-700000", "100 <= MIN < MAX <= 600000"},
      Row{"confirm=500-", "expected milliseconds"},
      Row{"confirm=-5", "expected milliseconds"},
      Row{"confirm=500-900x", "unexpected character"},
      Row{"confirm=1 confirm=0", "given twice"},
      Row{"drop=1 " + std::string(3200, ' '), "longer than 3135 characters"},
  }));
  CAPTURE(input);
  nmimgr_policy p = Parse("drop=9");
  char err[NMIMGR_ERR_BUF] = "";
  REQUIRE(nmimgr_policy_parse(input.c_str(), &p, err, sizeof(err)) == -1);
  CHECK_THAT(std::string(err), Catch::Contains(reason));
  CHECK(Format(p) == "ignore= drop=9 panic= mask=0xc0 dry_run=0 confirm=0");
}

TEST_CASE("event code 0 can be dropped and panicked on", "[unit][policy]") {
  // The 2017 patch compared empty list slots equal to code 0.
  nmimgr_state st = Normal();
  nmimgr_policy drop = Parse("drop=0 mask=0xff");
  CHECK(nmimgr_decide(&drop, &st, 0x00) == NMIMGR_DROP);
  CHECK(nmimgr_decide(&drop, &st, 0x01) == NMIMGR_UNMANAGED);
  nmimgr_policy panic = Parse("panic=0 mask=0xff");
  CHECK(nmimgr_decide(&panic, &st, 0x00) == NMIMGR_PANIC);
  nmimgr_policy none = Parse("mask=0xff");
  CHECK(nmimgr_decide(&none, &st, 0x00) == NMIMGR_UNMANAGED);
}

TEST_CASE("codes are matched under the mask on both sides",
          "[unit][policy]") {
  nmimgr_state st = Normal();
  using Row = std::tuple<std::string, uint8_t, nmimgr_action>;
  auto [policy, raw, action] =
      GENERATE(table<std::string, uint8_t, nmimgr_action>({
          // QEMU's inject-nmi reads 0x21 or 0x31: both code 0 under 0xc0.
          Row{"drop=0x21", 0x21, NMIMGR_DROP},
          Row{"drop=0x21", 0x31, NMIMGR_DROP},
          Row{"drop=0", 0x31, NMIMGR_DROP},
          Row{"drop=0x31", 0x01, NMIMGR_DROP},
          // Exact match (the 2017 behaviour) misses the toggled byte.
          Row{"drop=0x21 mask=0xff", 0x21, NMIMGR_DROP},
          Row{"drop=0x21 mask=0xff", 0x31, NMIMGR_UNMANAGED},
          // SERR and IOCHK stay apart from unknown NMIs and each other.
          Row{"drop=0", 0x81, NMIMGR_UNMANAGED},
          Row{"drop=0", 0x41, NMIMGR_UNMANAGED},
          Row{"panic=0x80", 0xb5, NMIMGR_PANIC},
          Row{"panic=0x80", 0x45, NMIMGR_UNMANAGED},
          Row{"panic=0xc0", 0xc0, NMIMGR_PANIC},
          Row{"panic=0xc0", 0x80, NMIMGR_UNMANAGED},
          // Vendor pairs that differ by 0x10 (32/48, 44/60).
          Row{"panic=32", 48, NMIMGR_PANIC},
          Row{"panic=44", 60, NMIMGR_PANIC},
          Row{"panic=44 mask=0xff", 60, NMIMGR_UNMANAGED},
          Row{"ignore=0x21", 0x31, NMIMGR_IGNORE},
          Row{"panic=0x21 dry_run=1", 0x31, NMIMGR_WOULD_PANIC},
      }));
  CAPTURE(policy, raw);
  nmimgr_policy p = Parse(policy);
  CHECK(nmimgr_decide(&p, &st, raw) == action);
}

// What the OS itself writes to port 0x61, and what an NMI then reads: a
// policy written from one discovery line must keep matching.
TEST_CASE("the default mask keeps matching whatever the OS writes to the "
          "control bits",
          "[unit][policy]") {
  nmimgr_state st = Normal();
  nmimgr_policy dflt = Parse("panic=0x21");
  nmimgr_policy old = Parse("panic=0x21 mask=0xcf");
  using Row = std::tuple<std::string, uint8_t>;
  auto [why, raw] = GENERATE(table<std::string, uint8_t>({
      Row{"as discovered", 0x21},
      Row{"refresh toggle (bit 4) flipped", 0x31},
      // pci_serr_error(): outb((reason & 0x0f) | 0x04) and never cleared
      Row{"after an unclaimed SERR (bit 2 left set)", 0x25},
      // io_check_error(): bit 3 held for 2 s
      Row{"during the IOCHK settle (bit 3 set)", 0x29},
      // pcspkr / PIT calibration: timer 2 gate and speaker data
      Row{"speaker on (bits 0-1 set)", 0x23},
      Row{"timer 2 gate off (bit 0 clear)", 0x20},
  }));
  CAPTURE(why);
  CHECK(nmimgr_decide(&dflt, &st, raw) == NMIMGR_PANIC);
  // Under the old default 0xcf, OS writes to bits 0-3 stop the match.
  if ((raw & 0x0f) != 0x01)
    CHECK(nmimgr_decide(&old, &st, raw) == NMIMGR_UNMANAGED);
}

TEST_CASE("a code in several lists follows ignore, drop, panic order and "
          "the overlap is reported",
          "[unit][policy]") {
  nmimgr_state st = Normal();
  nmimgr_policy p;
  nmimgr_policy_init(&p);
  p.mask = 0xff;
  nmimgr_compile_report report;

  SECTION("ignore beats drop and panic") {
    nmimgr_parse_list("1-3", &p.lists[NMIMGR_LIST_IGNORE], nullptr, 0);
    nmimgr_parse_list("2", &p.lists[NMIMGR_LIST_DROP], nullptr, 0);
    nmimgr_parse_list("3-4", &p.lists[NMIMGR_LIST_PANIC], nullptr, 0);
    nmimgr_policy_compile(&p, &report);
    CHECK(nmimgr_decide(&p, &st, 2) == NMIMGR_IGNORE);
    CHECK(nmimgr_decide(&p, &st, 3) == NMIMGR_IGNORE);
    CHECK(nmimgr_decide(&p, &st, 4) == NMIMGR_PANIC);
    CHECK(Format(report.overlap) == "2-3");
    CHECK(nmimgr_codeset_empty(&report.folded));
  }
  SECTION("drop beats panic, also when the mask makes codes collide") {
    p.mask = 0xc0;
    nmimgr_parse_list("0x21", &p.lists[NMIMGR_LIST_DROP], nullptr, 0);
    nmimgr_parse_list("0x31", &p.lists[NMIMGR_LIST_PANIC], nullptr, 0);
    nmimgr_policy_compile(&p, &report);
    CHECK(nmimgr_decide(&p, &st, 0x31) == NMIMGR_DROP);
    CHECK(Format(report.overlap) == "0");
    CHECK(Format(report.folded) == "33,49");
  }
  SECTION("codes of one list that mask alike are no overlap, but folded") {
    p.mask = 0xc0;
    // Dell's 40/41 and 56/57 differ only in the timer 2 gate (bit 0).
    nmimgr_parse_list("40,41,56,57", &p.lists[NMIMGR_LIST_PANIC], nullptr,
                      0);
    nmimgr_policy_compile(&p, &report);
    CHECK(nmimgr_codeset_empty(&report.overlap));
    CHECK(Format(report.folded) == "40-41,56-57");
    CHECK(nmimgr_decide(&p, &st, 0x21) == NMIMGR_PANIC);
  }
  SECTION("one listed code per masked code folds nothing") {
    p.mask = 0xc0;
    nmimgr_parse_list("0x21,0x80", &p.lists[NMIMGR_LIST_PANIC], nullptr, 0);
    nmimgr_policy_compile(&p, &report);
    CHECK(nmimgr_codeset_empty(&report.folded));
  }
  SECTION("lists as written survive compilation for reading back") {
    p.mask = 0xc0;
    nmimgr_parse_list("0x21,0x31", &p.lists[NMIMGR_LIST_DROP], nullptr, 0);
    nmimgr_policy_compile(&p, nullptr);
    CHECK(Format(p) == "ignore= drop=33,49 panic= mask=0xc0 dry_run=0 confirm=0");
  }
}

TEST_CASE("once nmimgr's panic is latched, managed events are dropped and "
          "unmanaged ones are left to the kernel",
          "[unit][policy]") {
  nmimgr_policy p = Parse("ignore=1 drop=2 panic=3 mask=0xff");
  nmimgr_state st{true, false, NMIMGR_CAPTURE_DROP_ALL};
  for (uint8_t code : {1, 2, 3}) {
    CAPTURE(code);
    CHECK(nmimgr_decide(&p, &st, code) == NMIMGR_LATCHED_DROP);
  }
  CHECK(nmimgr_decide(&p, &st, 4) == NMIMGR_UNMANAGED);
  nmimgr_policy dry = Parse("panic=3 mask=0xff dry_run=1");
  CHECK(nmimgr_decide(&dry, &st, 3) == NMIMGR_LATCHED_DROP);
}

TEST_CASE("in a capture kernel every NMI is dropped unless capture_drop is "
          "managed",
          "[unit][policy]") {
  nmimgr_policy empty = Parse("");
  nmimgr_policy p = Parse("panic=0x21");
  nmimgr_state all{false, true, NMIMGR_CAPTURE_DROP_ALL};
  nmimgr_state managed{false, true, NMIMGR_CAPTURE_DROP_MANAGED};
  CHECK(nmimgr_decide(&empty, &all, 0x21) == NMIMGR_LATCHED_DROP);
  CHECK(nmimgr_decide(&empty, &all, 0x00) == NMIMGR_LATCHED_DROP);
  CHECK(nmimgr_decide(&p, &all, 0x31) == NMIMGR_LATCHED_DROP);
  CHECK(nmimgr_decide(&empty, &managed, 0x21) == NMIMGR_UNMANAGED);
  CHECK(nmimgr_decide(&p, &managed, 0x31) == NMIMGR_LATCHED_DROP);
  CHECK(nmimgr_decide(&p, &managed, 0x80) == NMIMGR_UNMANAGED);
}

TEST_CASE("drops, panics and (outside dry run) first presses claim the NMI",
          "[unit][policy]") {
  nmimgr_policy live = Parse("panic=0 confirm=1");
  nmimgr_policy dry = Parse("panic=0 confirm=1 dry_run=1");
  CHECK(nmimgr_action_handled(&live, NMIMGR_DROP));
  CHECK(nmimgr_action_handled(&live, NMIMGR_LATCHED_DROP));
  CHECK(nmimgr_action_handled(&live, NMIMGR_PANIC));
  CHECK(nmimgr_action_handled(&live, NMIMGR_PENDING));
  CHECK_FALSE(nmimgr_action_handled(&live, NMIMGR_IGNORE));
  CHECK_FALSE(nmimgr_action_handled(&live, NMIMGR_UNMANAGED));
  // Dry run changes nothing: the kernel keeps its own handling.
  CHECK_FALSE(nmimgr_action_handled(&dry, NMIMGR_WOULD_PANIC));
  CHECK_FALSE(nmimgr_action_handled(&dry, NMIMGR_PENDING));
}

namespace {
constexpr uint64_t kMs = 1000000;
}

TEST_CASE("confirmation panics only on a second press inside the window",
          "[unit][policy][confirm]") {
  nmimgr_policy p = Parse("panic=0 confirm=1");  // 500-10000 ms
  const uint64_t t0 = 1000 * kMs;
  using Row = std::tuple<std::string, uint64_t, uint64_t, nmimgr_action,
                         uint64_t>;
  // pending first press, this NMI, what it becomes, the new pending time
  auto [why, pending, now, action, next] =
      GENERATE_COPY(table<std::string, uint64_t, uint64_t, nmimgr_action,
                          uint64_t>({
          Row{"first press", 0, t0, NMIMGR_PENDING, t0},
          Row{"second press 1 s later", t0, t0 + 1000 * kMs, NMIMGR_PANIC, 0},
          Row{"at the window's opening", t0, t0 + 500 * kMs, NMIMGR_PANIC,
              0},
          Row{"at the window's close", t0, t0 + 10000 * kMs, NMIMGR_PANIC,
              0},
          Row{"back-to-back, microseconds apart", t0, t0 + 3000,
              NMIMGR_PENDING, t0 + 3000},
          Row{"a few ms apart", t0, t0 + 4 * kMs, NMIMGR_PENDING,
              t0 + 4 * kMs},
          Row{"just too soon", t0, t0 + 499 * kMs, NMIMGR_PENDING,
              t0 + 499 * kMs},
          Row{"after the window closed: a new first press", t0,
              t0 + 10001 * kMs, NMIMGR_PENDING, t0 + 10001 * kMs},
          Row{"a clock that went backwards never confirms", t0, t0 - kMs,
              NMIMGR_PENDING, t0 - kMs},
      }));
  CAPTURE(why);
  uint64_t got = 12345;
  CHECK(nmimgr_confirm_step(&p, NMIMGR_PANIC, pending, now, &got) == action);
  CHECK(got == next);
}

TEST_CASE("a storm of NMIs never confirms itself", "[unit][policy][confirm]") {
  nmimgr_policy p = Parse("panic=0 confirm=1");
  uint64_t pending = 0, now = 5 * kMs;
  // 161 NMIs a second for a minute, as the lab's storm sends them.
  for (int i = 0; i < 161 * 60; ++i, now += 6 * kMs) {
    uint64_t next = 0;
    REQUIRE(nmimgr_confirm_step(&p, NMIMGR_PANIC, pending, now, &next) ==
            NMIMGR_PENDING);
    pending = next;
  }
}

TEST_CASE("confirmation covers dry run and stays out of the way when off",
          "[unit][policy][confirm]") {
  uint64_t next = 7;
  nmimgr_policy dry = Parse("panic=0 confirm=250-3000 dry_run=1");
  CHECK(nmimgr_confirm_step(&dry, NMIMGR_WOULD_PANIC, 0, 10 * kMs, &next) ==
        NMIMGR_PENDING);
  CHECK(next == 10 * kMs);
  CHECK(nmimgr_confirm_step(&dry, NMIMGR_WOULD_PANIC, 10 * kMs, 300 * kMs,
                            &next) == NMIMGR_WOULD_PANIC);
  CHECK(next == 0);
  nmimgr_policy off = Parse("panic=0");
  CHECK(nmimgr_confirm_step(&off, NMIMGR_PANIC, 0, 10 * kMs, &next) ==
        NMIMGR_PANIC);
  CHECK(next == 0);
  // Other actions pass through untouched and clear nothing pending.
  nmimgr_policy on = Parse("drop=1 panic=0 confirm=1");
  CHECK(nmimgr_confirm_step(&on, NMIMGR_DROP, 10 * kMs, 20 * kMs, &next) ==
        NMIMGR_DROP);
}

// arch/x86/kernel/nmi.c, pci_serr_error() and io_check_error(), 5.10 to
// 6.12: the bytes the kernel writes for an NMI no handler claimed.
TEST_CASE("a dropped SERR or IOCHK NMI leaves port 0x61 as the kernel "
          "would have",
          "[unit][policy][port61]") {
  using Row = std::tuple<std::string, unsigned, uint8_t, bool, unsigned,
                         uint8_t, uint8_t, bool>;
  auto [why, type, reason, panicking, writes, first, second, settle] =
      GENERATE(table<std::string, unsigned, uint8_t, bool, unsigned, uint8_t,
                     uint8_t, bool>({
          // pci_serr_error(): reason = (reason & 0x0f) | 0x04; outb(reason)
          Row{"SERR, speaker and gate on", NMIMGR_TYPE_SERR, 0xa3, false, 1,
              0x07, 0, false},
          Row{"SERR", NMIMGR_TYPE_SERR, 0x80, false, 1, 0x04, 0, false},
          Row{"SERR already disabled", NMIMGR_TYPE_SERR, 0x84, false, 1, 0x04,
              0, false},
          Row{"SERR while a panic is under way", NMIMGR_TYPE_SERR, 0x81, true,
              1, 0x05, 0, false},
          // io_check_error(): (reason & 0x0f) | 0x08, 2 s, then & ~0x08
          Row{"IOCHK", NMIMGR_TYPE_IOCHK, 0x41, false, 2, 0x09, 0x01, true},
          Row{"IOCHK with every control bit", NMIMGR_TYPE_IOCHK, 0x7f, false,
              2, 0x0f, 0x07, true},
          // ... and nothing once nmi_panic() returned
          Row{"IOCHK while a panic is under way", NMIMGR_TYPE_IOCHK, 0x41,
              true, 0, 0, 0, false},
          Row{"both latched, SERR's turn", NMIMGR_TYPE_SERR, 0xc0, false, 1,
              0x04, 0, false},
          Row{"both latched, IOCHK's turn", NMIMGR_TYPE_IOCHK, 0xc0, false, 2,
              0x08, 0x00, true},
          Row{"unknown NMIs have no latch", NMIMGR_TYPE_UNKNOWN, 0x21, false,
              0, 0, 0, false},
      }));
  CAPTURE(why);
  nmimgr_port61_plan plan;
  std::memset(&plan, 0xee, sizeof(plan));
  nmimgr_plan_port61(type, reason, panicking, &plan);
  CHECK(plan.writes == writes);
  CHECK(plan.settle == settle);
  if (writes >= 1) CHECK(plan.first == first);
  if (writes >= 2) CHECK(plan.second == second);
  // Status bits 4-7 are read-only and never written back.
  CHECK((plan.first & 0xf0) == 0);
  CHECK((plan.second & 0xf0) == 0);
}

TEST_CASE("words the kernel split off an nmimgr policy are found on the "
          "command line",
          "[unit][policy][cmdline]") {
  using Row = std::tuple<std::string, int, std::string>;
  auto [cmdline, verdict, says] = GENERATE(table<std::string, int,
                                                 std::string>({
      Row{"root=/dev/vda ro quiet", 0, ""},
      Row{"nmimgr.policy=\"drop=1 panic=33\" quiet", 0, ""},
      Row{"nmimgr.policy=drop=1;panic=33 quiet", 0, ""},
      Row{"nmimgr.events_panic=33 panic=10", 1, "'panic=10'"},
      Row{"nmimgr.policy=panic=33 drop=1", -1, "'drop=1' was split off"},
      Row{"nmimgr.policy=drop=1 panic=33 mask=0xc0", -1, "'mask=0xc0'"},
      Row{"nmimgr.policy=panic=33 quiet drop=1", 0, ""},
      Row{"nmimgr.policy=drop=1 confirm=1\n", -1, "'confirm=1'"},
      Row{"drop=1 nmimgr.policy=panic=33", 0, ""},
  }));
  CAPTURE(cmdline);
  char msg[NMIMGR_ERR_BUF + 128];
  CHECK(nmimgr_cmdline_check(cmdline.c_str(), msg, sizeof(msg)) == verdict);
  if (!says.empty()) CHECK_THAT(std::string(msg), Catch::Contains(says));
}

TEST_CASE("every canonical policy reads back, even when its lists together "
          "pass the per-value limit",
          "[unit][policy]") {
  // Found by the policy fuzz target: the even codes dropped, the odd ones
  // panicked on, every third even one ignored, set list by list.
  nmimgr_policy p;
  nmimgr_policy_init(&p);
  p.mask = 0xff;
  for (unsigned c = 0; c < NMIMGR_NR_CODES; ++c) {
    if (c % 2) nmimgr_codeset_set(&p.lists[NMIMGR_LIST_PANIC], c);
    else nmimgr_codeset_set(&p.lists[NMIMGR_LIST_DROP], c);
    if (c % 6 == 0) nmimgr_codeset_set(&p.lists[NMIMGR_LIST_IGNORE], c);
  }
  nmimgr_policy_compile(&p, nullptr);
  const std::string canonical = Format(p);
  CAPTURE(canonical.size());
  REQUIRE(canonical.size() > NMIMGR_MAX_INPUT);
  REQUIRE(canonical.size() < NMIMGR_POLICY_BUF);
  CHECK(Format(Parse(canonical)) == canonical);
}
