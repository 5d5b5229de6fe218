// SPDX-License-Identifier: GPL-2.0-or-later
//
// Cross-checks the readers against libkdumpfile: every page our engine
// decodes must read the same through libkdumpfile.  On builder dumps always;
// on real dumps (VM lab output) when NMIMGR_REAL_DUMPS names them: dump
// files, dump directories or crash roots, separated by white space or
// colons (a colon inside an existing path, as in kdumpctl's directory names,
// is kept).  libkdumpfile 0.5.1 cannot open the
// flattened format, so only plain ELF and kdump-compressed files are
// compared.
#include <fcntl.h>
#include <libkdumpfile/kdumpfile.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <sstream>

#include "codec.h"
#include "discover.h"
#include "kernel_log.h"
#include "scan.h"
#include "test_support.h"

using namespace nmimgr::testing;
namespace v = nmimgr::vmcore;

namespace {

class Collector : public v::PageVisitor {
 public:
  explicit Collector(size_t limit) : limit_(limit) {}
  void Visit(uint64_t, uint64_t pfn, uint64_t, std::span<const uint8_t> page,
             std::span<const uint8_t>) override {
    std::lock_guard lock(mu_);
    if (pages.size() < limit_) pages[pfn] = Bytes(page.begin(), page.end());
  }
  std::map<uint64_t, Bytes> pages;

 private:
  std::mutex mu_;
  size_t limit_;
};

struct Kdumpfile {
  explicit Kdumpfile(const std::string& path) {
    fd = ::open(path.c_str(), O_RDONLY);
    ctx = kdump_new();
    status = kdump_set_number_attr(ctx, KDUMP_ATTR_FILE_FD, fd);
    // Physical reads need the address translation set up for Linux.
    if (status == KDUMP_OK)
      status = kdump_set_string_attr(ctx, KDUMP_ATTR_OSTYPE, "linux");
  }
  ~Kdumpfile() {
    kdump_free(ctx);
    ::close(fd);
  }
  int fd;
  kdump_ctx_t* ctx;
  kdump_status status;
};

// Compares up to `limit` pages of `path`; returns the number compared.
size_t CrossCheck(const std::string& path, size_t limit) {
  v::FileSource src(path);
  std::unique_ptr<v::DumpReader> reader = v::ProbeKdump(src) == v::Probe::kMine
                                              ? v::OpenKdumpReader(src)
                                              : v::OpenElfReader(src);
  v::DumpFacts facts;
  v::Findings findings;
  reader->CheckStructure(facts, findings);
  Collector c(limit);
  v::ScanOptions so;
  so.threads = 2;
  so.deep = true;
  v::ScanPages(*reader, facts.page_size, c, so, findings);

  Kdumpfile k(path);
  INFO(path << ": " << (k.status == KDUMP_OK ? "" : kdump_get_err(k.ctx)));
  REQUIRE(k.status == KDUMP_OK);
  const char* release = nullptr;
  if (kdump_get_string_attr(k.ctx, "linux.uts.release", &release) == KDUMP_OK &&
      release && !facts.kernel_release.empty())
    CHECK(facts.kernel_release == release);
  size_t compared = 0;
  Bytes buf(facts.page_size);
  for (const auto& [pfn, data] : c.pages) {
    size_t len = buf.size();
    kdump_status st = kdump_read(k.ctx, KDUMP_KPHYSADDR, pfn * facts.page_size,
                                 buf.data(), &len);
    CAPTURE(pfn);
    INFO((st == KDUMP_OK ? "" : kdump_get_err(k.ctx)));
    REQUIRE(st == KDUMP_OK);
    REQUIRE(len == buf.size());
    CHECK(buf == data);
    ++compared;
  }
  return compared;
}

// Plain ELF and kdump-compressed files named by NMIMGR_REAL_DUMPS.
std::vector<std::string> RealDumps() {
  std::vector<std::string> out;
  const char* env = std::getenv("NMIMGR_REAL_DUMPS");
  if (!env) return out;
  // White space separates; so does a colon, unless the colon is part of an
  // existing path (kdumpctl's directory names).
  std::istringstream in(env);
  std::vector<std::string> paths;
  for (std::string tok; in >> tok;) {
    if (std::filesystem::exists(tok)) {
      paths.push_back(tok);
      continue;
    }
    std::istringstream parts(tok);
    for (std::string p; std::getline(parts, p, ':');)
      if (!p.empty()) paths.push_back(p);
  }
  for (const auto& d : v::Discover(paths).dumps) {
    if (d.split) continue;
    v::FileSource src(d.files.front());
    if (v::ProbeKdump(src) == v::Probe::kMine ||
        v::ProbeElf(src) == v::Probe::kMine)
      out.push_back(d.files.front());
  }
  return out;
}

}  // namespace

