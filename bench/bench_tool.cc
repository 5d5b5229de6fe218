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
//   nmimgr-bench index PATH
//       PATH.idx for a real kdump-compressed or ELF dump: the pages --deep
//       decodes, as the library's reader hands them out (makedumpfile's
//       shared zero page, which --deep checks once, left out)
//   nmimgr-bench decode PATH [zlib|libdeflate|isal]
//       decompresses every page listed in PATH.idx in one thread: zlib pages
//       with the codec named (default zlib's uncompress()), the others with
//       the library's DecodePage() (LZO, snappy, zstd; raw pages copied):
//       the baseline for --deep
//   nmimgr-bench verify PATH zlib|libdeflate|isal
//       decodes every page listed in PATH.idx with the codec named and with
//       zlib, and counts the pages where either fails or the two differ
//   nmimgr-bench transcode SRC DST snappy|zlib|lzo|zstd
//       DST: a kdump-compressed dump of SRC's pages (those in SRC.idx, read
//       through the library's reader) stored with the codec named, and
//       DST.idx; makedumpfile in Debian is built without snappy
//   nmimgr-bench kdumpfile PATH
//       reads every page listed in PATH.idx through libkdumpfile
//
// Both dumps are written by the test tree's dump builder
// (tools/tests/dump_builder.h); the sparse one, like test_scale.cc, takes
// the builder's headers and writes its large, mostly empty bitmaps in place.
#include <fcntl.h>
#include <fmt/format.h>
#include <isa-l/igzip_lib.h>
#include <libdeflate.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "codec.h"
#include "dump_builder.h"
#include "dump_open.h"

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

void WriteIdx(const std::string& path, const std::vector<IdxEntry>& idx) {
  Bytes out;
  for (const IdxEntry& e : idx) {
    uint8_t rec[24];
    PutLe(rec, e.pfn, 8);
    PutLe(rec + 8, e.offset, 8);
    PutLe(rec + 16, e.size, 4);
    PutLe(rec + 20, e.flags, 4);
    out.insert(out.end(), rec, rec + 24);
  }
  t::WriteFile(path + ".idx", out);
}

