// SPDX-License-Identifier: GPL-2.0-or-later
//
// The finding codes: the table in findings.h is the one the library adds
// findings through, and docs/vmcore-check.md's "Verdicts" table documents
// exactly its codes, each with the same severity.
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>

#include "findings.h"

namespace v = nmimgr::vmcore;

namespace {

// severity by code, from the rows "| severity | `code` | meaning |" of the
// doc's Verdicts table.
std::map<std::string, std::string> DocTable() {
  std::ifstream in(NMIMGR_DOCS_DIR "/vmcore-check.md");
  REQUIRE(in);
  std::map<std::string, std::string> table;
  std::string line;
  bool in_verdicts = false;
  const std::regex row(R"(^\| (\w+) \| `([a-z0-9-]+)` \|)");
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) in_verdicts = line == "## Verdicts";
    std::smatch m;
    if (in_verdicts && std::regex_search(line, m, row)) {
      INFO(line);
      CHECK(table.count(m[2]) == 0);
      table[m[2]] = m[1];
    }
  }
  return table;
}

}  // namespace

TEST_CASE("documents every finding code with its severity, and no other",
          "[unit][findings]") {
  std::map<std::string, std::string> doc = DocTable();
  REQUIRE_FALSE(doc.empty());
  for (const v::FindingCodeInfo& info : v::kFindingCodes) {
    std::string code(info.name);
    INFO(code);
    REQUIRE(doc.count(code) == 1);
    CHECK(doc[code] == v::SeverityName(info.severity));
  }
  for (const auto& [code, severity] : doc) {
    INFO(code);
    CHECK(std::any_of(
        v::kFindingCodes.begin(), v::kFindingCodes.end(),
        [&](const v::FindingCodeInfo& info) { return info.name == code; }));
  }
}

TEST_CASE("adds findings only through the table", "[unit][findings]") {
  v::Findings f;
  f.Add(v::FindingCode::kBitmapUnwritten, "m");
  REQUIRE(f.all().size() == 1);
  CHECK(f.all()[0].code == "bitmap-unwritten");
  CHECK(f.all()[0].severity == v::Severity::kIncomplete);
  CHECK(f.HasCode(v::FindingCode::kBitmapUnwritten));
  f.Add(v::Severity::kCorrupt, "overlap", "m");
  CHECK(f.HasCode("overlap"));
  CHECK_THROWS_AS(f.Add(v::Severity::kCorrupt, "no-such-code", "m"),
                  std::logic_error);
  CHECK_THROWS_AS(f.Add(v::Severity::kIncomplete, "overlap", "m"),
                  std::logic_error);
  CHECK(f.all().size() == 2);
}

TEST_CASE("turns each of the library's errors into its one finding",
          "[unit][findings]") {
  using Row = std::tuple<int, std::string, v::Severity>;
  auto [kind, code, severity] = GENERATE(table<int, std::string, v::Severity>(
      {Row{0, "io-error", v::Severity::kUnreadable},
       Row{1, "flattened-hole", v::Severity::kIncomplete},
       Row{2, "truncated", v::Severity::kIncomplete},
       Row{3, "corrupt", v::Severity::kCorrupt}}));
  auto raise = [kind = kind] {
    switch (kind) {
      case 0:
        throw v::IoError("what");
      case 1:
        throw v::UnwrittenError("what");
      case 2:
        throw v::TruncatedError("what");
      default:
        throw v::CorruptError("what");
    }
  };
  v::Findings f;
  CHECK_FALSE(v::CatchErrors(f, v::Catch::kAllErrors, "where: ", raise));
  REQUIRE(f.all().size() == 1);
  CHECK(f.all()[0].code == code);
  CHECK(f.all()[0].severity == severity);
  CHECK(f.all()[0].message == "where: what");
  if (kind == 0) {
    v::Findings g;
    CHECK_THROWS_AS(v::CatchErrors(g, v::Catch::kDataErrors, {}, raise),
                    v::IoError);
  }
  v::Findings none;
  CHECK_FALSE(v::AddErrorFinding(none, std::runtime_error("other")));
  CHECK(none.all().empty());
}
