// SPDX-License-Identifier: GPL-2.0-or-later
//
// What the boot-time unit (nmimgr-annotate.service) relies on: --new checks
// only dump directories whose nmimgr.json is missing or not current,
// --journal prints one line per dump with its sd-daemon(3) priority, and a
// dump that kdump-tools' pipeline cut and renamed as complete is reported
// incomplete.  Fake crash roots in both layouts and `kdumpctl test`'s
// kdump-test-<id> directory, built with the dump builder.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "codec.h"
#include "discover.h"
#include "outer.h"
#include "test_support.h"

using namespace nmimgr::testing;
using nmimgr::vmcore::Verdict;
namespace v = nmimgr::vmcore;
namespace fs = std::filesystem;

namespace {

constexpr const char* kStamp = "202611261455";
constexpr const char* kCut = "202611270810";
constexpr const char* kFedora = "192.168.1.5-2026-11-26-14:55:01";
constexpr const char* kTest = "kdump-test-1764170000-123456789";

std::string Str(const Bytes& b) { return std::string(b.begin(), b.end()); }
Bytes Bin(const std::string& s) { return Bytes(s.begin(), s.end()); }

// A kdump-compressed dump that nmimgr triggered: a bound version 2 record
// (raw 0x21 & mask 0xcf = 0x01) and nmimgr's panic line in the printk ring.
Bytes NmimgrDump() {
  DumpSpec s;
  s.max_mapnr = 1024;
  s.codec = v::kDumpZlib;
  s.pages[0] = Page(4096, 0x11, "first page");
  AddCrashLog(s, 5120000000ull,
              "nmimgr: panic on NMI event 0x21 (33) type=unknown cpu=0 "
              "mask=0xcf code=0x01 record=0123456789abcdef");
  PlaceRecord(s, 20, 1024);
  return BuildKdump(s);
}

// kdump-tools' MAKEDUMP_ARGS "-F -c -d 31": a flattened stream, cut as
// `makedumpfile -F ... | compress > dump-incomplete` leaves it when
// makedumpfile dies and the shell (no pipefail) sees only the compressor's
// status: the file is then renamed dump.<stamp> all the same.
Bytes CutFlattened(bool at_record_boundary) {
  std::vector<uint64_t> at;
  Bytes flat = Flatten(BuildKdump(SampleSpec(v::kDumpZlib)), {}, &at);
  REQUIRE(at.size() > 4);
  Bytes cut = flat;
  cut.resize(at[at.size() / 2] + (at_record_boundary ? 0 : 100));
  return cut;
}

// A crash root as the next boot finds it: a complete and a cut dump in
// kdump-tools' layout, a dump nmimgr triggered in kdumpctl's, and a
// `kdumpctl test` dump.
struct Crash {
  TempDir tmp;
  std::string root = tmp / "crash";
  std::string debian = root + "/" + kStamp;
  std::string cut = root + "/" + kCut;
  std::string fedora = root + "/" + kFedora;
  std::string test = root + "/" + kTest;
  Crash() {
    for (const auto& d : {debian, cut, fedora, test}) fs::create_directories(d);
    const std::string sysrq =
        "[    5.0] Kernel panic - not syncing: sysrq triggered crash\n";
    WriteFile(debian + "/dump." + kStamp,
              Flatten(BuildKdump(SampleSpec(v::kDumpZlib))));
    WriteFile(debian + "/dmesg." + kStamp, Bin(sysrq));
    WriteFile(cut + "/dump." + kCut, CutFlattened(true));
    WriteFile(cut + "/dmesg." + kCut, Bin(sysrq));
    WriteFile(fedora + "/vmcore", NmimgrDump());
    WriteFile(fedora + "/kexec-dmesg.log", Bin("capture kernel log\n"));
    WriteFile(test + "/vmcore", BuildKdump(SampleSpec(v::kDumpLzo)));
    WriteFile(test + "/vmcore-dmesg.txt", Bin(sysrq));
    WriteFile(test + "/kexec-dmesg.log", Bin("capture kernel log\n"));
    WriteFile(test + "/vmcore-creation.status",
              Bin("success kdump_test_id=1764170000-123456789\n"));
  }
};

struct Ran {
  int status;
  std::string out, err;
  std::vector<std::string> lines;
};

Ran Boot(const std::vector<std::string>& paths, bool only_new = true,
         const std::string& prometheus = {}) {
  v::Options o;
  o.paths = paths;
  o.annotate = true;
  o.only_new = only_new;
  o.journal = true;
  o.prometheus = prometheus;
  o.check = ScanOpts();
  std::ostringstream out, err;
  Ran r;
  r.status = v::Run(o, "nmimgr-vmcore-check", out, err);
  r.out = out.str();
  r.err = err.str();
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) r.lines.push_back(line);
  return r;
}

