// SPDX-License-Identifier: GPL-2.0-or-later
//
// Reader for ELF64 vmcores: copies of /proc/vmcore and makedumpfile -E.
//
// On-disk layout (little-endian ELF64 core file):
//
//   off  size  field (ELF header, 64 bytes)
//     0    16  e_ident: 7F 'E' 'L' 'F', class 2 (64-bit), data 1 (LSB),
//              version 1
//    16     2  e_type      4 (ET_CORE)
//    32     8  e_phoff     program header table
//    40     8  e_shoff     section headers (only for PN_XNUM)
//    48     4  e_flags     bit 0: makedumpfile's incomplete flag
//    54     2  e_phentsize 56
//    56     2  e_phnum     0xffff (PN_XNUM): the count is sh_info (offset
//                          44) of section header 0
//   program header (56 bytes each):
//     0     4  p_type      1 PT_LOAD, 4 PT_NOTE
//     8     8  p_offset    file offset of the segment's data
//    24     8  p_paddr     physical address
//    32     8  p_filesz    bytes in the file
//    40     8  p_memsz     bytes of memory (filesz < memsz: the rest was
//                          excluded by makedumpfile)
//
// PT_NOTE segments hold NT_PRSTATUS notes (one per CPU) and VMCOREINFO.
// Pages are the page-sized pieces of each PT_LOAD's file data.
#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "checked.h"
#include "notes.h"
#include "reader.h"

namespace nmimgr::vmcore {
namespace {

constexpr uint64_t kEhdrSize = 64;
constexpr uint64_t kPhdrSize = 56;
constexpr uint32_t kPtLoad = 1;
constexpr uint32_t kPtNote = 4;
constexpr size_t kBatchPages = 256;

struct Segment {
  size_t index;
  uint64_t offset, paddr, filesz, memsz;
  uint64_t avail;  // bytes of filesz actually in the file
};

class ElfReader : public DumpReader {
 public:
  explicit ElfReader(Source& src) : src_(src) {}

