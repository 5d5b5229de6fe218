// SPDX-License-Identifier: GPL-2.0-or-later
#include "kdump_descriptors.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <string>

namespace nmimgr::vmcore {
namespace {

// Descriptors read at each end of the table when the walk is not full: 1.5
// MiB of table each, 256 MiB of pages, so every lab dump is read whole.
constexpr uint64_t kEndDescriptors = 1 << 16;

}  // namespace

void DescWalker::LoadBitmap(uint64_t byte) {
  bm_first_byte_ = byte & ~uint64_t{7};
  // Up to the end of this data run: a sparse bitmap costs its data.
  uint64_t hole = src_.HoleFrom(bm_off_ + bm_first_byte_);
  uint64_t run = hole > bm_off_ + bm_first_byte_
                     ? (hole - bm_off_ - bm_first_byte_ + 7) & ~uint64_t{7}
                     : kBitmapChunk;
  bm_len_ = std::min(
      {kBitmapChunk, std::max<uint64_t>(run, 8), bm_half_ - bm_first_byte_});
  bm_.resize(bm_len_ + 8);
  std::fill(bm_.end() - 8, bm_.end(), 0);  // so whole words can be read
  ReadBitmapBytes(src_, bm_off_ + bm_first_byte_,
                  std::span<uint8_t>(bm_.data(), bm_len_), "second bitmap");
}

void DescWalker::LoadDescs(uint64_t index) {
  dc_first_ = index;
  uint64_t at = desc_off_ + index * kPageDescSize;
  uint64_t avail = at < desc_limit_ ? desc_limit_ - at : 0;
  uint64_t n = std::min(kDescChunk, avail / kPageDescSize);
  dc_.resize(n * kPageDescSize);
  if (n) ReadExact(src_, at, dc_, "page descriptors");
  dc_count_ = n;
}

void DescTable::Size(Source& src, uint64_t file_size, const KdumpLayout& layout,
                     uint64_t count) {
  off_ = layout.desc_off;
  count_ = count;
  rules_.block_size = layout.block_size;
  rules_.file_size = file_size;
  const uint64_t table_len = CheckedMul(count_, kPageDescSize, "descriptors");
  rules_.table_end = CheckedAdd(off_, table_len, "descriptor table end");
  // Descriptors are read only as far as they were written (the file's
  // end for a plain file; the first hole for a flattened stream).
  limit_ = off_ + src.Written(off_, table_len);
  if (limit_ < rules_.table_end && limit_ < file_size) unwritten_ = true;
}

uint64_t DescTable::ReadRun(Source& src, uint64_t index, uint64_t n,
                            std::vector<uint8_t>& out) const {
  n = index < count_ ? std::min(n, count_ - index) : 0;
  out.resize(n * kPageDescSize);
  const size_t got = src.ReadAt(off_ + index * kPageDescSize, out);
  out.resize(got / kPageDescSize * kPageDescSize);
  return got / kPageDescSize;
}

void DescTable::Seek(Source& src, const KdumpLayout& layout,
                     const RankIndex& rank, DescWalker& w,
                     uint64_t index) const {
  const uint64_t bitmap2 = layout.bitmap_off + layout.bitmap_half;
  const uint64_t base = rank.Rank(src, bitmap2, layout.start_pfn),
                 want = base + index;
  uint64_t pfn = std::max(layout.start_pfn, rank.BlockAtMost(want));
  uint64_t at = rank.Rank(src, bitmap2, pfn) - base;
  w.SkipTo(pfn, at);
  PageDesc skip;
  while (at < index && w.Next(skip)) ++at;
}

void DescTable::Walk(Source& src, const KdumpLayout& layout,
                     const BitmapSurvey& survey, const RankIndex& rank,
                     bool full_walk, DumpFacts& facts, Findings& findings,
                     std::string_view prefix) {
  const uint64_t file_size = rules_.file_size, desc_end = rules_.table_end;
  const uint32_t block_size = layout.block_size;
  DescWalker w = Walker(src, layout);
  struct Tally {
    uint64_t count = 0;
    std::string first;
  };
  Tally missing, zero, past_end, bad, overlap, unwritten;
  // Messages are formatted for the first of each kind only: a dump with
  // millions of bad descriptors must not cost millions of strings.
  auto note = [](Tally& t, auto&& make_msg) {
    if (t.count++ == 0) t.first = make_msg();
  };
  uint64_t max_end = 0, zeros = 0;
  std::optional<uint64_t> min_off;  // lowest page data offset
  std::optional<uint64_t> first_off;
  bool first_raw = false;
  // makedumpfile sizes the descriptor table by the dumpable pages of the
  // whole bitmap, also in a split part (whose own descriptors fill only
  // its start), and writes the shared zero page right after it.  Where
  // no page uses the zero page there, the first raw page that repeats
  // or precedes the first page data is it (a capture that stopped leaves
  // the table longer than the bitmap says).
  const uint64_t room_end =
      facts.split ? CheckedAdd(off_,
                               CheckedMul(survey.dumped_all, kPageDescSize,
                                          "descriptor room"),
                               "descriptor room")
                  : desc_end;
  if (facts.dump_level && (*facts.dump_level & 1)) zero_off_ = room_end;
  // Without a full walk a long table is read only at its ends, where a
  // capture that stopped, was killed or was cut shows; --deep reads it all.
  uint64_t skip_from = UINT64_MAX, skip_to = 0;
  if (!full_walk && count_ > 2 * kEndDescriptors) {
    skip_from = kEndDescriptors;
    skip_to = count_ - kEndDescriptors;
  }
  PageDesc d;
  while (w.Next(d)) {
    if (d.index == skip_from) {
      Seek(src, layout, rank, w, skip_to);
      unchecked_ = skip_to - skip_from;
      scan_pages_ += unchecked_;
      if (!w.Next(d)) break;
    }
    if (!d.present) {
      // The file ends here: every later descriptor is missing too.
      missing.count = count_ - d.index;
      missing.first =
          unwritten_
              ? fmt::format(
                    "page descriptor {} (pfn {}) at offset {} was never "
                    "written (no flattened record carries offsets from {})",
                    d.index, d.pfn, d.at, limit_)
              : fmt::format(
                    "page descriptor {} (pfn {}) at offset {} lies past "
                    "the end of the file ({})",
                    d.index, d.pfn, d.at, file_size);
      break;
    }
    if (d.offset == 0 && d.size == 0 && d.flags == 0 && d.page_flags == 0) {
      note(zero, [&] {
        return fmt::format("descriptor {} (pfn {}) at offset {}", d.index,
                           d.pfn, d.at);
      });
      continue;
    }
    auto where = [&] {
      return fmt::format("page descriptor {} (pfn {}) at offset {}", d.index,
                         d.pfn, d.at);
    };
    switch (rules_.Check(src, d)) {
      case DescFault::kNone:
        break;
      case DescFault::kFlags:
        note(bad, [&] {
          return fmt::format("{}: flags {:#x} are not one codec", where(),
                             d.flags);
        });
        continue;
      case DescFault::kSize:
        note(bad, [&] {
          return fmt::format(
              "{}: {} page of {} bytes is impossible with "
              "{}-byte pages",
              where(), CodecName(d.flags), d.size, block_size);
        });
        continue;
      case DescFault::kInTable:
        note(overlap, [&] {
          return fmt::format(
              "{}: page data at offset {} overlaps the "
              "headers, bitmap or descriptors (which end "
              "at {})",
              where(), d.offset, desc_end);
        });
        continue;
      case DescFault::kPastEnd:
        note(past_end, [&] {
          return fmt::format(
              "{}: {} bytes of page data at offset {} "
              "end past the end of the file ({})",
              where(), d.size, d.offset, file_size);
        });
        continue;
      case DescFault::kUnwritten:
        // A flattened stream that lacks the record for this page.
        note(unwritten, [&] {
          const uint64_t off = static_cast<uint64_t>(d.offset);
          return fmt::format(
              "{}: page data at offset {} was never written from offset {} "
              "on (no flattened record carries it)",
              where(), off, off + src.Written(off, d.size));
        });
        continue;
    }
    const uint64_t off = static_cast<uint64_t>(d.offset);
    bool raw_page = d.flags == 0 && d.size == block_size;
    if (raw_page && zero_off_ && off == *zero_off_) {
      ++zeros;
      max_end = std::max(max_end, off + d.size);
    } else if (off >= max_end) {
      if (!first_off) {
        first_off = off;
        first_raw = raw_page;
      }
      max_end = off + d.size;
    } else if (raw_page && (!zero_off_ || zeros == 0) && first_off &&
               ((off == *first_off && first_raw) ||
                off + block_size <= *first_off)) {
      zero_off_ = off;
      zeros += off == *first_off ? 2 : 1;
    } else {
      note(overlap, [&] {
        return fmt::format(
            "{}: page data at offset {} overlaps "
            "earlier page data (which reaches {})",
            where(), off, max_end);
      });
      continue;
    }
    ++scan_pages_;
    min_off = std::min(min_off.value_or(off), off);
  }
  data_end_ = max_end;
  // In a whole dump the page data starts right after the descriptors (or
  // after the shared zero page there).  Anything else means the bitmap
  // counts a different number of pages than the table holds: every
  // descriptor would be read for the wrong pfn.
  bool zero_first = facts.dump_level && (*facts.dump_level & 1);
  CheckEnd(src, layout, survey, min_off, room_end, zero_first,
           missing.count != 0,
           zero.count == 0 && overlap.count == 0 && bad.count == 0, facts,
           findings, prefix);
  if (facts.dump_level && (*facts.dump_level & 1) && !unchecked_)
    facts.pages_zero = zeros;
  facts.descriptors_unchecked += unchecked_;
  const std::string p(prefix);
  if (missing.count)
    findings.Add(
        unwritten_ ? FindingCode::kFlattenedHole : FindingCode::kTruncated,
        fmt::format("{}{}; {} of {} descriptors are missing", p, missing.first,
                    missing.count, count_));
  if (zero.count)
    findings.Add(FindingCode::kZeroDescriptors,
                 fmt::format("{}{} page descriptors inside the file are zero, "
                             "a write that was killed; the first is {}",
                             p, zero.count, zero.first));
  // The rest say how many of their kind there are after the first.
  auto report = [&](const Tally& t, FindingCode code, std::string_view what) {
    if (t.count)
      findings.Add(code, fmt::format("{}{}; {} {}", p, t.first, t.count, what));
  };
  report(past_end, FindingCode::kTruncated, "pages are cut");
  report(bad, FindingCode::kBadDescriptor, "descriptors are impossible");
  report(overlap, FindingCode::kOverlap, "descriptors overlap");
  report(unwritten, FindingCode::kFlattenedHole, "pages were never written");
}

// Page data starts right after the room the bitmap gives the descriptor
// table (or after the shared zero page there).  Anything else means the
// bitmap counts a different number of pages than the table holds, and
// every descriptor would be read for the wrong pfn.
void DescTable::CheckEnd(Source& src, const KdumpLayout& layout,
                         const BitmapSurvey& survey,
                         std::optional<uint64_t> min_off, uint64_t room_end,
                         bool zero_first, bool cut, bool descriptors_sound,
                         const DumpFacts& facts, Findings& findings,
                         std::string_view prefix) const {
  if (cut) return;  // The file ends inside the table: reported already.
  const uint64_t file_size = rules_.file_size;
  if (!count_) {
    if (!survey.present_all) {
      findings.Add(FindingCode::kEmptyBitmap,
                   fmt::format("{}first bitmap: none of the {} pfns is "
                               "memory: the bitmaps were never written",
                               prefix, layout.max_mapnr));
      return;
    }
    // A split part may cover a range with nothing to dump; the parts'
    // bitmaps are compared with each other.
    if (facts.split) return;
    // Nothing dumped: page data or descriptors after the bitmaps belong
    // to pages the second bitmap lost.
    std::vector<uint8_t> after(
        std::min<uint64_t>(4096, file_size > off_ ? file_size - off_ : 0));
    after.resize(src.ReadAt(off_, after));
    bool data = std::any_of(after.begin(), after.end(),
                            [](uint8_t b) { return b != 0; });
    if (data)
      findings.Add(FindingCode::kBitmapMismatch,
                   fmt::format("{}second bitmap: no page is dumped, yet data "
                               "follows the bitmaps at offset {}: the second "
                               "bitmap was lost",
                               prefix, off_));
    else
      findings.Add(FindingCode::kNoPages,
                   fmt::format("{}second bitmap: none of the {} pages of "
                               "memory was dumped",
                               prefix, survey.present));
    return;
  }
  if (!min_off) return;  // No usable descriptor: reported already.
  if (*min_off == room_end ||
      (zero_first && *min_off == room_end + layout.block_size))
    return;
  const uint64_t counted = facts.split ? survey.dumped_all : count_;
  if (*min_off > room_end && descriptors_sound) {
    // More room than the bitmap counts.  makedumpfile writes the second
    // bitmap cycle by cycle with the pages: a capture that stopped leaves
    // the rest of the bitmap, and the descriptors after the ones it
    // counts, zero, and every descriptor it counts sound.  A real
    // descriptor there, or descriptors read from page data, mean a
    // damaged bitmap.
    std::array<uint8_t, kPageDescSize> slot{};
    size_t got = src.ReadAt(rules_.table_end, slot);
    bool real = std::any_of(slot.begin(), slot.begin() + got,
                            [](uint8_t b) { return b != 0; });
    if (!real) {
      findings.Add(
          FindingCode::kBitmapUnwritten,
          fmt::format("{}page data starts at offset {}, after room for {} "
                      "descriptors, but the second bitmap counts {} and "
                      "the table is zero after them: the capture stopped "
                      "before it wrote the rest of the second bitmap",
                      prefix, *min_off, (*min_off - off_) / kPageDescSize,
                      counted));
      return;
    }
  }
  findings.Add(
      FindingCode::kBitmapMismatch,
      fmt::format("{}page data starts at offset {}, not right after the room "
                  "for the {} descriptors the bitmap counts (offset {}): "
                  "the bitmap and the descriptor table disagree",
                  prefix, *min_off, counted, room_end));
}

}  // namespace nmimgr::vmcore
