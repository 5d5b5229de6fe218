// SPDX-License-Identifier: GPL-2.0-or-later
//
// Reader for ELF64 vmcores: copies of /proc/vmcore and makedumpfile -E.
// The pieces, one per on-disk structure, each with its layout:
//
//   elf_phdrs.h   the ELF header and the program header table
//   elf_notes.h   the PT_NOTE segments (CPUs, VMCOREINFO, page size)
//   elf_loads.h   the PT_LOAD segments: memory, cut into pages
//
// This reader strings them together and hands out the load segments' pages.
#include <algorithm>

#include "elf_loads.h"
#include "elf_notes.h"
#include "elf_phdrs.h"
#include "findings.h"
#include "reader.h"

namespace nmimgr::vmcore {
namespace {

constexpr size_t kBatchPages = 256;

class ElfReader : public DumpReader {
 public:
  explicit ElfReader(Source& src) : src_(src) {}

  void CheckStructure(DumpFacts& facts, Findings& findings) override {
    facts.format = "elf64";
    facts.compression = "none";
    CatchErrors(findings, Catch::kDataErrors, {},
                [&] { Check(facts, findings); });
    // Count what NextBatch will hand out, also when the check stopped early
    // with some load segments already known.
    pages_ = LoadPages(loads_, page_size_);
  }

  bool NextBatch(std::vector<PageJob>& batch) override {
    batch.clear();
    while (batch.size() < kBatchPages && seg_ < loads_.size()) {
      const Segment& s = loads_[seg_];
      uint64_t at = piece_ * page_size_;
      if (at >= s.avail) {
        ++seg_;
        piece_ = 0;
        continue;
      }
      batch.push_back(LoadPiece(src_, s, at, page_size_));
      ++piece_;
    }
    if (batch.empty()) return false;
    // Lookahead: the next piece, when physically contiguous.
    size_t seg = seg_;
    uint64_t piece = piece_;
    while (seg < loads_.size() && piece * page_size_ >= loads_[seg].avail) {
      ++seg;
      piece = 0;
    }
    if (seg < loads_.size()) {
      PageJob next =
          LoadPiece(src_, loads_[seg], piece * page_size_, page_size_);
      const PageJob& last = batch.back();
      if (next.pfn == last.pfn + 1 && last.size == page_size_) {
        next.lookahead = true;
        batch.push_back(next);
      }
    }
    return true;
  }

  uint64_t PageCount() const override { return pages_; }

  bool ReadPhysical(uint64_t paddr, std::span<uint8_t> out) override {
    size_t done = 0;
    while (done < out.size()) {
      uint64_t pa = paddr + done;
      const Segment* seg = nullptr;
      for (const Segment& s : loads_)
        if (pa >= s.paddr && pa - s.paddr < s.avail) {
          seg = &s;
          break;
        }
      if (!seg) return false;
      uint64_t in_seg = pa - seg->paddr;
      size_t n = std::min<uint64_t>(out.size() - done, seg->avail - in_seg);
      if (src_.ReadAt(seg->offset + in_seg, out.subspan(done, n)) != n)
        return false;
      done += n;
    }
    return true;
  }

 private:
  void Check(DumpFacts& facts, Findings& findings) {
    const uint64_t file_size = src_.Size();
    std::vector<Segment> notes;
    if (!ReadProgramHeaders(src_, file_size, loads_, notes, facts, findings))
      return;
    // Notes first: they carry the page size.
    ReadNoteSegments(src_, file_size, notes, facts, findings);
    page_size_ = ElfPageSize(facts);
    facts.page_size = static_cast<uint32_t>(page_size_);
    CheckLoadSegments(loads_, file_size, page_size_, facts, findings);
  }

  Source& src_;
  std::vector<Segment> loads_;
  uint64_t page_size_ = 4096;
  uint64_t pages_ = 0;
  size_t seg_ = 0;
  uint64_t piece_ = 0;
};

}  // namespace

Probe ProbeElf(Source& src) {
  return ProbeMagic(src,
                    "\x7f"
                    "ELF");
}

std::unique_ptr<DumpReader> OpenElfReader(Source& src) {
  return std::make_unique<ElfReader>(src);
}

}  // namespace nmimgr::vmcore