  void CheckStructure(DumpFacts& facts, Findings& findings) override {
    facts.format = "elf64";
    facts.compression = "none";
    try {
      Check(facts, findings);
    } catch (const UnwrittenError& e) {
      findings.Add(Severity::kIncomplete, "flattened-hole", e.what());
    } catch (const TruncatedError& e) {
      findings.Add(Severity::kIncomplete, "truncated", e.what());
    } catch (const CorruptError& e) {
      findings.Add(Severity::kCorrupt, "corrupt", e.what());
    }
    // Count what NextBatch will hand out, also when the check stopped early
    // with some load segments already known.
    pages_ = 0;
    for (const Segment& s : loads_)
      pages_ += (s.avail + page_size_ - 1) / page_size_;
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
      batch.push_back(Piece(s, at));
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
      PageJob next = Piece(loads_[seg], piece * page_size_);
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
  PageJob Piece(const Segment& s, uint64_t at) const {
    PageJob j;
    j.src = &src_;
    j.pfn = (s.paddr + at) / page_size_;
    j.pfn_skew = static_cast<uint32_t>((s.paddr + at) % page_size_);
    j.index = s.index;
    j.offset = s.offset + at;
    j.size =
        static_cast<uint32_t>(std::min<uint64_t>(page_size_, s.avail - at));
    j.flags = 0;
    return j;
  }

  void Check(DumpFacts& facts, Findings& findings) {
    const uint64_t file_size = src_.Size();
    std::vector<uint8_t> eb(kEhdrSize);
    size_t got = src_.ReadAt(0, eb);
    if (got < eb.size())
      throw TruncatedError(fmt::format(
          "elf header: file ends at {} bytes, within the 64-byte header", got));
    ByteView e(eb, 0, "elf header");
    if ((e.U8(4) == 1 || e.U8(4) == 2) && (e.U8(5) == 1 || e.U8(5) == 2) &&
        (e.U8(4) != 2 || e.U8(5) != 1)) {
      // A valid dump of another kind: say so rather than call it broken.
      findings.Add(Severity::kCorrupt, "unsupported",
                   fmt::format("elf header: class {} data encoding {}: only "
                               "64-bit little-endian dumps are supported",
                               e.U8(4), e.U8(5)));
      return;
    }
    if (e.U8(4) != 2)
      throw CorruptError(
          fmt::format("elf header: class {} is not ELFCLASS64", e.U8(4)));
    if (e.U8(5) != 1)
      throw CorruptError(fmt::format(
          "elf header: data encoding {} is not little-endian", e.U8(5)));
    if (e.Le16(16) != 4)
      throw CorruptError(
          fmt::format("elf header: type {} is not ET_CORE", e.Le16(16)));
    if (e.Le16(54) != kPhdrSize)
      throw CorruptError(fmt::format(
          "elf header: program header size {} is not 56", e.Le16(54)));
    if (e.Le16(18) == 62) facts.machine = "x86_64";
    if (e.Le32(48) & 1)
      findings.Add(Severity::kIncomplete, "incomplete-flag",
                   "elf header: makedumpfile's incomplete flag (e_flags "
                   "0x1) is set: it ran out of space");
    uint64_t phoff = e.Le64(32);
    uint64_t phnum = e.Le16(56);
    if (phnum == 0xffff) {
      std::vector<uint8_t> sh =
          ReadVector(src_, e.Le64(40), 64, "section header 0");
      phnum = ByteView(sh, e.Le64(40), "section header 0").Le32(44);
    }
    uint64_t ph_len = CheckedMul(phnum, kPhdrSize, "program headers");
    uint64_t ph_end = CheckedAdd(phoff, ph_len, "program headers");
    if (phnum == 0) throw CorruptError("elf header: no program headers");
    if (ph_end > file_size)
      throw TruncatedError(fmt::format(
          "program headers: {} headers at offset {} end past the end of the "
          "file ({})",
          phnum, phoff, file_size));
    std::vector<uint8_t> pb =
        ReadVector(src_, phoff, ph_len, "program headers");
    ByteView ph(pb, phoff, "program headers");

    std::vector<Segment> notes;
    uint64_t unwritten = 0;
    std::string first_unwritten;
    for (uint64_t i = 0; i < phnum; ++i) {
      ByteView p = ph.Slice(i * kPhdrSize, kPhdrSize);
      uint32_t type = p.Le32(0);
      if (type != kPtLoad && type != kPtNote) continue;
      Segment s{i, p.Le64(8), p.Le64(24), p.Le64(32), p.Le64(40), 0};
      uint64_t end =
          CheckedAdd(s.offset, s.filesz, fmt::format("segment {}", i));
      if (type == kPtLoad && s.filesz > s.memsz)
        throw CorruptError(fmt::format(
            "segment {} (paddr {:#x}): {} bytes in the file exceed its {} "
            "bytes of memory",
            i, s.paddr, s.filesz, s.memsz));
      if (s.filesz && s.offset < ph_end && end > 0)
        throw CorruptError(fmt::format(
            "segment {}: data at offset {} overlaps the elf and program "
            "headers (which end at {})",
            i, s.offset, ph_end));
      s.avail =
          s.offset >= file_size ? 0 : std::min(s.filesz, file_size - s.offset);
      // Data a flattened stream never wrote is missing, not pages of zeros
      // to scan: keep only the written start of the segment.
      uint64_t w = type == kPtLoad ? src_.Written(s.offset, s.avail) : s.avail;
      if (w < s.avail) {
        if (unwritten++ == 0)
          first_unwritten = fmt::format(
              "segment {} (paddr {:#x}): file range [{}, {}) was never "
              "written from offset {} on (no flattened record carries it)",
              i, s.paddr, s.offset, s.offset + s.filesz, s.offset + w);
        s.avail = w;
      }
      (type == kPtLoad ? loads_ : notes).push_back(s);
    }
    if (unwritten)
      findings.Add(Severity::kIncomplete, "flattened-hole",
                   fmt::format("{}; {} segments have unwritten data",
                               first_unwritten, unwritten));

    // Notes first: they carry the page size.
    for (const Segment& n : notes) {
      if (n.avail < n.filesz)
        throw TruncatedError(fmt::format(
            "note segment {}: {} bytes at offset {} end past the end of the "
            "file ({})",
            n.index, n.filesz, n.offset, file_size));
      if (n.filesz > (64u << 20))
        throw CorruptError(
            fmt::format("note segment {}: size {} is "
                        "impossible",
                        n.index, n.filesz));
      std::vector<uint8_t> nb = ReadVector(
          src_, n.offset, n.filesz, fmt::format("note segment {}", n.index));
      // The kernel's notes (a PRSTATUS per CPU, VMCOREINFO) are never
      // zeros: these bytes were allocated but never written.
      if (!nb.empty() &&
          std::all_of(nb.begin(), nb.end(), [](uint8_t b) { return !b; })) {
        findings.Add(Severity::kIncomplete, "zero-filled",
                     fmt::format("note segment {}: its {} bytes at offset {} "
                                 "are zeros: the dump's data never reached "
                                 "the disk",
                                 n.index, n.filesz, n.offset));
        continue;
      }
      NoteSummary ns = ParseNotes(nb, n.offset, findings);
      facts.cpus = facts.cpus.value_or(0) + ns.prstatus;
      if (facts.vmcoreinfo.empty()) ApplyVmcoreinfo(ns.vmcoreinfo, facts);
    }
    if (facts.cpus && *facts.cpus == 0) facts.cpus.reset();
    if (auto ps = VmcoreinfoValue(facts.vmcoreinfo, "PAGESIZE")) {
      uint64_t v = std::strtoull(ps->c_str(), nullptr, 10);
      if (v >= 512 && v <= (1u << 20) && (v & (v - 1)) == 0) page_size_ = v;
    }
    facts.page_size = static_cast<uint32_t>(page_size_);

    // Overlaps between segments' file data.
    std::vector<const Segment*> by_off;
    for (const Segment& s : loads_)
      if (s.filesz) by_off.push_back(&s);
    std::sort(by_off.begin(), by_off.end(),
              [](auto* a, auto* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_off.size(); ++i)
      if (by_off[i]->offset < by_off[i - 1]->offset + by_off[i - 1]->filesz)
        findings.Add(Severity::kCorrupt, "overlap",
                     fmt::format("segments {} and {} overlap in the file at "
                                 "offset {}",
                                 by_off[i - 1]->index, by_off[i]->index,
                                 by_off[i]->offset));

    // Cut by the end of the file (unwritten data was reported above).  Every
    // segment counts, also one that repeats memory another segment holds:
    // its bytes are part of the file that was written.
    uint64_t cut = 0;
    std::optional<Segment> first_cut;
    for (const Segment& s : loads_)
      if (s.offset >= file_size || s.filesz > file_size - s.offset)
        if (cut++ == 0) first_cut = s;
    const size_t nloads = loads_.size();

    // /proc/vmcore maps the kernel image twice: a segment whose physical
    // range lies inside another's is the same memory; count and scan it once.
    std::vector<Segment> unique;
    for (size_t i = 0; i < loads_.size(); ++i) {
      const Segment& s = loads_[i];
      bool inside = false;
      for (size_t k = 0; k < loads_.size() && !inside; ++k) {
        const Segment& o = loads_[k];
        if (k == i || s.memsz == 0) continue;
        bool contained = s.paddr >= o.paddr &&
                         s.paddr - o.paddr + s.memsz <= o.memsz &&
                         s.filesz <= s.memsz;
        bool same = s.paddr == o.paddr && s.memsz == o.memsz;
        inside = contained && (!same || k < i) &&
                 s.paddr - o.paddr + s.filesz <= o.filesz;
      }
      if (!inside) unique.push_back(s);
    }
    loads_ = std::move(unique);

    for (const Segment& s : loads_) {
      facts.pages_dumped += (s.filesz + page_size_ - 1) / page_size_;
      facts.pages_excluded += (s.memsz - s.filesz) / page_size_;
      pages_ += (s.avail + page_size_ - 1) / page_size_;
    }
    if (first_cut)
      findings.Add(
          Severity::kIncomplete, "truncated",
          fmt::format("segment {} (paddr {:#x}): file range [{}, {}) ends "
                      "past the end of the file ({}); {} of {} load segments "
                      "are cut",
                      first_cut->index, first_cut->paddr, first_cut->offset,
                      first_cut->offset + first_cut->filesz, file_size, cut,
                      nloads));
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
