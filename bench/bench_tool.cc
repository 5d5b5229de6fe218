// SPDX-License-Identifier: GPL-2.0-or-later
//
// nmimgr-bench: the pieces bench/run.sh puts together.
//
//   nmimgr-bench sparse PATH
//       a kdump-compressed dump describing 1 TiB of RAM (2^28 pfns), sparse
//       on disk: a dumped page every GiB, an excluded one next to it
//   nmimgr-bench dump PATH zlib|lzo MIB
//       a dump of MIB MiB of compressible page data, and PATH.idx (pfn,
//       offset, size, flags per page) for the loops below
//   nmimgr-bench fleet PATH GIB
//       a dump describing 1 TiB of RAM (2^28 pfns) as a large server's
//       capture writes it: bitmaps and descriptors in full, GIB GiB of
//       dumped pages, a module area and a bound trigger record
//   nmimgr-bench spawn CMD [ARG...]
//       runs CMD (stdout to /dev/null); prints its wall time and peak RSS
//       (ru_maxrss from wait4) and exit status
//   nmimgr-bench decode PATH
//       decompresses every page listed in PATH.idx in one thread with zlib's
//       uncompress() or lzo1x_decompress_safe(): the baseline for --deep
//   nmimgr-bench kdumpfile PATH
//       reads every page listed in PATH.idx through libkdumpfile
//
// Both dumps are written by the test tree's dump builder
// (tools/tests/dump_builder.h); the sparse one, like test_scale.cc, takes
// the builder's headers and writes its large, mostly empty bitmaps in place.
#include <fcntl.h>
#include <fmt/format.h>
#include <lzo/lzo1x.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "codec.h"
#include "dump_builder.h"

#ifdef NMIMGR_BENCH_KDUMPFILE
#include <libkdumpfile/kdumpfile.h>
#endif

