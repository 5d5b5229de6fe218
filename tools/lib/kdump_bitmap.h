// SPDX-License-Identifier: GPL-2.0-or-later
//
// The two bitmaps of a kdump-compressed file (kdump_header.h says where they
// are): one pass over both (SurveyBitmaps), bit counts over a pfn range
// (CountBits), and the rank index that finds a pfn's descriptor without
// walking the table before it (after libkdumpfile's diskdump.c, read_bitmap
// and its pfn-to-descriptor lookup).
//
// On-disk layout, at bitmap_off = (1 + sub_hdr_size) * block_size:
//
//   bitmap_off                   first bitmap, bitmap_blocks * B / 2 bytes:
//                                a bit per pfn for memory that exists
//   bitmap_off + half            second bitmap, the same size: a bit per
//                                dumped pfn; each has a page descriptor
//                                (kdump_descriptors.h), in pfn order
//
// Bits are LSB first within each byte, so the bitmaps are read as
// little-endian 64-bit words: bit i of word w is pfn 64 * w + i.  Both halves
// are zero at and past max_mapnr.  makedumpfile writes each half only as far
// as the bytes that cover max_mapnr and leaves the padding of the half's last
// block unwritten: a plain file holds zeros there, a flattened stream (-F)
// has no record for it.  A split part carries both whole bitmaps.
#ifndef NMIMGR_TOOLS_LIB_KDUMP_BITMAP_H_
#define NMIMGR_TOOLS_LIB_KDUMP_BITMAP_H_

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include "findings.h"
#include "source.h"

namespace nmimgr::vmcore {

inline constexpr uint64_t kBitmapChunk = 1 << 20;  // bytes of bitmap per read

// The little-endian bitmap word at `p`.
inline uint64_t LoadBitmapWord(const uint8_t* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  if constexpr (std::endian::native == std::endian::big)
    return __builtin_bswap64(w);
  return w;
}

// Reads bitmap bytes at `offset` as far as they were written; the rest
// reads as zeros (see above: the bitmaps are read in whole 64-bit words).
void ReadBitmapBytes(Source& src, uint64_t offset, std::span<uint8_t> out,
                     std::string_view what);

// Counts set bits for pfns [start, end) in the bitmap half at `off`.  Holes
// of a sparse file are zeros and are skipped, not read.
uint64_t CountBits(Source& src, uint64_t off, uint64_t start, uint64_t end,
                   std::string_view what);

// Set bits among the first `n` bits of `bits` (n <= 8 * bits.size()): the
// rank of a pfn inside bitmap bytes already read.
uint64_t CountLeadingBits(std::span<const uint8_t> bits, uint64_t n);

// What one pass over both bitmaps proves.
struct BitmapSurvey {
  uint64_t present = 0;      // first bitmap, [start, end)
  uint64_t present_all = 0;  // first bitmap, [0, max_mapnr)
  uint64_t dumped = 0;       // second bitmap, [start, end)
  uint64_t dumped_all = 0;   // second bitmap, [0, max_mapnr)
  uint64_t not_present = 0;  // second-bitmap bits whose first bit is clear
  uint64_t first_not_present = 0;
  uint64_t past[2] = {};  // bits at or past max_mapnr, per half
  // An order-free digest of each half's set bits: split parts carry the
  // same bitmaps, so their digests must agree.  Zero unless asked for.
  uint64_t digest[2] = {};
};

// Set bits of the second bitmap below each pfn, from counts per block of
// pfns: at most 2^16 entries however many pfns the header claims, each
// block a multiple of 32768 pfns (4 KiB of bitmap).
class RankIndex {
 public:
  // Blocks for `max_mapnr` pfns, all counts zero.
  void Size(uint64_t max_mapnr);
  uint64_t block() const { return block_; }
  // Per block, for SurveyBitmaps to fill; then Build().
  std::vector<uint64_t>& counts() { return counts_; }
  void Build();
  // Set bits of the second bitmap (at `bitmap2_off`) in [0, pfn).
  uint64_t Rank(Source& src, uint64_t bitmap2_off, uint64_t pfn) const;
  // The first pfn of the last block whose rank is at most `rank`.
  uint64_t BlockAtMost(uint64_t rank) const;

 private:
  uint64_t block_ = 1 << 15;      // pfns per entry
  std::vector<uint64_t> counts_;  // per block
  std::vector<uint64_t> rank_;    // set bits before each block
};

// One pass over both halves of the bitmap at `off` (each `half` bytes), read
// in bounded chunks and skipping what both halves leave as holes; counts for
// the pfns [start, end) of this file.  Fills `rank` (when given, sized by
// RankIndex::Size) with the second bitmap's set bits below max_mapnr, and
// with `digest` (a split part's: it costs more than the counts) the digests.
BitmapSurvey SurveyBitmaps(Source& src, uint64_t off, uint64_t half,
                           uint64_t start, uint64_t end, uint64_t max_mapnr,
                           RankIndex* rank = nullptr, bool digest = false);

// The survey's findings: bits past max_mapnr, and dumped pfns that are not
// memory.
void ReportBitmapSurvey(const BitmapSurvey& s, uint64_t max_mapnr,
                        Findings& findings, std::string_view prefix);

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_KDUMP_BITMAP_H_
