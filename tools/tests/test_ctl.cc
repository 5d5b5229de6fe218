// SPDX-License-Identifier: GPL-2.0-or-later
//
// nmimgrctl status and doctor against fake machines: a tree laid out like
// /sys, /proc, /etc and /lib/modules (--root), with the real nmimgr-load
// reading its nmimgr.conf.  The ready Debian kdump-tools server first, then
// each way it can be broken, the states QEMU cannot give (hpwdt, Secure
// Boot) and a Fedora kdumpctl layout.
#include <bzlib.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <lz4.h>
#include <lzma.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "codec.h"
#include "config.h"
#include "discover.h"
#include "doctor.h"
#include "host.h"
#include "initramfs.h"
#include "kdump.h"
#include "module_state.h"
#include "prometheus.h"
#include "set.h"
#include "status.h"
#include "test.h"
#include "test_support.h"

namespace ctl = nmimgr::ctl;
namespace fs = std::filesystem;

namespace {

constexpr const char* kKver = "6.1.0-lab-amd64";
constexpr const char* kPolicy =
    "ignore= drop= panic=0 mask=0xc0 dry_run=0 confirm=0";

constexpr const char* kStats =
    "nmis 15\nunmanaged 3\nignored 0\ndropped 12\npanics 0\nwould_panic 0\n"
    "latched_drops 0\npending 0\nlatched 0\ncapture_kernel 0\ndry_run 0\n"
    "fired 0\nconfirm 0\nconfirm_pending_ms none\nlog_suppressed 0\nmask 0xc0\n"
    "last_event raw=0x21 code=0x00 type=unknown cpu=0 action=drop "
    "uptime_ms=83211\n"
    "code 0x00 15\nraw 0x21 7\nraw 0x31 8\n";

// An initramfs built here, as mkinitramfs and dracut build them: cpio
// newc archives, compressed or not, one after the other.
struct CpioEntry {
  std::string name;
  std::string data;
  uint32_t mode = 0100644;
};

std::string Newc(const std::vector<CpioEntry>& entries) {
  std::string out;
  auto pad = [&out]() {
    while (out.size() % 4) out += '\0';
  };
  auto add = [&](const std::string& name, const std::string& data,
                 uint32_t mode) {
    char h[111];
    std::snprintf(h, sizeof(h),
                  "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
                  1u, mode, 0u, 0u, 1u, 0u, static_cast<unsigned>(data.size()),
                  0u, 0u, 0u, 0u, static_cast<unsigned>(name.size() + 1), 0u);
    out.append(h, 110);
    out += name;
    out += '\0';
    pad();
    out += data;
    pad();
  };
  for (const CpioEntry& e : entries) add(e.name, e.data, e.mode);
  add("TRAILER!!!", "", 0);
  return out;
}

std::string Gzip(const std::string& in) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&z, in.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string Zstd(const std::string& in) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3);
  REQUIRE_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

std::string Xz(const std::string& in) {
  std::string out(lzma_stream_buffer_bound(in.size()), '\0');
  size_t pos = 0;
  REQUIRE(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC32, nullptr,
                                  reinterpret_cast<const uint8_t*>(in.data()),
                                  in.size(),
                                  reinterpret_cast<uint8_t*>(out.data()), &pos,
                                  out.size()) == LZMA_OK);
  out.resize(pos);
  return out;
}

// lz4 -l: the legacy format the kernel reads.
std::string Lz4Legacy(const std::string& in) {
  std::string out("\x02\x21\x4c\x18", 4);
  const size_t block = 8 << 20;
  for (size_t at = 0; at < in.size(); at += block) {
    size_t n = std::min(block, in.size() - at);
    std::string c(LZ4_compressBound(static_cast<int>(n)), '\0');
    int k = LZ4_compress_default(in.data() + at, c.data(), static_cast<int>(n),
                                 static_cast<int>(c.size()));
    REQUIRE(k > 0);
    uint32_t sz = static_cast<uint32_t>(k);
    for (int i = 0; i < 4; ++i) out += static_cast<char>(sz >> (8 * i) & 0xff);
    out.append(c.data(), static_cast<size_t>(k));
  }
  return out;
}

std::string Bzip2(const std::string& in) {
  unsigned len = static_cast<unsigned>(in.size() + in.size() / 100 + 600);
  std::string out(len, '\0');
  REQUIRE(BZ2_bzBuffToBuffCompress(
              out.data(), &len, const_cast<char*>(in.data()),
              static_cast<unsigned>(in.size()), 9, 0, 0) == BZ_OK);
  out.resize(len);
  return out;
}

// Early microcode first (uncompressed), then the main archive, as both
// generators write them.
std::string Image(
    const std::vector<CpioEntry>& main,
    const std::function<std::string(const std::string&)>& compress = Zstd) {
  std::string early =
      Newc({{"kernel", "", 040755},
            {"kernel/x86/microcode/GenuineIntel.bin", std::string(3000, 'u')}});
  while (early.size() % 512) early += '\0';
  return early + compress(Newc(main));
}

