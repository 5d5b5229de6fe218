// SPDX-License-Identifier: GPL-2.0-or-later
//
// The page descriptor table of a kdump-compressed file and the rules a
// descriptor must follow (after libkdumpfile's diskdump.c, read_pfn and
// page_desc): one descriptor per set bit of the second bitmap
// (kdump_bitmap.h), in pfn order, right after the bitmaps.
//
// On-disk layout, at desc_off = (1 + sub_hdr_size + bitmap_blocks) * B:
//
//   desc_off + 24 * i            page_desc of the i-th dumped pfn (in a
//                                split part: of those in [start_pfn,
//                                end_pfn)):
//                                  0 8 offset of the page data (signed)
//                                  8 4 size of the stored data
//                                 12 4 flags (codec bit, 0 = raw)
//                                 16 8 page_flags
//   after the descriptors        page data; with dump level bit 0 (exclude
//                                zero pages) a shared zero page comes first
//                                and every zero page's descriptor points at
//                                it
//
// makedumpfile sizes the table by the dumpable pages of the whole bitmap,
// also in a split part (whose own descriptors fill only its start).  A
// write that was killed leaves descriptors zero inside a file that has been
// extended past them, or a file cut anywhere.
#ifndef NMIMGR_TOOLS_LIB_KDUMP_DESCRIPTORS_H_
#define NMIMGR_TOOLS_LIB_KDUMP_DESCRIPTORS_H_

#include <algorithm>
#include <bit>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "checked.h"
#include "codec.h"
#include "findings.h"
#include "kdump_bitmap.h"
#include "kdump_header.h"
#include "reader.h"
#include "source.h"

namespace nmimgr::vmcore {

inline constexpr uint64_t kPageDescSize = 24;
inline constexpr uint64_t kDescChunk = 1 << 12;  // descriptors per read

struct PageDesc {
  uint64_t pfn = 0;
  uint64_t index = 0;
  uint64_t at = 0;       // file offset of the descriptor
  bool present = false;  // false: the descriptor lies past the end
  int64_t offset = 0;
  uint32_t size = 0;
  uint32_t flags = 0;
  uint64_t page_flags = 0;
};

// The fields of the 24 bytes in `v`.
inline void DecodePageDesc(const ByteView& v, PageDesc& d) {
  d.offset = static_cast<int64_t>(v.Le64(0));
  d.size = v.Le32(8);
  d.flags = v.Le32(12);
  d.page_flags = v.Le64(16);
}

// The first rule a descriptor breaks.
enum class DescFault {
  kNone,
  kFlags,      // not one codec bit
  kSize,       // empty, larger than a page, or a raw page of another size
  kInTable,    // data before the end of the table (or a negative offset)
  kPastEnd,    // data past the end of the file
  kUnwritten,  // data a flattened stream never wrote
};

// The descriptor rules, in the order the walk reports them.
struct DescRules {
  uint32_t block_size = 4096;
  uint64_t table_end = 0;  // page data starts at or after this
  uint64_t file_size = 0;

  DescFault Check(Source& src, const PageDesc& d) const {
    if (d.flags & ~kDumpCodecMask || std::popcount(d.flags) > 1)
      return DescFault::kFlags;
    if (d.size == 0 || d.size > block_size ||
        (d.flags == 0 && d.size != block_size))
      return DescFault::kSize;
    if (d.offset < 0 || static_cast<uint64_t>(d.offset) < table_end)
      return DescFault::kInTable;
    const uint64_t off = static_cast<uint64_t>(d.offset);
    if (off > file_size || d.size > file_size - off) return DescFault::kPastEnd;
    if (src.Written(off, d.size) < d.size) return DescFault::kUnwritten;
    return DescFault::kNone;
  }
};

// Walks the second bitmap over [start, end) and the descriptor table in
// step, reading both in bounded chunks: memory stays small however large
// the dump.
class DescWalker {
 public:
  // `count`: the descriptors of [start, end), as the bitmap survey counted
  // the second bitmap's bits there: the walk ends at the last one instead
  // of reading the rest of the bitmap for a bit that is not there.
  DescWalker(Source& src, uint64_t bitmap2_off, uint64_t bitmap_half,
             uint64_t start, uint64_t end, uint64_t count, uint64_t desc_off,
             uint64_t desc_limit)
      : src_(src),
        bm_off_(bitmap2_off),
        bm_half_(bitmap_half),
        end_(end),
        count_(count),
        pfn_(start),
        desc_off_(desc_off),
        desc_limit_(desc_limit) {}

  // Continues at `pfn`, whose descriptor (or the next dumped pfn's) is
  // number `index`.
  void SkipTo(uint64_t pfn, uint64_t index) {
    pfn_ = pfn;
    index_ = index;
    bm_len_ = 0;
    dc_count_ = 0;
  }

