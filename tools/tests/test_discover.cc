// SPDX-License-Identifier: GPL-2.0-or-later
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "codec.h"
#include "discover.h"
#include "test_support.h"

using namespace nmimgr::testing;
using nmimgr::vmcore::Verdict;
namespace v = nmimgr::vmcore;
namespace fs = std::filesystem;

namespace {

std::string Text(const std::string& s) { return s; }

// A fake crash root with both layouts and the odd files real ones carry.
struct FakeCrash {
  TempDir tmp;
  std::string root;
  FakeCrash() {
    root = tmp / "crash";
    fs::create_directories(root);
    DumpSpec spec = SampleSpec(v::kDumpZlib);
    Bytes kd = BuildKdump(spec);
    std::string log =
        "[ 5.0] Kernel panic - not syncing: sysrq triggered crash\n";
    Bytes logb(log.begin(), log.end());
    // kdumpctl: complete, in progress, and ssh (flattened).
    Mk("192.168.1.5-2026-11-26-14:55:01", "vmcore", kd);
    WriteFile(root + "/192.168.1.5-2026-11-26-14:55:01/vmcore-dmesg.txt", logb);
    WriteFile(root + "/192.168.1.5-2026-11-26-14:55:01/kexec-dmesg.log", logb);
    Mk("127.0.0.1-2026-11-26-15:01:00", "vmcore-incomplete",
       Bytes(kd.begin(), kd.begin() + 9000));
    Mk("10.0.0.7-2026-11-26-15:02:00", "vmcore.flat", Flatten(kd));
    // kdump-tools: local, remote, compressed, copy fallback.
    Mk("202611261455", "dump.202611261455", Flatten(kd));
    WriteFile(root + "/202611261455/dmesg.202611261455", logb);
    Mk("host1-202611261500", "dump.202611261500.xz",
       Compress(v::OuterKind::kXz, Flatten(kd)));
    Mk("202611261510", "vmcore.202611261510", BuildElf(spec));
    Mk("202611261520", "dump-incomplete", Flatten(kd));
    // kdump-tools' other files at the root.
    WriteFile(root + "/kdump_lock", {});
    fs::create_directories(root + "/empty-dir");
  }
  void Mk(const std::string& dir, const std::string& name, const Bytes& data) {
    fs::create_directories(root + "/" + dir);
    WriteFile(root + "/" + dir + "/" + name, data);
  }
};

}  // namespace

TEST_CASE("names the layout of a dump directory from its name",
          "[unit][discover]") {
  auto [name, layout] = GENERATE(table<std::string, std::string>({
      {"192.168.1.5-2026-11-26-14:55:01", "kdumpctl"},
      {"127.0.0.1-2026-01-02-03:04:05", "kdumpctl"},
      {"202611261455", "kdump-tools"},
      {"host.example.com-202611261455", "kdump-tools"},
      {"10.1.2.3-202611261455", "kdump-tools"},
      {"2026112614", "unknown"},
      {"lost+found", "unknown"},
      {"kdump-test-1764170101-123456789", "kdumpctl"},
      {"kdump-test-1764170101", "unknown"},
      {"kdump-test-1-2-3", "unknown"},
      {"kdump-test--1", "unknown"},
      {"h-a-2026-11-26-14:55:01", "kdumpctl"},
      {"-2026-11-26-14:55:01", "unknown"},
      {"2026-11-26-14:55:01", "unknown"},
      {"h-2026-11-26-14:55:0x", "unknown"},
      {"h-2026-11-26-14-55-01", "unknown"},
      {"a\nb-2026-11-26-14:55:01", "unknown"},
      {"-202611261455", "unknown"},
      {"a--202611261455", "kdump-tools"},
      {"a-2026112614555", "unknown"},
      {"2026112614555", "unknown"},
      {"a\r-202611261455", "unknown"},
      {"a_202611261455", "unknown"},
  }));
  CAPTURE(name);
  CHECK(v::LayoutOfDirName(name) == layout);
}

