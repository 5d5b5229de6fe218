// SPDX-License-Identifier: GPL-2.0-or-later
//
// Sets and layouts as they are found in the field: compressed split parts,
// parts from several directories, loose files at a crash root, unreadable
// and half-written dump directories, checksum files, two dumps sharing one
// nmimgr.json.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "codec.h"
#include "discover.h"
#include "outer.h"
#include "source.h"
#include "test_support.h"

using namespace nmimgr::testing;
using nmimgr::vmcore::Verdict;
namespace v = nmimgr::vmcore;
namespace fs = std::filesystem;

namespace {

int RunQuiet(const std::vector<std::string>& paths, bool annotate = false,
             std::string* err_text = nullptr) {
  std::ostringstream out, err;
  v::Options o;
  o.quiet = true;
  o.annotate = annotate;
  o.paths = paths;
  o.check = ScanOpts();
  int rc = v::Run(o, "nmimgr-vmcore-check", out, err);
  if (err_text) *err_text = err.str();
  return rc;
}

}  // namespace

TEST_CASE("groups compressed split parts into their set like plain ones",
          "[unit][discover][split]") {
  using Row = std::tuple<v::OuterKind, std::string>;
  auto [kind, ext] = GENERATE(table<v::OuterKind, std::string>({
      Row{v::OuterKind::kXz, ".xz"},
      Row{v::OuterKind::kGzip, ".gz"},
      Row{v::OuterKind::kBzip2, ".bz2"},
      Row{v::OuterKind::kLz4, ".lz4"},
  }));
  CAPTURE(ext);
  TempDir tmp;
  auto parts = BuildSplit(SampleSpec(v::kDumpZlib), {20, 50});
  for (size_t i = 0; i < parts.size(); ++i)
    WriteFile(tmp / ("dump.202611261455." + std::to_string(i + 1) + ext),
              Compress(kind, parts[i]));
  v::Discovery d = v::Discover({tmp.path()});
  REQUIRE(d.dumps.size() == 1);
  CHECK(d.dumps[0].split);
  CHECK(d.dumps[0].files.size() == 3);
  auto r = v::CheckDump(d.dumps[0], ScanOpts());
  INFO(Codes(r));
  CHECK(r.verdict == Verdict::kComplete);
  CHECK(r.outer == v::OuterName(kind));
  SECTION("a cut compressed part is reported") {
    Bytes cut = Compress(kind, parts[1]);
    cut.resize(cut.size() / 2);
    WriteFile(tmp / ("dump.202611261455.2" + ext), cut);
    v::Discovery d2 = v::Discover({tmp.path()});
    REQUIRE(d2.dumps.size() >= 1);
    auto r2 = v::CheckDump(d2.dumps[0], ScanOpts());
    CHECK(r2.verdict != Verdict::kComplete);
  }
}

TEST_CASE("makes one set of split parts named from several directories",
          "[unit][discover][split]") {
  TempDir tmp;
  auto parts = BuildSplit(SampleSpec(v::kDumpZlib), {20, 50});
  std::vector<std::string> named;
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string dir = tmp / ("disk" + std::to_string(i));
    fs::create_directories(dir);
    WriteFile(dir + "/vmcore." + std::to_string(i + 1), parts[i]);
    named.push_back(dir + "/vmcore." + std::to_string(i + 1));
  }
  // In any order on the command line.
  std::swap(named[0], named[2]);
  v::Discovery d = v::Discover(named);
  REQUIRE(d.dumps.size() == 1);
  CHECK(d.dumps[0].split);
  REQUIRE(d.dumps[0].files.size() == 3);
  CHECK(d.dumps[0].files[0] == tmp / "disk0/vmcore.1");
  auto r = v::CheckDump(d.dumps[0], ScanOpts());
  INFO(Codes(r));
  CHECK(r.verdict == Verdict::kComplete);
  CHECK(RunQuiet(named) == 0);
  // Two of three parts: a part missing, not two complete dumps.
  v::Discovery two = v::Discover({named[0], named[1]});
  REQUIRE(two.dumps.size() == 1);
  CHECK(v::CheckDump(two.dumps[0], ScanOpts()).verdict != Verdict::kComplete);
}

TEST_CASE(
    "checks the dump directories of a crash root that holds a loose dump "
    "file",
    "[unit][discover]") {
  TempDir tmp;
  std::string root = tmp / "crash";
  fs::create_directories(root + "/202611261455");
  Bytes kd = BuildKdump(SampleSpec(v::kDumpZlib));
  WriteFile(root + "/vmcore", kd);
  WriteFile(root + "/202611261455/dump.202611261455",
            Bytes(kd.begin(), kd.begin() + 9000));
  v::Discovery d = v::Discover({root});
  CHECK(d.errors.empty());
  REQUIRE(d.dumps.size() == 2);
  CHECK(RunQuiet({root}) == 1);  // the cut dump in the directory is found
}