TEST_CASE("reads the same pages as libkdumpfile from builder dumps",
          "[unit][libkdumpfile]") {
  auto [name, codec, elf] = GENERATE(table<std::string, uint32_t, bool>({
      {"raw", 0, false},
      {"zlib", v::kDumpZlib, false},
      {"lzo", v::kDumpLzo, false},
      {"snappy", v::kDumpSnappy, false},
      {"zstd", v::kDumpZstd, false},
      {"elf", 0, true},
  }));
  CAPTURE(name);
  DumpSpec spec = SampleSpec(codec);
  TempDir tmp;
  WriteFile(tmp / "vmcore", elf ? BuildElf(spec) : BuildKdump(spec));
  CHECK(CrossCheck(tmp / "vmcore", 1000) == spec.pages.size() - (elf ? 0 : 2));
}

TEST_CASE("reads the same pages as libkdumpfile from real dumps",
          "[unit][libkdumpfile][real]") {
  std::vector<std::string> dumps = RealDumps();
  if (dumps.empty()) {
    SUCCEED("NMIMGR_REAL_DUMPS names no plain dump");
    return;
  }
  for (const std::string& path : dumps) {
    CAPTURE(path);
    CHECK(CrossCheck(path, 4000) > 0);
  }
}

TEST_CASE(
    "reads the same kernel log as makedumpfile --dump-dmesg from real "
    "dumps",
    "[unit][kernel-log][real]") {
  std::vector<std::string> dumps = RealDumps();
  if (dumps.empty() || std::system("command -v makedumpfile >/dev/null") != 0) {
    SUCCEED("NMIMGR_REAL_DUMPS names no plain dump, or no makedumpfile");
    return;
  }
  for (const std::string& path : dumps) {
    CAPTURE(path);
    TempDir tmp;
    std::string cmd = "makedumpfile --dump-dmesg '" + path + "' '" +
                      (tmp / "dmesg") + "' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) continue;  // e.g. a split part
    Bytes want = ReadFile(tmp / "dmesg");
    v::FileSource src(path);
    std::unique_ptr<v::DumpReader> reader =
        v::ProbeKdump(src) == v::Probe::kMine ? v::OpenKdumpReader(src)
                                              : v::OpenElfReader(src);
    v::DumpFacts facts;
    v::Findings findings;
    reader->CheckStructure(facts, findings);
    std::string why;
    auto log = v::ReadKernelLog(*reader, facts, &why);
    INFO(why);
    REQUIRE(log);
    CHECK(log->text == std::string(want.begin(), want.end()));
  }
}

TEST_CASE("writes sample builder dumps to NMIMGR_SAMPLE_DIR for inspection",
          "[.][samples]") {
  const char* dir = std::getenv("NMIMGR_SAMPLE_DIR");
  if (!dir) return;
  DumpSpec spec = SampleSpec(v::kDumpZlib);
  WriteFile(std::string(dir) + "/sample.kdump", BuildKdump(spec));
  WriteFile(std::string(dir) + "/sample.elf", BuildElf(spec));
  WriteFile(std::string(dir) + "/sample.flat", Flatten(BuildKdump(spec)));
}
