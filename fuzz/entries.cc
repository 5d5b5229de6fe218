// SPDX-License-Identifier: GPL-2.0-or-later
#include "entries.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "check.h"
#include "checked.h"
#include "dump_open.h"
#include "findings.h"
#include "flattened.h"
#include "kdump_split.h"
#include "kernel_log.h"
#include "outer.h"
#include "reader.h"
#include "scan.h"
#include "source.h"
#include "trigger.h"

namespace nmimgr::fuzz {
namespace {

namespace v = nmimgr::vmcore;
using Bytes = std::vector<uint8_t>;

// The per-reader targets decode at most this many pages (--deep): a few
// KiB of input can describe a huge sparse dump, and a run that only walks
// zeros finds nothing but timeouts.  The "dump" target has no such limit:
// it is the CLI's path, hangs included.
constexpr uint64_t kMaxScanPages = 4096;

// Hands out the batches of `inner` up to kMaxScanPages pages.  Counts what
// NextBatch hands out rather than trusting PageCount().
class CappedReader : public v::DumpReader {
 public:
  explicit CappedReader(v::DumpReader& inner) : inner_(inner) {}
  void CheckStructure(v::DumpFacts& facts, v::Findings& findings) override {
    inner_.CheckStructure(facts, findings);
  }
  bool NextBatch(std::vector<v::PageJob>& batch) override {
    if (handed_ >= kMaxScanPages || !inner_.NextBatch(batch)) {
      batch.clear();
      return false;
    }
    handed_ += batch.size();
    return true;
  }
  uint64_t PageCount() const override { return inner_.PageCount(); }
  bool ReadPhysical(uint64_t paddr, std::span<uint8_t> out) override {
    return inner_.ReadPhysical(paddr, out);
  }