TEST_CASE(
    "finds every dump of both layouts under a crash root, also "
    "through a symbolic link",
    "[unit][discover]") {
  FakeCrash fc;
  std::string link = fc.tmp / "var-crash";
  REQUIRE(::symlink(fc.root.c_str(), link.c_str()) == 0);
  for (const std::string& path : {fc.root, link}) {
    CAPTURE(path);
    v::Discovery d = v::Discover({path});
    for (const auto& e : d.errors) UNSCOPED_INFO(e);
    CHECK(d.errors.empty());
    REQUIRE(d.dumps.size() == 7);
    std::map<std::string, v::DumpSet> by_file;
    for (const auto& s : d.dumps)
      by_file[fs::path(s.files.front()).filename().string()] = s;
    CHECK(by_file.at("vmcore").layout == "kdumpctl");
    CHECK(fs::path(by_file.at("vmcore").dmesg_file).filename() ==
          "vmcore-dmesg.txt");
    CHECK(by_file.at("vmcore-incomplete").name_incomplete);
    CHECK(by_file.at("vmcore.flat").layout == "kdumpctl");
    CHECK(by_file.at("dump.202611261455").layout == "kdump-tools");
    CHECK(fs::path(by_file.at("dump.202611261455").dmesg_file).filename() ==
          "dmesg.202611261455");
    CHECK(by_file.at("dump.202611261500.xz").layout == "kdump-tools");
    CHECK(by_file.at("vmcore.202611261510").layout == "kdump-tools");
    CHECK(by_file.at("dump-incomplete").name_incomplete);
  }
}

TEST_CASE("pairs each dump with its own saved kernel log", "[unit][discover]") {
  TempDir tmp;
  Bytes kd = BuildKdump(SampleSpec());
  Bytes log = {'x', '\n'};
  auto log_of = [&](const std::string& dir, const std::string& dump) {
    fs::create_directories(tmp / dir);
    v::Discovery d = v::Discover({tmp / dir + "/" + dump});
    REQUIRE(d.dumps.size() == 1);
    return d.dumps[0].dmesg_file.empty()
               ? std::string("-")
               : fs::path(d.dumps[0].dmesg_file).filename().string();
  };
  // kdump-tools: two dumps in one directory, each with its stamp.
  fs::create_directories(tmp / "a");
  WriteFile(tmp / "a/dump.202611261455", kd);
  WriteFile(tmp / "a/dump.202611261500.xz", Compress(v::OuterKind::kXz, kd));
  WriteFile(tmp / "a/dmesg.202611261455", log);
  WriteFile(tmp / "a/dmesg.202611261500", log);
  CHECK(log_of("a", "dump.202611261455") == "dmesg.202611261455");
  CHECK(log_of("a", "dump.202611261500.xz") == "dmesg.202611261500");
  // dump-incomplete takes the directory's stamp.
  fs::create_directories(tmp / "host-202611261510");
  WriteFile(tmp / "host-202611261510/dump-incomplete", kd);
  WriteFile(tmp / "host-202611261510/dmesg.202611261510", log);
  CHECK(log_of("host-202611261510", "dump-incomplete") == "dmesg.202611261510");
  // kdumpctl.
  fs::create_directories(tmp / "k");
  WriteFile(tmp / "k/vmcore", kd);
  WriteFile(tmp / "k/vmcore-dmesg.txt", log);
  WriteFile(tmp / "k/kexec-dmesg.log", log);
  CHECK(log_of("k", "vmcore") == "vmcore-dmesg.txt");
  // A stray log next to several unrelated dumps is nobody's.
  fs::create_directories(tmp / "s");
  WriteFile(tmp / "s/one.kdump", kd);
  WriteFile(tmp / "s/two.kdump", kd);
  WriteFile(tmp / "s/dmesg.out", log);
  CHECK(log_of("s", "one.kdump") == "-");
}

