// SPDX-License-Identifier: GPL-2.0-or-later
#include "test.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <optional>

#include "doctor.h"
#include "kdump.h"
#include "module_state.h"
#include "prometheus.h"

namespace nmimgr::ctl {

namespace {

using nlohmann::json;

constexpr const char* kTrigger = "/sys/kernel/nmimgr/test";
constexpr const char* kRecord = "/sys/kernel/nmimgr/record";

std::string IsoNow() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// "nonce 0123456789abcdef" from the record attribute.
std::optional<std::string> RecordNonce(const Host& host) {
  std::optional<std::string> text = host.Read(kRecord);
  if (!text) return std::nullopt;
  for (const std::string& line : Lines(*text)) {
    std::vector<std::string> w = Words(line);
    if (w.size() == 2 && w[0] == "nonce" && w[1].size() == 16) return w[1];
  }
  return std::nullopt;
}

void WriteJson(const Host& host, const char* abs, const json& j) {
  std::filesystem::path p = host.Path(abs);
  std::error_code ec;
  std::filesystem::create_directories(p.parent_path(), ec);
  metrics::WriteFileAtomically(p.string(), j.dump(2) + "\n");
}

std::optional<json> ReadJson(const Host& host, const char* abs) {
  std::optional<std::string> text = host.Read(abs);
  if (!text) return std::nullopt;
  json j = json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return json::object();
  return j;
}

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

int64_t Int(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

// What stats' last_event says nmimgr did with the NMI that did not crash.
std::string LastAction(const Host& host) {
  ModuleState m = ReadModule(host);
  if (!m.stats || !m.stats->last_event) return "no event recorded";
  const auto& e = *m.stats->last_event;
  auto get = [&e](const char* k) {
    auto it = e.find(k);
    return it == e.end() ? std::string("?") : it->second;
  };
  return "action " + get("action") + " on code " + get("code") + " (raw " +
         get("raw") + ", cpu " + get("cpu") + ")";
}

std::string Why(const std::string& action) {
  if (action.find("action unmanaged") != std::string::npos ||
      action.find("action drop") != std::string::npos ||
      action.find("action ignore") != std::string::npos)
    return "the policy does not panic on that code: nmimgrctl set --panic "
           "CODE, or nmimgrctl discover to see what the BMC's NMI reads";
  if (action.find("action pending") != std::string::npos)
    return "the confirmation window did not close on the second NMI";
  if (action.find("would_panic") != std::string::npos) return "dry run is on";
  return "see the kernel log (dmesg | grep nmimgr)";
}

int Start(const Host& host, const TestOptions& opts, std::ostream& out,
          std::ostream& err) {
  ModuleState m = ReadModule(host);
  if (!m.loaded) {
    err << "nmimgrctl: test: nmimgr is not loaded (modprobe nmimgr, or "
           "systemctl start nmimgr)\n";
    return 2;
  }
  if (!host.Exists(kTrigger)) {
    err << "nmimgrctl: test: this nmimgr has no " << kTrigger
        << " (a module older than this nmimgrctl): update nmimgr-dkms\n";
    return 2;
  }
  KdumpSetup k = ReadKdumpSetup(host);
  const std::string dir = k.dump_dir.empty() ? "/var/crash" : k.dump_dir;
  const std::string policy = m.Param("policy");
  const bool dry_run = m.stats && m.stats->Flag("dry_run");
  const bool latched = m.stats && m.stats->Flag("latched");
  const std::string confirm =
      m.stats ? m.stats->Get("confirm").value_or("off") : "off";
  std::optional<std::string> nonce = RecordNonce(host);

  out << "nmimgrctl test crashes this machine on purpose, through the real "
         "NMI path:\n"
      << "  1. doctor checks that a BMC-triggered dump would be written "
         "(run now)\n"
      << "  2. the test is recorded in " << kTestPending << " (record nonce "
      << nonce.value_or("?") << "), and file systems are synced\n"
      << "  3. \"crash\" is written to " << kTrigger
      << ": nmimgr sends an NMI to a CPU through its local APIC"
      << (confirm != "off" && confirm != "0"
              ? ", and a second one inside the confirm window (" + confirm +
                    " ms)"
              : std::string())
      << "\n"
      << "  4. nmimgr decides on it with the policy in force (" << policy
      << "), fills its record and panics; the capture kernel (" << k.name
      << ") writes the dump to " << dir << " and reboots\n"
      << "  5. on the next boot nmimgr-test-report.service runs 'nmimgrctl "
         "test --report': the dump's verdict and trigger\n\n";

  std::vector<std::string> refusals;
  if (dry_run)
    refusals.push_back(
        "dry run is on: nothing would panic (nmimgrctl set --no-dry-run)");
  if (latched)
    refusals.push_back(
        "nmimgr is latched (a panic began, or this is a capture kernel)");
  if (!nonce)
    refusals.push_back(std::string("cannot read the record's nonce from ") +
                       kRecord);
  DoctorOptions d;
  d.loader = opts.loader;
  d.mem_usage = opts.mem_usage;
  DoctorReport r = RunDoctor(host, d);
  std::vector<std::string> unknown;
  for (const Finding& f : r.findings) {
    if (f.verdict == Verdict::kFail)
      refusals.push_back("doctor: " + f.id + ": " + f.summary);
    else if (f.verdict == Verdict::kUnknown)
      unknown.push_back(f.id + ": " + f.summary);
  }
  for (const std::string& u : unknown)
    out << "doctor could not check " << u << "\n";
  if (!refusals.empty()) {
    out << "not crashing: the test would not prove anything now:\n";
    for (const std::string& s : refusals) out << "  - " << s << "\n";
    out << "(nmimgrctl doctor shows the evidence and the fixes)\n";
    return 1;
  }
  out << "doctor: ready\n";
  if (!opts.yes) {
    out << "not crashing without --yes-crash-this-machine\n";
    return 1;
  }

  json marker = {
      {"schema", "nmimgrctl-test/1"},
      {"started", IsoNow()},
      {"started_epoch", static_cast<int64_t>(std::time(nullptr))},
      {"boot_id",
       host.ReadLine("/proc/sys/kernel/random/boot_id").value_or("")},
      {"nonce", *nonce},
      {"policy", policy},
      {"confirm", confirm},
      {"kdump", k.name},
      {"dump_dir", dir},
      {"kernel_release", k.kernel_release}};
  WriteJson(host, kTestPending, marker);
  if (host.live()) ::sync();
  out << "writing \"crash\" to " << kTrigger << " now\n" << std::flush;

  const std::string trigger = host.Path(kTrigger).string();
  int fd = ::open(trigger.c_str(), O_WRONLY | O_CLOEXEC);
  int e = 0;
  if (fd < 0) {
    e = errno;
  } else {
    if (::write(fd, "crash", 5) != 5) e = errno;
    ::close(fd);
  }
  // Still running: the machine did not crash.  No test is pending.
  std::error_code ec;
  std::filesystem::remove(host.Path(kTestPending), ec);
  if (e) {
    err << "nmimgrctl: test: writing " << kTrigger << ": "
        << (e == ETIMEDOUT
                ? "the NMI did not reach nmimgr (another NMI handler "
                  "claimed it); the kernel log has nmimgr's line"
                : std::strerror(e))
        << "\n";
    return 2;
  }
  const std::string action = LastAction(host);
  out << "the machine did not crash: nmimgr took " << action << "\n"
      << Why(action) << "\n";
  return 3;
}

std::string TriggerText(const json& d) {
  const json& t = d.value("trigger", json::object());
  if (!t.is_object() || !t.value("nmimgr", false)) return "not nmimgr";
  auto code = [&t](const char* k) {
    const json& c = t.value(k, json());
    return c.is_object() ? Str(c, "hex") : std::string("?");
  };
  std::string s = "nmimgr event " + code("masked_code") + " (raw " +
                  code("raw_code") + ", " + Str(t, "nmi_type") + ", cpu " +
                  (t.contains("cpu") ? t["cpu"].dump() : "?") + ")";
  if (t.value("test", false)) s += ", the test's NMI";
  return s;
}

int Report(const Host& host, const TestOptions& opts, std::ostream& out,
           std::ostream& err) {
  const char* p_ok = opts.journal ? "<6>" : "";
  const char* p_bad = opts.journal ? "<4>" : "";
  const char* p_err = opts.journal ? "<3>" : "";
  std::optional<json> marker = ReadJson(host, kTestPending);
  if (!marker) {
    out << p_ok << "no nmimgrctl test is pending";
    if (std::optional<json> last = ReadJson(host, kTestLast))
      out << "; the last one (started " << Str(*last, "started")
          << "): " << Str(*last, "result");
    out << "\n";
    return 2;
  }
  const std::string nonce = Str(*marker, "nonce");
  const std::string dir = Str(*marker, "dump_dir");
  if (nonce.size() != 16 || dir.empty()) {
    err << p_err << "nmimgrctl: test: " << kTestPending
        << " is not an nmimgrctl-test/1 file\n";
    return 2;
  }
  const std::string boot =
      host.ReadLine("/proc/sys/kernel/random/boot_id").value_or("");
  if (!boot.empty() && boot == Str(*marker, "boot_id")) {
    out << p_ok << "the test started " << Str(*marker, "started")
        << " has not crashed this boot yet\n";
    return 2;
  }
  // Only what the capture kernel can have written: the directories of the
  // dump directory changed since the test began (a minute of slack for the
  // clocks), so older dumps, however many and large, are not checked again.
  const int64_t started = Int(*marker, "started_epoch");
  std::vector<std::string> cmd = {opts.vmcore_check, "--json"};
  std::error_code ec;
  for (const auto& e :
       std::filesystem::directory_iterator(host.Path(dir), ec)) {
    struct stat st;
    if (e.is_directory(ec) && ::stat(e.path().c_str(), &st) == 0 &&
        st.st_mtime >= started - 60)
      cmd.push_back(e.path().string());
  }
  ProcessResult pr = cmd.size() > 2 ? RunProcess(cmd)
                                    : ProcessResult{0, R"({"dumps": []})", ""};
  json report = json::parse(pr.out, nullptr, false);
  if (report.is_discarded() || !report.contains("dumps")) {
    err << p_err << "nmimgrctl: test: " << opts.vmcore_check << " --json "
        << dir << " exited " << pr.status << ": " << pr.err << "\n";
    return 2;
  }
  std::vector<json> mine = DumpsOfRecord(report, nonce);
  json result = *marker;
  int status;
  std::string line;
  if (mine.empty()) {
    line = "nmimgrctl test started " + Str(*marker, "started") +
           ": no dump in " + dir + " carries its record " + nonce;
    std::vector<json> since = DumpsSince(report, started);
    if (since.empty()) {
      line +=
          ": the capture kernel did not write one (its console, or "
          "journalctl -b -1, tells why)";
      result["result"] = "no dump";
    } else {
      // A dump written since the test that does not carry its record: cut
      // before the record's page, or another crash came first.
      const json& d = since.front();
      line += "; the dump written since, " + Str(d, "path") + ", is " +
              Str(d, "verdict") + " with trigger " + TriggerText(d);
      for (const json& reason : d.value("reasons", json::array()))
        if (reason.is_object() && Str(reason, "severity") == "error") {
          line += "; " + Str(reason, "message");
          break;
        }
      result["result"] = Str(d, "verdict");
      result["dump"] = Str(d, "path");
      result["trigger"] = d.value("trigger", json());
      result["dump_not_bound"] = true;
    }
    status = 1;
  } else {
    const json& d = mine.front();
    const std::string verdict = Str(d, "verdict");
    const bool test = d["trigger"].value("test", false);
    status = verdict == "complete" && test ? 0 : 1;
    line = "nmimgrctl test started " + Str(*marker, "started") + ": dump " +
           Str(d, "path") + " " + verdict + ", trigger " + TriggerText(d);
    if (!test) line += " (the record is not flagged as the test's)";
    for (const json& reason : d.value("reasons", json::array()))
      if (reason.is_object() && Str(reason, "severity") == "error")
        line += "; " + Str(reason, "message");
    result["result"] = verdict;
    result["dump"] = Str(d, "path");
    result["trigger"] = d["trigger"];
  }
  out << (status == 0 ? p_ok : p_bad) << line << "\n";
  result["reported"] = IsoNow();
  result["exit_status"] = status;
  try {
    WriteJson(host, kTestLast, result);
    std::error_code ec;
    std::filesystem::remove(host.Path(kTestPending), ec);
  } catch (const HostError& e) {
    err << p_err << "nmimgrctl: test: " << e.what() << "\n";
    return 2;
  }
  return status;
}

}  // namespace

std::vector<json> DumpsOfRecord(const json& report, const std::string& nonce) {
  std::vector<json> mine;
  for (const json& d : report.value("dumps", json::array())) {
    if (!d.is_object() || !d.contains("trigger")) continue;
    const json& t = d["trigger"];
    const json& rec = t.value("record", json());
    const json& line = t.value("panic_line", json());
    bool ours = (rec.is_object() && Str(rec, "nonce") == nonce) ||
                (line.is_object() && Str(line, "record") == nonce);
    if (ours) mine.push_back(d);
  }
  std::stable_sort(mine.begin(), mine.end(), [](const json& a, const json& b) {
    return (Str(a, "verdict") == "complete") >
           (Str(b, "verdict") == "complete");
  });
  return mine;
}

std::vector<json> DumpsSince(const json& report, int64_t epoch) {
  std::vector<json> since;
  for (const json& d : report.value("dumps", json::array())) {
    if (!d.is_object()) continue;
    const json& t = d.value("crash_time_epoch", json());
    // a minute of slack for the clocks; a dump too damaged to give its
    // crash time counts when it is not complete
    if (t.is_number_integer() ? t.get<int64_t>() >= epoch - 60
                              : Str(d, "verdict") != "complete")
      since.push_back(d);
  }
  auto when = [](const json& d) {
    const json& t = d.value("crash_time_epoch", json());
    return t.is_number_integer() ? t.get<int64_t>() : int64_t{0};
  };
  std::stable_sort(
      since.begin(), since.end(),
      [&when](const json& a, const json& b) { return when(a) > when(b); });
  return since;
}

int RunTest(const Host& host, const TestOptions& opts, std::ostream& out,
            std::ostream& err) {
  return opts.report ? Report(host, opts, out, err)
                     : Start(host, opts, out, err);
}

}  // namespace nmimgr::ctl
