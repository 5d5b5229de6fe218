// SPDX-License-Identifier: GPL-2.0-or-later
//
// The text report: dump-derived text and file names never reach the
// terminal as control characters or escape sequences; and only the kernel's
// own panic line counts as nmimgr's.
#include <catch2/catch.hpp>
#include <sstream>

#include "codec.h"
#include "test_support.h"
#include "trigger.h"

namespace v = nmimgr::vmcore;
using namespace nmimgr::testing;

namespace {

// True when `s` holds no C0 control other than newline, no DEL, no ESC and
// no C1 control (U+0080..U+009F, as UTF-8 C2 80..C2 9F).
bool TerminalClean(const std::string& s) {
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<uint8_t>(s[i]);
    if ((c < 0x20 && c != '\n') || c == 0x7f) return false;
    if (c == 0xc2 && i + 1 < s.size() &&
        static_cast<uint8_t>(s[i + 1]) >= 0x80 &&
        static_cast<uint8_t>(s[i + 1]) <= 0x9f)
      return false;
  }
  return true;
}

}  // namespace

TEST_CASE("escapes control characters, escape sequences and bad bytes",
          "[unit][output]") {
  using Row = std::tuple<std::string, std::string>;
  auto [in, want] = GENERATE(table<std::string, std::string>({
      Row{"6.1.0-56-amd64", "6.1.0-56-amd64"},
      Row{"\x1b[2J\x1b]0;pwned\x07", "\\x1b[2J\\x1b]0;pwned\\x07"},
      Row{"a\nb\rc\td", "a\\x0ab\\x0dc\\x09d"},
      Row{"del\x7f", "del\\x7f"},
      Row{"csi \xc2\x9b"
          "31m",
          "csi \\u{009b}31m"},
      Row{"bidi \xe2\x80\xae"
          "txt",
          "bidi \\u{202e}txt"},
      Row{"bad \xff\xfe end", "bad \\xff\\xfe end"},
      Row{"cut \xe2\x82", "cut \\xe2\\x82"},
      Row{"surrogate \xed\xa0\x80", "surrogate \\xed\\xa0\\x80"},
      Row{"back\\slash", "back\\\\slash"},
      Row{"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
          "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
  }));
  CAPTURE(in);
  CHECK(v::TerminalText(in) == want);
  CHECK(TerminalClean(v::TerminalText(in)));
}

TEST_CASE(
    "prints no control character from the dump or its file name in the "
    "table",
    "[unit][output]") {
  DumpSpec spec = SampleSpec(v::kDumpZlib);
  spec.release =
      "6.1\x1b[31m\x9b"
      "2J";
  spec.pages[12] =
      Page(4096, 0x20,
           "Kernel panic - not syncing: evil\x1b]0;title\x07\x1b[2J\n", 10);
  const std::string name = "vmcore\x1b[1m\n";
  auto r = CheckBytes(BuildKdump(spec), name);
  REQUIRE(r.trigger.panic_message);
  // Add a finding that quotes dump text, as messages do.
  r.findings.Add(v::Severity::kCorrupt, "corrupt",
                 "bad release \x1b[5m" + spec.release);
  std::ostringstream out;
  v::PrintTable({r}, out);
  CAPTURE(out.str());
  CHECK(TerminalClean(out.str()));
  CHECK(out.str().find("\\x1b[31m") != std::string::npos);
  CHECK(out.str().find("vmcore\\x1b[1m\\x0a") != std::string::npos);
  // JSON keeps the text as it is (escaped by JSON itself), valid UTF-8.
  std::string j = v::DumpToJson(r).dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
  CHECK(TerminalClean(j));
}

TEST_CASE("counts only the kernel's panic line, not a line quoting it",
          "[unit][trigger]") {
  const std::string kLine =
      "nmimgr: panic on NMI event 0x21 (33) type=unknown cpu=0 mask=0xc0 "
      "code=0x00 record=0123456789abcdef";
  using Row = std::tuple<std::string, bool, bool>;
  // log line, counts as nmimgr's line, counts as the panic message
  auto [line, nmimgr, panic] = GENERATE_COPY(table<std::string, bool, bool>({
      Row{"[   42.100000] Kernel panic - not syncing: " + kLine, true, true},
      Row{"<0>[   42.100000] Kernel panic - not syncing: " + kLine, true, true},
      Row{"[   42.100000] [    T1] Kernel panic - not syncing: " + kLine, true,
          true},
      Row{"[   42.100000] [  C3] Kernel panic - not syncing: " + kLine, true,
          true},
      Row{"Kernel panic - not syncing: " + kLine, true, true},
      // quoted by another message
      Row{"[   42.100000] audit: cmd=\"echo Kernel panic - not syncing: " +
              kLine + "\"",
          false, false},
      Row{"[   42.100000] sshd: Kernel panic - not syncing: " + kLine, false,
          false},
      // nmimgr's text without the kernel's prefix: not the panic line
      Row{"[   42.100000] " + kLine, false, false},
      Row{"[   42.100000] test: " + kLine, false, false},
      // a continuation line of another record (indented)
      Row{"[   42.100000] first line\n"
          "               Kernel panic - not syncing: " +
              kLine,
          false, false},
      // stamp not followed by a space
      Row{"[   42.100000]Kernel panic - not syncing: " + kLine, false, false},
  }));
  CAPTURE(line);
  v::KernelLogFacts k = v::ScanKernelLog(line + "\n");
  CHECK(k.nmimgr.has_value() == nmimgr);
  CHECK(k.panic_message.has_value() == panic);
}

TEST_CASE(
    "does not take a quote of nmimgr's panic line in dump memory for the "
    "panic line",
    "[unit][trigger]") {
  const std::string kLine =
      "Kernel panic - not syncing: nmimgr: panic on NMI event 0x21 (33) "
      "type=unknown cpu=0 mask=0xcf\n";
  using Row = std::tuple<std::string, bool>;
  auto [text, counts] = GENERATE_COPY(table<std::string, bool>({
      Row{std::string("\x01", 1) + kLine, true},
      Row{"?" + kLine, true},  // after a ring record's id (top byte 0x3f)
      Row{"[   42.100000] " + kLine, true},
      Row{"echo " + kLine, false},
      Row{"quoted: \"" + kLine, false},
      Row{"nmimgr: panic on NMI event 0x21 (33) type=unknown cpu=0 "
          "mask=0xcf\n",
          false},
  }));
  CAPTURE(text);
  DumpSpec spec;
  spec.max_mapnr = 8;
  spec.pages[3] = Page(4096, 0, text, 300);
  auto r = CheckBytes(BuildKdump(spec));
  CHECK(r.trigger.line.has_value() == counts);
}
