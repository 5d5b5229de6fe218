// SPDX-License-Identifier: GPL-2.0-or-later
// Unit tests of the policy core (module/policy.c), the same source the
// kernel module is built from.
#include <catch2/catch.hpp>

#include <cstdint>
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

TEST_CASE("a policy string replaces the whole policy and round-trips",
          "[unit][policy]") {
  using Row = std::tuple<std::string, std::string>;
  auto [input, canonical] = GENERATE(table<std::string, std::string>({
      Row{"", "ignore= drop= panic= mask=0xcf dry_run=0"},
      Row{"panic=33", "ignore= drop= panic=33 mask=0xcf dry_run=0"},
      Row{"drop=0-2;panic=10 mask=0xff",
          "ignore= drop=0-2 panic=10 mask=0xff dry_run=0"},
      Row{"  dry_run=1\tignore=5,4,3\n",
          "ignore=3-5 drop= panic= mask=0xcf dry_run=1"},
      Row{"events_drop=1 events_panic=2 event_mask=192 events_ignore=0",
          "ignore=0 drop=1 panic=2 mask=0xc0 dry_run=0"},
      Row{"drop= panic=", "ignore= drop= panic= mask=0xcf dry_run=0"},
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
      Row{"dry_run=2", "dry_run: expected 0, 1"},
      Row{"ignore=1,,2", "ignore: expected a code"},
      Row{"panic=5-3", "reversed"},
      Row{"drop=1 " + std::string(1100, ' '), "longer than"},
  }));
  CAPTURE(input);
  nmimgr_policy p = Parse("drop=9");
  char err[NMIMGR_ERR_BUF] = "";
  REQUIRE(nmimgr_policy_parse(input.c_str(), &p, err, sizeof(err)) == -1);
  CHECK_THAT(std::string(err), Catch::Contains(reason));
  CHECK(Format(p) == "ignore= drop=9 panic= mask=0xcf dry_run=0");
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
          // QEMU's inject-nmi reads 0x21 or 0x31: both are 0x01 under 0xcf.
          Row{"drop=0x21", 0x21, NMIMGR_DROP},
          Row{"drop=0x21", 0x31, NMIMGR_DROP},
          Row{"drop=1", 0x31, NMIMGR_DROP},
          Row{"drop=0x31", 0x01, NMIMGR_DROP},
          // Exact match (the 2017 behaviour) misses the toggled byte.
          Row{"drop=0x21 mask=0xff", 0x21, NMIMGR_DROP},
          Row{"drop=0x21 mask=0xff", 0x31, NMIMGR_UNMANAGED},
          // Mask 0xc0: only SERR/IOCHK status, QEMU's NMI is code 0.
          Row{"drop=0 mask=0xc0", 0x21, NMIMGR_DROP},
          Row{"drop=0 mask=0xc0", 0x31, NMIMGR_DROP},
          Row{"drop=0 mask=0xc0", 0x81, NMIMGR_UNMANAGED},
          Row{"panic=0x80 mask=0xc0", 0xb5, NMIMGR_PANIC},
          Row{"panic=0x80 mask=0xc0", 0x45, NMIMGR_UNMANAGED},
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

TEST_CASE("a code in several lists follows ignore, drop, panic order and "
          "the overlap is reported",
          "[unit][policy]") {
  nmimgr_state st = Normal();
  nmimgr_policy p;
  nmimgr_policy_init(&p);
  nmimgr_codeset overlap;

  SECTION("ignore beats drop and panic") {
    nmimgr_parse_list("1-3", &p.lists[NMIMGR_LIST_IGNORE], nullptr, 0);
    nmimgr_parse_list("2", &p.lists[NMIMGR_LIST_DROP], nullptr, 0);
    nmimgr_parse_list("3-4", &p.lists[NMIMGR_LIST_PANIC], nullptr, 0);
    nmimgr_policy_compile(&p, &overlap);
    CHECK(nmimgr_decide(&p, &st, 2) == NMIMGR_IGNORE);
    CHECK(nmimgr_decide(&p, &st, 3) == NMIMGR_IGNORE);
    CHECK(nmimgr_decide(&p, &st, 4) == NMIMGR_PANIC);
    CHECK(Format(overlap) == "2-3");
  }
  SECTION("drop beats panic, also when the mask makes codes collide") {
    nmimgr_parse_list("0x21", &p.lists[NMIMGR_LIST_DROP], nullptr, 0);
    nmimgr_parse_list("0x31", &p.lists[NMIMGR_LIST_PANIC], nullptr, 0);
    nmimgr_policy_compile(&p, &overlap);
    CHECK(nmimgr_decide(&p, &st, 0x31) == NMIMGR_DROP);
    CHECK(Format(overlap) == "1");
  }
  SECTION("two codes of one list that mask alike are no overlap") {
    nmimgr_parse_list("0x21,0x31", &p.lists[NMIMGR_LIST_DROP], nullptr, 0);
    nmimgr_policy_compile(&p, &overlap);
    CHECK(nmimgr_codeset_empty(&overlap));
    CHECK(nmimgr_decide(&p, &st, 0x21) == NMIMGR_DROP);
  }
  SECTION("lists as written survive compilation for reading back") {
    nmimgr_parse_list("0x21,0x31", &p.lists[NMIMGR_LIST_DROP], nullptr, 0);
    nmimgr_policy_compile(&p, &overlap);
    CHECK(Format(p) == "ignore= drop=33,49 panic= mask=0xcf dry_run=0");
  }
}

TEST_CASE("once latched, managed events are dropped and unmanaged ones are "
          "left to the kernel",
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

TEST_CASE("only drops and panics claim the NMI", "[unit][policy]") {
  CHECK(nmimgr_action_handled(NMIMGR_DROP));
  CHECK(nmimgr_action_handled(NMIMGR_LATCHED_DROP));
  CHECK(nmimgr_action_handled(NMIMGR_PANIC));
  CHECK_FALSE(nmimgr_action_handled(NMIMGR_IGNORE));
  CHECK_FALSE(nmimgr_action_handled(NMIMGR_UNMANAGED));
  // Dry run changes nothing: the kernel keeps its own handling.
  CHECK_FALSE(nmimgr_action_handled(NMIMGR_WOULD_PANIC));
}

TEST_CASE("re-arming the SERR and IOCHK latch writes the control bits with "
          "the clear bit set, then cleared",
          "[unit][policy]") {
  using Row = std::tuple<unsigned, uint8_t, uint8_t, uint8_t>;
  auto [type, reason, first, second] =
      GENERATE(table<unsigned, uint8_t, uint8_t, uint8_t>({
          // SERR status (bit 7) with speaker and gate bits set.
          Row{NMIMGR_TYPE_SERR, 0xa3, 0x07, 0x03},
          Row{NMIMGR_TYPE_SERR, 0x80, 0x04, 0x00},
          // The clear bit already set stays set in the first write only.
          Row{NMIMGR_TYPE_SERR, 0x84, 0x04, 0x00},
          // IOCHK status (bit 6); bit 3 is its clear bit.
          Row{NMIMGR_TYPE_IOCHK, 0x41, 0x09, 0x01},
          Row{NMIMGR_TYPE_IOCHK, 0x7f, 0x0f, 0x07},
          // Both status bits: each type clears only its own latch.
          Row{NMIMGR_TYPE_SERR, 0xc0, 0x04, 0x00},
          Row{NMIMGR_TYPE_IOCHK, 0xc0, 0x08, 0x00},
      }));
  CAPTURE(type, reason);
  uint8_t a = 0xee, b = 0xee;
  REQUIRE(nmimgr_rearm_bytes(type, reason, &a, &b));
  CHECK(a == first);
  CHECK(b == second);
  // Status bits 4-7 are read-only and never written back.
  CHECK((a & 0xf0) == 0);
  CHECK((b & 0xf0) == 0);
}

TEST_CASE("unknown NMIs have no latch to re-arm", "[unit][policy]") {
  uint8_t a = 0xee, b = 0xee;
  CHECK_FALSE(nmimgr_rearm_bytes(NMIMGR_TYPE_UNKNOWN, 0x21, &a, &b));
  CHECK(a == 0xee);
  CHECK(b == 0xee);
}
