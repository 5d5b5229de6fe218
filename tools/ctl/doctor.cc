// SPDX-License-Identifier: GPL-2.0-or-later
#include "doctor.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "config.h"
#include "initramfs.h"
#include "kdump.h"
#include "module_state.h"
#include "policy.h"

namespace nmimgr::ctl {

const std::vector<std::string> kDoctorChecks = {"crashkernel-reserved",
                                                "crashkernel-size",
                                                "capture-loaded",
                                                "capture-cmdline",
                                                "capture-shield",
                                                "capture-initramfs",
                                                "capture-nmi-protection",
                                                "nmimgr-loaded",
                                                "bmc-nmi-panics",
                                                "first-kernel-nmi-sysctls",
                                                "nmi-watchdog-drivers",
                                                "module-signature",
                                                "dump-space",
                                                "truncated-dump-hazard"};

const char* VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kOk:
      return "ok";
    case Verdict::kWarn:
      return "warn";
    case Verdict::kFail:
      return "fail";
    case Verdict::kUnknown:
      return "unknown";
  }
  return "unknown";
}

int DoctorReport::ExitStatus() const {
  bool unknown = false;
  for (const Finding& f : findings) {
    if (f.verdict == Verdict::kFail) return 1;
    unknown |= f.verdict == Verdict::kUnknown;
  }
  return unknown ? 2 : 0;
}

uint64_t RecommendedBaseline(uint64_t system_ram) {
  constexpr uint64_t kG = 1ull << 30, kM = 1ull << 20;
  if (system_ram < 2 * kG) return 0;
  if (system_ram < 64 * kG) return 256 * kM;
  return 512 * kM;
}

namespace {

constexpr uint64_t kMiB = 1ull << 20;

std::optional<uint64_t> ParseU64(std::string_view s, int base = 10) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty())
    return std::nullopt;
  return v;
}

std::string MiB(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%llu MiB",
                static_cast<unsigned long long>((bytes + kMiB / 2) / kMiB));
  return buf;
}

bool Has(const std::vector<std::string>& words, const std::string& w) {
  return std::find(words.begin(), words.end(), w) != words.end();
}

std::string Join(const std::vector<std::string>& v, const char* sep = " ") {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

// /proc/iomem's top-level "System RAM" and the kernel image's segments.
struct Iomem {
  uint64_t system_ram = 0;
  uint64_t kernel = 0;
  bool addresses = false;  // non-root readers see zeros
};

Iomem ReadIomem(const Host& host) {
  Iomem io;
  std::optional<std::string> text = host.Read("/proc/iomem", 8 << 20);
  if (!text) return io;
  for (const std::string& line : Lines(*text)) {
    size_t colon = line.find(" : ");
    size_t dash = line.find('-');
    if (colon == std::string::npos || dash == std::string::npos || dash > colon)
      continue;
    size_t b = line.find_first_not_of(' ');
    bool top = b == 0;
    auto lo = ParseU64(std::string_view(line).substr(b, dash - b), 16);
    auto hi =
        ParseU64(std::string_view(line).substr(dash + 1, colon - dash - 1), 16);
    if (!lo || !hi || *hi < *lo) continue;
    std::string name = line.substr(colon + 3);
    uint64_t size = *hi - *lo + 1;
    if (*hi != 0) io.addresses = true;
    if (top && name == "System RAM") io.system_ram += size;
    if (name == "Kernel code" || name == "Kernel rodata" ||
        name == "Kernel data" || name == "Kernel bss")
      io.kernel += size;
  }
  return io;
}

std::map<std::string, uint64_t> ReadMeminfo(const Host& host) {
  std::map<std::string, uint64_t> kb;
  std::optional<std::string> text = host.Read("/proc/meminfo");
  if (!text) return kb;
  for (const std::string& line : Lines(*text)) {
    std::vector<std::string> w = Words(line);
    if (w.size() >= 2 && w[0].back() == ':')
      if (auto v = ParseU64(w[1])) kb[w[0].substr(0, w[0].size() - 1)] = *v;
  }
  return kb;
}

// The nmimgr.ko modprobe finds for KVER, searched as depmod's default
// order searches (updates first).
std::optional<std::string> ModuleFile(const Host& host,
                                      const std::string& kver) {
  namespace fs = std::filesystem;
  const std::string base = "/lib/modules/" + kver;
  std::optional<std::string> found;
  for (const char* sub : {"/updates", "/extra", "/kernel", ""}) {
    std::error_code ec;
    fs::path dir = host.Path(base + sub);
    for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end;
         it.increment(ec)) {
      std::string name = it->path().filename().string();
      if (name.rfind("nmimgr.ko", 0) == 0) {
        std::string rel =
            it->path().lexically_relative(host.Path("/")).string();
        return "/" + rel;
      }
    }
  }
  return found;
}

