// SPDX-License-Identifier: GPL-2.0-or-later
#include <catch2/catch.hpp>

#include "check.h"
#include "checked.h"
#include "source.h"

namespace v = nmimgr::vmcore;

TEST_CASE(
    "decodes little- and big-endian fields and refuses reads outside "
    "the buffer",
    "[unit][checked]") {
  std::vector<uint8_t> b = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  v::ByteView view(b, 100, "test struct");
  CHECK(view.Le16(0) == 0x0201);
  CHECK(view.Le32(1) == 0x05040302u);
  CHECK(view.Le64(1) == 0x0908070605040302ull);
  CHECK(view.Be64s(0) == 0x0102030405060708ll);
  CHECK_THROWS_AS(view.Le64(2), v::CorruptError);
  CHECK_THROWS_AS(view.Slice(5, 5), v::CorruptError);
  CHECK_THROWS_AS(view.U8(~0ull), v::CorruptError);
  CHECK_THROWS_WITH(view.Le32(8), Catch::Contains("test struct") &&
                                      Catch::Contains("file offset 100"));
  CHECK(view.Slice(2, 3).Le16(1) == 0x0504);
}

TEST_CASE("checked arithmetic fails on overflow instead of wrapping",
          "[unit][checked]") {
  CHECK(v::CheckedAdd(1, 2, "x") == 3);
  CHECK_THROWS_AS(v::CheckedAdd(~0ull, 1, "x"), v::CorruptError);
  CHECK(v::CheckedMul(1ull << 31, 2, "x") == 1ull << 32);
  CHECK_THROWS_AS(v::CheckedMul(1ull << 40, 1ull << 30, "x"), v::CorruptError);
}

TEST_CASE("a short read is truncation, named with its offsets",
          "[unit][checked]") {
  v::MemorySource src(std::vector<uint8_t>(10, 0));
  std::vector<uint8_t> out(8);
  CHECK_NOTHROW(v::ReadExact(src, 2, out, "thing"));
  CHECK_THROWS_WITH(v::ReadExact(src, 5, out, "thing"),
                    "reading thing: short read at offset 5 (8 bytes wanted, "
                    "data ends at 10)");
  CHECK_THROWS_AS(v::ReadVector(src, 4, 1ull << 40, "huge"), v::TruncatedError);
}

TEST_CASE("an unreadable file is an I/O error, not a finding",
          "[unit][checked]") {
  CHECK_THROWS_AS(v::FileSource("/nonexistent/vmcore"), v::IoError);
  CHECK_THROWS_AS(v::FileSource("/"), v::IoError);
}

TEST_CASE("a dump that cannot be opened is unreadable, and the run exits 2",
          "[unit][run]") {
  nmimgr::vmcore::DumpSet set;
  set.dir = "/nonexistent";
  set.files = {"/nonexistent/vmcore"};
  auto r = nmimgr::vmcore::CheckDump(set, {});
  CHECK(r.verdict == nmimgr::vmcore::Verdict::kUnreadable);
  REQUIRE(r.findings.all().size() == 1);
  CHECK(r.findings.all()[0].code == "io-error");
  CHECK_THAT(r.findings.all()[0].message,
             Catch::StartsWith("opening /nonexistent/vmcore: "));
}

TEST_CASE("turns each byte that is not well-formed UTF-8 into U+FFFD",
          "[unit][checked]") {
  auto [in, want] = GENERATE(table<std::string, std::string>({
      {"plain ascii", "plain ascii"},
      {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
      {"a\xff" "b", "a\xef\xbf\xbd" "b"},
      {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},  // overlong '/'
      {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},  // surrogate
      {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
      {"end\xe2\x82", "end\xef\xbf\xbd\xef\xbf\xbd"},  // cut sequence
  }));
  CAPTURE(in);
  CHECK(nmimgr::vmcore::ValidUtf8(in) == want);
}