  bool Next(PageDesc& d) {
    if (index_ >= count_ || !NextPfn(d.pfn)) return false;
    d.index = index_++;
    d.at = desc_off_ + d.index * kPageDescSize;
    if (d.index < dc_first_ || d.index >= dc_first_ + dc_count_)
      LoadDescs(d.index);
    d.present = d.index < dc_first_ + dc_count_;
    if (d.present)
      DecodePageDesc(
          ByteView(std::span<const uint8_t>(dc_).subspan(
                       (d.index - dc_first_) * kPageDescSize, kPageDescSize),
                   d.at, "page descriptor"),
          d);
    return true;
  }

 private:
  bool NextPfn(uint64_t& out) {
    while (pfn_ < end_) {
      uint64_t byte = pfn_ / 8;
      if (byte < bm_first_byte_ || byte >= bm_first_byte_ + bm_len_) {
        // A hole in a sparse file is zeros: jump over it unread.
        uint64_t data = src_.DataFrom(bm_off_ + byte);
        if (data >= bm_off_ + bm_half_) break;
        uint64_t skip_to = ((data - bm_off_) & ~uint64_t{7}) * 8;
        if (skip_to > pfn_) {
          pfn_ = skip_to;
          continue;
        }
        LoadBitmap(byte);
      }
      uint64_t rel = pfn_ - bm_first_byte_ * 8;
      uint64_t w = LoadBitmapWord(bm_.data() + (rel / 64) * 8) >> (rel % 64);
      if (w == 0) {
        pfn_ = pfn_ - rel % 64 + 64;
        continue;
      }
      pfn_ += static_cast<uint64_t>(std::countr_zero(w));
      if (pfn_ >= end_) break;
      out = pfn_++;
      return true;
    }
    pfn_ = end_;
    return false;
  }

  void LoadBitmap(uint64_t byte);
  void LoadDescs(uint64_t index);

  Source& src_;
  uint64_t bm_off_, bm_half_, end_, count_, pfn_;
  uint64_t desc_off_, desc_limit_;
  std::vector<uint8_t> bm_;
  uint64_t bm_first_byte_ = 0, bm_len_ = 0;
  std::vector<uint8_t> dc_;
  uint64_t dc_first_ = 0, dc_count_ = 0;
  uint64_t index_ = 0;
};

// One file's descriptor table: its size from the bitmap survey, the walk
// that checks every descriptor (or, without a full walk, the ends of a long
// table), and what the walk learned for the page scan.
class DescTable {
 public:
  // Sizes the table for the `count` descriptors the second bitmap counts in
  // this file's range.
  void Size(Source& src, uint64_t file_size, const KdumpLayout& layout,
            uint64_t count);
  // Walks the table: findings, facts.pages_zero and descriptors_unchecked.
  void Walk(Source& src, const KdumpLayout& layout, const BitmapSurvey& survey,
            const RankIndex& rank, bool full_walk, DumpFacts& facts,
            Findings& findings, std::string_view prefix);

  // A walker over this table.
  DescWalker Walker(Source& src, const KdumpLayout& layout) const {
    return DescWalker(src, layout.bitmap_off + layout.bitmap_half,
                      layout.bitmap_half, layout.start_pfn, layout.end_pfn,
                      count_, layout.desc_off, limit_);
  }
  // Descriptors [index, index + n) of this file (clipped to the table)
  // into `out`, as far as the data holds whole ones; returns how many it
  // holds.
  uint64_t ReadRun(Source& src, uint64_t index, uint64_t n,
                   std::vector<uint8_t>& out) const;
  bool Sound(Source& src, const PageDesc& d) const {
    return rules_.Check(src, d) == DescFault::kNone;
  }

  uint64_t count() const { return count_; }
  uint64_t end() const { return rules_.table_end; }
  uint64_t data_end() const { return data_end_; }
  uint64_t scan_pages() const { return scan_pages_; }
  const std::optional<uint64_t>& zero_off() const { return zero_off_; }

 private:
  // Positions `w` so that its next descriptor is number `index` (of this
  // file's), through the rank index: the walk before it is not read.
  void Seek(Source& src, const KdumpLayout& layout, const RankIndex& rank,
            DescWalker& w, uint64_t index) const;
  void CheckEnd(Source& src, const KdumpLayout& layout,
                const BitmapSurvey& survey, std::optional<uint64_t> min_off,
                uint64_t room_end, bool zero_first, bool cut,
                bool descriptors_sound, const DumpFacts& facts,
                Findings& findings, std::string_view prefix) const;

  uint64_t off_ = 0;
  uint64_t count_ = 0;
  DescRules rules_;
  uint64_t limit_ = 0;      // descriptors are read below this offset
  bool unwritten_ = false;  // it is a hole in a flattened stream
  uint64_t data_end_ = 0, scan_pages_ = 0, unchecked_ = 0;
  std::optional<uint64_t> zero_off_;
};

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_KDUMP_DESCRIPTORS_H_
