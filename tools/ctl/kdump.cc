// SPDX-License-Identifier: GPL-2.0-or-later
#include "kdump.h"

#include <algorithm>
#include <set>

#include "config.h"

namespace nmimgr::ctl {

namespace {

std::string OptionName(const std::string& word) {
  return word.substr(0, word.find('='));
}

// kdumpctl's prepare_cmdline: the options it always removes.
const std::set<std::string> kKdumpctlAlwaysRemoved = {
    "crashkernel", "panic_on_warn", "root", "rd.lvm.lv", "rd.luks.uuid",
    "rd.dm.uuid",  "rd.md.uuid",    "fcoe", "netroot",   "iscsi"};

// kdump-tools: /proc/cmdline minus these, when KDUMP_CMDLINE is unset.
const std::set<std::string> kKdumpToolsRemoved = {"crashkernel", "hugepages",
                                                  "hugepagesz", "abm"};

std::vector<std::string> WatchdogDrivers(const Host& host) {
  std::vector<std::string> drivers;
  for (const std::string& dev : host.List("/sys/class/watchdog")) {
    std::string base = "/sys/class/watchdog/" + dev + "/device/driver";
    std::optional<std::string> name = host.LinkName(base + "/module");
    if (!name) name = host.LinkName(base);
    if (name &&
        std::find(drivers.begin(), drivers.end(), *name) == drivers.end())
      drivers.push_back(*name);
  }
  return drivers;
}

std::string KdumpConfPath(const Host& host) {
  std::optional<std::string> conf = host.Read("/etc/kdump.conf");
  std::string path = "/var/crash";
  if (!conf) return path;
  for (const std::string& line : Lines(*conf)) {
    std::vector<std::string> w = Words(line);
    if (w.size() >= 2 && w[0] == "path") path = w[1];
  }
  return path;
}

}  // namespace

std::optional<std::string> KexecCommandLine(const std::string& cmd) {
  for (const char* key : {"--command-line=", "--append="}) {
    size_t at = cmd.find(key);
    if (at == std::string::npos) continue;
    size_t b = at + std::string(key).size();
    if (b < cmd.size() && (cmd[b] == '"' || cmd[b] == '\'')) {
      size_t e = cmd.find(cmd[b], b + 1);
      if (e == std::string::npos) return std::nullopt;
      return cmd.substr(b + 1, e - b - 1);
    }
    size_t e = cmd.find_first_of(" \t\n", b);
    return cmd.substr(b, e == std::string::npos ? std::string::npos : e - b);
  }
  return std::nullopt;
}

std::vector<std::string> OptionWords(const std::vector<std::string>& cmdline,
                                     const std::string& name) {
  std::vector<std::string> out;
  for (const std::string& w : cmdline)
    if (OptionName(w) == name) out.push_back(w);
  return out;
}

KdumpSetup ReadKdumpSetup(const Host& host) {
  KdumpSetup k;
  k.kernel_release = host.ReadLine("/proc/sys/kernel/osrelease").value_or("");
  std::vector<std::string> proc_cmdline =
      Words(host.Read("/proc/cmdline").value_or(""));
  bool kdumpctl =
      host.Exists("/etc/kdump.conf") &&
      (host.Exists("/usr/bin/kdumpctl") || host.Exists("/usr/sbin/kdumpctl"));
  if (kdumpctl) {
    k.service = KdumpService::kKdumpctl;
    k.name = "kdumpctl";
    k.reload = "kdumpctl restart";
    k.dump_dir = KdumpConfPath(host);
    // Fedora puts it in /boot; the lab's Debian root in /var/lib/kdump
    // (kdumpctl's KDUMP_BOOTDIR fallback when /boot is not writable).
    std::string img = "initramfs-" + k.kernel_release + "kdump.img";
    k.initrd = host.Exists("/var/lib/kdump/" + img) ? "/var/lib/kdump/" + img
                                                    : "/boot/" + img;
    auto vars = ShellVariables(host, "/etc/sysconfig/kdump", "bash",
                               {"KDUMP_COMMANDLINE", "KDUMP_COMMANDLINE_REMOVE",
                                "KDUMP_COMMANDLINE_APPEND"});
    std::map<std::string, std::string> v =
        vars.value_or(std::map<std::string, std::string>{});
    std::vector<std::string> base =
        v.count("KDUMP_COMMANDLINE") && !v["KDUMP_COMMANDLINE"].empty()
            ? Words(v["KDUMP_COMMANDLINE"])
            : proc_cmdline;
    std::set<std::string> remove = kKdumpctlAlwaysRemoved;
    for (const std::string& w : Words(v["KDUMP_COMMANDLINE_REMOVE"]))
      remove.insert(OptionName(w));
    std::vector<std::string> cmdline;
    for (const std::string& w : base)
      if (!remove.count(OptionName(w))) cmdline.push_back(w);
    for (const std::string& w : Words(v["KDUMP_COMMANDLINE_APPEND"]))
      cmdline.push_back(w);
    for (const std::string& d : WatchdogDrivers(host)) {
      k.implied_words.push_back(d + ".pretimeout=0");
      if (d == "hpwdt") k.implied_words.push_back("hpwdt.kdumptimeout=0");
    }
    cmdline.insert(cmdline.end(), k.implied_words.begin(),
                   k.implied_words.end());
    k.capture_cmdline = cmdline;
    k.cmdline_source = vars ? "rebuilt as kdumpctl does from /proc/cmdline and "
                              "/etc/sysconfig/kdump"
                            : "rebuilt as kdumpctl does from /proc/cmdline "
                              "(no /etc/sysconfig/kdump)";
    return k;
  }
  if (host.Exists("/etc/default/kdump-tools")) {
    k.service = KdumpService::kKdumpTools;
    k.name = "kdump-tools";
    k.reload = "kdump-config reload";
    auto vars = ShellVariables(host, "/etc/default/kdump-tools", "sh",
                               {"KDUMP_COREDIR"});
    k.dump_dir = vars && vars->count("KDUMP_COREDIR") &&
                         !(*vars)["KDUMP_COREDIR"].empty()
                     ? (*vars)["KDUMP_COREDIR"]
                     : "/var/crash";
    k.initrd = "/var/lib/kdump/initrd.img";
    std::string saved = k.dump_dir + "/kexec_cmd";
    if (std::optional<std::string> cmd = host.Read(saved)) {
      if (std::optional<std::string> line = KexecCommandLine(*cmd)) {
        k.capture_cmdline = Words(*line);
        k.cmdline_source = saved;
      } else {
        k.cmdline_source = saved + " names no --command-line";
      }
    } else {
      k.cmdline_source = saved +
                         " does not exist (kdump-tools writes it when "
                         "it loads the capture kernel)";
    }
    return k;
  }
  k.name = "none";
  k.dump_dir = "/var/crash";
  return k;
}

}  // namespace nmimgr::ctl