TEST_CASE("accepts a dump directory or a dump file as PATH",
          "[unit][discover]") {
  FakeCrash fc;
  std::string dir = fc.root + "/202611261455";
  v::Discovery a = v::Discover({dir});
  REQUIRE(a.dumps.size() == 1);
  CHECK(a.dumps[0].dmesg_file == dir + "/dmesg.202611261455");
  v::Discovery b = v::Discover({dir + "/dump.202611261455"});
  REQUIRE(b.dumps.size() == 1);
  CHECK(b.dumps[0].files == a.dumps[0].files);
  v::Discovery c = v::Discover({fc.root + "/nonexistent"});
  CHECK(c.dumps.empty());
  CHECK(c.errors.size() == 1);
}

TEST_CASE("groups the parts of a split set found in one directory",
          "[unit][discover][split]") {
  TempDir tmp;
  auto parts = BuildSplit(SampleSpec(), {20, 50});
  for (size_t i = 0; i < parts.size(); ++i)
    WriteFile(tmp / ("vmcore." + std::to_string(i + 1)), parts[i]);
  v::Discovery d = v::Discover({tmp.path()});
  REQUIRE(d.dumps.size() == 1);
  CHECK(d.dumps[0].split);
  CHECK(d.dumps[0].files.size() == 3);
  // A single part named on the command line brings its set.
  v::Discovery one = v::Discover({tmp / "vmcore.2"});
  REQUIRE(one.dumps.size() == 1);
  CHECK(one.dumps[0].files.size() == 3);
  auto r = v::CheckDump(d.dumps[0], ScanOpts());
  INFO(Codes(r));
  CHECK(r.verdict == Verdict::kComplete);
}

TEST_CASE(
    "finds split parts with names of the user's choosing in a "
    "directory or file named on the command line",
    "[unit][discover][split]") {
  TempDir tmp;
  auto parts = BuildSplit(SampleSpec(), {20});
  WriteFile(tmp / "part-a", parts[0]);
  WriteFile(tmp / "part-b", parts[1]);
  WriteFile(tmp / "notes.txt", {'h', 'i'});
  v::Discovery d = v::Discover({tmp.path()});
  REQUIRE(d.dumps.size() == 1);
  CHECK(d.dumps[0].split);
  CHECK(d.dumps[0].files.size() == 2);
  v::Discovery one = v::Discover({tmp / "part-b"});
  REQUIRE(one.dumps.size() == 1);
  CHECK(one.dumps[0].files.size() == 2);
  // A file that is no dump is still checked when named explicitly.
  v::Discovery other = v::Discover({tmp / "notes.txt"});
  REQUIRE(other.dumps.size() == 1);
  CHECK(v::CheckDump(other.dumps[0], ScanOpts()).verdict == Verdict::kCorrupt);
}

TEST_CASE(
    "gives one verdict per dump of the fake crash root and the exit "
    "status that sums them up",
    "[unit][run]") {
  FakeCrash fc;
  v::Options o;
  o.paths = {fc.root};
  o.json = true;
  o.check = ScanOpts();
  std::ostringstream out, err;
  int status = v::Run(o, "nmimgr-vmcore-check", out, err);
  CHECK(status == 1);
  auto j = nlohmann::json::parse(out.str());
  CHECK(j["schema"] == "nmimgr-vmcore-check/1");
  CHECK(j["exit_status"] == 1);
  std::map<std::string, std::string> verdicts;
  for (const auto& d : j["dumps"])
    verdicts[d["files"][0].get<std::string>()] = d["verdict"];
  CHECK(verdicts["vmcore"] == "complete");
  CHECK(verdicts["vmcore-incomplete"] == "incomplete");
  CHECK(verdicts["vmcore.flat"] == "complete");
  CHECK(verdicts["dump.202611261455"] == "complete");
  CHECK(verdicts["dump.202611261500.xz"] == "complete");
  CHECK(verdicts["vmcore.202611261510"] == "complete");
  CHECK(verdicts["dump-incomplete"] == "incomplete");
  for (const auto& d : j["dumps"]) {
    if (d["files"][0] == "vmcore") {
      CHECK(d["trigger"]["panic_message"] == "sysrq triggered crash");
      CHECK(d["trigger"]["nmimgr"] == false);
      CHECK(d["kernel_release"] == "6.1.0-56-amd64");
      CHECK(d["dump_level"] == 31);
      CHECK(d["compression"] == "zlib");
      CHECK(d["cpus"] == 2);
    }
  }
}