// A machine as a directory tree.
class FakeMachine {
 public:
  FakeMachine() {
    std::string tmpl =
        (fs::temp_directory_path() / "nmimgrctl-test-XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
    root_ = buf.data();
  }
  ~FakeMachine() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  FakeMachine(const FakeMachine&) = delete;
  FakeMachine& operator=(const FakeMachine&) = delete;

  const fs::path& root() const { return root_; }
  fs::path Path(const std::string& abs) const { return root_ / abs.substr(1); }

  void Write(const std::string& abs, const std::string& text) {
    fs::create_directories(Path(abs).parent_path());
    std::ofstream(Path(abs), std::ios::binary | std::ios::trunc) << text;
  }
  void Remove(const std::string& abs) { fs::remove_all(Path(abs)); }
  void Link(const std::string& abs, const std::string& target) {
    fs::create_directories(Path(abs).parent_path());
    fs::remove(Path(abs));
    fs::create_symlink(target, Path(abs));
  }
  // Sets ABS's modification time SECONDS after the epoch.
  void Touch(const std::string& abs, long seconds) {
    struct timespec ts[2] = {{seconds, 0}, {seconds, 0}};
    REQUIRE(::utimensat(AT_FDCWD, Path(abs).c_str(), ts, 0) == 0);
  }

  // What nmimgr's initramfs-tools hook (HOOK scripts/init-top/nmimgr) or
  // dracut module (usr/lib/dracut/hooks/cmdline/00-nmimgr-load.sh) puts
  // into a capture image, with the machine's nmimgr.conf.
  std::vector<CpioEntry> CaptureImage(const std::string& hook,
                                      const std::string& conf = "panic = 0\n") {
    return {
        {".", "", 040755},
        {"init", "#!/bin/sh\n", 0100755},
        {std::string("usr/lib/modules/") + kKver + "/updates/dkms/nmimgr.ko",
         "\x7f"
         "ELF"},
        {"etc/nmimgr.conf", conf},
        {"usr/sbin/nmimgr-load",
         "\x7f"
         "ELF",
         0100755},
        {hook, "#!/bin/sh\n", 0100755}};
  }

  // The module loaded with POLICY.
  void LoadNmimgr(const std::string& policy = kPolicy,
                  const std::string& types = "unknown") {
    Write("/sys/module/nmimgr/initstate", "live\n");
    Write("/sys/module/nmimgr/taint", "OE\n");
    Write("/sys/module/nmimgr/parameters/policy", policy + "\n");
    Write("/sys/module/nmimgr/parameters/types", types + "\n");
    Write("/sys/module/nmimgr/parameters/capture_drop", "all\n");
    Write("/sys/kernel/nmimgr/stats", kStats);
  }

  // A Debian 12 server with kdump-tools and nmimgr installed, loaded and
  // applied: everything doctor checks holds.
  void ReadyKdumpTools() {
    Write("/proc/sys/kernel/osrelease", std::string(kKver) + "\n");
    Write("/proc/cmdline",
          "BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro crashkernel=384M "
          "console=ttyS0\n");
    Write("/proc/iomem",
          "00000000-00000fff : Reserved\n"
          "00001000-0009fbff : System RAM\n"
          "00100000-7ffdffff : System RAM\n"
          "  01000000-01e00000 : Kernel code\n"
          "  01e00001-02600000 : Kernel rodata\n"
          "  02600001-02800000 : Kernel data\n"
          "  02800001-02c00000 : Kernel bss\n"
          "  5f000000-76ffffff : Crash kernel\n"
          "100000000-27fffffff : System RAM\n");
    Write("/proc/meminfo",
          "MemTotal:        8000000 kB\nMemFree:         6000000 kB\n"
          "Buffers:          100000 kB\nCached:           800000 kB\n"
          "AnonPages:        600000 kB\n");
    for (const char* s :
         {"unknown_nmi_panic", "panic_on_io_nmi", "panic_on_unrecovered_nmi"})
      Write(std::string("/proc/sys/kernel/") + s, "0\n");
    Write("/sys/kernel/kexec_crash_size", std::to_string(384u << 20) + "\n");
    Write("/sys/kernel/kexec_crash_loaded", "1\n");
    Write("/etc/nmimgr.conf", "panic = 0\n");
    Write(std::string("/lib/modules/") + kKver + "/updates/dkms/nmimgr.ko",
          "\x7f"
          "ELF module");
    LoadNmimgr();
    Write("/etc/default/kdump-tools",
          "USE_KDUMP=1\nKDUMP_COREDIR=\"/var/crash\"\n");
    Write(
        "/var/crash/kexec_cmd",
        std::string(
            "/sbin/kexec -p --command-line=\"BOOT_IMAGE=/vmlinuz "
            "root=/dev/vda1 ro "
            "console=ttyS0 reset_devices systemd.unit=kdump-tools-dump.service "
            "nr_cpus=1 irqpoll usbcore.nousb apic_extnmi=none "
            "sysctl.kernel.unknown_nmi_panic=0 sysctl.kernel.panic_on_io_nmi=0 "
            "sysctl.kernel.panic_on_unrecovered_nmi=0\" "
            "--initrd=/var/lib/kdump/initrd.img /var/lib/kdump/vmlinuz\n"));
    Write(std::string("/var/lib/kdump/initrd.img-") + kKver,
          Image(CaptureImage("scripts/init-top/nmimgr")));
    Link("/var/lib/kdump/initrd.img", std::string("initrd.img-") + kKver);
    Write("/etc/kdump/sysctl.conf",
          "vm.nr_hugepages=0\nkernel.unknown_nmi_panic=0\nkernel.panic_on_io_"
          "nmi=0\n"
          "kernel.panic_on_unrecovered_nmi=0\n");
    Write("/lib/systemd/system/nmimgr-annotate.service", "[Unit]\n");
    Link("/etc/systemd/system/multi-user.target.wants/nmimgr-annotate.service",
         "/lib/systemd/system/nmimgr-annotate.service");
    // the initrd was built after the policy and the module
    Touch("/etc/nmimgr.conf", 1000);
    Touch(std::string("/lib/modules/") + kKver + "/updates/dkms/nmimgr.ko",
          1000);
    Touch(std::string("/var/lib/kdump/initrd.img-") + kKver, 2000);
  }

 private:
  fs::path root_;
};

std::string Loader() {
  const char* env = std::getenv("NMIMGR_LOAD");
  REQUIRE(env != nullptr);  // ctest sets it to the build's nmimgr-load
  return env;
}

ctl::DoctorReport Doctor(const FakeMachine& m) {
  ctl::Host host(m.root());
  ctl::DoctorOptions o;
  o.loader = Loader();
  o.mem_usage = false;
  return ctl::RunDoctor(host, o);
}

ctl::Finding Find(const ctl::DoctorReport& r, const std::string& id) {
  for (const ctl::Finding& f : r.findings)
    if (f.id == id) return f;
  FAIL("no finding " << id);
  throw std::logic_error("unreachable");
}

std::string Describe(const ctl::DoctorReport& r) {
  std::ostringstream out;
  ctl::PrintDoctor(r, out);
  return out.str();
}

}  // namespace

TEST_CASE(
    "the stats file parses into counters, codes, raw bytes and the last event",
    "[unit][ctl]") {
  ctl::ModuleStats st = ctl::ParseStats(kStats);
  CHECK(st.Counter("nmis") == 15);
  CHECK(st.Counter("dropped") == 12);
  CHECK(st.Get("confirm_pending_ms") == "none");
  CHECK(st.codes == std::map<unsigned, uint64_t>{{0x00, 15}});
  CHECK(st.raw == std::map<unsigned, uint64_t>{{0x21, 7}, {0x31, 8}});
  REQUIRE(st.last_event);
  CHECK(st.last_event->at("action") == "drop");
  CHECK(st.last_event->at("uptime_ms") == "83211");
  SECTION("a key it does not know is kept, as the format allows") {
    ctl::ModuleStats more =
        ctl::ParseStats(std::string("new_key 7\n") + kStats);
    CHECK(more.Counter("new_key") == 7);
  }
  SECTION("last_event none is no event") {
    CHECK_FALSE(ctl::ParseStats("nmis 0\nlast_event none\n").last_event);
  }
  SECTION("a malformed line is refused, naming it") {
    auto bad = GENERATE(as<std::string>{}, "nmis\n", "code 0x100 1\n",
                        "raw 0x21\n", "code zz 1\n", "last_event raw\n");
    CAPTURE(bad);
    CHECK_THROWS_WITH(ctl::ParseStats(bad), Catch::Contains("stats line 1"));
  }
}

TEST_CASE("the kexec command kdump-tools saves gives the capture command line",
          "[unit][ctl]") {
  using R = std::optional<std::string>;
  auto [cmd, want] = GENERATE(table<std::string, R>({
      {"/sbin/kexec -p --command-line=\"a b=1 c\" --initrd=/x /k",
       R("a b=1 c")},
      {"kexec -p --append='x y' /k", R("x y")},
      {"kexec -p --command-line=single /k", R("single")},
      {"kexec -p --command-line=\"unterminated /k", std::nullopt},
      {"kexec -p /k", std::nullopt},
  }));
  CAPTURE(cmd);
  CHECK(ctl::KexecCommandLine(cmd) == want);
}

TEST_CASE("kdumpctl's crash kernel baseline follows the size of system RAM",
          "[unit][ctl]") {
  constexpr uint64_t G = 1ull << 30, M = 1ull << 20;
  CHECK(ctl::RecommendedBaseline(1 * G) == 0);
  CHECK(ctl::RecommendedBaseline(2 * G) == 256 * M);
  CHECK(ctl::RecommendedBaseline(64 * G - 1) == 256 * M);
  CHECK(ctl::RecommendedBaseline(64 * G) == 512 * M);
}

TEST_CASE("a ready kdump-tools server passes every check", "[unit][ctl]") {
  FakeMachine m;
  m.ReadyKdumpTools();
  ctl::DoctorReport r = Doctor(m);
  INFO(Describe(r));
  REQUIRE(r.findings.size() == ctl::kDoctorChecks.size());
  for (size_t i = 0; i < r.findings.size(); ++i) {
    CAPTURE(r.findings[i].id);
    CHECK(r.findings[i].id == ctl::kDoctorChecks[i]);
    CHECK(r.findings[i].verdict == ctl::Verdict::kOk);
  }
  CHECK(r.ExitStatus() == 0);
  nlohmann::json j = ctl::DoctorJson(r);
  CHECK(j["schema"] == "nmimgrctl-doctor/1");
  CHECK(j["ready"] == true);
  CHECK(j["checks"][0]["evidence"]["/sys/kernel/kexec_crash_size"] ==
        std::to_string(384u << 20));
}