 private:
  v::DumpReader& inner_;
  uint64_t handed_ = 0;
};

Bytes Copy(const uint8_t* data, size_t size) {
  return Bytes(data, data + size);
}

// What CheckInto does after opening a reader: structure, kernel log, page
// scan for the trigger.
void RunReader(v::DumpReader& inner) {
  CappedReader reader(inner);
  v::DumpFacts facts;
  v::Findings findings;
  reader.CheckStructure(facts, findings);
  if (!facts.vmcoreinfo.empty()) {
    std::string why;
    v::ReadKernelLog(reader, facts, &why);
  }
  v::TriggerScanner scanner(/*want_log=*/true);
  v::ScanOptions so;
  so.deep = true;
  so.threads = 1;
  v::CatchErrors(findings, v::Catch::kDataErrors, {}, [&] {
    v::ScanPages(reader, facts.page_size, scanner, so, findings);
  });
  scanner.records();
  scanner.memory_panic_line();
  scanner.memory_panic_message();
  v::VerdictOf(findings);
}

template <typename F>
void Guarded(F&& f) {
  // The errors CheckDump turns into findings (v::CatchErrors, as CheckDump
  // does); anything else escapes.
  v::Findings ignored;
  v::CatchErrors(ignored, v::Catch::kAllErrors, {}, f);
}

// Opens the input as the check opens a dump file (v::OpenDump), with only
// the reader of `format` when one is named, and runs the reader that takes
// it.  Returns what was opened, for a target that looks further into it.
v::OpenedDump OpenAndRun(const uint8_t* data, size_t size,
                         std::string_view format = {}) {
  v::OpenedDump dump;
  v::Findings findings;
  v::OpenDump(std::make_unique<v::MemorySource>(Copy(data, size)), "<fuzz>",
              dump, findings, {.format = format});
  if (dump.reader) RunReader(*dump.reader);
  return dump;
}

void FuzzElf(const uint8_t* data, size_t size) {
  Guarded([&] { OpenAndRun(data, size, "elf64"); });
}

void FuzzKdump(const uint8_t* data, size_t size) {
  Guarded([&] { OpenAndRun(data, size, "kdump-compressed"); });
  v::MemorySource src(Copy(data, size));
  Guarded([&] { v::ReadSplitIdentity(src); });
}

void FuzzFlattened(const uint8_t* data, size_t size) {
  {
    v::MemorySource file(Copy(data, size));
    if (v::ProbeFlattened(file) != v::Probe::kMine) return;
  }
  Guarded([&] {
    v::OpenedDump dump = OpenAndRun(data, size);
    if (!dump.flat || dump.flat->Size() == 0) return;
    // Reads across record boundaries and holes.
    uint8_t buf[1024];
    for (uint64_t off :
         {uint64_t{0}, dump.flat->Size() / 2, dump.flat->Size() - 1})
      dump.flat->ReadAt(off, buf);
  });
}

void FuzzSplit(const uint8_t* data, size_t size) {
  if (size == 0) return;
  size_t nparts = data[0] % 4 + 1, pos = 1;
  std::vector<std::unique_ptr<v::Source>> parts;
  std::vector<std::string> names;
  for (size_t i = 0; i < nparts; ++i) {
    uint32_t len = 0;
    if (size - pos >= 4) {
      len = static_cast<uint32_t>(data[pos]) | data[pos + 1] << 8 |
            data[pos + 2] << 16 | static_cast<uint32_t>(data[pos + 3]) << 24;
      pos += 4;
    } else {
      pos = size;
    }
    len = static_cast<uint32_t>(std::min<size_t>(len, size - pos));
    parts.push_back(std::make_unique<v::MemorySource>(
        Copy(data + pos, len), "part" + std::to_string(i)));
    names.push_back(parts.back()->Name());
    pos += len;
  }
  Guarded([&] {
    for (auto& p : parts) v::ReadSplitIdentity(*p);
    v::OpenedDump dump;
    v::OpenSplitDump(std::move(parts), std::move(names), dump);
    RunReader(*dump.reader);
  });
}

void FuzzOuter(const uint8_t* data, size_t size) {
  {
    v::MemorySource raw(Copy(data, size));
    if (v::DetectOuter(raw) == v::OuterKind::kNone) return;
  }
  Guarded([&] {
    v::OpenedDump dump = OpenAndRun(data, size);
    v::StreamSource* s = dump.streams.front();
    if (s->NotADump()) return;  // decoded no further, as the check does
    uint64_t total = s->Size();
    s->Truncated();
    s->TruncationMessage();
    s->TrailingData();
    // Forward, then backward (a restart of the decoder), as readers do.
    Bytes buf(4096);
    for (uint64_t off :
         {total > 0 ? total - 1 : 0, uint64_t{0}, total / 2, uint64_t{1} << 20})
      s->ReadAt(off, buf);
  });
}

// Physical memory from the input, for the printk reader alone.
class MemoryReader : public v::DumpReader {
 public:
  explicit MemoryReader(std::span<const uint8_t> mem) : mem_(mem) {}
  void CheckStructure(v::DumpFacts&, v::Findings&) override {}
  bool NextBatch(std::vector<v::PageJob>& batch) override {
    batch.clear();
    return false;
  }
  uint64_t PageCount() const override { return 0; }
  bool ReadPhysical(uint64_t paddr, std::span<uint8_t> out) override {
    if (paddr < kKernelLogMemBase) return false;
    uint64_t at = paddr - kKernelLogMemBase;
    if (at > mem_.size() || out.size() > mem_.size() - at) return false;
    std::memcpy(out.data(), mem_.data() + at, out.size());
    return true;
  }