TEST_CASE("exits 0 when every dump is complete and 2 on a missing path",
          "[unit][run]") {
  FakeCrash fc;
  std::ostringstream out, err;
  v::Options o;
  o.quiet = true;
  o.paths = {fc.root + "/202611261455"};
  CHECK(v::Run(o, "nmimgr-vmcore-check", out, err) == 0);
  CHECK(out.str().empty());
  o.paths = {fc.root + "/202611261455", fc.root + "/missing"};
  CHECK(v::Run(o, "nmimgr-vmcore-check", out, err) == 2);
  CHECK_THAT(err.str(), Catch::Contains("nmimgr-vmcore-check: "));
  CHECK_THAT(err.str(), Catch::Contains("missing"));
}

TEST_CASE("prints one table row per dump with the reasons below",
          "[unit][run]") {
  FakeCrash fc;
  std::ostringstream out, err;
  v::Options o;
  o.paths = {fc.root};
  v::Run(o, "nmimgr-vmcore-check", out, err);
  std::string s = out.str();
  CHECK(s.rfind("DUMP", 0) == 0);
  size_t rows = 0;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line) && !line.empty();) ++rows;
  CHECK(rows == 1 + 7);
  CHECK_THAT(s, Catch::Contains("incomplete (incomplete-name)"));
}

