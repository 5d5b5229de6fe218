// SPDX-License-Identifier: GPL-2.0-or-later
#include "discover.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <vector>

#include "module_state.h"

namespace nmimgr::ctl {

namespace {

volatile sig_atomic_t g_stop = 0;

void OnSignal(int sig) { g_stop = sig; }

bool WritePolicy(const Host& host, const std::string& policy,
                 std::string* error) {
  const std::string path =
      host.Path("/sys/module/nmimgr/parameters/policy").string();
  int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  ssize_t n = fd < 0 ? -1 : ::write(fd, policy.data(), policy.size());
  int e = errno;
  if (fd >= 0) ::close(fd);
  if (n != static_cast<ssize_t>(policy.size())) {
    *error = std::strerror(e);
    return false;
  }
  std::string back =
      host.ReadLine("/sys/module/nmimgr/parameters/policy").value_or("");
  if (back != policy) {
    *error = "it reads back as \"" + back + "\"";
    return false;
  }
  return true;
}

// The platform notes (data/platforms.json) that the DMI vendor names.
std::vector<nlohmann::json> PlatformNotes(const Host& host,
                                          const std::string& file) {
  std::string vendor =
      host.ReadLine("/sys/class/dmi/id/sys_vendor").value_or("") + " " +
      host.ReadLine("/sys/class/dmi/id/product_name").value_or("");
  const std::vector<std::pair<const char*, const char*>> by_vendor = {
      {"QEMU", "qemu-kvm"},      {"KVM", "qemu-kvm"},
      {"HPE", "hpe-ilo"},        {"Hewlett", "hpe-ilo"},
      {"Dell", "dell-idrac"},    {"Lenovo", "lenovo-xcc"},
      {"Amazon EC2", "aws-ec2"}, {"Google", "gcp"},
      {"Microsoft", "azure"},    {"Oracle", "oci"},
      {"Alibaba", "alibaba-ecs"}};
  std::vector<std::string> ids;
  for (const auto& [needle, id] : by_vendor)
    if (vendor.find(needle) != std::string::npos) ids.push_back(id);
  ids.push_back("ipmi");
  std::vector<nlohmann::json> notes;
  std::optional<std::string> text;
  try {
    text = Host("/").Read(file, 4 << 20);
  } catch (const HostError&) {
  }
  if (!text) return notes;
  nlohmann::json data = nlohmann::json::parse(*text, nullptr, false);
  if (!data.is_object() || !data.contains("platforms")) return notes;
  for (const std::string& id : ids)
    for (const nlohmann::json& p : data["platforms"])
      if (p.value("id", "") == id) notes.push_back(p);
  return notes;
}

}  // namespace

std::optional<SeenNmi> ParseNmiLine(const std::string& text) {
  static const std::regex re(
      R"(nmimgr: (?:dropped |unmanaged |dry run: would panic on )?NMI event 0x([0-9a-f]{2}) \((\d+)\) type=(\w+) cpu=(\d+)(?: mask=0x[0-9a-f]{2})? code=0x([0-9a-f]{2}))");
  std::smatch m;
  if (!std::regex_search(text, m, re)) return std::nullopt;
  SeenNmi n;
  n.raw = static_cast<unsigned>(std::stoul(m[1], nullptr, 16));
  n.type = m[3];
  n.cpu = static_cast<unsigned>(std::stoul(m[4]));
  n.code = static_cast<unsigned>(std::stoul(m[5], nullptr, 16));
  return n;
}

int RunDiscover(const Host& host, const DiscoverOptions& opts,
                std::ostream& out, std::ostream& err) {
  ModuleState m = ReadModule(host);
  if (!m.loaded) {
    err << "nmimgrctl: nmimgr is not loaded: load it first (nmimgr-load "
           "--apply)\n";
    return 2;
  }
  const std::string saved = m.Param("policy");
  std::map<std::string, std::string> keys = PolicyKeys(saved);
  const std::string mask = keys.count("mask") ? keys["mask"] : "0xc0";
  const std::string discovery =
      "ignore= drop=0-255 panic= mask=" + mask + " dry_run=1 confirm=0";
  // the kernel log from its end
  const std::string kmsg = host.Path("/dev/kmsg").string();
  int fd = ::open(kmsg.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    err << "nmimgrctl: cannot read the kernel log (" << kmsg
        << "): " << std::strerror(errno) << "\n";
    return 2;
  }
  ::lseek(fd, 0, SEEK_END);  // a FIFO cannot seek: it has no past
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int, old_term, old_hup;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  sigaction(SIGHUP, &sa, &old_hup);
  g_stop = 0;
  std::string error;
  if (!WritePolicy(host, discovery, &error)) {
    ::close(fd);
    err << "nmimgrctl: nmimgr refused the discovery policy (" << error
        << "); the policy in force is unchanged\n";
    return 3;
  }
  if (host.Exists("/sys/module/hpwdt"))
    out << "warning: hpwdt is loaded and panics on every iLO NMI itself: do "
           "not press "
           "iLO's button now (docs/module.md)\n";
  out << "discovering: every NMI nmimgr sees is dropped and logged, nothing "
         "panics; "
         "press the BMC's NMI button now"
      << (opts.duration_s > 0 || opts.count ? "" : " (Ctrl-C to stop)") << "\n"
      << std::flush;
  std::vector<SeenNmi> seen;
  std::string pending;
  auto start = std::chrono::steady_clock::now();
  bool eof = false;
  while (!g_stop && !eof) {
    if (opts.count && seen.size() >= opts.count) break;
    if (opts.duration_s > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
                .count() >= opts.duration_s)
      break;
    struct pollfd p = {fd, POLLIN, 0};
    int rc = ::poll(&p, 1, 200);
    if (rc <= 0) continue;  // timeout, or EINTR from a signal
    char buf[8192];
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) continue;  // EAGAIN; EPIPE: records were overwritten
    if (n == 0) {
      eof = true;  // a FIFO whose writer went away
      continue;
    }
    pending.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos &&
           !(opts.count && seen.size() >= opts.count)) {
      std::string record = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      size_t semi = record.find(';');
      std::string text =
          semi == std::string::npos ? record : record.substr(semi + 1);
      if (std::optional<SeenNmi> nmi = ParseNmiLine(text)) {
        seen.push_back(*nmi);
        out << "NMI " << seen.size() << ": type=" << nmi->type
            << " raw=" << HexCode(nmi->raw) << " code=" << HexCode(nmi->code)
            << " cpu=" << nmi->cpu << "\n"
            << std::flush;
      }
    }
  }
  // put back what was in force, with the signals held off
  sigset_t all, prev;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &prev);
  bool restored = WritePolicy(host, saved, &error);
  ::close(fd);
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  sigaction(SIGHUP, &old_hup, nullptr);
  int why = g_stop;
  g_stop = 0;
  sigprocmask(SIG_SETMASK, &prev, nullptr);
  if (why) out << "stopped by " << strsignal(why) << "\n";
  if (!restored) {
    err << "nmimgrctl: the policy in force before could not be written back ("
        << error
        << "): every NMI is still dropped; restore it with: nmimgr-load "
           "--apply\n";
    return 3;
  }
  out << "policy restored: " << saved << "\n";
  if (seen.empty()) {
    out << "no NMI seen: nothing to propose\n";
    return 1;
  }
  std::map<std::pair<std::string, unsigned>, unsigned> by_code;
  for (const SeenNmi& n : seen) ++by_code[{n.type, n.code}];
  std::vector<std::string> panic;
  out << "seen:\n";
  for (const auto& [k, count] : by_code) {
    out << "  type=" << k.first << " code=" << HexCode(k.second) << ": " << count
        << "\n";
    if (k.first == "unknown") panic.push_back(HexCode(k.second));
  }
  if (!panic.empty()) {
    std::string list;
    for (const std::string& c : panic) list += (list.empty() ? "" : ",") + c;
    out << "proposed: nmimgrctl set --panic " << list
        << " --persist   (the unknown NMIs seen: the BMC's button reads as "
           "these)\n";
  }
  if (by_code.size() > panic.size())
    out << "SERR and IOCHK NMIs are hardware errors, not the button: keep them "
           "out of "
           "--panic unless a dump is wanted for them\n";
  for (const nlohmann::json& p : PlatformNotes(host, opts.platforms))
    out << "platform note " << p.value("id", "") << " (" << p.value("name", "")
        << "): code " << p.value("code", "")
        << ", verified: " << p.value("verified", "")
        << "; what this run saw is what counts\n";
  return 0;
}

}  // namespace nmimgr::ctl
