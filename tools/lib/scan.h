// SPDX-License-Identifier: GPL-2.0-or-later
//
// The page engine: decodes the pages a reader hands out, on several
// threads, checks each against its descriptor, and shows them to a visitor.
#ifndef NMIMGR_TOOLS_LIB_SCAN_H_
#define NMIMGR_TOOLS_LIB_SCAN_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <span>

#include "reader.h"

namespace nmimgr::vmcore {

class PageVisitor {
 public:
  virtual ~PageVisitor() = default;
  // Called concurrently.  `page` is the decoded page at `pfn`, from batch
  // number `seq` (batches are numbered in pfn order from 0); `paddr` is the
  // physical address of its first byte (pfn * page size, except in an ELF
  // segment whose p_paddr is not page-aligned); `next` is a prefix of the
  // page at pfn + 1 when that page is in the dump, else empty, so that data
  // crossing into the next physical page can be seen.
  virtual void Visit(uint64_t seq, uint64_t pfn, uint64_t paddr,
                     std::span<const uint8_t> page,
                     std::span<const uint8_t> next) = 0;
  // The smallest batch number by which the visitor has seen all it needs,
  // counting only what batches up to that number showed; nullopt while it
  // needs more.  Ends a non-deep scan.
  virtual std::optional<uint64_t> DoneAt() const { return std::nullopt; }
  // Forgets what batches after `seq` showed, so that a scan that stops early
  // reports the same whatever the threads' timing.
  virtual void Truncate(uint64_t /*seq*/) {}
};

// The most decoding threads a scan starts; more is clamped to it (more
// threads than this only add contention on the reader).
inline constexpr unsigned kMaxScanThreads = 256;

struct ScanOptions {
  // 0 is taken as 1, more than kMaxScanThreads as kMaxScanThreads; when the
  // system cannot start as many, the scan runs with those it could start.
  unsigned threads = 1;
  // Decode every page, even after the visitor is done, and check the shared
  // zero page.  Without it the scan stops after the batch in which the
  // visitor is done, and reports only batches up to that one (the same
  // result whatever the threads' timing).
  bool deep = false;
  // Called from the calling thread with pages done so far and the total.
  std::function<void(uint64_t, uint64_t)> progress;
};

struct ScanStats {
  uint64_t pages_decoded = 0;
  uint64_t pages_bad = 0;
  bool stopped_early = false;
};

inline constexpr size_t kNextPrefix = 512;

// Runs the engine over `reader` (after its CheckStructure).  Pages that do
// not decode to a page become one "bad-page" corrupt finding with a count.
ScanStats ScanPages(DumpReader& reader, uint32_t page_size,
                    PageVisitor& visitor, const ScanOptions& opts,
                    Findings& findings);

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_SCAN_H_