namespace t = nmimgr::testing;
namespace v = nmimgr::vmcore;
using t::Bytes;

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void PutLe(uint8_t* p, uint64_t val, int n) {
  for (int i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(val >> (8 * i));
}

int Sparse(const std::string& path) {
  t::WriteSparseKdump1TiB(path);
  return 0;
}

// Page contents in the proportions of a busy kernel's memory, roughly:
// log-like text, arrays of structures with pointers and counters, mostly
// empty pages, byte code, and a tenth incompressible.  Never all zero (those
// would all go to the shared zero page).
Bytes MakePage(uint64_t pfn, std::mt19937_64& rng) {
  static const char* const kWords[] = {
      "kernel", "page",  "memory", "device", "driver",       "irq",     "cpu",
      "task",   "ext4",  "nvme",   "eth0",   "link",         "up",      "down",
      "error",  "mount", "usb",    "pci",    "0000:00:1f.2", "systemd", "audit",
      "=",      "[",     "]",      ":",      "nmimgr"};
  Bytes p(4096, 0);
  switch (pfn * 0x9e3779b97f4a7c15ull >> 60) {
    case 0 ... 4: {  // text
      size_t at = 0;
      while (at < 4000) {
        std::string line =
            fmt::format("[{:5}.{:06}] ", rng() % 100000, rng() % 1000000);
        for (int w = 0; w < 6 + static_cast<int>(rng() % 6); ++w)
          line += std::string(kWords[rng() % std::size(kWords)]) + " ";
        line.back() = '\n';
        std::memcpy(&p[at], line.data(), std::min(line.size(), 4096 - at));
        at += line.size();
      }
      break;
    }
    case 5 ... 10: {  // structures: pointers, counters, flags
      uint64_t base = 0xffff888100000000ull + (rng() % 0x100000) * 4096;
      for (size_t s = 0; s < 64; ++s) {
        PutLe(&p[s * 64], base + s * 64, 8);
        PutLe(&p[s * 64 + 8], base + (rng() % 64) * 64, 8);
        PutLe(&p[s * 64 + 16], rng() % 1000, 4);
        PutLe(&p[s * 64 + 20], s % 3 ? 0x1 : 0x11, 4);
        PutLe(&p[s * 64 + 32], rng() % 3 ? 0 : rng(), 8);
      }
      break;
    }
    case 11 ... 12:  // mostly empty
      for (int i = 0; i < 8; ++i) PutLe(&p[(rng() % 512) * 8], rng(), 8);
      break;
    case 13 ... 14:  // byte code: a small alphabet
      for (auto& b : p) {
        static const uint8_t kOps[] = {0x48, 0x89, 0xe5, 0x0f,
                                       0x1f, 0x44, 0xc3, 0x8b};
        b = static_cast<uint8_t>(kOps[rng() % 8] + (rng() % 16 ? 0 : rng()));
      }
      break;
    default:  // incompressible
      for (size_t i = 0; i < 4096; i += 8) PutLe(&p[i], rng(), 8);
  }
  return p;
}

int Dump(const std::string& path, const std::string& codec_name, uint64_t mib) {
  uint32_t codec = codec_name == "zlib"  ? v::kDumpZlib
                   : codec_name == "lzo" ? v::kDumpLzo
                                         : 0;
  if (!codec) throw std::runtime_error("codec must be zlib or lzo");
  const uint64_t npages = mib * 256;
  t::DumpSpec spec;
  spec.codec = codec;
  spec.max_mapnr = npages + 1024;
  std::mt19937_64 rng(42);
  // pfns from 256 on; a hole of excluded pages every 4096 pages.
  for (uint64_t i = 0, pfn = 256; i < npages; ++pfn) {
    if (pfn % 4096 < 8) {
      spec.excluded.insert(pfn);
      continue;
    }
    spec.pages[pfn] = MakePage(pfn, rng);
    ++i;
  }
  t::Layout lay;
  Bytes dump = t::BuildKdump(spec, &lay);
  spec.pages.clear();
  t::WriteFile(path, dump);
  // The index: pfn, offset, stored size, codec flags, 24 bytes per page.
  Bytes idx;
  size_t i = 0;
  for (uint64_t pfn = 256; i < lay.page_at.size(); ++pfn) {
    if (pfn % 4096 < 8) continue;
    uint8_t rec[24];
    PutLe(rec, pfn, 8);
    PutLe(rec + 8, lay.page_at[i], 8);
    PutLe(rec + 16, lay.page_size[i], 4);
    PutLe(rec + 20, lay.page_size[i] < 4096 ? codec : 0, 4);
    idx.insert(idx.end(), rec, rec + 24);
    ++i;
  }
  t::WriteFile(path + ".idx", idx);
  std::printf("%s: %llu pages, %llu bytes\n", path.c_str(),
              static_cast<unsigned long long>(npages),
              static_cast<unsigned long long>(dump.size()));
  return 0;
}

struct IdxEntry {
  uint64_t pfn, offset;
  uint32_t size, flags;
};

std::vector<IdxEntry> ReadIdx(const std::string& path) {
  Bytes b = t::ReadFile(path + ".idx");
  std::vector<IdxEntry> out(b.size() / 24);
  for (size_t i = 0; i < out.size(); ++i) {
    std::memcpy(&out[i].pfn, &b[i * 24], 8);
    std::memcpy(&out[i].offset, &b[i * 24 + 8], 8);
    std::memcpy(&out[i].size, &b[i * 24 + 16], 4);
    std::memcpy(&out[i].flags, &b[i * 24 + 20], 4);
  }
  return out;
}

int Spawn(char** argv) {
  auto t0 = Clock::now();
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork");
  if (pid == 0) {
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, STDOUT_FILENO);
    ::execvp(argv[0], argv);
    std::perror(argv[0]);
    ::_exit(127);
  }
  int status = 0;
  struct rusage ru;
  if (::wait4(pid, &status, 0, &ru) != pid) throw std::runtime_error("wait4");
  double wall = Since(t0);
  std::printf("wall_s=%.3f maxrss_kib=%ld status=%d\n", wall, ru.ru_maxrss,
              WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  return 0;
}

// Pages and bytes per second, as "pages_per_s=... mb_per_s=..." (MB of
// decoded page data, 10^6 bytes) and the file bytes read.
void Report(uint64_t pages, uint64_t file_bytes, double secs) {
  std::printf("pages=%llu secs=%.3f mb_per_s=%.1f file_mb_per_s=%.1f\n",
              static_cast<unsigned long long>(pages), secs,
              pages * 4096.0 / 1e6 / secs, file_bytes / 1e6 / secs);
}

int Decode(const std::string& path) {
  std::vector<IdxEntry> idx = ReadIdx(path);
  if (lzo_init() != LZO_E_OK) throw std::runtime_error("lzo_init");
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw std::runtime_error("opening " + path);
  std::vector<uint8_t> in(4096), out(4096);
  uint64_t sum = 0, file_bytes = 0;
  auto t0 = Clock::now();
  for (const IdxEntry& e : idx) {
    if (::pread(fd, in.data(), e.size, static_cast<off_t>(e.offset)) !=
        static_cast<ssize_t>(e.size))
      throw std::runtime_error("short read");
    file_bytes += e.size;
    if (e.flags == v::kDumpZlib) {
      uLongf len = out.size();
      if (uncompress(out.data(), &len, in.data(), e.size) != Z_OK ||
          len != 4096)
        throw std::runtime_error("zlib page does not decode");
    } else if (e.flags == v::kDumpLzo) {
      lzo_uint len = out.size();
      if (lzo1x_decompress_safe(in.data(), e.size, out.data(), &len, nullptr) !=
              LZO_E_OK ||
          len != 4096)
        throw std::runtime_error("lzo page does not decode");
    } else {
      std::memcpy(out.data(), in.data(), 4096);
    }
    sum += out[e.pfn % 4096];
  }
  double secs = Since(t0);
  ::close(fd);
  Report(idx.size(), file_bytes, secs);
  return sum == 0xffffffffffffffffull;  // keeps the loop from being elided
}

int Kdumpfile(const std::string& path) {
#ifdef NMIMGR_BENCH_KDUMPFILE
  std::vector<IdxEntry> idx = ReadIdx(path);
  auto t0 = Clock::now();
  int fd = ::open(path.c_str(), O_RDONLY);
  kdump_ctx_t* ctx = kdump_new();
  if (fd < 0 || !ctx ||
      kdump_set_number_attr(ctx, KDUMP_ATTR_FILE_FD, fd) != KDUMP_OK ||
      kdump_set_string_attr(ctx, KDUMP_ATTR_OSTYPE, "linux") != KDUMP_OK) {
    std::fprintf(stderr, "libkdumpfile: %s\n", ctx ? kdump_get_err(ctx) : "");
    return 1;
  }
  double open_secs = Since(t0);
  std::vector<uint8_t> buf(4096);
  uint64_t file_bytes = 0, sum = 0;
  t0 = Clock::now();
  for (const IdxEntry& e : idx) {
    size_t len = buf.size();
    if (kdump_read(ctx, KDUMP_KPHYSADDR, e.pfn * 4096, buf.data(), &len) !=
            KDUMP_OK ||
        len != buf.size()) {
      std::fprintf(stderr, "libkdumpfile: pfn %llu: %s\n",
                   static_cast<unsigned long long>(e.pfn), kdump_get_err(ctx));
      return 1;
    }
    file_bytes += e.size;
    sum += buf[e.pfn % 4096];
  }
  double secs = Since(t0);
  kdump_free(ctx);
  ::close(fd);
  std::printf("open_s=%.3f ", open_secs);
  Report(idx.size(), file_bytes, secs);
  return sum == 0xffffffffffffffffull;
#else
  (void)path;
  std::fprintf(stderr, "nmimgr-bench: built without libkdumpfile\n");
  return 3;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  try {
    if (cmd == "sparse" && argc == 3) return Sparse(argv[2]);
    if (cmd == "dump" && argc == 5)
      return Dump(argv[2], argv[3], std::stoull(argv[4]));
    if (cmd == "fleet" && argc == 4) {
      t::WriteFleetKdump(argv[2], t::ServerSpec(1ull << 28),
                         std::stoull(argv[3]) << 18);
      return 0;
    }
    if (cmd == "spawn" && argc >= 3) return Spawn(argv + 2);
    if (cmd == "decode" && argc == 3) return Decode(argv[2]);
    if (cmd == "kdumpfile" && argc == 3) return Kdumpfile(argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nmimgr-bench: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr,
               "usage: nmimgr-bench sparse PATH | fleet PATH GIB | dump PATH "
               "zlib|lzo MIB | "
               "spawn CMD [ARG...] | decode PATH | kdumpfile PATH\n");
  return 2;
}
