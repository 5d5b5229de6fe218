// SPDX-License-Identifier: GPL-2.0-or-later
//
// The one small interface every dump format reader implements, the facts and
// findings a reader reports, and the page jobs the shared page engine
// (scan.h) decodes.  After libkdumpfile's format_ops table: a probe that says
// "not mine" is different from "mine, but broken".
#ifndef NMIMGR_TOOLS_LIB_READER_H_
#define NMIMGR_TOOLS_LIB_READER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "findings.h"
#include "source.h"

namespace nmimgr::vmcore {

// Facts a reader learns from the structure (no page data).
struct DumpFacts {
  std::string format;  // "elf64", "kdump-compressed"
  std::optional<int> header_version;
  std::string kernel_release;
  std::string machine;
  std::optional<int64_t> crash_time;  // vmcoreinfo CRASHTIME, s since epoch
  std::optional<int64_t> dump_time;   // kdump header timestamp
  std::optional<int> dump_level;
  std::string compression;  // "none", "zlib", "lzo", "snappy", "zstd"
  uint64_t pages_dumped = 0;
  uint64_t pages_excluded = 0;
  std::optional<uint64_t> pages_zero;  // dumped as makedumpfile's zero page
  std::optional<uint32_t> cpus;
  uint32_t page_size = 4096;
  std::optional<uint64_t> max_mapnr;
  bool split = false;
  // Page descriptors the structural walk did not read (set_full_walk).
  uint64_t descriptors_unchecked = 0;
  std::string vmcoreinfo;  // raw VMCOREINFO note text
};

// One page for the page engine: where its data lies and how it is stored.
struct PageJob {
  Source* src = nullptr;
  uint64_t pfn = 0;
  uint64_t index = 0;      // descriptor or page index, for messages
  uint64_t offset = 0;     // of the page data in src
  uint32_t size = 0;       // stored bytes
  uint32_t flags = 0;      // kdump page_desc flags (codec); 0 for raw
  bool zero_page = false;  // points at makedumpfile's shared zero page
  bool lookahead = false;  // only the prefix is wanted (next pfn)
  // Bytes from pfn * page size to the page's first byte: nonzero only for
  // a piece of an ELF segment whose p_paddr is not page-aligned.
  uint32_t pfn_skew = 0;
};

class DumpReader {
 public:
  virtual ~DumpReader() = default;
  // Walks the structure, fills `facts`, records findings.  Reads no page
  // data.  Structural problems become findings, never exceptions; IoError
  // propagates.
  virtual void CheckStructure(DumpFacts& facts, Findings& findings) = 0;
  // Before CheckStructure: read every page descriptor (the default, and
  // --deep), or, when false, only the ends of a table longer than 2^17
  // descriptors (what the default check needs to see a capture that did not
  // finish), so that its cost does not grow with the pages dumped.
  virtual void set_full_walk(bool full) { full_walk_ = full; }
  // After CheckStructure: hands out pages in pfn order, a batch at a time,
  // each batch ending with a lookahead job for the next pfn when that page is
  // in the dump.  Returns false when there are no more pages.  Pages whose
  // data lies past the end (already reported) are left out.
  virtual bool NextBatch(std::vector<PageJob>& batch) = 0;
  // Number of pages NextBatch will hand out (for progress).
  virtual uint64_t PageCount() const = 0;
  // After CheckStructure: reads physical memory at `paddr` (crossing pages
  // as needed).  Returns false when any byte is not in the dump (excluded,
  // cut, or a page that does not decode).  Not thread-safe; independent of
  // NextBatch.
  virtual bool ReadPhysical(uint64_t paddr, std::span<uint8_t> out) = 0;

 protected:
  bool full_walk_ = true;
};

enum class Probe { kNotMine, kMine, kTooShort };

struct Format {
  const char* name;
  // Looks only at the first bytes.  kTooShort: the data is a proper prefix
  // of this format's magic (a dump cut very early).
  Probe (*probe)(Source& src);
  std::unique_ptr<DumpReader> (*open)(Source& src);
};

// The readers, in probe order.
const std::vector<Format>& Formats();

std::unique_ptr<DumpReader> OpenElfReader(Source& src);
std::unique_ptr<DumpReader> OpenKdumpReader(Source& src);
Probe ProbeElf(Source& src);
Probe ProbeKdump(Source& src);

// Probes a magic at offset 0 of `src`.
Probe ProbeMagic(Source& src, std::string_view magic);

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_READER_H_