// The journal line about `what` (a dump file or directory), or "".
std::string LineFor(const Ran& r, const std::string& what) {
  for (const auto& l : r.lines)
    if (l.find(what + ":") != std::string::npos) return l;
  return {};
}

struct stat Stat(const std::string& path) {
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st;
}

// Sets a file's modification time `secs` seconds after its current one.
void Touch(const std::string& path, int secs) {
  struct stat st = Stat(path);
  struct timespec ts[2] = {st.st_atim, st.st_mtim};
  ts[1].tv_sec += secs;
  REQUIRE(::utimensat(AT_FDCWD, path.c_str(), ts, 0) == 0);
}

// WhyNew of a dump directory with the dumps discovery finds in it.
std::string WhyNewOf(const std::string& dir) {
  v::Discovery d = v::Discover({dir});
  std::vector<const v::DumpSet*> sets;
  for (const auto& s : d.dumps) sets.push_back(&s);
  return v::WhyNew(dir, sets);
}

nlohmann::json Annotation(const std::string& dir) {
  return nlohmann::json::parse(Str(ReadFile(dir + "/nmimgr.json")));
}

}  // namespace

TEST_CASE(
    "finds the dump of a kdumpctl test directory and does not take its "
    "status file for a dump",
    "[unit][discover][new]") {
  Crash c;
  v::Discovery d = v::Discover({c.test});
  REQUIRE(d.dumps.size() == 1);
  CHECK(d.dumps[0].layout == "kdumpctl");
  CHECK(d.dumps[0].files == std::vector<std::string>{c.test + "/vmcore"});
  CHECK(d.dumps[0].dmesg_file == c.test + "/vmcore-dmesg.txt");
  CHECK(v::LayoutOfDirName(kTest) == "kdumpctl");
  CHECK_FALSE(v::IsDumpFileName("vmcore-creation.status"));

  SECTION("under a crash root too") {
    v::Discovery all = v::Discover({c.root});
    size_t in_test = 0;
    for (const auto& s : all.dumps) in_test += s.dir == c.test;
    CHECK(in_test == 1);
    CHECK(all.dumps.size() == 4);
  }
  SECTION("a test whose dump never got written is dump-missing") {
    fs::remove(c.test + "/vmcore");
    fs::remove(c.test + "/vmcore-dmesg.txt");
    WriteFile(c.test + "/vmcore-creation.status",
              Bin("fail kdump_test_id=1764170000-123456789\n"));
    v::Discovery gone = v::Discover({c.root});
    const v::DumpSet* set = nullptr;
    for (const auto& s : gone.dumps)
      if (s.dir == c.test) set = &s;
    REQUIRE(set != nullptr);
    CHECK(set->files.empty());
    CHECK_THAT(set->missing, Catch::Contains("vmcore-creation.status"));
  }
}