// One sysctl as the files systemd-sysctl applies would set it: the
// *.conf files of /etc, /run, /usr/lib and /lib sysctl.d by name (a name
// in an earlier directory hides the same name later), then
// /etc/sysctl.conf.  nullopt when no file sets it.
std::optional<std::pair<std::string, std::string>> SysctlFromFiles(
    const Host& host, const std::string& key,
    const std::vector<std::pair<std::string, std::string>>& extra = {}) {
  std::map<std::string, std::string> by_name;
  for (const char* dir :
       {"/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d",
        "/usr/lib/sysctl.d", "/lib/sysctl.d"})
    for (const std::string& n : host.List(dir))
      if (n.size() > 5 && n.compare(n.size() - 5, 5, ".conf") == 0 &&
          !by_name.count(n))
        by_name[n] = std::string(dir) + "/" + n;
  std::vector<std::pair<std::string, std::string>> files(by_name.begin(),
                                                         by_name.end());
  files.emplace_back("", "/etc/sysctl.conf");
  files.insert(files.end(), extra.begin(), extra.end());
  std::string slashed = key;
  std::replace(slashed.begin(), slashed.end(), '.', '/');
  std::optional<std::pair<std::string, std::string>> result;
  for (const auto& [name, path] : files) {
    std::optional<std::string> text = host.Read(path);
    if (!text) continue;
    for (const std::string& line : Lines(*text)) {
      size_t b = line.find_first_not_of(" \t-");
      if (b == std::string::npos || line[b] == '#' || line[b] == ';') continue;
      size_t eq = line.find('=');
      if (eq == std::string::npos) continue;
      std::string k = line.substr(b, eq - b);
      k.erase(k.find_last_not_of(" \t") + 1);
      std::string v = line.substr(eq + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      v.erase(v.find_last_not_of(" \t\r") + 1);
      if (k == key || k == slashed) result = std::make_pair(v, path);
    }
  }
  return result;
}

const char* const kNmiSysctls[] = {"unknown_nmi_panic", "panic_on_io_nmi",
                                   "panic_on_unrecovered_nmi"};

// What a kernel command line does to one of the three sysctls: a
// `sysctl.kernel.NAME=V` word sets V; the boot word `unknown_nmi_panic`
// (with any value or none: its __setup handler ignores it) sets
// unknown_nmi_panic to 1 (PIPELINE.md).
std::optional<std::string> CmdlineSysctl(
    const std::vector<std::string>& cmdline, const std::string& name) {
  std::optional<std::string> v;
  for (const std::string& w : cmdline) {
    if (name == "unknown_nmi_panic" &&
        (w == "unknown_nmi_panic" || w.rfind("unknown_nmi_panic=", 0) == 0))
      v = "1";
    std::string key = "sysctl.kernel." + name + "=";
    if (w.rfind(key, 0) == 0) v = w.substr(key.size());
  }
  return v;
}

class Doctor {
 public:
  Doctor(const Host& host, const DoctorOptions& opts)
      : host_(host), opts_(opts) {}

  DoctorReport Run() {
    Load();
    Add(Guard("crashkernel-reserved",
              [&](Finding& f) { CrashkernelReserved(f); }));
    Add(Guard("crashkernel-size", [&](Finding& f) { CrashkernelSize(f); }));
    Add(Guard("capture-loaded", [&](Finding& f) { CaptureLoaded(f); }));
    Add(Guard("capture-cmdline", [&](Finding& f) { CaptureCmdline(f); }));
    Add(Guard("capture-shield", [&](Finding& f) { CaptureShield(f); }));
    Add(Guard("capture-initramfs", [&](Finding& f) { CaptureInitramfs(f); }));
    Add(Guard("capture-nmi-protection",
              [&](Finding& f) { CaptureProtection(f); }));
    Add(Guard("nmimgr-loaded", [&](Finding& f) { NmimgrLoaded(f); }));
    Add(Guard("bmc-nmi-panics", [&](Finding& f) { BmcNmiPanics(f); }));
    Add(Guard("first-kernel-nmi-sysctls",
              [&](Finding& f) { FirstKernelSysctls(f); }));
    Add(Guard("nmi-watchdog-drivers", [&](Finding& f) { WatchdogDrivers(f); }));
    Add(Guard("module-signature", [&](Finding& f) { ModuleSignature(f); }));
    Add(Guard("dump-space", [&](Finding& f) { DumpSpace(f); }));
    Add(Guard("truncated-dump-hazard",
              [&](Finding& f) { TruncationHazard(f); }));
    return std::move(report_);
  }

 private:
  template <typename F>
  Finding Guard(const std::string& id, F check) {
    Finding f;
    f.id = id;
    try {
      check(f);
    } catch (const std::exception& e) {
      f.verdict = Verdict::kUnknown;
      f.summary = std::string("could not check: ") + e.what();
    }
    return f;
  }
  void Add(Finding f) { report_.findings.push_back(std::move(f)); }

  void Load() {
    try {
      module_ = ReadModule(host_);
    } catch (const std::exception& e) {
      module_error_ = e.what();
    }
    try {
      config_ = ReadConfig(host_, opts_.loader);
    } catch (const std::exception& e) {
      config_error_ = e.what();
    }
    kdump_ = ReadKdumpSetup(host_);
    kver_ = kdump_.kernel_release;
    if (!kver_.empty()) module_file_ = ModuleFile(host_, kver_);
  }

  bool ConfigOk() const { return config_ && config_->valid; }
  bool Switch(const std::string& key) const {
    return ConfigOk() ? config_->Yes(key) : true;  // the defaults are yes
  }

  std::string ReloadFix() const {
    return kdump_.reload.empty()
               ? "install and enable kdump-tools (Debian, Ubuntu) "
                 "or kdump-utils (Fedora, RHEL)"
               : kdump_.reload;
  }

  void CrashkernelReserved(Finding& f) {
    std::optional<std::string> size =
        host_.ReadLine("/sys/kernel/kexec_crash_size");
    std::vector<std::string> cmdline =
        Words(host_.Read("/proc/cmdline").value_or(""));
    std::vector<std::string> ck = OptionWords(cmdline, "crashkernel");
    f.evidence.emplace_back("/proc/cmdline crashkernel",
                            ck.empty() ? "(none)" : Join(ck));
    if (!size) {
      f.verdict = Verdict::kFail;
      f.summary =
          "this kernel has no kexec crash support "
          "(/sys/kernel/kexec_crash_size is missing)";
      f.fix =
          "boot a kernel built with CONFIG_KEXEC_CORE and CONFIG_CRASH_DUMP";
      return;
    }
    f.evidence.emplace_back("/sys/kernel/kexec_crash_size", *size);
    reserved_ = ParseU64(*size).value_or(0);
    if (reserved_ == 0) {
      f.verdict = Verdict::kFail;
      f.summary = "no memory is reserved for the capture kernel";
      f.fix =
          "add crashkernel= to the kernel command line (GRUB_CMDLINE_LINUX in "
          "/etc/default/grub, then update-grub or grub2-mkconfig) and reboot; "
          "see crashkernel-size for the amount";
      return;
    }
    f.verdict = Verdict::kOk;
    f.summary = MiB(reserved_) + " reserved for the capture kernel";
  }

  void CrashkernelSize(Finding& f) {
    Iomem io = ReadIomem(host_);
    auto mem = ReadMeminfo(host_);
    uint64_t ram = io.addresses ? io.system_ram : mem["MemTotal"] * 1024;
    uint64_t baseline = RecommendedBaseline(ram);
    std::optional<FileInfo> initrd;
    if (!kdump_.initrd.empty()) initrd = host_.Info(kdump_.initrd);
    uint64_t kernel = io.addresses ? io.kernel : 0;
    // the loaded modules the capture initramfs carries, at their size in
    // /proc/modules (kdumpctl counts its hostonly module list the same way)
    std::optional<uint64_t> modules;
    if (const InitramfsListing* image = Image()) {
      std::set<std::string> in_image;
      for (const std::string& n : image->names) {
        std::string base = n.substr(n.rfind('/') + 1);
        size_t ko = base.find(".ko");
        if (ko == std::string::npos) continue;
        base.resize(ko);
        std::replace(base.begin(), base.end(), '-', '_');
        in_image.insert(base);
      }
      modules = 0;
      for (const std::string& line :
           Lines(host_.Read("/proc/modules").value_or(""))) {
        std::vector<std::string> w = Words(line);
        if (w.size() >= 2 && in_image.count(w[0]))
          *modules += ParseU64(w[1]).value_or(0);
      }
    }
    uint64_t estimate = kernel + (initrd ? 3 * initrd->size : 0) + 16 * kMiB +
                        modules.value_or(0);
    uint64_t recommended = std::max(baseline, estimate);
    f.evidence.emplace_back(
        "system RAM",
        MiB(ram) + (io.addresses ? " (/proc/iomem)" : " (MemTotal)"));
    f.evidence.emplace_back("kdumpctl's baseline for it", MiB(baseline));
    f.evidence.emplace_back(
        "kernel image",
        io.addresses ? MiB(kernel) : "unknown (/proc/iomem needs root)");
    f.evidence.emplace_back("capture initramfs x 3",
                            initrd ? MiB(3 * initrd->size)
                                   : "unknown (" + kdump_.initrd + " missing)");
    f.evidence.emplace_back("runtime", "16 MiB");
    f.evidence.emplace_back(
        "modules",
        modules ? MiB(*modules) + " (loaded ones the capture initramfs holds)"
                : "not counted (the capture initramfs could not be read)");
    f.evidence.emplace_back("recommended", MiB(recommended));
    if (reserved_ == 0) {
      f.verdict = Verdict::kFail;
      f.summary =
          "nothing reserved; kdumpctl's rule recommends " + MiB(recommended);
      f.fix = "crashkernel=" + std::to_string((recommended + kMiB - 1) / kMiB) +
              "M";
      return;
    }
    f.evidence.emplace_back("reserved", MiB(reserved_));
    if (reserved_ < recommended) {
      f.verdict = Verdict::kWarn;
      f.summary = MiB(reserved_) + " reserved, below the " + MiB(recommended) +
                  " kdumpctl's estimate recommends: the capture kernel may run "
                  "out of memory";
      f.fix = "raise crashkernel= to " +
              std::to_string((recommended + kMiB - 1) / kMiB) + "M and reboot";
      return;
    }
    f.verdict = Verdict::kOk;
    f.summary = MiB(reserved_) + " reserved, at least the " + MiB(recommended) +
                " recommended";
  }

  void CaptureLoaded(Finding& f) {
    f.evidence.emplace_back("kdump service", kdump_.name);
    std::optional<std::string> loaded =
        host_.ReadLine("/sys/kernel/kexec_crash_loaded");
    f.evidence.emplace_back("/sys/kernel/kexec_crash_loaded",
                            loaded.value_or("(missing)"));
    if (loaded && *loaded == "1") {
      f.verdict = Verdict::kOk;
      f.summary = "a capture kernel is loaded";
      return;
    }
    f.verdict = Verdict::kFail;
    f.summary = "no capture kernel is loaded: a panic reboots without a dump";
    f.fix = kdump_.service == KdumpService::kKdumpTools
                ? "kdump-config load (and check USE_KDUMP=1 in "
                  "/etc/default/kdump-tools)"
            : kdump_.service == KdumpService::kKdumpctl
                ? "kdumpctl start (systemctl enable --now kdump)"
                : ReloadFix();
  }

  void CaptureCmdline(Finding& f) {
    f.evidence.emplace_back("source", kdump_.cmdline_source.empty()
                                          ? "none"
                                          : kdump_.cmdline_source);
    if (!kdump_.capture_cmdline) {
      f.verdict = kdump_.service == KdumpService::kNone ? Verdict::kFail
                                                        : Verdict::kUnknown;
      f.summary = kdump_.service == KdumpService::kNone
                      ? "no kdump service is installed"
                      : "the capture kernel's command line is not known";
      f.fix = ReloadFix();
      return;
    }
    f.verdict = Verdict::kOk;
    f.summary = Join(*kdump_.capture_cmdline);
  }

  void CaptureShield(Finding& f) {
    if (!ConfigOk()) {
      f.verdict = Verdict::kUnknown;
      f.summary = "nmimgr.conf could not be read: " +
                  (config_ ? config_->error : config_error_);
      f.fix = "nmimgr-load --check names the line";
      return;
    }
    f.evidence.emplace_back("nmimgr-load --cmdline",
                            Join(config_->capture_words));
    if (!kdump_.capture_cmdline) {
      f.verdict = Verdict::kUnknown;
      f.summary = "the capture command line is not known (capture-cmdline)";
      return;
    }
    std::vector<std::string> missing;
    for (const std::string& w : config_->capture_words)
      if (!Has(*kdump_.capture_cmdline, w)) missing.push_back(w);
    if (!missing.empty()) {
      f.verdict = Verdict::kFail;
      f.summary = "the capture command line lacks " + Join(missing);
      f.fix = "nmimgr-load --apply, then " + ReloadFix();
      return;
    }
    f.verdict = Verdict::kOk;
    f.summary = config_->capture_words.empty()
                    ? "nmimgr.conf asks for no command-line shield"
                    : "every word nmimgr.conf asks for is there";
  }

  void CaptureInitramfs(Finding& f) {
    bool wanted = Switch("capture_module");
    f.evidence.emplace_back("capture_module", wanted ? "yes" : "no");
    if (!wanted) {
      f.verdict = Verdict::kOk;
      f.summary =
          "nmimgr.conf keeps nmimgr out of the capture kernel (capture_module "
          "= no)";
      return;
    }
    if (kdump_.initrd.empty()) {
      f.verdict = Verdict::kFail;
      f.summary = "no kdump service, no capture initramfs";
      f.fix = ReloadFix();
      return;
    }
    std::optional<FileInfo> img = host_.Info(kdump_.initrd);
    f.evidence.emplace_back("image", kdump_.initrd);
    if (!img) {
      f.verdict = Verdict::kFail;
      f.summary = "the capture initramfs " + kdump_.initrd + " does not exist";
      f.fix = ReloadFix();
      return;
    }
    std::vector<std::string> newer;
    auto compare = [&](const std::string& path) {
      std::optional<FileInfo> i = host_.Info(path);
      if (i && i->mtime_ns > img->mtime_ns) newer.push_back(path);
    };
    compare("/etc/nmimgr.conf");
    if (module_file_) {
      f.evidence.emplace_back("module", *module_file_);
      compare(*module_file_);
    }
    if (!newer.empty()) {
      f.verdict = Verdict::kFail;
      f.summary = Join(newer, " and ") +
                  " changed after the capture initramfs was built";
      f.fix = ReloadFix();
      in_image_ = false;
      return;
    }
    // what the capture kernel will really unpack
    if (!Image()) {
      f.verdict = Verdict::kFail;
      f.summary = "the capture initramfs cannot be read: " + image_error_;
      f.fix = ReloadFix();
      in_image_ = false;
      return;
    }
    const InitramfsListing& image = *image_;
    f.evidence.emplace_back("segments", Join(image.segments, " + "));
    f.evidence.emplace_back("entries", std::to_string(image.names.size()));
    if (image.inner_image) {
      f.verdict = Verdict::kUnknown;
      f.summary = "the image keeps its root in " + *image.inner_image +
                  " (dracut's squash or erofs module), which is not read";
      return;
    }
    const std::string hook = kdump_.service == KdumpService::kKdumpctl
                                 ? "lib/dracut/hooks/cmdline/00-nmimgr-load.sh"
                                 : "scripts/init-top/nmimgr";
    std::optional<std::string> ko, loader, hook_found;
    for (const std::string& n : image.names) {
      std::string base = n.substr(n.rfind('/') + 1);
      if (base.rfind("nmimgr.ko", 0) == 0 &&
          (n.rfind("lib/modules/" + kver_ + "/", 0) == 0 ||
           n.rfind("usr/lib/modules/" + kver_ + "/", 0) == 0))
        ko = n;
      if (n == "usr/sbin/nmimgr-load" || n == "sbin/nmimgr-load") loader = n;
      if (n == hook || n == "usr/" + hook) hook_found = n;
    }
    std::vector<std::string> missing;
    if (!ko) missing.push_back("nmimgr.ko for " + kver_);
    if (!loader) missing.push_back("usr/sbin/nmimgr-load");
    if (!hook_found) missing.push_back(hook);
    auto conf = image.contents.find("etc/nmimgr.conf");
    if (host_.Exists("/etc/nmimgr.conf") && conf == image.contents.end())
      missing.push_back("etc/nmimgr.conf");
    if (!missing.empty()) {
      f.verdict = Verdict::kFail;
      f.summary = "the capture initramfs lacks " + Join(missing, ", ");
      f.fix = ReloadFix();
      in_image_ = false;
      return;
    }
    f.evidence.emplace_back("nmimgr.ko", *ko);
    if (conf != image.contents.end() && ConfigOk()) {
      std::vector<std::string> differ = ImageConfigDiffers(conf->second);
      if (!differ.empty()) {
        f.verdict = Verdict::kFail;
        f.summary = "the capture initramfs holds another nmimgr.conf: " +
                    Join(differ, ", ") + " differ";
        f.fix = ReloadFix();
        in_image_ = false;
        return;
      }
    }
    in_image_ = true;
    f.verdict = Verdict::kOk;
    f.summary = kdump_.initrd +
                " holds nmimgr.ko, nmimgr.conf as it is now and " +
                "the capture-side loader, and is newer than both";
  }

  // The capture initramfs, read once (nullptr: none, or unreadable, with
  // the reason in image_error_).
  const InitramfsListing* Image() {
    if (!image_read_) {
      image_read_ = true;
      if (kdump_.initrd.empty() || !host_.Exists(kdump_.initrd)) {
        image_error_ = "no capture initramfs";
      } else {
        try {
          image_ = ReadInitramfs(host_.Path(kdump_.initrd).string(),
                                 {"etc/nmimgr.conf"});
        } catch (const InitramfsError& e) {
          image_error_ = e.what();
        }
      }
    }
    return image_ ? &*image_ : nullptr;
  }

  // The settings the image acts on that differ between TEXT (the image's
  // nmimgr.conf) and /etc/nmimgr.conf, both read by nmimgr-load.
  std::vector<std::string> ImageConfigDiffers(const std::string& text) {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "nmimgrctl-conf-XXXXXX")
            .string();
    std::vector<char> name(tmpl.begin(), tmpl.end());
    name.push_back('\0');
    int fd = ::mkstemp(name.data());
    if (fd < 0) throw HostError("cannot create a temporary file");
    bool ok = ::write(fd, text.data(), text.size()) ==
              static_cast<ssize_t>(text.size());
    ::close(fd);
    std::optional<Config> image;
    if (ok) image = ReadConfig(Host("/"), opts_.loader, name.data());
    ::unlink(name.data());
    if (!image) throw HostError("cannot write a temporary file");
    if (!image->valid) return {"the whole file (" + image->error + ")"};
    std::vector<std::string> differ;
    for (const auto& [key, value] : config_->settings) {
      if (key == "capture_extnmi" || key == "capture_nmi_sysctls" ||
          key == "capture_watchdog")
        continue;  // command-line switches: capture-shield checks them
      if (image->Get(key) != value) differ.push_back(key);
    }
    return differ;
  }

  void CaptureProtection(Finding& f) {
    // what can stop a second NMI from killing the capture kernel
    std::vector<std::string> layers;
    std::vector<std::string> cmdline =
        kdump_.capture_cmdline.value_or(std::vector<std::string>{});
    if (Has(cmdline, "apic_extnmi=none")) layers.push_back("apic_extnmi=none");
    if (Switch("capture_module") && in_image_ != false)
      layers.push_back(in_image_ == true
                           ? "nmimgr latched in the capture initramfs"
                           : "nmimgr latched in the capture initramfs "
                             "(capture_module = yes; the image was not read)");
    // the capture kernel's NMI sysctls: the command line, then (kdump-tools
    // boots the real root) systemd-sysctl with /etc/sysctl.d and
    // /etc/kdump/sysctl.conf last
    std::vector<std::string> panicking;
    for (const char* name : kNmiSysctls) {
      std::optional<std::string> v = CmdlineSysctl(cmdline, name);
      std::string from = v ? "capture command line" : "default";
      if (kdump_.service == KdumpService::kKdumpTools) {
        auto files = SysctlFromFiles(host_, std::string("kernel.") + name,
                                     {{"zz", "/etc/kdump/sysctl.conf"}});
        if (files) {
          v = files->first;
          from = files->second;
        }
      }
      std::string value = v.value_or("0");
      f.evidence.emplace_back(std::string("capture kernel.") + name,
                              value + " (" + from + ")");
      if (value != "0") panicking.push_back(name);
    }
    if (kdump_.service == KdumpService::kNone || !kdump_.capture_cmdline) {
      f.verdict = kdump_.service == KdumpService::kNone ? Verdict::kFail
                                                        : Verdict::kUnknown;
      f.summary = "the capture kernel's command line is not known";
      return;
    }
    f.evidence.emplace_back("layers",
                            layers.empty() ? "none" : Join(layers, ", "));
    if (layers.empty() && !panicking.empty()) {
      f.verdict = Verdict::kFail;
      f.summary = "a second NMI during the dump panics the capture kernel (" +
                  Join(panicking, ", ") + " on, no layer of the shield)";
      f.fix =
          "turn the shield on in /etc/nmimgr.conf (capture_extnmi, "
          "capture_nmi_sysctls, "
          "capture_module), nmimgr-load --apply, " +
          ReloadFix();
      return;
    }
    if (layers.empty()) {
      f.verdict = Verdict::kWarn;
      f.summary =
          "no shield layer: the capture kernel only ignores a second NMI "
          "because its NMI sysctls are off";
      f.fix = "nmimgr.conf: capture_extnmi = yes, capture_module = yes";
      return;
    }
    f.verdict = Verdict::kOk;
    f.summary = "a second NMI cannot kill the dump: " + Join(layers, ", ");
  }

  void NmimgrLoaded(Finding& f) {
    if (!module_error_.empty()) {
      f.verdict = Verdict::kUnknown;
      f.summary = module_error_;
      return;
    }
    if (module_file_) f.evidence.emplace_back("module file", *module_file_);
    if (!module_.loaded) {
      f.verdict = Verdict::kFail;
      f.summary = "nmimgr is not loaded";
      f.fix = module_file_ ? "systemctl start nmimgr (or nmimgr-load --apply)"
                           : "install nmimgr-dkms for kernel " + kver_ +
                                 " (dkms status nmimgr)";
      return;
    }
    f.evidence.emplace_back("policy", module_.Param("policy"));
    f.evidence.emplace_back("types", module_.Param("types"));
    f.verdict = Verdict::kOk;
    f.summary = "loaded: " + module_.Param("policy");
  }

  void BmcNmiPanics(Finding& f) {
    // A BMC's diagnostic interrupt (ipmitool chassis power diag, iLO,
    // iDRAC, XCC "generate NMI", QEMU's inject-nmi) is an unknown NMI with
    // neither SERR nor IOCHK latched: port 0x61 bits 7 and 6 clear, the
    // other six OS state (docs/module.md, data/platforms.json).
    std::optional<std::string> unp =
        host_.ReadLine("/proc/sys/kernel/unknown_nmi_panic");
    f.evidence.emplace_back("kernel.unknown_nmi_panic",
                            unp.value_or("(missing)"));
    if (!module_.loaded) {
      if (unp && *unp == "1") {
        f.verdict = Verdict::kWarn;
        f.summary =
            "the kernel itself panics on the BMC's NMI (unknown_nmi_panic=1), "
            "but with no record of the trigger";
        f.fix = "load nmimgr with panic = 0 in /etc/nmimgr.conf";
      } else {
        f.verdict = Verdict::kFail;
        f.summary =
            "nothing panics on the BMC's NMI: the kernel logs it and goes on";
        f.fix =
            "load nmimgr with panic = 0 in /etc/nmimgr.conf (nmimgr-load "
            "--apply)";
      }
      return;
    }
    std::string types = module_.Param("types");
    if (types.find("unknown") == std::string::npos) {
      f.verdict = Verdict::kFail;
      f.summary = "nmimgr is not registered on unknown NMIs (types=" + types +
                  "), the type a BMC's NMI has";
      f.fix =
          "types = unknown,... in /etc/nmimgr.conf, then modprobe -r nmimgr && "
          "nmimgr-load --apply";
      return;
    }
    struct nmimgr_policy p;
    char err[NMIMGR_ERR_BUF];
    std::string policy = module_.Param("policy");
    if (nmimgr_policy_parse(policy.c_str(), &p, err, sizeof(err)) != 0) {
      f.verdict = Verdict::kUnknown;
      f.summary = "the module's policy does not parse: " + std::string(err);
      return;
    }
    struct nmimgr_state st = {};
    std::set<unsigned> panics, would, other;
    for (unsigned raw = 0; raw < 256; ++raw) {
      if (raw & NMIMGR_EVENT_BITS) continue;
      enum nmimgr_action a = nmimgr_decide(&p, &st, static_cast<uint8_t>(raw));
      (a == NMIMGR_PANIC         ? panics
       : a == NMIMGR_WOULD_PANIC ? would
                                 : other)
          .insert(raw);
    }
    f.evidence.emplace_back("BMC NMI reads",
                            "0x00-0x3f (bits 7, 6 clear; the rest OS state)");
    f.evidence.emplace_back("of those, panic",
                            std::to_string(panics.size()) + " of 64");
    if (!would.empty()) {
      f.verdict = Verdict::kFail;
      f.summary =
          "dry run is on: the BMC's NMI is only logged (\"would panic\")";
      f.fix = "dry_run = 0 in /etc/nmimgr.conf, nmimgr-load --apply";
      return;
    }
    if (panics.empty()) {
      bool kernel = unp && *unp == "1";
      f.verdict = kernel ? Verdict::kWarn : Verdict::kFail;
      f.summary = kernel ? "nmimgr's policy does not panic on the BMC's code "
                           "0x00; the kernel "
                           "does (unknown_nmi_panic=1), without a record"
                         : "nothing panics on the BMC's NMI (code 0x00 is in "
                           "no panic list)";
      f.fix = "panic = 0 in /etc/nmimgr.conf, nmimgr-load --apply";
      return;
    }
    if (!other.empty()) {
      f.verdict = Verdict::kWarn;
      f.summary =
          "only some readings of the BMC's NMI panic: mask " + HexCode(p.mask) +
          " keeps OS-state bits, so the code depends on what the OS last wrote "
          "to port 0x61";
      f.fix = "mask = 0xc0 (the default) in /etc/nmimgr.conf";
      return;
    }
    f.verdict = Verdict::kOk;
    f.summary = p.confirm_min_ms
                    ? "the BMC's NMI panics on a second press " +
                          std::to_string(p.confirm_min_ms) + "-" +
                          std::to_string(p.confirm_max_ms) +
                          " ms after the first"
                    : "the BMC's NMI (code 0x00) panics with a record";
  }

  void FirstKernelSysctls(Finding& f) {
    std::vector<std::string> cmdline =
        Words(host_.Read("/proc/cmdline").value_or(""));
    for (const char* name : kNmiSysctls)
      f.evidence.emplace_back(
          std::string("kernel.") + name,
          host_.ReadLine(std::string("/proc/sys/kernel/") + name)
              .value_or("(missing)"));
    std::vector<std::string> bare = OptionWords(cmdline, "unknown_nmi_panic");
    if (!bare.empty()) {
      f.verdict = Verdict::kWarn;
      f.summary = "the boot word " + Join(bare) +
                  " sets unknown_nmi_panic to 1 whatever "
                  "its value: every unknown NMI nmimgr leaves alone panics";
      f.fix = "use sysctl.kernel.unknown_nmi_panic=0 (or 1) instead";
      return;
    }
    f.verdict = Verdict::kOk;
    f.summary =
        "NMIs nmimgr does not claim get the kernel's handling with these "
        "values";
  }

  void WatchdogDrivers(Finding& f) {
    std::vector<std::string> cmdline =
        kdump_.capture_cmdline.value_or(std::vector<std::string>{});
    std::vector<std::string> problems, fixes;
    bool any = false;
    if (host_.Exists("/sys/module/hpwdt")) {
      any = true;
      f.evidence.emplace_back("hpwdt",
                              "loaded: panics on every iLO NMI itself, "
                              "whatever nmimgr's policy says (docs/module.md)");
      for (const char* w : {"hpwdt.pretimeout=0", "hpwdt.kdumptimeout=0"})
        if (!Has(cmdline, w)) problems.push_back(w);
    }
    if (host_.Exists("/sys/module/ipmi_watchdog")) {
      std::string pre =
          host_.ReadLine("/sys/module/ipmi_watchdog/parameters/preaction")
              .value_or("");
      f.evidence.emplace_back("ipmi_watchdog preaction",
                              pre.empty() ? "(unknown)" : pre);
      if (pre == "pre_nmi") {
        any = true;
        if (!Has(cmdline, "ipmi_watchdog.pretimeout=0"))
          problems.push_back("ipmi_watchdog.pretimeout=0");
      }
    }
    if (!any) {
      f.verdict = Verdict::kOk;
      f.summary =
          "no driver that panics on NMIs itself is loaded (hpwdt, "
          "ipmi_watchdog with pre_nmi)";
      return;
    }
    if (!kdump_.capture_cmdline) {
      f.verdict = Verdict::kUnknown;
      f.summary = "the capture command line is not known (capture-cmdline)";
      return;
    }
    if (!problems.empty()) {
      f.verdict = Verdict::kFail;
      f.summary =
          "the capture command line does not disarm the pre-timeout NMI: " +
          Join(problems) + " missing";
      f.fix =
          "capture_watchdog = yes in /etc/nmimgr.conf, nmimgr-load --apply, " +
          ReloadFix();
      return;
    }
    f.verdict = Verdict::kOk;
    f.summary =
        "NMI-panicking watchdog drivers are disarmed in the capture kernel";
  }

  void ModuleSignature(Finding& f) {
    std::optional<std::string> lockdown =
        host_.ReadLine("/sys/kernel/security/lockdown");
    std::string mode = "none";
    if (lockdown) {
      size_t b = lockdown->find('['), e = lockdown->find(']');
      if (b != std::string::npos && e != std::string::npos && e > b)
        mode = lockdown->substr(b + 1, e - b - 1);
    }
    f.evidence.emplace_back("lockdown", lockdown ? mode : "(no lockdown LSM)");
    std::optional<std::string> sb = host_.Read(
        "/sys/firmware/efi/efivars/"
        "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c");
    bool secure_boot = sb && sb->size() >= 5 && (*sb)[4] == 1;
    f.evidence.emplace_back(
        "Secure Boot", sb ? (secure_boot ? "on" : "off") : "(no EFI variable)");
    std::optional<bool> signed_ko;
    if (module_file_) {
      f.evidence.emplace_back("module file", *module_file_);
      const std::string marker = "~Module signature appended~\n";
      std::optional<FileInfo> info = host_.Info(*module_file_);
      bool plain =
          module_file_->size() > 3 &&
          module_file_->compare(module_file_->size() - 3, 3, ".ko") == 0;
      if (info && plain) {
        std::optional<std::string> data = host_.Read(*module_file_, 64 << 20);
        signed_ko = data && data->size() >= marker.size() &&
                    data->compare(data->size() - marker.size(), marker.size(),
                                  marker) == 0;
        f.evidence.emplace_back("signature", *signed_ko ? "appended" : "none");
      } else {
        f.evidence.emplace_back("signature", "not read (compressed module)");
      }
    }
    if (module_.taint)
      f.evidence.emplace_back(
          "taint", module_.taint->empty() ? "(none)" : *module_.taint);
    if (mode == "none") {
      f.verdict = Verdict::kOk;
      f.summary = "no lockdown: the kernel loads nmimgr signed or not";
      return;
    }
    if (module_.loaded) {
      f.verdict = Verdict::kOk;
      f.summary =
          "lockdown " + mode + ", and the kernel accepted nmimgr's signature";
      return;
    }
    if (signed_ko && !*signed_ko) {
      f.verdict = Verdict::kFail;
      f.summary = "lockdown " + mode + ": the kernel refuses the unsigned " +
                  *module_file_;
      f.fix =
          "let DKMS sign it with its MOK key and enroll the key: mokutil "
          "--import "
          "/var/lib/dkms/mok.pub, reboot, confirm in MokManager; then dkms "
          "install --force nmimgr";
      return;
    }
    f.verdict = signed_ko ? Verdict::kWarn : Verdict::kUnknown;
    f.summary = "lockdown " + mode + ": nmimgr is " +
                (signed_ko ? "signed but not loaded: check that its key is "
                             "enrolled (mokutil --list-enrolled)"
                           : "not loaded and its signature could not be read");
    f.fix = "modprobe nmimgr says whether the kernel accepts it";
  }

  void DumpSpace(Finding& f) {
    std::string dir = kdump_.dump_dir.empty() ? "/var/crash" : kdump_.dump_dir;
    f.evidence.emplace_back("dump directory", dir);
    // the size of a -d 31 dump: what makedumpfile says, else meminfo
    std::optional<uint64_t> estimate;
    if (opts_.mem_usage && host_.live()) estimate = MemUsage(f);
    if (!estimate) {
      auto kb = ReadMeminfo(host_);
      if (!kb.count("MemTotal")) {
        f.verdict = Verdict::kUnknown;
        f.summary = "no /proc/meminfo to estimate the dump size from";
        return;
      }
      int64_t rest = static_cast<int64_t>(kb["MemTotal"]) - kb["MemFree"] -
                     kb["Buffers"] - kb["Cached"] - kb["AnonPages"];
      estimate = static_cast<uint64_t>(std::max<int64_t>(rest, 0)) * 1024;
      f.evidence.emplace_back(
          "estimate source",
          "/proc/meminfo: MemTotal - MemFree - Buffers - Cached - AnonPages "
          "(what dump level 31 keeps, before compression)");
    }
    f.evidence.emplace_back("dump size estimate", MiB(*estimate));
    // the directory, or the nearest parent that exists
    std::filesystem::path p = host_.Path(dir);
    while (!std::filesystem::exists(p) && p.has_parent_path() &&
           p != p.parent_path())
      p = p.parent_path();
    struct statvfs vfs;
    if (::statvfs(p.c_str(), &vfs) != 0) {
      f.verdict = Verdict::kUnknown;
      f.summary = "cannot stat the file system of " + dir;
      return;
    }
    uint64_t avail = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    f.evidence.emplace_back("available", MiB(avail));
    if (avail < *estimate) {
      f.verdict = Verdict::kFail;
      f.summary = MiB(avail) + " free in " + dir + ", less than the " +
                  MiB(*estimate) + " an uncompressed dump would take";
      f.fix =
          "free space in " + dir + " (old dumps) or point the dump elsewhere";
      return;
    }
    f.verdict = Verdict::kOk;
    f.summary = MiB(avail) + " free in " + dir + " for a dump of about " +
                MiB(*estimate) + " (uncompressed)";
  }

  // makedumpfile --mem-usage /proc/kcore: the KERN_DATA pages are what a
  // -d 31 dump keeps.
  std::optional<uint64_t> MemUsage(Finding& f) {
    ProcessResult r;
    try {
      r = RunProcess({"makedumpfile", "--mem-usage", "/proc/kcore"});
    } catch (const HostError&) {
      return std::nullopt;
    }
    if (r.status != 0) return std::nullopt;
    std::optional<uint64_t> pages;
    for (const std::string& line : Lines(r.out)) {
      std::vector<std::string> w = Words(line);
      if (w.size() >= 2 && w[0] == "KERN_DATA") pages = ParseU64(w[1]);
    }
    if (!pages) return std::nullopt;
    uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    f.evidence.emplace_back("estimate source",
                            "makedumpfile --mem-usage /proc/kcore: KERN_DATA " +
                                std::to_string(*pages) + " pages");
    return *pages * page;
  }

  void TruncationHazard(Finding& f) {
    if (kdump_.service != KdumpService::kKdumpTools) {
      f.verdict = Verdict::kOk;
      f.summary = "not kdump-tools: its no-pipefail pipeline is not in use";
      return;
    }
    bool unit = host_.Exists("/lib/systemd/system/nmimgr-annotate.service") ||
                host_.Exists("/usr/lib/systemd/system/nmimgr-annotate.service");
    bool enabled = false;
    for (const char* wants : {"/etc/systemd/system/multi-user.target.wants/",
                              "/etc/systemd/system/default.target.wants/"})
      enabled |= host_.Exists(std::string(wants) + "nmimgr-annotate.service");
    f.evidence.emplace_back("nmimgr-annotate.service", !unit ? "not installed"
                                                       : enabled ? "enabled"
                                                                 : "disabled");
    if (enabled) {
      f.verdict = Verdict::kOk;
      f.summary =
          "kdump-tools pipes makedumpfile without pipefail and renames a "
          "truncated "
          "dump as complete; nmimgr-annotate.service checks every new dump on "
          "the "
          "next boot and reports it incomplete";
      return;
    }
    f.verdict = Verdict::kWarn;
    f.summary =
        "kdump-tools renames a truncated dump as complete (no pipefail), and "
        "nothing "
        "checks new dumps on the next boot";
    f.fix =
        "systemctl enable nmimgr-annotate.service (or run nmimgr-vmcore-check "
        "/var/crash)";
  }

  const Host& host_;
  const DoctorOptions& opts_;
  DoctorReport report_;
  ModuleState module_;
  std::string module_error_;
  std::optional<Config> config_;
  std::string config_error_;
  KdumpSetup kdump_;
  std::string kver_;
  std::optional<std::string> module_file_;
  uint64_t reserved_ = 0;
  // capture-initramfs found nmimgr in the image (nullopt: not looked)
  std::optional<bool> in_image_;
  bool image_read_ = false;
  std::optional<InitramfsListing> image_;
  std::string image_error_;
};

}  // namespace