 private:
  std::span<const uint8_t> mem_;
};

void FuzzKernelLog(const uint8_t* data, size_t size) {
  const uint8_t* nul = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  if (!nul) return;
  v::DumpFacts facts;
  facts.machine = "x86_64";
  facts.vmcoreinfo.assign(reinterpret_cast<const char*>(data),
                          static_cast<size_t>(nul - data));
  // A copy, so that ASan sees reads past the end of the memory.
  Bytes mem(nul + 1, data + size);
  MemoryReader reader(mem);
  std::string why;
  if (auto log = v::ReadKernelLog(reader, facts, &why))
    v::ScanKernelLog(log->text);
}

// The input as raw 4 KiB pages at pfn 0, 1, ..., for the page engine and
// the trigger scanner.
class PagesReader : public v::DumpReader {
 public:
  explicit PagesReader(v::Source& src) : src_(src) {}
  void CheckStructure(v::DumpFacts&, v::Findings&) override {}
  bool NextBatch(std::vector<v::PageJob>& batch) override {
    batch.clear();
    uint64_t size = src_.Size();
    while (batch.size() < 4 && next_ * 4096 < size) {
      v::PageJob j;
      j.src = &src_;
      j.pfn = j.index = next_;
      j.offset = next_ * 4096;
      j.size = static_cast<uint32_t>(std::min<uint64_t>(4096, size - j.offset));
      batch.push_back(j);
      ++next_;
    }
    if (!batch.empty() && next_ * 4096 < size) {
      v::PageJob look = batch.back();
      look.pfn = look.index = next_;
      look.offset = next_ * 4096;
      look.size =
          static_cast<uint32_t>(std::min<uint64_t>(4096, size - look.offset));
      look.lookahead = true;
      batch.push_back(look);
    }
    return !batch.empty();
  }
  uint64_t PageCount() const override { return (src_.Size() + 4095) / 4096; }
  bool ReadPhysical(uint64_t, std::span<uint8_t>) override { return false; }

 private:
  v::Source& src_;
  uint64_t next_ = 0;
};

void FuzzTrigger(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  v::ScanKernelLog(text);
  if (auto p = v::ParsePanicLine(text)) v::FormatPanicLine(*p);
  v::ParseRecord(std::span<const uint8_t>(data, size));
  v::MemorySource src(Copy(data, size));
  for (bool deep : {false, true}) {
    PagesReader r(src);
    v::TriggerScanner scanner(/*want_log=*/true);
    v::ScanOptions so;
    so.deep = deep;
    so.threads = 1;
    v::Findings findings;
    Guarded([&] { v::ScanPages(r, 4096, scanner, so, findings); });
    scanner.records();
    scanner.memory_panic_line();
    scanner.memory_panic_message();
  }
}

// The CLI's path: a dump file (a memfd), CheckDump with --deep, and the
// JSON output.
void FuzzDump(const uint8_t* data, size_t size) {
  int fd = ::memfd_create("nmimgr-fuzz", MFD_CLOEXEC);
  if (fd < 0) return;
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  v::DumpSet set;
  set.dir = "/nonexistent";
  set.files = {"/proc/self/fd/" + std::to_string(fd)};
  set.layout = "unknown";
  v::CheckOptions opts;
  opts.deep = true;
  opts.threads = 1;
  v::DumpResult r = v::CheckDump(set, opts);
  v::DumpToJson(r).dump(2);
  ::close(fd);
}

}  // namespace

const std::vector<Target>& Targets() {
  static const std::vector<Target> targets = {
      {"elf", FuzzElf, "ELF64 reader"},
      {"kdump", FuzzKdump, "kdump-compressed reader"},
      {"flattened", FuzzFlattened, "flattened container and the dump in it"},
      {"split", FuzzSplit, "split-set reader over 1-4 parts"},
      {"outer", FuzzOuter, "xz/gzip/bzip2/lz4 stream and the dump in it"},
      {"kernel-log", FuzzKernelLog, "printk ring buffer reader"},
      {"trigger", FuzzTrigger, "panic line, kernel log and record scanner"},
      {"dump", FuzzDump, "CheckDump on one file, with JSON output"},
      {"policy", FuzzPolicy, "module policy and list parsers, formats, compile"},
  };
  return targets;
}

const Target* FindTarget(std::string_view name) {
  for (const Target& t : Targets())
    if (name == t.name) return &t;
  return nullptr;
}

}  // namespace nmimgr::fuzz