TEST_CASE("each way a kdump-tools server can be broken fails its own check",
          "[unit][ctl]") {
  using Mutation = std::function<void(FakeMachine&)>;
  struct Case {
    const char* what;
    Mutation mutate;
    const char* check;
    ctl::Verdict verdict;
    const char* says;
  };
  const std::vector<Case> cases = {
      {"no crashkernel reservation",
       [](FakeMachine& m) { m.Write("/sys/kernel/kexec_crash_size", "0\n"); },
       "crashkernel-reserved", ctl::Verdict::kFail, "no memory is reserved"},
      {"a reservation below kdumpctl's estimate",
       [](FakeMachine& m) {
         m.Write("/sys/kernel/kexec_crash_size", std::to_string(128u << 20));
       },
       "crashkernel-size", ctl::Verdict::kWarn, "below the 256 MiB"},
      {"no capture kernel loaded",
       [](FakeMachine& m) { m.Write("/sys/kernel/kexec_crash_loaded", "0\n"); },
       "capture-loaded", ctl::Verdict::kFail, "no capture kernel is loaded"},
      {"kdump-tools never loaded (no kexec_cmd)",
       [](FakeMachine& m) { m.Remove("/var/crash/kexec_cmd"); },
       "capture-cmdline", ctl::Verdict::kUnknown, "not known"},
      {"the capture kernel loaded before nmimgr.conf asked for the shield",
       [](FakeMachine& m) {
         m.Write("/var/crash/kexec_cmd",
                 "/sbin/kexec -p --command-line=\"root=/dev/vda1 reset_devices "
                 "systemd.unit=kdump-tools-dump.service\" /k\n");
       },
       "capture-shield", ctl::Verdict::kFail, "lacks apic_extnmi=none"},
      {"nmimgr.conf edited after the capture initramfs was built",
       [](FakeMachine& m) { m.Touch("/etc/nmimgr.conf", 3000); },
       "capture-initramfs", ctl::Verdict::kFail, "/etc/nmimgr.conf"},
      {"a module rebuilt after the capture initramfs",
       [](FakeMachine& m) {
         m.Touch(
             std::string("/lib/modules/") + kKver + "/updates/dkms/nmimgr.ko",
             3000);
       },
       "capture-initramfs", ctl::Verdict::kFail, "nmimgr.ko"},
      {"no capture initramfs",
       [](FakeMachine& m) {
         m.Remove(std::string("/var/lib/kdump/initrd.img-") + kKver);
       },
       "capture-initramfs", ctl::Verdict::kFail, "does not exist"},
      {"every shield layer off while /etc/sysctl.d panics on unknown NMIs",
       [](FakeMachine& m) {
         m.Write("/etc/nmimgr.conf",
                 "panic = 0\ncapture_extnmi = no\ncapture_nmi_sysctls = "
                 "no\ncapture_module = no\n");
         m.Touch("/etc/nmimgr.conf", 1000);
         m.Write("/etc/kdump/sysctl.conf", "vm.nr_hugepages=0\n");
         m.Write("/etc/sysctl.d/90-nmi.conf", "kernel.unknown_nmi_panic = 1\n");
         m.Write("/var/crash/kexec_cmd",
                 "/sbin/kexec -p --command-line=\"root=/dev/vda1 "
                 "systemd.unit=kdump-tools-dump.service\" /k\n");
       },
       "capture-nmi-protection", ctl::Verdict::kFail, "unknown_nmi_panic on"},
      {"nmimgr not loaded",
       [](FakeMachine& m) { m.Remove("/sys/module/nmimgr"); }, "nmimgr-loaded",
       ctl::Verdict::kFail, "not loaded"},
      {"nmimgr not loaded and the kernel does not panic either",
       [](FakeMachine& m) { m.Remove("/sys/module/nmimgr"); }, "bmc-nmi-panics",
       ctl::Verdict::kFail, "nothing panics"},
      {"nmimgr not loaded but unknown_nmi_panic=1",
       [](FakeMachine& m) {
         m.Remove("/sys/module/nmimgr");
         m.Write("/proc/sys/kernel/unknown_nmi_panic", "1\n");
       },
       "bmc-nmi-panics", ctl::Verdict::kWarn, "no record"},
      {"a policy without the BMC's code",
       [](FakeMachine& m) {
         m.LoadNmimgr(
             "ignore= drop=0x80 panic=0x40 mask=0xc0 dry_run=0 confirm=0");
       },
       "bmc-nmi-panics", ctl::Verdict::kFail, "code 0x00 is in no panic list"},
      {"dry run",
       [](FakeMachine& m) {
         m.LoadNmimgr("ignore= drop= panic=0 mask=0xc0 dry_run=1 confirm=0");
       },
       "bmc-nmi-panics", ctl::Verdict::kFail, "dry run"},
      {"a mask that keeps OS-state bits",
       [](FakeMachine& m) {
         m.LoadNmimgr(
             "ignore= drop= panic=33,49 mask=0xff dry_run=0 confirm=0");
       },
       "bmc-nmi-panics", ctl::Verdict::kWarn, "only some readings"},
      {"registered on SERR only",
       [](FakeMachine& m) { m.LoadNmimgr(kPolicy, "serr"); }, "bmc-nmi-panics",
       ctl::Verdict::kFail, "not registered on unknown NMIs"},
      {"the unknown_nmi_panic boot word",
       [](FakeMachine& m) {
         m.Write("/proc/cmdline",
                 "root=/dev/vda1 crashkernel=384M unknown_nmi_panic=0\n");
       },
       "first-kernel-nmi-sysctls", ctl::Verdict::kWarn,
       "sets unknown_nmi_panic to 1"},
      {"a full dump directory",
       [](FakeMachine& m) {
         m.Write("/proc/meminfo",
                 "MemTotal: 1099511627776000 kB\nMemFree: 0 kB\n");
       },
       "dump-space", ctl::Verdict::kFail, "less than"},
      {"nothing checks new dumps",
       [](FakeMachine& m) {
         m.Remove("/etc/systemd/system/multi-user.target.wants");
       },
       "truncated-dump-hazard", ctl::Verdict::kWarn, "no pipefail"},
      {"no kdump service at all",
       [](FakeMachine& m) { m.Remove("/etc/default/kdump-tools"); },
       "capture-cmdline", ctl::Verdict::kFail, "no kdump service"},
  };
  for (const Case& c : cases) {
    DYNAMIC_SECTION(c.what) {
      FakeMachine m;
      m.ReadyKdumpTools();
      c.mutate(m);
      ctl::DoctorReport r = Doctor(m);
      INFO(Describe(r));
      const ctl::Finding& f = Find(r, c.check);
      CHECK(f.verdict == c.verdict);
      CHECK_THAT(f.summary, Catch::Contains(c.says));
      if (c.verdict == ctl::Verdict::kFail) {
        CHECK(r.ExitStatus() == 1);
        CHECK_FALSE(f.fix.empty());
      }
      if (c.verdict == ctl::Verdict::kUnknown) CHECK(r.ExitStatus() == 2);
    }
  }
}

TEST_CASE("a second press under confirm= is what panics, and doctor says so",
          "[unit][ctl]") {
  FakeMachine m;
  m.ReadyKdumpTools();
  m.LoadNmimgr("ignore= drop= panic=0 mask=0xc0 dry_run=0 confirm=500-10000");
  const ctl::Finding& f = Find(Doctor(m), "bmc-nmi-panics");
  CHECK(f.verdict == ctl::Verdict::kOk);
  CHECK_THAT(f.summary, Catch::Contains("second press 500-10000 ms"));
}

TEST_CASE(
    "hpwdt and ipmi_watchdog pre-timeouts must be disarmed in the capture "
    "kernel",
    "[unit][ctl]") {
  FakeMachine m;
  m.ReadyKdumpTools();
  m.Write("/sys/module/hpwdt/parameters/pretimeout", "1\n");
  SECTION("hpwdt without the disarming words fails, naming them") {
    const ctl::Finding& f = Find(Doctor(m), "nmi-watchdog-drivers");
    CHECK(f.verdict == ctl::Verdict::kFail);
    CHECK_THAT(f.summary,
               Catch::Contains("hpwdt.pretimeout=0 hpwdt.kdumptimeout=0"));
  }
  SECTION("with them, it passes") {
    m.Write("/var/crash/kexec_cmd",
            "kexec -p --command-line=\"apic_extnmi=none "
            "sysctl.kernel.unknown_nmi_panic=0 "
            "sysctl.kernel.panic_on_io_nmi=0 "
            "sysctl.kernel.panic_on_unrecovered_nmi=0 "
            "hpwdt.pretimeout=0 hpwdt.kdumptimeout=0\" /k\n");
    ctl::DoctorReport r = Doctor(m);
    INFO(Describe(r));
    CHECK(Find(r, "nmi-watchdog-drivers").verdict == ctl::Verdict::kOk);
    // nmimgr-load --cmdline asks for them too (capture_watchdog = yes)
    CHECK(Find(r, "capture-shield").verdict == ctl::Verdict::kOk);
  }
  SECTION("ipmi_watchdog counts only with an NMI pre-action") {
    m.Remove("/sys/module/hpwdt");
    m.Write("/sys/module/ipmi_watchdog/parameters/preaction", "pre_none\n");
    CHECK(Find(Doctor(m), "nmi-watchdog-drivers").verdict == ctl::Verdict::kOk);
    m.Write("/sys/module/ipmi_watchdog/parameters/preaction", "pre_nmi\n");
    const ctl::Finding& f = Find(Doctor(m), "nmi-watchdog-drivers");
    CHECK(f.verdict == ctl::Verdict::kFail);
    CHECK_THAT(f.summary, Catch::Contains("ipmi_watchdog.pretimeout=0"));
  }
}