DoctorReport RunDoctor(const Host& host, const DoctorOptions& opts) {
  return Doctor(host, opts).Run();
}

void PrintDoctor(const DoctorReport& r, std::ostream& out) {
  int fails = 0, warns = 0, unknown = 0;
  for (const Finding& f : r.findings) {
    fails += f.verdict == Verdict::kFail;
    warns += f.verdict == Verdict::kWarn;
    unknown += f.verdict == Verdict::kUnknown;
  }
  int status = r.ExitStatus();
  out << (status == 0 ? "ready for a BMC-triggered dump"
          : status == 1
              ? "NOT ready for a BMC-triggered dump"
              : "could not check everything a BMC-triggered dump needs")
      << " (" << fails << " failed, " << warns << " warnings, " << unknown
      << " not checked)\n";
  for (const Finding& f : r.findings) {
    std::string v = VerdictName(f.verdict);
    if (f.verdict == Verdict::kFail) v = "FAIL";
    out << "  " << v << std::string(9 - v.size(), ' ') << f.id
        << std::string(f.id.size() < 26 ? 26 - f.id.size() : 1, ' ')
        << f.summary << "\n";
    if (f.verdict != Verdict::kOk) {
      for (const auto& [k, val] : f.evidence)
        out << "           " << k << ": " << val << "\n";
      if (!f.fix.empty()) out << "           fix: " << f.fix << "\n";
    }
  }
}