// Builds `spec` into PATH and PATH.idx (its pages in pfn order, where the
// builder laid them out); returns the dump's size.  Empties spec.pages.
uint64_t WriteIndexedKdump(const std::string& path, t::DumpSpec& spec) {
  t::Layout lay;
  Bytes dump = t::BuildKdump(spec, &lay);
  std::vector<IdxEntry> idx;
  size_t i = 0;
  for (const auto& [pfn, page] : spec.pages) {
    uint32_t size = static_cast<uint32_t>(lay.page_size[i]);
    idx.push_back(
        {pfn, lay.page_at[i], size, size < spec.page_size ? spec.codec : 0});
    ++i;
  }
  spec.pages.clear();  // the dump holds them now
  t::WriteFile(path, dump);
  WriteIdx(path, idx);
  return dump.size();
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
  uint64_t size = WriteIndexedKdump(path, spec);
  std::printf("%s: %llu pages, %llu bytes\n", path.c_str(),
              static_cast<unsigned long long>(npages),
              static_cast<unsigned long long>(size));
  return 0;
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

// One zlib page decoder: zlib's uncompress(), libdeflate or ISA-L's igzip,
// each checking the stream's Adler-32 as uncompress() does.
class Inflater {
 public:
  explicit Inflater(const std::string& name) : name_(name) {
    if (name == "libdeflate") {
      deflate_ = libdeflate_alloc_decompressor();
      if (!deflate_) throw std::runtime_error("libdeflate_alloc_decompressor");
    } else if (name != "zlib" && name != "isal") {
      throw std::runtime_error("zlib codec must be zlib, libdeflate or isal");
    }
  }
  ~Inflater() {
    if (deflate_) libdeflate_free_decompressor(deflate_);
  }
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;

  // True when `in` decodes to exactly out.size() bytes.
  bool operator()(std::span<const uint8_t> in, std::span<uint8_t> out) {
    if (deflate_) {
      size_t got = 0;
      return libdeflate_zlib_decompress(deflate_, in.data(), in.size(),
                                        out.data(), out.size(),
                                        &got) == LIBDEFLATE_SUCCESS &&
             got == out.size();
    }
    if (name_ == "isal") {
      isal_inflate_init(&isal_);
      isal_.crc_flag = ISAL_ZLIB;
      isal_.next_in = const_cast<uint8_t*>(in.data());
      isal_.avail_in = static_cast<uint32_t>(in.size());
      isal_.next_out = out.data();
      isal_.avail_out = static_cast<uint32_t>(out.size());
      return isal_inflate_stateless(&isal_) == ISAL_DECOMP_OK &&
             isal_.total_out == out.size();
    }
    uLongf len = out.size();
    return uncompress(out.data(), &len, in.data(), in.size()) == Z_OK &&
           len == out.size();
  }

 private:
  std::string name_;
  libdeflate_decompressor* deflate_ = nullptr;
  inflate_state isal_{};
};

// Decodes one indexed page into `out` (4 KiB): zlib pages through `zlib`,
// the others as the library does (codec.h).
bool DecodeEntry(const IdxEntry& e, std::span<const uint8_t> in,
                 std::span<uint8_t> out, Inflater& zlib) {
  if (e.flags == v::kDumpZlib) return zlib(in, out);
  return v::DecodePage(e.flags, in, out).empty();
}

// The stored bytes of every indexed page, read once, so that the timed loops
// measure decoding only.
struct Stored {
  std::vector<IdxEntry> idx;
  Bytes data;
  std::vector<uint64_t> at;  // each entry's start in `data`
};

Stored ReadStored(const std::string& path) {
  Stored s;
  s.idx = ReadIdx(path);
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw std::runtime_error("opening " + path);
  for (const IdxEntry& e : s.idx) {
    s.at.push_back(s.data.size());
    s.data.resize(s.data.size() + e.size);
    if (::pread(fd, &s.data[s.at.back()], e.size,
                static_cast<off_t>(e.offset)) != static_cast<ssize_t>(e.size))
      throw std::runtime_error("short read");
  }
  ::close(fd);
  return s;
}

int Decode(const std::string& path, const std::string& zlib_name) {
  Stored s = ReadStored(path);
  Inflater zlib(zlib_name);
  std::vector<uint8_t> out(4096);
  uint64_t sum = 0;
  auto t0 = Clock::now();
  for (size_t i = 0; i < s.idx.size(); ++i) {
    const IdxEntry& e = s.idx[i];
    if (!DecodeEntry(e, {&s.data[s.at[i]], e.size}, out, zlib))
      throw std::runtime_error(
          fmt::format("page at pfn {} does not decode", e.pfn));
    sum += out[e.pfn % 4096];
  }
  Report(s.idx.size(), s.data.size(), Since(t0));
  return sum == 0xffffffffffffffffull;  // keeps the loop from being elided
}

int Verify(const std::string& path, const std::string& zlib_name) {
  Stored s = ReadStored(path);
  Inflater zlib("zlib"), other(zlib_name);
  std::vector<uint8_t> want(4096), got(4096);
  uint64_t failed = 0, differ = 0;
  for (size_t i = 0; i < s.idx.size(); ++i) {
    const IdxEntry& e = s.idx[i];
    std::span<const uint8_t> in(&s.data[s.at[i]], e.size);
    bool a = DecodeEntry(e, in, want, zlib);
    bool b = DecodeEntry(e, in, got, other);
    failed += !a || !b;
    differ += a && b && want != got;
  }
  std::printf("pages=%zu failed=%llu differ=%llu\n", s.idx.size(),
              static_cast<unsigned long long>(failed),
              static_cast<unsigned long long>(differ));
  return failed || differ;
}

// Opens a dump file through the library's one way in (dump_open.h), after
// its structural walk; a dump with findings is no benchmark input.
struct Opened {
  v::OpenedDump dump;
  v::DumpReader& reader() { return *dump.reader; }
};

std::unique_ptr<Opened> OpenChecked(const std::string& path) {
  auto o = std::make_unique<Opened>();
  v::Findings findings;
  v::OpenDump(path, o->dump, findings);
  if (o->dump.reader) {
    v::DumpFacts facts;
    o->dump.reader->CheckStructure(facts, findings);
  }
  if (!o->dump.reader || !findings.all().empty())
    throw std::runtime_error(path + ": " +
                             (findings.all().empty()
                                  ? "no reader"
                                  : findings.all().front().message));
  return o;
}

int Index(const std::string& path) {
  std::unique_ptr<Opened> o = OpenChecked(path);
  if (!o->dump.outer.empty() || !o->dump.container.empty())
    throw std::runtime_error(path +
                             ": not a plain kdump-compressed or ELF file");
  std::vector<IdxEntry> idx;
  std::vector<v::PageJob> batch;
  while (o->reader().NextBatch(batch))
    for (const v::PageJob& j : batch)
      if (!j.lookahead && !j.zero_page && j.pfn_skew == 0)
        idx.push_back({j.pfn, j.offset, j.size, j.flags});
  WriteIdx(path, idx);
  std::printf("pages=%zu\n", idx.size());
  return 0;
}

int Transcode(const std::string& from, const std::string& to,
              const std::string& codec_name) {
  static const std::map<std::string, uint32_t> kCodecs = {
      {"zlib", v::kDumpZlib},
      {"lzo", v::kDumpLzo},
      {"snappy", v::kDumpSnappy},
      {"zstd", v::kDumpZstd}};
  auto codec = kCodecs.find(codec_name);
  if (codec == kCodecs.end()) throw std::runtime_error("unknown codec");
  std::unique_ptr<Opened> o = OpenChecked(from);
  t::DumpSpec spec;
  spec.codec = codec->second;
  for (const IdxEntry& e : ReadIdx(from)) {
    Bytes page(4096);
    if (!o->reader().ReadPhysical(e.pfn * 4096, page))
      throw std::runtime_error(fmt::format("pfn {} is not readable", e.pfn));
    spec.max_mapnr = std::max(spec.max_mapnr, e.pfn + 1);
    spec.pages[e.pfn] = std::move(page);
  }
  const size_t pages = spec.pages.size();
  WriteIndexedKdump(to, spec);
  std::printf("pages=%zu\n", pages);
  return 0;
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
    if (cmd == "index" && argc == 3) return Index(argv[2]);
    if (cmd == "decode" && (argc == 3 || argc == 4))
      return Decode(argv[2], argc == 4 ? argv[3] : "zlib");
    if (cmd == "verify" && argc == 4) return Verify(argv[2], argv[3]);
    if (cmd == "transcode" && argc == 5)
      return Transcode(argv[2], argv[3], argv[4]);
    if (cmd == "kdumpfile" && argc == 3) return Kdumpfile(argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nmimgr-bench: %s\n", e.what());
    return 1;
  }
  std::fprintf(
      stderr,
      "usage: nmimgr-bench sparse PATH | fleet PATH GIB | dump PATH "
      "zlib|lzo MIB | "
      "spawn CMD [ARG...] | index PATH | decode PATH [zlib|libdeflate|isal] "
      "| verify PATH zlib|libdeflate|isal | transcode SRC DST CODEC "
      "| kdumpfile PATH\n");
  return 2;
}