TEST_CASE("reports a dump directory that cannot be read as an error",
          "[unit][discover]") {
  if (::geteuid() == 0) {
    WARN("root reads any directory: not checked");
    return;
  }
  TempDir tmp;
  std::string root = tmp / "crash";
  std::string dir = root + "/202611261455";
  fs::create_directories(dir);
  WriteFile(dir + "/dump.202611261455", BuildKdump(SampleSpec()));
  REQUIRE(::chmod(dir.c_str(), 0) == 0);
  auto path = GENERATE_COPY(root, dir);
  CAPTURE(path);
  std::string err;
  CHECK(RunQuiet({path}, false, &err) == 2);
  CHECK_THAT(err, Catch::Contains("Permission denied"));
  CHECK_THAT(err, !Catch::Contains("no dumps found"));
  ::chmod(dir.c_str(), 0755);
}

TEST_CASE(
    "reports a dump directory whose dump never got written, without "
    "hanging",
    "[unit][discover]") {
  using Row = std::tuple<std::string, std::string>;
  auto [what, needle] = GENERATE(table<std::string, std::string>({
      Row{"dangling", "dangling symbolic link"},
      Row{"fifo", "FIFO"},
      Row{"device", "character device"},
      Row{"only-log", "saved kernel log"},
  }));
  CAPTURE(what);
  TempDir tmp;
  std::string root = tmp / "crash";
  std::string dir = root + "/127.0.0.1-2026-11-26-15:01:00";
  fs::create_directories(dir);
  std::string log = "[ 5.0] Kernel panic - not syncing: sysrq\n";
  WriteFile(dir + "/vmcore-dmesg.txt", Bytes(log.begin(), log.end()));
  std::string dump = dir + "/vmcore";
  if (what == "dangling")
    REQUIRE(::symlink("/nonexistent/vmcore", dump.c_str()) == 0);
  else if (what == "fifo")
    REQUIRE(::mkfifo(dump.c_str(), 0600) == 0);
  else if (what == "device")
    REQUIRE(::symlink("/dev/null", dump.c_str()) == 0);
  for (const std::string& path : {root, dir}) {
    CAPTURE(path);
    v::Discovery d = v::Discover({path});
    REQUIRE(d.dumps.size() == 1);
    CHECK(d.dumps[0].files.empty());
    auto r = v::CheckDump(d.dumps[0], ScanOpts());
    CHECK(r.verdict == Verdict::kIncomplete);
    REQUIRE(r.findings.HasCode("dump-missing"));
    CHECK_THAT(Codes(r), Catch::Contains(needle));
    CHECK(RunQuiet({path}) == 1);
    std::ostringstream table;
    v::PrintTable({r}, table);
    CHECK_THAT(table.str(), Catch::Contains("dump-missing"));
  }
  // A FIFO opened as a dump file is refused, not waited on.
  if (what == "fifo") CHECK_THROWS(v::FileSource(dump));
}

TEST_CASE("does not take checksum files next to a dump for dumps",
          "[unit][discover]") {
  TempDir tmp;
  std::string dir = tmp / "202611261455";
  fs::create_directories(dir);
  WriteFile(dir + "/dump.202611261455", BuildKdump(SampleSpec()));
  for (const char* ext : {".sha256", ".md5", ".sha1", ".sha512"}) {
    std::string sum = "0123abcd  dump.202611261455\n";
    WriteFile(dir + "/dump.202611261455" + ext, Bytes(sum.begin(), sum.end()));
    CHECK_FALSE(v::IsDumpFileName(std::string("dump.202611261455") + ext));
  }
  CHECK_FALSE(v::IsDumpFileName("vmcore.sha256"));
  v::Discovery d = v::Discover({dir});
  REQUIRE(d.dumps.size() == 1);
  CHECK(RunQuiet({dir}) == 0);
  CHECK(RunQuiet({tmp.path()}) == 0);
}

TEST_CASE(
    "annotates a directory with two dumps so that the broken one is not "
    "read as complete",
    "[unit][run][annotate]") {
  bool broken_first = GENERATE(true, false);
  CAPTURE(broken_first);
  TempDir tmp;
  std::string dir = tmp / "202611261455";
  fs::create_directories(dir);
  Bytes kd = BuildKdump(SampleSpec());
  Bytes cut(kd.begin(), kd.begin() + 9000);
  // Sorted by name: dump.202611261455 before vmcore.202611261455.
  WriteFile(dir + "/dump.202611261455", broken_first ? cut : kd);
  WriteFile(dir + "/vmcore.202611261455", broken_first ? kd : cut);
  CHECK(RunQuiet({dir}, true) == 1);
  std::ifstream in(dir + "/nmimgr.json");
  nlohmann::json j = nlohmann::json::parse(in);
  CHECK(j["verdict"] == "incomplete");
  REQUIRE(j["dumps_in_directory"].size() == 2);
  std::set<std::string> verdicts;
  for (const auto& e : j["dumps_in_directory"])
    verdicts.insert(e["verdict"].get<std::string>());
  CHECK(verdicts == std::set<std::string>{"complete", "incomplete"});
}