TEST_CASE(
    "reports a flattened dump that kdump-tools' pipeline cut and renamed "
    "dump.<stamp> as incomplete, plain or recompressed",
    "[unit][new][flattened]") {
  // Cut between two records the stream just lacks its end marker; inside
  // one, the record's data runs past the end of the file.
  using Row = std::tuple<bool, std::string, std::string>;
  auto [boundary, ext, code] = GENERATE(table<bool, std::string, std::string>({
      Row{true, "", "no-end-marker"},
      Row{false, "", "truncated"},
      Row{true, ".xz", "no-end-marker"},
      Row{false, ".gz", "truncated"},
  }));
  CAPTURE(boundary, ext);
  TempDir tmp;
  std::string dir = tmp / kCut;
  fs::create_directories(dir);
  Bytes cut = CutFlattened(boundary);
  // The compressor saw a clean end of its input: its own stream is whole.
  if (ext == ".xz") cut = Compress(v::OuterKind::kXz, cut);
  if (ext == ".gz") cut = Compress(v::OuterKind::kGzip, cut);
  WriteFile(dir + "/dump." + kCut + ext, cut);
  Ran r = Boot({tmp.path()});
  INFO(r.out << r.err);
  CHECK(r.status == 1);
  REQUIRE(r.lines.size() == 1);
  CHECK(r.lines[0].rfind(
            "<4>" + dir + "/dump." + kCut + ext + ": incomplete; reasons: ",
            0) == 0);
  CHECK_THAT(r.lines[0], Catch::Contains("reasons: " + code));
  CHECK(Annotation(dir)["verdict"] == "incomplete");
}