TEST_CASE(
    "annotates atomically, idempotently, without following a link "
    "or touching the dump",
    "[unit][annotate]") {
  FakeCrash fc;
  std::string dir = fc.root + "/192.168.1.5-2026-11-26-14:55:01";
  Bytes before = ReadFile(dir + "/vmcore");
  v::Options o;
  o.paths = {dir};
  o.quiet = true;
  o.annotate = true;
  std::ostringstream out, err;

  SECTION("writes a documented file and leaves it alone the second time") {
    REQUIRE(v::Run(o, "nmimgr-vmcore-check", out, err) == 0);
    struct stat st1, st2;
    REQUIRE(::stat((dir + "/nmimgr.json").c_str(), &st1) == 0);
    auto j = nlohmann::json::parse(Text([&] {
      Bytes b = ReadFile(dir + "/nmimgr.json");
      return std::string(b.begin(), b.end());
    }()));
    CHECK(j["schema"] == "nmimgr-vmcore-check/annotation/1");
    CHECK(j["verdict"] == "complete");
    CHECK(j["files"][0] == "vmcore");
    REQUIRE(v::Run(o, "nmimgr-vmcore-check", out, err) == 0);
    REQUIRE(::stat((dir + "/nmimgr.json").c_str(), &st2) == 0);
    CHECK(st1.st_ino == st2.st_ino);
    CHECK(st1.st_mtim.tv_nsec == st2.st_mtim.tv_nsec);
    CHECK(ReadFile(dir + "/vmcore") == before);
    // No temporary files are left behind.
    for (const auto& e : fs::directory_iterator(dir))
      CHECK(e.path().filename().string().rfind(".nmimgr.json.", 0) ==
            std::string::npos);
  }
  SECTION("replaces a symbolic link instead of writing through it") {
    std::string victim = fc.tmp / "victim";
    WriteFile(victim, {'k', 'e', 'e', 'p'});
    REQUIRE(::symlink(victim.c_str(), (dir + "/nmimgr.json").c_str()) == 0);
    REQUIRE(v::Run(o, "nmimgr-vmcore-check", out, err) == 0);
    struct stat st;
    REQUIRE(::lstat((dir + "/nmimgr.json").c_str(), &st) == 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK(ReadFile(victim) == Bytes{'k', 'e', 'e', 'p'});
  }
  SECTION("reports an unwritable directory as an I/O error") {
    if (::geteuid() == 0) {
      SUCCEED("root ignores directory permissions");
      return;
    }
    ::chmod(dir.c_str(), 0555);
    CHECK(v::Run(o, "nmimgr-vmcore-check", out, err) == 2);
    ::chmod(dir.c_str(), 0755);
  }
}

TEST_CASE(
    "with --no-scan reads no page data and takes the log from the "
    "saved file only",
    "[unit][run]") {
  FakeCrash fc;
  v::Options o;
  o.paths = {fc.root + "/192.168.1.5-2026-11-26-14:55:01"};
  o.json = true;
  o.check.scan = false;
  std::ostringstream out, err;
  CHECK(v::Run(o, "nmimgr-vmcore-check", out, err) == 0);
  auto j = nlohmann::json::parse(out.str());
  const auto& d = j["dumps"][0];
  CHECK(d["scan"]["mode"] == "none");
  CHECK(d["scan"]["pages_decoded"] == 0);
  CHECK(d["trigger"]["record"].is_null());
  CHECK(d["trigger"]["panic_message"] == "sysrq triggered crash");
  CHECK(d["trigger"]["kernel_log"]["source"] == "dmesg-file");
}

TEST_CASE(
    "reports text from the dump that is not valid UTF-8 with replacement "
    "characters, in --json and in an idempotent annotation",
    "[unit][run][annotate]") {
  TempDir tmp;
  std::string dir = tmp / "127.0.0.1-2026-11-26-15:01:00";
  fs::create_directories(dir);
  DumpSpec spec = SampleSpec(v::kDumpZlib);
  spec.release = "6.1.0-\xff\xfe-amd64";
  spec.machine = "x86\xc3_64";  // a lead byte without its continuation
  WriteFile(dir + "/vmcore", BuildKdump(spec));
  std::string log =
      "[ 5.0] Kernel panic - not syncing: bad \xed\xa0\x80 text \xf8\n";
  WriteFile(dir + "/vmcore-dmesg.txt", Bytes(log.begin(), log.end()));
  v::Options o;
  o.paths = {dir};
  std::ostringstream out, err;

  SECTION("--json prints a report") {
    o.json = true;
    REQUIRE(v::Run(o, "nmimgr-vmcore-check", out, err) == 0);
    INFO(err.str());
    auto j = nlohmann::json::parse(out.str());
    const auto& d = j["dumps"][0];
    CHECK(d["kernel_release"] == "6.1.0-\xef\xbf\xbd\xef\xbf\xbd-amd64");
    CHECK(d["machine"] == "x86\xef\xbf\xbd_64");
    CHECK(d["trigger"]["panic_message"] ==
          "bad \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd text \xef\xbf\xbd");
  }
  SECTION("--annotate writes nmimgr.json once and leaves it alone after") {
    o.quiet = true;
    o.annotate = true;
    REQUIRE(v::Run(o, "nmimgr-vmcore-check", out, err) == 0);
    INFO(err.str());
    struct stat st1, st2;
    REQUIRE(::stat((dir + "/nmimgr.json").c_str(), &st1) == 0);
    Bytes first = ReadFile(dir + "/nmimgr.json");
    auto j = nlohmann::json::parse(std::string(first.begin(), first.end()));
    CHECK(j["machine"] == "x86\xef\xbf\xbd_64");
    REQUIRE(v::Run(o, "nmimgr-vmcore-check", out, err) == 0);
    REQUIRE(::stat((dir + "/nmimgr.json").c_str(), &st2) == 0);
    CHECK(st1.st_ino == st2.st_ino);
    CHECK(ReadFile(dir + "/nmimgr.json") == first);
  }
}