TEST_CASE(
    "under lockdown an unsigned nmimgr.ko is refused; a loaded one was "
    "accepted",
    "[unit][ctl]") {
  FakeMachine m;
  m.ReadyKdumpTools();
  m.Write("/sys/kernel/security/lockdown",
          "none [integrity] confidentiality\n");
  m.Write(
      "/sys/firmware/efi/efivars/"
      "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c",
      std::string("\x06\0\0\0\x01", 5));
  const std::string ko =
      std::string("/lib/modules/") + kKver + "/updates/dkms/nmimgr.ko";
  SECTION("loaded: the kernel checked the signature") {
    const ctl::Finding& f = Find(Doctor(m), "module-signature");
    CHECK(f.verdict == ctl::Verdict::kOk);
    CHECK_THAT(f.summary, Catch::Contains("accepted"));
  }
  SECTION("not loaded and unsigned: fails, with the MOK steps") {
    m.Remove("/sys/module/nmimgr");
    const ctl::Finding& f = Find(Doctor(m), "module-signature");
    CHECK(f.verdict == ctl::Verdict::kFail);
    CHECK_THAT(f.fix, Catch::Contains("mokutil --import"));
    bool secure_boot_on = false;
    for (const auto& [k, v] : f.evidence)
      secure_boot_on |= k == "Secure Boot" && v == "on";
    CHECK(secure_boot_on);
  }
  SECTION("not loaded but signed: a warning to check the key") {
    m.Remove("/sys/module/nmimgr");
    m.Write(ko, std::string("\x7f"
                            "ELF module") +
                    "sig~Module signature appended~\n");
    const ctl::Finding& f = Find(Doctor(m), "module-signature");
    CHECK(f.verdict == ctl::Verdict::kWarn);
    CHECK_THAT(f.summary, Catch::Contains("mokutil --list-enrolled"));
  }
}

TEST_CASE(
    "a Fedora kdumpctl layout: the command line is rebuilt as kdumpctl builds "
    "it",
    "[unit][ctl]") {
  FakeMachine m;
  m.ReadyKdumpTools();
  m.Remove("/etc/default/kdump-tools");
  m.Remove("/var/crash/kexec_cmd");
  m.Write("/etc/kdump.conf",
          "path /var/crash\ncore_collector makedumpfile -l -d 31\n");
  m.Write("/usr/bin/kdumpctl", "#!/bin/bash\n");
  const std::string img = std::string("/boot/initramfs-") + kKver + "kdump.img";
  m.Write(
      img,
      Image(m.CaptureImage("usr/lib/dracut/hooks/cmdline/00-nmimgr-load.sh"),
            Gzip));
  m.Touch(img, 2000);
  m.Write("/proc/cmdline",
          "BOOT_IMAGE=/vmlinuz root=/dev/vda1 crashkernel=384M quiet "
          "unknown_nmi_panic\n");
  m.Write("/sys/class/watchdog/watchdog0/device/driver/.keep", "");
  m.Link("/sys/class/watchdog/watchdog0/device/driver/module",
         "../../../../module/iTCO_wdt");
  SECTION("the shield in KDUMP_COMMANDLINE_APPEND, the boot word removed") {
    m.Write(
        "/etc/sysconfig/kdump",
        "KDUMP_COMMANDLINE_REMOVE=\"quiet unknown_nmi_panic\"\n"
        "KDUMP_COMMANDLINE_APPEND=\"irqpoll nr_cpus=1 reset_devices\"\n"
        "KDUMP_COMMANDLINE_APPEND=\"$KDUMP_COMMANDLINE_APPEND apic_extnmi=none "
        "sysctl.kernel.unknown_nmi_panic=0 sysctl.kernel.panic_on_io_nmi=0 "
        "sysctl.kernel.panic_on_unrecovered_nmi=0\"\n");
    ctl::Host host(m.root());
    ctl::KdumpSetup k = ctl::ReadKdumpSetup(host);
    CHECK(k.service == ctl::KdumpService::kKdumpctl);
    CHECK(k.initrd == img);
    REQUIRE(k.capture_cmdline);
    std::string line;
    for (const std::string& w : *k.capture_cmdline) line += w + " ";
    CHECK(
        line ==
        "BOOT_IMAGE=/vmlinuz irqpoll nr_cpus=1 reset_devices apic_extnmi=none "
        "sysctl.kernel.unknown_nmi_panic=0 sysctl.kernel.panic_on_io_nmi=0 "
        "sysctl.kernel.panic_on_unrecovered_nmi=0 iTCO_wdt.pretimeout=0 ");
    ctl::DoctorReport r = Doctor(m);
    INFO(Describe(r));
    CHECK(Find(r, "capture-shield").verdict == ctl::Verdict::kOk);
    CHECK(Find(r, "capture-nmi-protection").verdict == ctl::Verdict::kOk);
    CHECK(Find(r, "capture-initramfs").verdict == ctl::Verdict::kOk);
    CHECK(Find(r, "truncated-dump-hazard").verdict == ctl::Verdict::kOk);
  }
  SECTION("without nmimgr's block the boot word reaches the capture kernel") {
    m.Write("/etc/sysconfig/kdump",
            "KDUMP_COMMANDLINE_APPEND=\"irqpoll nr_cpus=1\"\n");
    ctl::DoctorReport r = Doctor(m);
    INFO(Describe(r));
    const ctl::Finding& shield = Find(r, "capture-shield");
    CHECK(shield.verdict == ctl::Verdict::kFail);
    CHECK_THAT(shield.fix, Catch::Contains("kdumpctl restart"));
    bool word = false;
    for (const auto& [k, v] : Find(r, "capture-nmi-protection").evidence)
      word |= k == "capture kernel.unknown_nmi_panic" &&
              v.rfind("1 (capture command line)", 0) == 0;
    CHECK(word);
  }
}

TEST_CASE("status reports the policy in force and drift from nmimgr.conf",
          "[unit][ctl]") {
  FakeMachine m;
  m.ReadyKdumpTools();
  ctl::Host host(m.root());
  SECTION("in step") {
    ctl::Status s = ctl::ReadStatus(host, Loader());
    CHECK(s.module.loaded);
    CHECK(s.drift.empty());
    CHECK(s.ExitStatus() == 0);
    nlohmann::json j = ctl::StatusJson(s);
    CHECK(j["schema"] == "nmimgrctl-status/1");
    CHECK(j["module"]["panic"] == "0");
    CHECK(j["module"]["counters"]["dropped"] == 12);
    CHECK(j["module"]["codes"]["0x00"] == 15);
    CHECK(j["module"]["last_event"]["raw"] == "0x21");
  }
  SECTION("the file changed and was not applied") {
    m.Write("/etc/nmimgr.conf",
            "panic = 0\ndrop = 0x80\ntypes = unknown,serr\n");
    ctl::Status s = ctl::ReadStatus(host, Loader());
    REQUIRE(s.drift.size() == 2);
    CHECK(s.drift[0].setting == "policy");
    CHECK(s.drift[0].file ==
          "ignore= drop=128 panic=0 mask=0xc0 dry_run=0 confirm=0");
    CHECK(s.drift[0].loaded == kPolicy);
    CHECK(s.drift[1].setting == "types");
    CHECK(s.ExitStatus() == 1);
    std::ostringstream out;
    ctl::PrintStatus(s, out);
    CHECK_THAT(
        out.str(),
        Catch::Contains("fix: nmimgr-load --apply (types is load-time only"));
  }
  SECTION("an invalid file is reported with nmimgr-load's message") {
    m.Write("/etc/nmimgr.conf", "panic = 5-3\n");
    ctl::Status s = ctl::ReadStatus(host, Loader());
    CHECK_FALSE(s.config.valid);
    CHECK_THAT(s.config.error, Catch::Contains("5-3"));
    CHECK(s.ExitStatus() == 1);
  }
}