TEST_CASE(
    "new dumps under --new --annotate --journal are checked once, one line "
    "each "
    "with its priority, and skips it on the next boot",
    "[unit][new][journal][annotate]") {
  Crash c;
  Ran first = Boot({c.root});
  INFO(first.out << first.err);
  CHECK(first.status == 1);  // the cut dump
  CHECK(first.err.empty());
  REQUIRE(first.lines.size() == 4);
  const std::string dump = c.debian + "/dump." + kStamp;
  CHECK(LineFor(first, dump) ==
        "<6>" + dump +
            ": complete; reasons: none; trigger: not nmimgr (panic: sysrq "
            "triggered crash); annotation written");
  std::string cut = LineFor(first, c.cut + "/dump." + kCut);
  CHECK(cut.rfind("<4>", 0) == 0);
  CHECK_THAT(cut, Catch::Contains(": incomplete; reasons: no-end-marker"));
  CHECK_THAT(cut, Catch::EndsWith("; annotation written"));
  CHECK(LineFor(first, c.fedora + "/vmcore") ==
        "<6>" + c.fedora +
            "/vmcore: complete; reasons: none; trigger: nmimgr event 0x01 "
            "action panic (raw 0x21, unknown, cpu 0, record v2 bound); "
            "annotation written");
  CHECK(LineFor(first, c.test + "/vmcore").rfind("<6>", 0) == 0);
  for (const auto& d : {c.debian, c.cut, c.fedora, c.test}) {
    nlohmann::json j = Annotation(d);
    CHECK(j["checked"]["by"] == v::AnnotationWriter());
    CHECK(WhyNewOf(d).empty());
  }
  CHECK(Annotation(c.test)["checked"]["files"].size() == 2);  // vmcore, log
  struct stat before = Stat(c.fedora + "/nmimgr.json");

  SECTION("the next boot finds nothing new and touches nothing") {
    Ran again = Boot({c.root});
    CHECK(again.status == 0);
    CHECK(again.lines ==
          std::vector<std::string>{"<6>no new dumps (4 already annotated)"});
    struct stat after = Stat(c.fedora + "/nmimgr.json");
    CHECK(after.st_ino == before.st_ino);
    CHECK(after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
  }
  SECTION("a new dump is the only one checked") {
    std::string next = c.root + "/192.168.1.5-2026-11-28-09:00:00";
    fs::create_directories(next);
    WriteFile(next + "/vmcore", BuildKdump(SampleSpec()));
    Ran again = Boot({c.root});
    CHECK(again.status == 0);  // the cut dump was reported last boot
    REQUIRE(again.lines.size() == 1);
    CHECK(again.lines[0].rfind("<6>" + next + "/vmcore: complete;", 0) == 0);
  }
  SECTION("a dump rewritten after its annotation is new again") {
    // Same size, later modification time: what a second capture into the
    // same directory, or a copy over it, leaves.
    Touch(dump, 60);
    Ran again = Boot({c.root});
    REQUIRE(again.lines.size() == 1);
    CHECK(again.lines[0].rfind("<6>" + dump + ": complete;", 0) == 0);
    CHECK(WhyNewOf(c.debian).empty());
    Ran third = Boot({c.root});
    CHECK(third.lines.size() == 1);
    CHECK(third.lines[0].rfind("<6>no new dumps", 0) == 0);
  }
  SECTION("a dump cut after its annotation is new again and incomplete") {
    Bytes b = ReadFile(c.fedora + "/vmcore");
    b.resize(b.size() / 2);
    WriteFile(c.fedora + "/vmcore", b);
    Ran again = Boot({c.root});
    CHECK(again.status == 1);
    REQUIRE(again.lines.size() == 1);
    CHECK(again.lines[0].rfind("<4>" + c.fedora + "/vmcore: incomplete;", 0) ==
          0);
    CHECK(Annotation(c.fedora)["verdict"] == "incomplete");
  }
  SECTION("a saved log that changed makes its dump new") {
    Touch(c.debian + "/dmesg." + kStamp, 5);
    Ran again = Boot({c.root});
    REQUIRE(again.lines.size() == 1);
    CHECK(again.lines[0].rfind("<6>" + dump + ":", 0) == 0);
  }
  SECTION("a renamed dump is new: the names differ, the mtime does not") {
    // kdumpctl's `mv vmcore-incomplete vmcore` keeps the modification
    // time; here the other way round.
    fs::rename(c.test + "/vmcore", c.test + "/vmcore-incomplete");
    Ran again = Boot({c.root});
    REQUIRE(again.lines.size() == 1);
    CHECK(again.lines[0].rfind("<4>" + c.test +
                                   "/vmcore-incomplete: "
                                   "incomplete; reasons: incomplete-name",
                               0) == 0);
  }
  SECTION("an annotation by another version or none at all is not current") {
    nlohmann::json j = Annotation(c.fedora);
    j["checked"]["by"] = "nmimgr-vmcore-check 0.0.9";
    WriteFile(c.fedora + "/nmimgr.json", Bin(j.dump(2) + "\n"));
    j.erase("checked");  // as the versions before --new wrote it
    WriteFile(c.debian + "/nmimgr.json", Bin(j.dump(2) + "\n"));
    WriteFile(c.test + "/nmimgr.json", Bin("{ not json"));
    fs::remove(c.cut + "/nmimgr.json");
    CHECK(WhyNewOf(c.fedora) == "annotation by nmimgr-vmcore-check 0.0.9");
    CHECK(WhyNewOf(c.debian) == "annotation by an earlier version");
    CHECK(WhyNewOf(c.test) == "annotation unreadable");
    CHECK(WhyNewOf(c.cut) == "no annotation");
    Ran again = Boot({c.root});
    CHECK(again.lines.size() == 4);
    Ran third = Boot({c.root});
    CHECK(third.lines.size() == 1);
  }
  SECTION("without --new every dump is checked again") {
    Ran again = Boot({c.root}, false);
    CHECK(again.lines.size() == 4);
    CHECK_THAT(again.out, Catch::Contains("annotation unchanged"));
  }
}

TEST_CASE(
    "gives each journal line the sd-daemon priority of its verdict and "
    "keeps it on one line",
    "[unit][journal]") {
  TempDir tmp;
  std::string dir = tmp / "bad\nname\x1b[31m";
  fs::create_directories(dir);
  WriteFile(dir + "/vmcore", BuildKdump(SampleSpec()));
  v::DumpSet set;
  set.dir = dir;
  set.files = {dir + "/vmcore"};
  set.layout = "unknown";
  v::DumpResult r = v::CheckDump(set, ScanOpts());
  REQUIRE(r.verdict == Verdict::kComplete);
  std::string line = v::JournalLine(r, "");
  CHECK(line.find('\n') == std::string::npos);
  CHECK(line.find('\x1b') == std::string::npos);
  CHECK_THAT(line, Catch::StartsWith("<6>" + tmp.path() +
                                     "/bad\\x0aname\\x1b[31m/vmcore: "
                                     "complete; reasons: none; trigger: "
                                     "not nmimgr"));
  CHECK_THAT(line, Catch::EndsWith("trigger: not nmimgr"));
  CHECK_THAT(v::JournalLine(r, "failed"), Catch::StartsWith("<3>"));
  CHECK_THAT(v::JournalLine(r, "failed"),
             Catch::EndsWith("; annotation failed"));

  using Row = std::tuple<std::string, std::string>;
  auto [cut, want] = GENERATE(table<std::string, std::string>({
      Row{"half", "<4>"},
      Row{"unreadable", "<3>"},
      Row{"corrupt", "<4>"},
  }));
  CAPTURE(cut);
  Bytes b = ReadFile(dir + "/vmcore");
  if (cut == "half") b.resize(b.size() / 2);
  if (cut == "corrupt") b[8] = 0x7f;  // the header version
  WriteFile(dir + "/vmcore", b);
  if (cut == "unreadable") {
    fs::remove(dir + "/vmcore");
    fs::create_directories(dir + "/vmcore");  // read(2) fails: EISDIR
  }
  v::DumpResult bad = v::CheckDump(set, ScanOpts());
  INFO(Codes(bad));
  CHECK_THAT(v::JournalLine(bad, ""), Catch::StartsWith(want));
  if (cut == "unreadable")
    CHECK_THAT(v::JournalLine(bad, ""), Catch::EndsWith("trigger: unknown"));
}

TEST_CASE("errors under --journal carry priority 3 and no table is printed",
          "[unit][journal]") {
  Ran r = Boot({"/nonexistent/crash"});
  CHECK(r.status == 2);
  CHECK(r.out.empty());
  CHECK(r.err.rfind("<3>nmimgr-vmcore-check: /nonexistent/crash: ", 0) == 0);
  TempDir empty;
  Ran none = Boot({empty.path()});
  CHECK(none.status == 0);
  CHECK(none.lines == std::vector<std::string>{"<6>no dumps found"});
}

TEST_CASE(
    "the metrics of --prometheus count every dump by verdict, the ones --new "
    "skips as "
    "their annotation says",
    "[unit][new][metrics]") {
  Crash c;
  const std::string prom = c.tmp / "nmimgr-dumps.prom";
  auto run = [&](bool only_new) {
    Ran r = Boot({c.root}, only_new, prom);
    INFO(r.err);
    std::ifstream in(prom);
    return std::make_pair(
        r.status, std::string((std::istreambuf_iterator<char>(in)), {}));
  };
  // The first boot checks the four dumps; the second skips them all (their
  // annotations are current) and must report the same.
  auto [first_status, first] = run(true);
  CHECK(first_status == 1);  // the cut dump
  for (const char* line : {
           "nmimgr_vmcore_dumps{verdict=\"complete\"} 3\n",
           "nmimgr_vmcore_dumps{verdict=\"incomplete\"} 1\n",
           "nmimgr_vmcore_dumps{verdict=\"corrupt\"} 0\n",
           "nmimgr_vmcore_dumps{verdict=\"unreadable\"} 0\n",
           "nmimgr_vmcore_nmimgr_dumps 1\n",
           "nmimgr_vmcore_check_errors 0\n",
           "# TYPE nmimgr_vmcore_dumps gauge\n",
       }) {
    CAPTURE(line);
    CHECK(first.find(line) != std::string::npos);
  }
  CHECK(first.find("nmimgr_vmcore_latest_crash_time_seconds ") !=
        std::string::npos);
  // bounded labels: no dump's name appears
  CHECK(first.find(kStamp) == std::string::npos);
  CHECK(first.find(kFedora) == std::string::npos);

  auto [second_status, second] = run(true);
  CHECK(second == first);
  // a dump that later goes bad is counted anew
  WriteFile(c.debian + "/dump." + kStamp, Bin("not a dump any more"));
  auto [third_status, third] = run(true);
  CHECK(third.find("nmimgr_vmcore_dumps{verdict=\"complete\"} 2\n") !=
        std::string::npos);
  CHECK(third_status != 0);

  SECTION("an unwritable metrics file is an error and loses nothing else") {
    const std::string bad = c.tmp / "no-such-dir/x.prom";
    v::Options o;
    o.paths = {c.root};
    o.prometheus = bad;
    o.check = ScanOpts();
    std::ostringstream out, err;
    CHECK(v::Run(o, "nmimgr-vmcore-check", out, err) == 2);
    CHECK(err.str().find("x.prom") != std::string::npos);
    CHECK(out.str().find(kFedora) != std::string::npos);  // the table
  }
}
