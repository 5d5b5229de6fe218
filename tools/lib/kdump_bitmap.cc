// SPDX-License-Identifier: GPL-2.0-or-later
#include "kdump_bitmap.h"

#include <fmt/format.h>

#include <algorithm>

#include "checked.h"

namespace nmimgr::vmcore {
namespace {

constexpr uint64_t kRankEntries = 1 << 16;

// Set bits of `w` (the 64 bits for pfns [base, base + 64)) inside [lo, hi).
uint64_t InRange(uint64_t w, uint64_t base, uint64_t lo, uint64_t hi) {
  if (hi <= base || lo >= base + 64 || lo >= hi) return 0;
  if (lo > base) w &= ~uint64_t{0} << (lo - base);
  if (hi < base + 64) w &= ~(~uint64_t{0} << (hi - base));
  return w;
}

uint64_t Mix(uint64_t x) {  // splitmix64's finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

// The bitmap loops count bits: with the POPCNT instruction where the CPU
// has it (every x86-64 CPU since 2008), which the baseline x86-64 target
// the distribution builds for does not assume.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NMIMGR_POPCNT_CLONES __attribute__((target_clones("popcnt", "default")))
#else
#define NMIMGR_POPCNT_CLONES
#endif

void ReadBitmapBytes(Source& src, uint64_t offset, std::span<uint8_t> out,
                     std::string_view what) {
  const uint64_t written = src.Written(offset, out.size());
  ReadExact(src, offset, out.first(written), what);
  std::fill(out.begin() + written, out.end(), 0);
}

NMIMGR_POPCNT_CLONES
uint64_t CountBits(Source& src, uint64_t off, uint64_t start, uint64_t end,
                   std::string_view what) {
  if (start >= end) return 0;
  uint64_t count = 0;
  std::vector<uint8_t> buf;
  const uint64_t first = start / 64 * 8, last = (end + 63) / 64 * 8;
  auto count_run = [&](uint64_t a, uint64_t b) {
    const uint64_t run_end = std::min(last, (b - off + 7) & ~uint64_t{7});
    for (uint64_t at = (a - off) & ~uint64_t{7}; at < run_end;) {
      uint64_t len = std::min(kBitmapChunk, run_end - at);
      buf.resize(len + 8);
      std::fill(buf.begin() + len, buf.end(), 0);  // whole words at the end
      ReadBitmapBytes(src, off + at, std::span<uint8_t>(buf.data(), len), what);
      for (uint64_t i = 0; i < len; i += 8)
        count += static_cast<uint64_t>(std::popcount(
            InRange(LoadBitmapWord(buf.data() + i), (at + i) * 8, start, end)));
      at += len;
    }
  };
  // A written range of one chunk (a rank inside its block, every page
  // read) is read as it is, holes as zeros: asking the file system where
  // its data lies would cost two syscalls more than the read.
  if (last - first <= kBitmapChunk &&
      src.Written(off + first, last - first) == last - first)
    count_run(off + first, off + last);
  else
    ForEachDataRun(src, off + first, last - first, count_run);
  return count;
}

NMIMGR_POPCNT_CLONES
uint64_t CountLeadingBits(std::span<const uint8_t> bits, uint64_t n) {
  uint64_t count = 0, i = 0;
  for (; i + 64 <= n; i += 64)
    count += static_cast<uint64_t>(
        std::popcount(LoadBitmapWord(bits.data() + i / 8)));
  for (; i < n; ++i) count += bits[i / 8] >> (i % 8) & 1;
  return count;
}

void RankIndex::Size(uint64_t max_mapnr) {
  block_ = std::max<uint64_t>(
      1 << 15, (max_mapnr / kRankEntries + (1 << 15)) & ~uint64_t{0x7fff});
  counts_.assign(max_mapnr / block_ + 1, 0);
}

void RankIndex::Build() {
  rank_.assign(counts_.size() + 1, 0);
  for (size_t b = 0; b < counts_.size(); ++b)
    rank_[b + 1] = rank_[b] + counts_[b];
}

uint64_t RankIndex::Rank(Source& src, uint64_t bitmap2_off,
                         uint64_t pfn) const {
  uint64_t b = pfn / block_;
  return rank_[b] +
         CountBits(src, bitmap2_off, b * block_, pfn, "second bitmap");
}

uint64_t RankIndex::BlockAtMost(uint64_t rank) const {
  uint64_t b = static_cast<uint64_t>(
      std::upper_bound(rank_.begin(), rank_.end(), rank) - rank_.begin());
  b = b ? b - 1 : 0;
  return b * block_;
}

NMIMGR_POPCNT_CLONES
BitmapSurvey SurveyBitmaps(Source& src, uint64_t off, uint64_t half,
                           uint64_t start, uint64_t end, uint64_t max_mapnr,
                           RankIndex* rank, bool digest) {
  BitmapSurvey s;
  std::vector<uint64_t>* block_counts = rank ? &rank->counts() : nullptr;
  const uint64_t block = rank ? rank->block() : 1;
  std::vector<uint8_t> b1, b2;
  // Byte offsets inside each half; a step reads both halves over [at, to),
  // which ends where either half's current data run or hole ends, so the
  // bytes read stay close to the bytes on disk.
  auto run = [&](uint64_t base, uint64_t at, uint64_t& data, uint64_t& end) {
    uint64_t d = src.DataFrom(base + at);
    data = d >= base + half ? half : d - base;
    if (data > at) {
      end = data;
    } else {
      uint64_t h = src.HoleFrom(base + at);
      end = h >= base + half ? half : h - base;
    }
  };
  uint64_t at = 0;
  while (at < half) {
    uint64_t d1, e1, d2, e2;
    run(off, at, d1, e1);
    run(off + half, at, d2, e2);
    uint64_t next = std::min(d1, d2) & ~uint64_t{7};
    if (next >= half) break;
    at = std::max(at, next);
    if (d1 > at) run(off, at, d1, e1);
    if (d2 > at) run(off + half, at, d2, e2);
    uint64_t to = std::min({at + kBitmapChunk, e1, e2, half});
    to = std::min(half, std::max(at + 8, (to + 7) & ~uint64_t{7}));
    uint64_t len = to - at;
    b1.resize(len);
    b2.resize(len);
    ReadBitmapBytes(src, off + at, b1, "first bitmap");
    ReadBitmapBytes(src, off + half + at, b2, "second bitmap");
    for (uint64_t i = 0; i + 8 <= len; i += 8) {
      uint64_t w1 = LoadBitmapWord(b1.data() + i),
               w2 = LoadBitmapWord(b2.data() + i);
      if (!(w1 | w2)) continue;
      uint64_t word = (at + i) / 8, base = word * 64;
      if (digest) {
        if (w1) s.digest[0] += Mix(word * 0x9e3779b97f4a7c15ull ^ Mix(w1));
        if (w2) s.digest[1] += Mix(word * 0x9e3779b97f4a7c15ull ^ Mix(w2));
      }
      if (base >= start && base + 64 <= end && base + 64 <= max_mapnr) {
        // The common word, wholly inside every range.
        const int p1 = std::popcount(w1), p2 = std::popcount(w2);
        s.present += p1;
        s.present_all += p1;
        s.dumped += p2;
        s.dumped_all += p2;
        if (block_counts && p2) (*block_counts)[base / block] += p2;
        if (uint64_t stray = w2 & ~w1) {
          if (!s.not_present++)
            s.first_not_present = base + std::countr_zero(stray);
          s.not_present += std::popcount(stray) - 1;
        }
        continue;
      }
      s.present += std::popcount(InRange(w1, base, start, end));
      s.present_all += std::popcount(InRange(w1, base, 0, max_mapnr));
      s.dumped += std::popcount(InRange(w2, base, start, end));
      const int in_map = std::popcount(InRange(w2, base, 0, max_mapnr));
      s.dumped_all += in_map;
      if (block_counts && in_map) (*block_counts)[base / block] += in_map;
      uint64_t stray = InRange(w2 & ~w1, base, 0, max_mapnr);
      if (stray && !s.not_present++)
        s.first_not_present = base + std::countr_zero(stray);
      s.not_present += std::popcount(stray) - (stray ? 1 : 0);
      s.past[0] += std::popcount(InRange(w1, base, max_mapnr, UINT64_MAX));
      s.past[1] += std::popcount(InRange(w2, base, max_mapnr, UINT64_MAX));
    }
    at += len;
  }
  return s;
}

void ReportBitmapSurvey(const BitmapSurvey& s, uint64_t max_mapnr,
                        Findings& findings, std::string_view prefix) {
  // makedumpfile leaves the bitmaps zero past max_mapnr; bits there mean
  // a max_mapnr that does not belong to these bitmaps.
  for (int half = 0; half < 2; ++half)
    if (s.past[half])
      findings.Add(
          FindingCode::kCorrupt,
          fmt::format("{}{} bitmap: {} pfns at or past max_mapnr {} are set",
                      prefix, half ? "second" : "first", s.past[half],
                      max_mapnr));
  // The second bitmap selects dumped pages among those that exist.
  if (s.not_present)
    findings.Add(FindingCode::kBitmapMismatch,
                 fmt::format("{}second bitmap: {} dumped pfns are not memory "
                             "in the first bitmap (the first is pfn {}): the "
                             "bitmaps contradict each other",
                             prefix, s.not_present, s.first_not_present));
}

}  // namespace nmimgr::vmcore