TEST_CASE(
    "metrics follow the textfile collector's rules and are written atomically",
    "[unit][ctl]") {
  FakeMachine m;
  m.ReadyKdumpTools();
  ctl::Host host(m.root());
  nmimgr::metrics::Metrics metrics;
  ctl::AddStatusMetrics(ctl::ReadStatus(host, Loader()), metrics);
  ctl::AddDoctorMetrics(Doctor(m), metrics);
  std::string text = metrics.Text();
  CHECK_THAT(text,
             Catch::Contains("nmimgr_nmi_actions_total{action=\"drop\"} 12\n"));
  CHECK_THAT(text,
             Catch::Contains("nmimgr_nmi_codes_total{code=\"0x00\"} 15\n"));
  CHECK_THAT(text, Catch::Contains("nmimgr_doctor_ready 1\n"));
  CHECK_THAT(
      text,
      Catch::Contains(
          "nmimgr_doctor_check{check=\"dump-space\",verdict=\"ok\"} 1\n"));
  // HELP and TYPE once per family, every sample named nmimgr_, counters _total
  std::map<std::string, int> help, type;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# HELP ", 0) == 0)
      ++help[ctl::Words(line)[2]];
    else if (line.rfind("# TYPE ", 0) == 0) {
      std::vector<std::string> w = ctl::Words(line);
      ++type[w[2]];
      CHECK((w[3] == "counter") ==
            (w[2].size() > 6 && w[2].substr(w[2].size() - 6) == "_total"));
    } else {
      CHECK(line.rfind("nmimgr_", 0) == 0);
      CHECK(ctl::Words(line).size() == 2);  // name{labels} value: no timestamp
    }
  }
  for (const auto& [name, n] : help) CHECK(n == 1);
  CHECK(help.size() == type.size());
  CHECK_THROWS(metrics.Add("nmimgr_x", "counter", "h", {}, 1));
  CHECK_THROWS(metrics.Add("other_total", "counter", "h", {}, 1));

  const fs::path out = m.Path("/var/lib/node_exporter/nmimgr.prom");
  fs::create_directories(out.parent_path());
  nmimgr::metrics::WriteFileAtomically(out.string(), "old\n");
  nmimgr::metrics::WriteFileAtomically(out.string(), text);
  std::ifstream in(out);
  std::string back((std::istreambuf_iterator<char>(in)), {});
  CHECK(back == text);
  CHECK(std::distance(fs::directory_iterator(out.parent_path()),
                      fs::directory_iterator()) == 1);
  SECTION(
      "a directory that cannot be written keeps the old file and says why") {
    CHECK_THROWS_WITH(nmimgr::metrics::WriteFileAtomically(
                          m.Path("/nonexistent/x.prom").string(), text),
                      Catch::Contains("writing"));
  }
}