nlohmann::json DoctorJson(const DoctorReport& r) {
  using nlohmann::json;
  int status = r.ExitStatus();
  json checks = json::array();
  for (const Finding& f : r.findings) {
    json evidence = json::object();
    for (const auto& [k, v] : f.evidence) evidence[k] = v;
    checks.push_back({{"id", f.id},
                      {"verdict", VerdictName(f.verdict)},
                      {"summary", f.summary},
                      {"evidence", evidence},
                      {"fix", f.fix}});
  }
  return {{"schema", "nmimgrctl-doctor/1"},
          {"ready", status == 0},
          {"status", status == 0   ? "ready"
                     : status == 1 ? "not-ready"
                                   : "unknown"},
          {"checks", checks}};
}

void AddDoctorMetrics(const DoctorReport& r, metrics::Metrics& metrics) {
  metrics.Add("nmimgr_doctor_ready", "gauge",
              "1 if every condition of a BMC-triggered dump holds (nmimgrctl "
              "doctor exit 0)",
              {}, r.ExitStatus() == 0);
  for (const Finding& f : r.findings)
    for (Verdict v :
         {Verdict::kOk, Verdict::kWarn, Verdict::kFail, Verdict::kUnknown})
      metrics.Add("nmimgr_doctor_check", "gauge",
                  "1 for the verdict each nmimgrctl doctor check has (one of "
                  "ok, warn, fail, unknown)",
                  {{"check", f.id}, {"verdict", VerdictName(v)}},
                  f.verdict == v);
}

}  // namespace nmimgr::ctl