TEST_CASE(
    "an initramfs is read as the kernel unpacks it, whatever its compression",
    "[unit][ctl][initramfs]") {
  using Compress = std::function<std::string(const std::string&)>;
  auto [kind, compress] =
      GENERATE(table<std::string, Compress>({{"gzip", Gzip},
                                             {"zstd", Zstd},
                                             {"xz", Xz},
                                             {"lz4", Lz4Legacy},
                                             {"bzip2", Bzip2}}));
  CAPTURE(kind);
  FakeMachine m;
  // a file larger than one lz4 block and than the decoders' buffers
  std::string big(9 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>((i * 2654435761u) >> 13);
  std::vector<CpioEntry> main = {{".", "", 040755},
                                 {"./usr/lib/modules/x/nmimgr.ko", big},
                                 {"/etc/nmimgr.conf", "panic = 0\n"},
                                 {"bin/sh", "busybox", 0120777}};
  std::string image = Image(main, compress);
  m.Write("/img", image);
  ctl::InitramfsListing l =
      ctl::ReadInitramfs(m.Path("/img"), {"etc/nmimgr.conf", "bin/sh"});
  CHECK(l.segments == std::vector<std::string>{"cpio", kind});
  CHECK(l.names == std::vector<std::string>{
                       "kernel", "kernel/x86/microcode/GenuineIntel.bin", ".",
                       "usr/lib/modules/x/nmimgr.ko", "etc/nmimgr.conf",
                       "bin/sh"});
  CHECK(l.contents ==
        std::map<std::string, std::string>{{"etc/nmimgr.conf", "panic = 0\n"}});
  CHECK_FALSE(l.inner_image);

  SECTION(
      "cut anywhere inside the compressed archive, it is refused, not "
      "half-listed") {
    size_t early = image.size() - compress(Newc(main)).size();
    for (size_t cut : {early + 1, early + 10, (early + image.size()) / 2,
                       image.size() - 1}) {
      CAPTURE(cut);
      m.Write("/cut", image.substr(0, cut));
      CHECK_THROWS_AS(ctl::ReadInitramfs(m.Path("/cut")), ctl::InitramfsError);
    }
  }
  SECTION("two compressed archives one after the other are both read") {
    m.Write("/two", image + std::string(3, '\0') +
                        compress(Newc({{"etc/second", "2"}})));
    ctl::InitramfsListing two = ctl::ReadInitramfs(m.Path("/two"));
    CHECK(two.segments == std::vector<std::string>{"cpio", kind, kind});
    CHECK(two.names.back() == "etc/second");
  }
}

TEST_CASE(
    "an initramfs that is no initramfs, or cut in its cpio, is refused with "
    "where",
    "[unit][ctl][initramfs]") {
  FakeMachine m;
  std::string cpio = Newc({{"etc/a", "aaaa"}, {"etc/b", "bbbbbbbb"}});
  for (size_t cut = 1; cut < cpio.size(); cut += 7) {
    CAPTURE(cut);
    m.Write("/img", cpio.substr(0, cut));
    CHECK_THROWS_AS(ctl::ReadInitramfs(m.Path("/img")), ctl::InitramfsError);
  }
  m.Write("/img", "MZ this is a kernel, not an initramfs");
  CHECK_THROWS_WITH(
      ctl::ReadInitramfs(m.Path("/img")),
      Catch::Contains("neither cpio nor a known compression at offset 0"));
  m.Write("/img", cpio + std::string(8, '\0') + "\x89LZO....");
  CHECK_THROWS_WITH(ctl::ReadInitramfs(m.Path("/img")), Catch::Contains("lzo"));
  m.Write("/img", cpio);
  CHECK(ctl::ReadInitramfs(m.Path("/img")).names ==
        std::vector<std::string>{"etc/a", "etc/b"});
}

TEST_CASE("doctor reads the capture initramfs itself",
          "[unit][ctl][initramfs]") {
  FakeMachine m;
  m.ReadyKdumpTools();
  const std::string img = std::string("/var/lib/kdump/initrd.img-") + kKver;
  auto rewrite = [&](const std::vector<CpioEntry>& entries) {
    m.Write(img, Image(entries));
    m.Touch(img, 2000);
  };
  SECTION("the ready image passes, and doctor names what it read") {
    const ctl::Finding& f = Find(Doctor(m), "capture-initramfs");
    CHECK(f.verdict == ctl::Verdict::kOk);
    bool segments = false;
    for (const auto& [k, v] : f.evidence)
      segments |= k == "segments" && v == "cpio + zstd";
    CHECK(segments);
  }
  SECTION("an image built without nmimgr fails, naming what is missing") {
    std::vector<CpioEntry> e = m.CaptureImage("scripts/init-top/nmimgr");
    e.erase(e.begin() + 2);  // nmimgr.ko
    e.pop_back();            // the init-top script
    rewrite(e);
    ctl::DoctorReport r = Doctor(m);
    const ctl::Finding& f = Find(r, "capture-initramfs");
    CHECK(f.verdict == ctl::Verdict::kFail);
    CHECK_THAT(f.summary,
               Catch::Contains(std::string("nmimgr.ko for ") + kKver) &&
                   Catch::Contains("scripts/init-top/nmimgr"));
    // nor does the shield count nmimgr as one of its layers then
    bool layer = false;
    for (const auto& [k, v] : Find(r, "capture-nmi-protection").evidence)
      layer |= k == "layers" && v.find("nmimgr") != std::string::npos;
    CHECK_FALSE(layer);
  }
  SECTION("crashkernel-size counts the loaded modules the image holds") {
    std::vector<CpioEntry> e = m.CaptureImage("scripts/init-top/nmimgr");
    e.push_back(
        {std::string("usr/lib/modules/") + kKver + "/kernel/mlx5-core.ko.zst",
         "z"});
    rewrite(e);
    m.Write("/proc/modules",
            "mlx5_core 3145728 0 - Live 0x0000000000000000\n"
            "nmimgr 16384 0 - Live 0x0000000000000000 (OE)\n"
            "btrfs 1048576 0 - Live 0x0000000000000000\n");
    std::string modules;
    for (const auto& [k, v] : Find(Doctor(m), "crashkernel-size").evidence)
      if (k == "modules") modules = v;
    CHECK(modules == "3 MiB (loaded ones the capture initramfs holds)");
  }
  SECTION("an image with an older nmimgr.conf fails, naming the settings") {
    rewrite(
        m.CaptureImage("scripts/init-top/nmimgr", "panic = 0\ndrop = 0x80\n"));
    const ctl::Finding& f = Find(Doctor(m), "capture-initramfs");
    CHECK(f.verdict == ctl::Verdict::kFail);
    CHECK_THAT(f.summary,
               Catch::Contains("another nmimgr.conf: policy differ"));
  }
  SECTION("the same settings written otherwise are the same file") {
    rewrite(m.CaptureImage("scripts/init-top/nmimgr",
                           "# reordered\npanic = 0x00\n"));
    CHECK(Find(Doctor(m), "capture-initramfs").verdict == ctl::Verdict::kOk);
  }
  SECTION("a cut image fails") {
    std::string whole = Image(m.CaptureImage("scripts/init-top/nmimgr"));
    m.Write(img, whole.substr(0, whole.size() - 20));
    m.Touch(img, 2000);
    const ctl::Finding& f = Find(Doctor(m), "capture-initramfs");
    CHECK(f.verdict == ctl::Verdict::kFail);
    CHECK_THAT(f.summary, Catch::Contains("cannot be read"));
  }
  SECTION("a squashfs root inside is said to be unread, not passed") {
    std::vector<CpioEntry> e = m.CaptureImage("scripts/init-top/nmimgr");
    e.push_back({"squash-root.img", "hsqs"});
    rewrite(e);
    const ctl::Finding& f = Find(Doctor(m), "capture-initramfs");
    CHECK(f.verdict == ctl::Verdict::kUnknown);
    CHECK_THAT(f.summary, Catch::Contains("squash-root.img"));
  }
}

TEST_CASE(
    "set composes the new policy from the one in force with the module's "
    "grammar",
    "[unit][ctl][set]") {
  ctl::SetRequest r;
  std::string error;
  r.drop = "0x80";
  CHECK(ctl::ComposePolicy(kPolicy, r, &error) ==
        "ignore= drop=128 panic=0 mask=0xc0 dry_run=0 confirm=0");
  r.dry_run = true;
  r.confirm = "1";
  CHECK(ctl::ComposePolicy(kPolicy, r, &error) ==
        "ignore= drop=128 panic=0 mask=0xc0 dry_run=1 confirm=500-10000");
  auto [field, value, says] =
      GENERATE(table<std::string, std::string, std::string>({
          {"panic", "5-3", "--panic: "},
          {"drop", "300", "--drop: "},
          {"ignore", "1,,2", "--ignore: "},
          {"mask", "0x0f", "--mask: "},
          {"confirm", "50-60", "--confirm: "},
      }));
  CAPTURE(field, value);
  ctl::SetRequest bad;
  (field == "panic"    ? bad.panic
   : field == "drop"   ? bad.drop
   : field == "ignore" ? bad.ignore
   : field == "mask"   ? bad.mask
                       : bad.confirm) = value;
  CHECK_FALSE(ctl::ComposePolicy(kPolicy, bad, &error));
  CHECK_THAT(error, Catch::StartsWith(says));
}

TEST_CASE(
    "set --persist rewrites only the policy keys of nmimgr.conf, in place",
    "[unit][ctl][set]") {
  const std::string policy =
      "ignore= drop=128 panic=0 mask=0xc0 dry_run=0 confirm=0";
  const std::string block =
      "# set by nmimgrctl set\nignore = \ndrop = 128\npanic = 0\nmask = 0xc0\n"
      "dry_run = 0\nconfirm = 0\n";
  CHECK(ctl::RewriteConfig("# admin\ntypes = unknown\npanic = 0\nconfirm = 0\n"
                           "capture_extnmi = no\n",
                           policy) ==
        "# admin\ntypes = unknown\n" + block + "capture_extnmi = no\n");
  CHECK(ctl::RewriteConfig(
            "policy = panic=0;drop=1\n# panic = 7 (a comment stays)\n",
            policy) == block + "# panic = 7 (a comment stays)\n");
  CHECK(ctl::RewriteConfig("# nothing yet", policy) ==
        "# nothing yet\n" + block);
  // twice is once
  std::string once = ctl::RewriteConfig("# a\npanic = 0\n", policy);
  CHECK(ctl::RewriteConfig(once, policy) == once);
}

TEST_CASE("set applies live, or refuses and changes nothing",
          "[unit][ctl][set]") {
  FakeMachine m;
  m.ReadyKdumpTools();
  ctl::Host host(m.root());
  ctl::SetRequest r;
  r.loader = Loader();
  std::ostringstream out, err;
  auto param = [&]() {
    return ctl::Host(m.root()).ReadLine("/sys/module/nmimgr/parameters/policy");
  };
  SECTION("live only: the module gets it, the file is said to differ") {
    r.drop = "0x80";
    CHECK(ctl::RunSet(host, r, out, err) == ctl::kSetOk);
    CHECK(param() == "ignore= drop=128 panic=0 mask=0xc0 dry_run=0 confirm=0");
    CHECK_THAT(out.str(), Catch::Contains("/etc/nmimgr.conf still says"));
  }
  SECTION("an invalid list changes nothing") {
    r.panic = "5-3";
    CHECK(ctl::RunSet(host, r, out, err) == ctl::kSetInvalid);
    CHECK(param() == kPolicy);
    CHECK_THAT(err.str(), Catch::Contains("--panic: ") &&
                              Catch::Contains("nothing changed"));
  }
  SECTION("not loaded and not --persist: nothing to do, said so") {
    m.Remove("/sys/module/nmimgr");
    r.drop = "0x80";
    CHECK(ctl::RunSet(host, r, out, err) == ctl::kSetCannot);
    CHECK_THAT(err.str(), Catch::Contains("not loaded"));
  }
  SECTION(
      "--persist: the file is rewritten atomically and nmimgr-load applies "
      "it") {
    ::setenv("NMIMGR_KDUMP_HELPER", "/bin/true", 1);
    m.Write("/etc/nmimgr.conf",
            "# the admin's comment\npanic = 0\ncapture_extnmi = no\n");
    r.drop = "0x80";
    r.persist = true;
    r.config = "/etc/nmimgr.conf";
    int rc = ctl::RunSet(host, r, out, err);
    INFO(out.str() << err.str());
    CHECK(rc == ctl::kSetOk);
    std::string text = host.Read("/etc/nmimgr.conf").value_or("");
    CHECK_THAT(text, Catch::StartsWith(
                         "# the admin's comment\n# set by nmimgrctl set\n"));
    CHECK_THAT(text, Catch::EndsWith("capture_extnmi = no\n"));
    CHECK(param() == "ignore= drop=128 panic=0 mask=0xc0 dry_run=0 confirm=0");
    CHECK(ctl::ReadStatus(host, Loader()).drift.empty());
    // nothing but the file is left in /etc
    CHECK(m.root() / "etc" / "nmimgr.conf" == m.Path("/etc/nmimgr.conf"));
    for (const auto& e : fs::directory_iterator(m.Path("/etc")))
      CHECK(e.path().filename().string().find("nmimgrctl") ==
            std::string::npos);
    ::unsetenv("NMIMGR_KDUMP_HELPER");
  }
}

TEST_CASE("discover reads nmimgr's log lines for each NMI",
          "[unit][ctl][discover]") {
  auto [line, raw, code, type, cpu] =
      GENERATE(table<std::string, unsigned, unsigned, std::string, unsigned>({
          {"nmimgr: dropped NMI event 0x21 (33) type=unknown cpu=0 code=0x00",
           0x21, 0, "unknown", 0},
          {"nmimgr: dropped NMI event 0xa5 (165) type=serr cpu=3 code=0x80: "
           "nmimgr panic in progress",
           0xa5, 0x80, "serr", 3},
          {"nmimgr: unmanaged NMI event 0x31 (49) type=unknown cpu=1 "
           "code=0x00: list code 0 in "
           "events_ignore, events_drop or events_panic",
           0x31, 0, "unknown", 1},
          {"nmimgr: dry run: would panic on NMI event 0x61 (97) type=iochk "
           "cpu=0 mask=0xc0 code=0x40",
           0x61, 0x40, "iochk", 0},
      }));
  CAPTURE(line);
  std::optional<ctl::SeenNmi> n = ctl::ParseNmiLine(line);
  REQUIRE(n);
  CHECK(n->raw == raw);
  CHECK(n->code == code);
  CHECK(n->type == type);
  CHECK(n->cpu == cpu);
  CHECK_FALSE(ctl::ParseNmiLine("nmimgr: 42 NMI log lines suppressed"));
}

TEST_CASE(
    "discover drops every NMI while it runs and restores the policy on every "
    "way out",
    "[unit][ctl][discover]") {
  FakeMachine m;
  m.ReadyKdumpTools();
  m.Write("/sys/class/dmi/id/sys_vendor", "QEMU\n");
  fs::create_directories(m.Path("/dev"));
  REQUIRE(::mkfifo(m.Path("/dev/kmsg").c_str(), 0600) == 0);
  ctl::Host host(m.root());
  ctl::DiscoverOptions o;
  o.platforms = std::string(NMIMGR_SOURCE_DIR) + "/data/platforms.json";
  std::ostringstream out, err;
  std::string during;
  auto writer = [&](bool signal) {
    int fd = ::open(m.Path("/dev/kmsg").c_str(), O_WRONLY);
    // discover opens the log first (so that no NMI after the policy change
    // goes unread), then writes the policy: the policy in force while it
    // runs is the one read once it has changed (up to 10 s on a busy host).
    for (int i = 0; i < 1000; ++i) {
      during = ctl::Host(m.root())
                   .ReadLine("/sys/module/nmimgr/parameters/policy")
                   .value_or("");
      if (during.find("drop=0-255") != std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const std::string records =
        "6,100,5000,-;nmimgr: dropped NMI event 0x21 (33) type=unknown cpu=0 "
        "code=0x00\n"
        "6,101,5001,-;e1000: link up\n"
        "6,102,9000,-;nmimgr: dropped NMI event 0x31 (49) type=unknown cpu=0 "
        "code=0x00\n";
    REQUIRE(::write(fd, records.data(), records.size()) ==
            static_cast<ssize_t>(records.size()));
    if (signal) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      ::kill(::getpid(), SIGTERM);
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    ::close(fd);
  };
  SECTION("the log ends") {
    std::thread t(writer, false);
    int rc = ctl::RunDiscover(host, o, out, err);
    t.join();
    INFO(out.str() << err.str());
    CHECK(rc == 0);
    CHECK(during == "ignore= drop=0-255 panic= mask=0xc0 dry_run=1 confirm=0");
    CHECK_THAT(
        out.str(),
        Catch::Contains("NMI 1: type=unknown raw=0x21 code=0x00 cpu=0\n") &&
            Catch::Contains("NMI 2: type=unknown raw=0x31 code=0x00 cpu=0\n") &&
            Catch::Contains("proposed: nmimgrctl set --panic 0x00 --persist") &&
            Catch::Contains("platform note qemu-kvm"));
    CHECK_THAT(out.str(), !Catch::Contains("NMI 3"));
  }
  SECTION("SIGTERM") {
    std::thread t(writer, true);
    int rc = ctl::RunDiscover(host, o, out, err);
    t.join();
    INFO(out.str() << err.str());
    CHECK(rc == 0);
    CHECK_THAT(out.str(), Catch::Contains("stopped by Terminated"));
  }
  SECTION("--count") {
    o.count = 1;
    std::thread t(writer, false);
    int rc = ctl::RunDiscover(host, o, out, err);
    t.join();
    CHECK(rc == 0);
    CHECK_THAT(out.str(),
               Catch::Contains("NMI 1:") && !Catch::Contains("NMI 2:"));
  }
  CHECK(host.ReadLine("/sys/module/nmimgr/parameters/policy") == kPolicy);
  CHECK_THAT(out.str(),
             Catch::Contains(std::string("policy restored: ") + kPolicy));
}

TEST_CASE("discover without nmimgr loaded starts nothing",
          "[unit][ctl][discover]") {
  FakeMachine m;
  m.ReadyKdumpTools();
  m.Remove("/sys/module/nmimgr");
  std::ostringstream out, err;
  ctl::DiscoverOptions o;
  o.duration_s = 0.1;
  CHECK(ctl::RunDiscover(ctl::Host(m.root()), o, out, err) == 2);
  CHECK_THAT(err.str(), Catch::Contains("not loaded"));
}

// nmimgrctl test: the refusals, the crash request, and the report that
// binds the next boot's dump to the test by the record's nonce.
namespace {

constexpr const char* kNonceHex = "0123456789abcdef";
constexpr const char* kDumpStamp = "202612041000";

// nmimgr with its test trigger and record attributes (a regular file
// stands in for the trigger: the write lands, nothing crashes).
void AddTestTrigger(FakeMachine& m) {
  m.Write("/sys/kernel/nmimgr/test", "");
  m.Write("/sys/kernel/nmimgr/record",
          std::string("nonce ") + kNonceHex + "\nphys 0x2a001000\nfired 0\n");
  m.Write("/proc/sys/kernel/random/boot_id",
          "6c5d2ab0-0000-4000-8000-000000000001\n");
}

struct TestRun {
  int status;
  std::string out, err;
};

TestRun RunTestCommand(const FakeMachine& m, bool yes, bool report = false,
                       bool journal = false) {
  ctl::Host host(m.root());
  ctl::TestOptions o;
  o.yes = yes;
  o.report = report;
  o.journal = journal;
  o.loader = Loader();
  o.mem_usage = false;
  o.vmcore_check = NMIMGR_VMCORE_CHECK_BUILT;  // the build's checker
  std::ostringstream out, err;
  int status = ctl::RunTest(host, o, out, err);
  return {status, out.str(), err.str()};
}

std::string ReadText(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The marker `nmimgrctl test --yes-crash-this-machine` leaves for the next
// boot, as it writes it.
void PendingTest(FakeMachine& m, const std::string& boot_id) {
  m.Write(ctl::kTestPending,
          nlohmann::json{{"schema", "nmimgrctl-test/1"},
                         // the builder's dumps crash at 1764099990
                         {"started", "2025-11-25T19:45:00Z"},
                         {"started_epoch", 1764099900},
                         {"boot_id", boot_id},
                         {"nonce", kNonceHex},
                         {"policy", kPolicy},
                         {"confirm", "0"},
                         {"kdump", "kdump-tools"},
                         {"dump_dir", "/var/crash"},
                         {"kernel_release", kKver}}
              .dump(2));
}

// The dump the capture kernel writes for nmimgr's panic on the NMI with
// record `nonce`, `test` when it was the test's, in kdump-tools' layout.
void WriteDump(FakeMachine& m, uint64_t nonce, bool test,
               bool complete = true) {
  namespace t = nmimgr::testing;
  t::DumpSpec s;
  s.max_mapnr = 1024;
  s.codec = nmimgr::vmcore::kDumpZlib;
  s.pages[0] = t::Page(4096, 0x11, "first page");
  t::AddCrashLog(s, 5120000000ull,
                 fmt::format("nmimgr: panic on NMI event 0x21 (33) "
                             "type=unknown cpu=1 mask=0xcf code=0x01 "
                             "record={:016x}{}",
                             nonce, test ? " test" : ""));
  t::RecordSpec r;
  r.cpu = 1;
  r.nonce = nonce;
  if (test) r.flags |= NMIMGR_RECORD_TEST;
  t::PlaceRecord(s, 20, 1024, r);
  t::Bytes dump = t::BuildKdump(s);
  if (!complete) dump.resize(dump.size() - 3000);
  const std::string dir = std::string("/var/crash/") + kDumpStamp;
  fs::create_directories(m.Path(dir));
  t::WriteFile(m.Path(dir + "/dump." + kDumpStamp).string(), dump);
}

}  // namespace

TEST_CASE(
    "test without --yes-crash-this-machine shows the plan and crashes "
    "nothing",
    "[unit][ctl][test]") {
  FakeMachine m;
  m.ReadyKdumpTools();
  AddTestTrigger(m);
  TestRun r = RunTestCommand(m, false);
  INFO(r.out << r.err);
  CHECK(r.status == 1);
  CHECK(r.out.find("record nonce 0123456789abcdef") != std::string::npos);
  CHECK(r.out.find("writes the dump to /var/crash") != std::string::npos);
  CHECK(r.out.find("doctor: ready") != std::string::npos);
  CHECK(r.out.find("not crashing without --yes-crash-this-machine") !=
        std::string::npos);
  CHECK(ReadText(m.Path("/sys/kernel/nmimgr/test")).empty());
  CHECK_FALSE(fs::exists(m.Path(ctl::kTestPending)));
}

TEST_CASE(
    "test refuses, even with --yes-crash-this-machine, what would not "
    "prove a dump",
    "[unit][ctl][test]") {
  using Mutation = std::function<void(FakeMachine&)>;
  using Row = std::tuple<const char*, Mutation, std::string>;
  auto [what, mutate, says] =
      GENERATE(table<const char*, Mutation, std::string>({
          Row{"no capture kernel loaded",
              [](FakeMachine& m) {
                m.Write("/sys/kernel/kexec_crash_loaded", "0\n");
              },
              "doctor: capture-loaded"},
          Row{"dry run on",
              [](FakeMachine& m) {
                std::string st = kStats;
                st.replace(st.find("dry_run 0"), 9, "dry_run 1");
                m.Write("/sys/kernel/nmimgr/stats", st);
              },
              "dry run is on"},
          Row{"latched",
              [](FakeMachine& m) {
                std::string st = kStats;
                st.replace(st.find("latched 0"), 9, "latched 1");
                m.Write("/sys/kernel/nmimgr/stats", st);
              },
              "nmimgr is latched"},
          Row{"no record nonce",
              [](FakeMachine& m) { m.Write("/sys/kernel/nmimgr/record", ""); },
              "cannot read the record's nonce"},
      }));
  CAPTURE(what);
  FakeMachine m;
  m.ReadyKdumpTools();
  AddTestTrigger(m);
  mutate(m);
  TestRun r = RunTestCommand(m, true);
  INFO(r.out << r.err);
  CHECK(r.status == 1);
  CHECK(r.out.find("not crashing") != std::string::npos);
  CHECK(r.out.find(says) != std::string::npos);
  CHECK(ReadText(m.Path("/sys/kernel/nmimgr/test")).empty());
  CHECK_FALSE(fs::exists(m.Path(ctl::kTestPending)));
}

TEST_CASE("test needs nmimgr loaded with its test trigger",
          "[unit][ctl][test]") {
  FakeMachine m;
  m.ReadyKdumpTools();
  SECTION("a module without /sys/kernel/nmimgr/test") {
    TestRun r = RunTestCommand(m, true);
    CHECK(r.status == 2);
    CHECK(r.err.find("update nmimgr-dkms") != std::string::npos);
  }
  SECTION("no module") {
    m.Remove("/sys/module/nmimgr");
    TestRun r = RunTestCommand(m, true);
    CHECK(r.status == 2);
    CHECK(r.err.find("nmimgr is not loaded") != std::string::npos);
  }
  CHECK_FALSE(fs::exists(m.Path(ctl::kTestPending)));
}

TEST_CASE(
    "test with --yes-crash-this-machine writes crash, and says what the "
    "policy did when the machine lives on",
    "[unit][ctl][test]") {
  FakeMachine m;
  m.ReadyKdumpTools();
  AddTestTrigger(m);
  TestRun r = RunTestCommand(m, true);
  INFO(r.out << r.err);
  CHECK(ReadText(m.Path("/sys/kernel/nmimgr/test")) == "crash");
  // a regular file took the write: the machine is still here, exit 3 with
  // the last event (kStats: a drop on code 0x00) and what to change
  CHECK(r.status == 3);
  CHECK(r.out.find("did not crash: nmimgr took action drop on code 0x00") !=
        std::string::npos);
  CHECK(r.out.find("nmimgrctl set --panic") != std::string::npos);
  CHECK_FALSE(fs::exists(m.Path(ctl::kTestPending)));
}

TEST_CASE(
    "DumpsOfRecord takes the dumps whose record or panic line carry the "
    "nonce, complete first",
    "[unit][ctl][test]") {
  auto report = nlohmann::json::parse(R"({"dumps": [
    {"path": "a", "verdict": "incomplete",
     "trigger": {"record": {"nonce": "0123456789abcdef"}}},
    {"path": "b", "verdict": "complete",
     "trigger": {"record": null, "panic_line": {"record": "0123456789abcdef"}}},
    {"path": "c", "verdict": "complete",
     "trigger": {"record": {"nonce": "fedcba9876543210"}}},
    {"path": "d", "verdict": "complete"}
  ]})");
  auto mine = ctl::DumpsOfRecord(report, kNonceHex);
  REQUIRE(mine.size() == 2);
  CHECK(mine[0]["path"] == "b");
  CHECK(mine[1]["path"] == "a");
  CHECK(ctl::DumpsOfRecord(report, "1111111111111111").empty());
}

TEST_CASE("test --report finds the test's dump by its nonce after the reboot",
          "[unit][ctl][test]") {
  FakeMachine m;
  m.ReadyKdumpTools();
  AddTestTrigger(m);
  const std::string earlier = "6c5d2ab0-0000-4000-8000-000000000000";

  SECTION("nothing pending") {
    TestRun r = RunTestCommand(m, false, true);
    CHECK(r.status == 2);
    CHECK(r.out.find("no nmimgrctl test is pending") != std::string::npos);
  }
  SECTION("pending, but this is still the boot that started it") {
    PendingTest(m, "6c5d2ab0-0000-4000-8000-000000000001");
    TestRun r = RunTestCommand(m, false, true);
    CHECK(r.status == 2);
    CHECK(r.out.find("has not crashed this boot yet") != std::string::npos);
    CHECK(fs::exists(m.Path(ctl::kTestPending)));
  }
  SECTION("the test's dump, complete") {
    PendingTest(m, earlier);
    WriteDump(m, 0x0123456789abcdefull, true);
    TestRun r = RunTestCommand(m, false, true, true);
    INFO(r.out << r.err);
    CHECK(r.status == 0);
    CHECK(r.out.rfind("<6>nmimgrctl test started 2025-11-25T19:45:00Z: dump ",
                      0) == 0);
    CHECK(r.out.find(" complete, trigger nmimgr event 0x01 (raw 0x21, "
                     "unknown, cpu 1), the test's NMI") != std::string::npos);
    CHECK_FALSE(fs::exists(m.Path(ctl::kTestPending)));
    auto last = nlohmann::json::parse(ReadText(m.Path(ctl::kTestLast)));
    CHECK(last["result"] == "complete");
    CHECK(last["exit_status"] == 0);
    CHECK(last["nonce"] == kNonceHex);
    CHECK(last["trigger"]["test"] == true);
    // and the next run has nothing pending, but names the last result
    TestRun again = RunTestCommand(m, false, true);
    CHECK(again.status == 2);
    CHECK(again.out.find("the last one (started 2025-11-25T19:45:00Z): "
                         "complete") != std::string::npos);
  }
  SECTION("a cut dump of the test") {
    PendingTest(m, earlier);
    WriteDump(m, 0x0123456789abcdefull, true, false);
    TestRun r = RunTestCommand(m, false, true, true);
    INFO(r.out << r.err);
    CHECK(r.status == 1);
    CHECK(r.out.rfind("<4>", 0) == 0);
    // cut short of the record's page and the log: the dump cannot say it is
    // the test's, the report names it as the one written since
    CHECK(r.out.find("no dump in /var/crash carries its record") !=
          std::string::npos);
    CHECK(r.out.find("; the dump written since, /") != std::string::npos);
    CHECK(r.out.find(", is incomplete with trigger") != std::string::npos);
    auto last = nlohmann::json::parse(ReadText(m.Path(ctl::kTestLast)));
    CHECK(last["result"] == "incomplete");
    CHECK(last["dump_not_bound"] == true);
  }
  SECTION("a dump of another NMI, not the test's") {
    PendingTest(m, earlier);
    WriteDump(m, 0xfedcba9876543210ull, false);
    TestRun r = RunTestCommand(m, false, true);
    INFO(r.out << r.err);
    CHECK(r.status == 1);
    // another NMI's dump, written since: named, and not the test's
    CHECK(r.out.find("no dump in /var/crash carries its record "
                     "0123456789abcdef; the dump written since") !=
          std::string::npos);
    CHECK(r.out.find("is complete with trigger nmimgr event 0x01") !=
          std::string::npos);
    auto last = nlohmann::json::parse(ReadText(m.Path(ctl::kTestLast)));
    CHECK(last["result"] == "complete");
    CHECK(last["dump_not_bound"] == true);
    CHECK_FALSE(fs::exists(m.Path(ctl::kTestPending)));
  }
  SECTION("no dump at all") {
    PendingTest(m, earlier);
    TestRun r = RunTestCommand(m, false, true);
    CHECK(r.status == 1);
    CHECK(r.out.find("the capture kernel did not write one") !=
          std::string::npos);
    auto last = nlohmann::json::parse(ReadText(m.Path(ctl::kTestLast)));
    CHECK(last["result"] == "no dump");
    CHECK_FALSE(fs::exists(m.Path(ctl::kTestPending)));
  }
}
