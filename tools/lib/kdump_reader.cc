// SPDX-License-Identifier: GPL-2.0-or-later
#include "kdump_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <map>
#include <optional>

#include "checked.h"
#include "codec.h"
#include "notes.h"

namespace nmimgr::vmcore {
namespace {

constexpr uint64_t kBitmapChunk = 1 << 20;      // bytes of bitmap per read
constexpr uint64_t kDescChunk = 1 << 12;        // descriptors per read
constexpr uint64_t kMaxMetadata = 64ull << 20;  // notes, vmcoreinfo
constexpr size_t kBatchPages = 256;
// Descriptors read at each end of the table when the walk is not full: 1.5
// MiB of table each, 256 MiB of pages, so every lab dump is read whole.
constexpr uint64_t kEndDescriptors = 1 << 16;

struct Desc {
  uint64_t pfn = 0;
  uint64_t index = 0;
  uint64_t at = 0;       // file offset of the descriptor
  bool present = false;  // false: the descriptor lies past the end
  int64_t offset = 0;
  uint32_t size = 0;
  uint32_t flags = 0;
  uint64_t page_flags = 0;
};

// Reads bitmap bytes at `offset` as far as they were written; the rest
// reads as zeros.  makedumpfile writes each bitmap half only as far as the
// bytes that cover max_mapnr (Check requires those) and leaves the padding
// of the half's last block unwritten: a plain file holds zeros there, a
// flattened stream (-F) has no record for it, and the bitmaps are read in
// whole 64-bit words.
void ReadBitmapBytes(Source& src, uint64_t offset, std::span<uint8_t> out,
                     std::string_view what) {
  std::fill(out.begin(), out.end(), 0);
  ReadExact(src, offset, out.first(src.Written(offset, out.size())), what);
}

// Walks the second bitmap over [start, end) and the descriptor table in
// step, reading both in bounded chunks: memory stays small however large
// the dump.
class DescWalker {
 public:
  DescWalker(Source& src, uint64_t bitmap2_off, uint64_t bitmap_half,
             uint64_t start, uint64_t end, uint64_t desc_off,
             uint64_t file_size)
      : src_(src),
        bm_off_(bitmap2_off),
        bm_half_(bitmap_half),
        end_(end),
        pfn_(start),
        desc_off_(desc_off),
        file_size_(file_size) {}

  // Continues at `pfn`, whose descriptor (or the next dumped pfn's) is
  // number `index`.
  void SkipTo(uint64_t pfn, uint64_t index) {
    pfn_ = pfn;
    index_ = index;
    bm_len_ = 0;
    dc_count_ = 0;
  }

  bool Next(Desc& d) {
    if (!NextPfn(d.pfn)) return false;
    d.index = index_++;
    d.at = desc_off_ + d.index * kPageDescSize;
    if (d.index < dc_first_ || d.index >= dc_first_ + dc_count_)
      LoadDescs(d.index);
    d.present = d.index < dc_first_ + dc_count_;
    if (d.present) {
      ByteView v(std::span<const uint8_t>(dc_).subspan(
                     (d.index - dc_first_) * kPageDescSize, kPageDescSize),
                 d.at, "page descriptor");
      d.offset = static_cast<int64_t>(v.Le64(0));
      d.size = v.Le32(8);
      d.flags = v.Le32(12);
      d.page_flags = v.Le64(16);
    }
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
      uint64_t word_byte = (rel / 64) * 8;
      uint64_t w;
      std::memcpy(&w, bm_.data() + word_byte, 8);
      w = LittleToHost(w) >> (rel % 64);
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

  static uint64_t LittleToHost(uint64_t w) {
    if constexpr (std::endian::native == std::endian::big)
      return __builtin_bswap64(w);
    return w;
  }

  void LoadBitmap(uint64_t byte) {
    bm_first_byte_ = byte & ~uint64_t{7};
    // Up to the end of this data run: a sparse bitmap costs its data.
    uint64_t hole = src_.HoleFrom(bm_off_ + bm_first_byte_);
    uint64_t run = hole > bm_off_ + bm_first_byte_
                       ? (hole - bm_off_ - bm_first_byte_ + 7) & ~uint64_t{7}
                       : kBitmapChunk;
    bm_len_ = std::min(
        {kBitmapChunk, std::max<uint64_t>(run, 8), bm_half_ - bm_first_byte_});
    bm_.assign(bm_len_ + 8, 0);  // zero tail so whole words can be read
    ReadBitmapBytes(src_, bm_off_ + bm_first_byte_,
                    std::span<uint8_t>(bm_.data(), bm_len_), "second bitmap");
  }

  void LoadDescs(uint64_t index) {
    dc_first_ = index;
    uint64_t at = desc_off_ + index * kPageDescSize;
    uint64_t avail = at < file_size_ ? file_size_ - at : 0;
    uint64_t n = std::min(kDescChunk, avail / kPageDescSize);
    dc_.resize(n * kPageDescSize);
    if (n) ReadExact(src_, at, dc_, "page descriptors");
    dc_count_ = n;
  }

  Source& src_;
  uint64_t bm_off_, bm_half_, end_, pfn_;
  uint64_t desc_off_, file_size_;
  std::vector<uint8_t> bm_;
  uint64_t bm_first_byte_ = 0, bm_len_ = 0;
  std::vector<uint8_t> dc_;
  uint64_t dc_first_ = 0, dc_count_ = 0;
  uint64_t index_ = 0;
};

// Set bits of `w` (the 64 bits for pfns [base, base + 64)) inside [lo, hi).
uint64_t InRange(uint64_t w, uint64_t base, uint64_t lo, uint64_t hi) {
  if (hi <= base || lo >= base + 64 || lo >= hi) return 0;
  if (lo > base) w &= ~uint64_t{0} << (lo - base);
  if (hi < base + 64) w &= ~(~uint64_t{0} << (hi - base));
  return w;
}

uint64_t LoadWord(const uint8_t* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  if constexpr (std::endian::native == std::endian::big)
    return __builtin_bswap64(w);
  return w;
}

// Counts set bits for pfns [start, end) in the bitmap half at `off`.  Holes
// of a sparse file are zeros and are skipped, not read.
// The bitmap loops count bits: with the POPCNT instruction where the CPU
// has it (every x86-64 CPU since 2008), which the baseline x86-64 target
// the distribution builds for does not assume.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NMIMGR_POPCNT_CLONES __attribute__((target_clones("popcnt", "default")))
#else
#define NMIMGR_POPCNT_CLONES
#endif

NMIMGR_POPCNT_CLONES
uint64_t CountBits(Source& src, uint64_t off, uint64_t start, uint64_t end,
                   std::string_view what) {
  if (start >= end) return 0;
  uint64_t count = 0;
  std::vector<uint8_t> buf;
  const uint64_t first = start / 64 * 8, last = (end + 63) / 64 * 8;
  ForEachDataRun(src, off + first, last - first, [&](uint64_t a, uint64_t b) {
    const uint64_t run_end = std::min(last, (b - off + 7) & ~uint64_t{7});
    for (uint64_t at = (a - off) & ~uint64_t{7}; at < run_end;) {
      uint64_t len = std::min(kBitmapChunk, run_end - at);
      buf.assign(len + 8, 0);
      ReadBitmapBytes(src, off + at, std::span<uint8_t>(buf.data(), len), what);
      for (uint64_t i = 0; i < len; i += 8)
        count += static_cast<uint64_t>(std::popcount(
            InRange(LoadWord(buf.data() + i), (at + i) * 8, start, end)));
      at += len;
    }
  });
  return count;
}

// What one pass over both bitmaps proves, read in bounded chunks and
// skipping what both halves leave as holes.
struct BitmapSurvey {
  uint64_t present = 0;      // first bitmap, [start, end)
  uint64_t present_all = 0;  // first bitmap, [0, max_mapnr)
  uint64_t dumped = 0;       // second bitmap, [start, end)
  uint64_t dumped_all = 0;   // second bitmap, [0, max_mapnr)
  uint64_t not_present = 0;  // second-bitmap bits whose first bit is clear
  uint64_t first_not_present = 0;
  uint64_t past[2] = {};  // bits at or past max_mapnr, per half
  // An order-free digest of each half's set bits: split parts carry the
  // same bitmaps, so their digests must agree.
  uint64_t digest[2] = {};
};

uint64_t Mix(uint64_t x) {  // splitmix64's finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// `block_counts` (when given) gets the second bitmap's set bits below
// max_mapnr per `block` pfns (a multiple of 64), for the rank index.
NMIMGR_POPCNT_CLONES
BitmapSurvey SurveyBitmaps(Source& src, uint64_t off, uint64_t half,
                           uint64_t start, uint64_t end, uint64_t max_mapnr,
                           std::vector<uint64_t>* block_counts = nullptr,
                           uint64_t block = 1) {
  BitmapSurvey s;
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
      uint64_t w1 = LoadWord(b1.data() + i), w2 = LoadWord(b2.data() + i);
      if (!(w1 | w2)) continue;
      uint64_t word = (at + i) / 8, base = word * 64;
      if (w1) s.digest[0] += Mix(word * 0x9e3779b97f4a7c15ull ^ Mix(w1));
      if (w2) s.digest[1] += Mix(word * 0x9e3779b97f4a7c15ull ^ Mix(w2));
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

class KdumpReader : public DumpReader {
 public:
  KdumpReader(Source& src, std::string prefix = {})
      : src_(src), prefix_(std::move(prefix)) {}

  void CheckStructure(DumpFacts& facts, Findings& findings) override {
    try {
      Check(facts, findings);
    } catch (const UnwrittenError& e) {
      Add(findings, Severity::kIncomplete, "flattened-hole", e.what());
      walkable_ = false;
    } catch (const TruncatedError& e) {
      Add(findings, Severity::kIncomplete, "truncated", e.what());
      walkable_ = false;
    } catch (const CorruptError& e) {
      Add(findings, Severity::kCorrupt, "corrupt", e.what());
      walkable_ = false;
    }
  }

  bool NextBatch(std::vector<PageJob>& batch) override {
    batch.clear();
    if (!walkable_) return false;
    if (!walker_)
      walker_.emplace(src_, bitmap_off_ + bitmap_half_, bitmap_half_,
                      start_pfn_, end_pfn_, desc_off_, desc_limit_);
    while (batch.size() < kBatchPages) {
      std::optional<PageJob> job = NextJob();
      if (!job) break;
      batch.push_back(*job);
    }
    if (batch.empty()) return false;
    if (!pending_) pending_ = NextJob();
    if (pending_ && pending_->pfn == batch.back().pfn + 1) {
      PageJob look = *pending_;
      look.lookahead = true;
      batch.push_back(look);
    }
    return true;
  }

  uint64_t PageCount() const override { return scan_pages_; }

  bool ReadPhysical(uint64_t paddr, std::span<uint8_t> out) override {
    size_t done = 0;
    while (done < out.size()) {
      uint64_t pa = paddr + done;
      const Bytes* page = Page(pa / block_size_);
      if (!page) return false;
      size_t in_page = pa % block_size_;
      size_t n = std::min<size_t>(out.size() - done, block_size_ - in_page);
      std::memcpy(out.data() + done, page->data() + in_page, n);
      done += n;
    }
    return true;
  }

  bool HasPfn(uint64_t pfn) const {
    return walkable_ && pfn >= start_pfn_ && pfn < end_pfn_;
  }

  bool walkable() const { return walkable_; }
  uint64_t start_pfn() const { return start_pfn_; }
  uint64_t end_pfn() const { return end_pfn_; }
  uint64_t max_mapnr() const { return max_mapnr_; }
  // Valid once CheckStructure read the bitmaps.
  const std::optional<BitmapSurvey>& survey() const { return surveyed_; }
  uint32_t block_size() const { return block_size_; }

 private:
  void Add(Findings& f, Severity s, std::string code, std::string msg) {
    f.Add(s, std::move(code), prefix_ + msg);
  }

  using Bytes = std::vector<uint8_t>;
  static constexpr uint64_t kRankEntries = 1 << 16;

  // Set bits of the second bitmap in [0, pfn), from the rank index the
  // bitmap survey builds (Check): at most kRankEntries entries however many
  // pfns the header claims, each block a multiple of 32768 pfns (4 KiB of
  // bitmap).  Only after Check walked the bitmaps (walkable_).
  uint64_t Rank(uint64_t pfn) {
    const uint64_t off = bitmap_off_ + bitmap_half_;
    uint64_t b = pfn / rank_block_;
    return rank_[b] +
           CountBits(src_, off, b * rank_block_, pfn, "second bitmap");
  }

  // Positions `w` so that its next descriptor is number `index` (of this
  // part's), through the rank index: the walk before it is not read.
  void SeekDescriptor(DescWalker& w, uint64_t index) {
    const uint64_t base = Rank(start_pfn_), want = base + index;
    // The last block whose rank is at most `want`.
    uint64_t b = static_cast<uint64_t>(
        std::upper_bound(rank_.begin(), rank_.end(), want) - rank_.begin());
    b = b ? b - 1 : 0;
    uint64_t pfn = std::max(start_pfn_, b * rank_block_);
    uint64_t at = Rank(pfn) - base;
    w.SkipTo(pfn, at);
    Desc skip;
    while (at < index && w.Next(skip)) ++at;
  }

  // The decoded page at `pfn`, or nullptr when it is not in the dump.
  const Bytes* Page(uint64_t pfn) {
    if (auto it = page_cache_.find(pfn); it != page_cache_.end())
      return &it->second;
    if (!HasPfn(pfn)) return nullptr;
    uint8_t byte = 0;
    ReadExact(src_, bitmap_off_ + bitmap_half_ + pfn / 8, {&byte, 1},
              "second bitmap");
    if (!(byte >> (pfn % 8) & 1)) return nullptr;
    uint64_t index = Rank(pfn) - Rank(start_pfn_);
    if (index >= ndesc_) return nullptr;
    uint8_t raw[kPageDescSize];
    uint64_t at = desc_off_ + index * kPageDescSize;
    if (src_.ReadAt(at, raw) != kPageDescSize) return nullptr;
    ByteView v(raw, at, "page descriptor");
    Desc d;
    d.offset = static_cast<int64_t>(v.Le64(0));
    d.size = v.Le32(8);
    d.flags = v.Le32(12);
    if (!Valid(d)) return nullptr;
    Bytes data(d.size), page(block_size_);
    if (src_.ReadAt(static_cast<uint64_t>(d.offset), data) != d.size)
      return nullptr;
    if (!DecodePage(d.flags, data, page).empty()) return nullptr;
    if (page_cache_.size() >= 256) page_cache_.clear();
    return &(page_cache_[pfn] = std::move(page));
  }

  std::optional<PageJob> NextJob() {
    if (pending_) {
      std::optional<PageJob> j = pending_;
      pending_.reset();
      return j;
    }
    Desc d;
    while (walker_->Next(d)) {
      if (!d.present) return std::nullopt;
      if (!Valid(d)) continue;
      PageJob j;
      j.src = &src_;
      j.pfn = d.pfn;
      j.index = d.index;
      j.offset = static_cast<uint64_t>(d.offset);
      j.size = d.size;
      j.flags = d.flags;
      j.zero_page = zero_off_ && *zero_off_ == j.offset;
      return j;
    }
    return std::nullopt;
  }

  bool Valid(const Desc& d) const {
    if (d.flags & ~kDumpCodecMask) return false;
    if (std::popcount(d.flags) > 1) return false;
    if (d.size == 0 || d.size > block_size_) return false;
    if (d.flags == 0 && d.size != block_size_) return false;
    if (d.offset < 0 || static_cast<uint64_t>(d.offset) < desc_end_)
      return false;
    uint64_t off = static_cast<uint64_t>(d.offset);
    return off <= file_size_ && d.size <= file_size_ - off &&
           src_.Written(off, d.size) == d.size;
  }

  void Check(DumpFacts& facts, Findings& findings) {
    file_size_ = src_.Size();
    facts.format = "kdump-compressed";
    std::vector<uint8_t> hbuf(kKdumpHeaderSize);
    size_t got = src_.ReadAt(0, hbuf);
    if (got < hbuf.size())
      throw TruncatedError(fmt::format(
          "kdump header: file ends at {} bytes, within the {}-byte header", got,
          kKdumpHeaderSize));
    ByteView h(hbuf, 0, "kdump header");
    if (h.CString(0, 8) != kKdumpSignature)
      throw CorruptError("kdump header: bad signature");
    int32_t version = static_cast<int32_t>(h.Le32(8));
    if (version < 1 || version > 6)
      throw CorruptError(fmt::format(
          "kdump header: version {} is not one of 1 to 6", version));
    facts.header_version = version;
    facts.kernel_release = h.CString(12 + 2 * 65, 65);
    facts.machine = h.CString(12 + 4 * 65, 65);
    facts.dump_time = static_cast<int64_t>(h.Le64(408));
    uint32_t status = h.Le32(424);
    int32_t bs = static_cast<int32_t>(h.Le32(428));
    int32_t sub_blocks = static_cast<int32_t>(h.Le32(432));
    uint32_t bitmap_blocks = h.Le32(436);
    uint32_t max_mapnr32 = h.Le32(440);
    int32_t nr_cpus = static_cast<int32_t>(h.Le32(460));

    if (bs < 512 || bs > (1 << 20) || (bs & (bs - 1)) != 0)
      throw CorruptError(fmt::format(
          "kdump header: block size {} is not a power of two from 512 to "
          "1 MiB",
          bs));
    block_size_ = static_cast<uint32_t>(bs);
    facts.page_size = block_size_;
    if (sub_blocks < 1 || sub_blocks > (1 << 16))
      throw CorruptError(fmt::format(
          "kdump header: sub-header size of {} blocks is impossible",
          sub_blocks));
    if (status & kDumpIncomplete)
      Add(findings, Severity::kIncomplete, "incomplete-flag",
          "kdump header: the incomplete flag (status 0x8) is set: "
          "makedumpfile ran out of space");
    uint32_t codec = status & kDumpCodecMask;
    if (std::popcount(codec) > 1)
      throw CorruptError(fmt::format(
          "kdump header: status {:#x} names more than one codec", status));
    facts.compression = CodecName(codec);

    std::vector<uint8_t> sbuf(kKdumpSubHeaderSize);
    if (src_.ReadAt(block_size_, sbuf) < sbuf.size())
      throw TruncatedError(fmt::format(
          "kdump sub-header: {} bytes at offset {} end past the end of the "
          "file ({})",
          kKdumpSubHeaderSize, block_size_, file_size_));
    ByteView s(sbuf, block_size_, "kdump sub-header");
    facts.dump_level = static_cast<int32_t>(s.Le32(8));
    bool split = version >= 2 && s.Le32(12) != 0;
    max_mapnr_ = version >= 6 ? s.Le64(96) : max_mapnr32;
    facts.max_mapnr = max_mapnr_;
    start_pfn_ = 0;
    end_pfn_ = max_mapnr_;
    if (split) {
      facts.split = true;
      start_pfn_ = version >= 6 ? s.Le64(80) : s.Le64(16);
      end_pfn_ = version >= 6 ? s.Le64(88) : s.Le64(24);
      if (start_pfn_ > end_pfn_ || end_pfn_ > max_mapnr_)
        throw CorruptError(fmt::format(
            "kdump sub-header: split range [{}, {}) does not fit max_mapnr "
            "{}",
            start_pfn_, end_pfn_, max_mapnr_));
    }

    bitmap_off_ = CheckedMul(1 + static_cast<uint64_t>(sub_blocks), block_size_,
                             "kdump bitmap offset");
    uint64_t bitmap_len =
        CheckedMul(bitmap_blocks, block_size_, "kdump bitmap size");
    if (bitmap_blocks == 0 || bitmap_blocks % 2 != 0)
      throw CorruptError(fmt::format(
          "kdump header: bitmap of {} blocks cannot hold two bitmaps",
          bitmap_blocks));
    bitmap_half_ = bitmap_len / 2;
    if (max_mapnr_ > bitmap_half_ * 8)
      throw CorruptError(fmt::format(
          "kdump header: bitmap of {} blocks cannot describe max_mapnr {} "
          "pages",
          bitmap_blocks, max_mapnr_));
    desc_off_ = CheckedAdd(bitmap_off_, bitmap_len, "kdump descriptor offset");

    // Metadata inside the sub-header blocks.
    auto region = [&](uint64_t off, uint64_t size, const char* what,
                      bool inside_sub) -> bool {
      if (size == 0) return false;
      if (size > kMaxMetadata)
        throw CorruptError(fmt::format(
            "kdump sub-header: {} size {} is impossible", what, size));
      uint64_t end = CheckedAdd(off, size, what);
      if (inside_sub &&
          (off < block_size_ + kKdumpSubHeaderSize || end > bitmap_off_))
        throw CorruptError(fmt::format(
            "kdump sub-header: {} at [{}, {}) overlaps the headers or the "
            "bitmap (sub-header area [{}, {}))",
            what, off, end, block_size_, bitmap_off_));
      if (end > file_size_)
        throw TruncatedError(fmt::format(
            "{}: {} bytes at offset {} end past the end of the file ({})", what,
            size, off, file_size_));
      return true;
    };
    if (version >= 3 && region(s.Le64(32), s.Le64(40), "vmcoreinfo", true)) {
      std::vector<uint8_t> vi =
          ReadVector(src_, s.Le64(32), s.Le64(40), "vmcoreinfo");
      ApplyVmcoreinfo(
          ByteView(vi, s.Le64(32), "vmcoreinfo").CString(0, vi.size()), facts);
    }
    if (version >= 4 && region(s.Le64(48), s.Le64(56), "elf notes", true)) {
      std::vector<uint8_t> nb =
          ReadVector(src_, s.Le64(48), s.Le64(56), "elf notes");
      NoteSummary ns = ParseNotes(nb, s.Le64(48), findings);
      if (ns.prstatus) facts.cpus = ns.prstatus;
      if (facts.vmcoreinfo.empty()) ApplyVmcoreinfo(ns.vmcoreinfo, facts);
    }
    if (!facts.cpus && nr_cpus > 0) facts.cpus = static_cast<uint32_t>(nr_cpus);
    uint64_t erase_off = 0, erase_size = 0;
    if (version >= 5) {
      erase_off = s.Le64(64);
      erase_size = s.Le64(72);
      region(erase_off, erase_size, "eraseinfo", false);
    }

    if (bitmap_off_ > file_size_ || bitmap_len > file_size_ - bitmap_off_)
      throw TruncatedError(fmt::format(
          "bitmap: {} bytes at offset {} end past the end of the file ({})",
          bitmap_len, bitmap_off_, file_size_));
    // A bitmap the stream never wrote is missing, not zeros to count: the
    // work below must stay bounded by the bytes on disk.  Each half must be
    // written as far as its bytes cover max_mapnr; makedumpfile leaves the
    // rest of the half's last block unwritten (ReadBitmapBytes).
    const uint64_t cover = std::min(bitmap_half_, (max_mapnr_ + 7) / 8);
    RequireWritten(src_, bitmap_off_, cover, "first bitmap");
    RequireWritten(src_, bitmap_off_ + bitmap_half_, cover, "second bitmap");

    // The rank index (Rank) from the same pass.
    rank_block_ = std::max<uint64_t>(
        1 << 15, (max_mapnr_ / kRankEntries + (1 << 15)) & ~uint64_t{0x7fff});
    std::vector<uint64_t> counts(max_mapnr_ / rank_block_ + 1, 0);
    survey_ = SurveyBitmaps(src_, bitmap_off_, bitmap_half_, start_pfn_,
                            end_pfn_, max_mapnr_, &counts, rank_block_);
    rank_.assign(counts.size() + 1, 0);
    for (size_t b = 0; b < counts.size(); ++b)
      rank_[b + 1] = rank_[b] + counts[b];
    surveyed_ = survey_;
    const BitmapSurvey& bm = survey_;
    // makedumpfile leaves the bitmaps zero past max_mapnr; bits there mean
    // a max_mapnr that does not belong to these bitmaps.
    for (int half = 0; half < 2; ++half)
      if (bm.past[half])
        Add(findings, Severity::kCorrupt, "corrupt",
            fmt::format("{} bitmap: {} pfns at or past max_mapnr {} are set",
                        half ? "second" : "first", bm.past[half], max_mapnr_));
    // The second bitmap selects dumped pages among those that exist.
    if (bm.not_present)
      Add(findings, Severity::kCorrupt, "bitmap-mismatch",
          fmt::format("second bitmap: {} dumped pfns are not memory in the "
                      "first bitmap (the first is pfn {}): the bitmaps "
                      "contradict each other",
                      bm.not_present, bm.first_not_present));
    const uint64_t present = bm.present, dumped = bm.dumped;
    ndesc_ = dumped;
    facts.pages_dumped = dumped;
    facts.pages_excluded = present > dumped ? present - dumped : 0;
    const uint64_t table_len = CheckedMul(ndesc_, kPageDescSize, "descriptors");
    desc_end_ = CheckedAdd(desc_off_, table_len, "descriptor table end");
    // Descriptors are read only as far as they were written (the file's
    // end for a plain file; the first hole for a flattened stream).
    desc_limit_ = desc_off_ + src_.Written(desc_off_, table_len);
    if (desc_limit_ < desc_end_ && desc_limit_ < file_size_)
      unwritten_desc_ = true;
    walkable_ = true;
    WalkDescriptors(facts, findings);
    if (erase_size && erase_off < std::max(desc_end_, data_end_))
      Add(findings, Severity::kCorrupt, "overlap",
          fmt::format("eraseinfo at offset {} overlaps the descriptors or "
                      "page data (which end at {})",
                      erase_off, std::max(desc_end_, data_end_)));
  }

  void WalkDescriptors(DumpFacts& facts, Findings& findings) {
    DescWalker w(src_, bitmap_off_ + bitmap_half_, bitmap_half_, start_pfn_,
                 end_pfn_, desc_off_, desc_limit_);
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
        facts.split ? CheckedAdd(desc_off_,
                                 CheckedMul(survey_.dumped_all, kPageDescSize,
                                            "descriptor room"),
                                 "descriptor room")
                    : desc_end_;
    if (facts.dump_level && (*facts.dump_level & 1)) zero_off_ = room_end;
    // Without a full walk a long table is read only at its ends, where a
    // capture that stopped, was killed or was cut shows; --deep reads it all.
    uint64_t skip_from = UINT64_MAX, skip_to = 0;
    if (!full_walk_ && ndesc_ > 2 * kEndDescriptors) {
      skip_from = kEndDescriptors;
      skip_to = ndesc_ - kEndDescriptors;
    }
    Desc d;
    while (w.Next(d)) {
      if (d.index == skip_from) {
        SeekDescriptor(w, skip_to);
        descriptors_unchecked_ = skip_to - skip_from;
        scan_pages_ += descriptors_unchecked_;
        if (!w.Next(d)) break;
      }
      if (!d.present) {
        // The file ends here: every later descriptor is missing too.
        missing.count = ndesc_ - d.index;
        missing.first =
            unwritten_desc_
                ? fmt::format(
                      "page descriptor {} (pfn {}) at offset {} was never "
                      "written (no flattened record carries offsets from {})",
                      d.index, d.pfn, d.at, desc_limit_)
                : fmt::format(
                      "page descriptor {} (pfn {}) at offset {} lies past "
                      "the end of the file ({})",
                      d.index, d.pfn, d.at, file_size_);
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
      if (d.flags & ~kDumpCodecMask || std::popcount(d.flags) > 1) {
        note(bad, [&] {
          return fmt::format("{}: flags {:#x} are not one codec", where(),
                             d.flags);
        });
        continue;
      }
      if (d.size == 0 || d.size > block_size_ ||
          (d.flags == 0 && d.size != block_size_)) {
        note(bad, [&] {
          return fmt::format(
              "{}: {} page of {} bytes is impossible with "
              "{}-byte pages",
              where(), CodecName(d.flags), d.size, block_size_);
        });
        continue;
      }
      if (d.offset < 0 || static_cast<uint64_t>(d.offset) < desc_end_) {
        note(overlap, [&] {
          return fmt::format(
              "{}: page data at offset {} overlaps the "
              "headers, bitmap or descriptors (which end "
              "at {})",
              where(), d.offset, desc_end_);
        });
        continue;
      }
      uint64_t off = static_cast<uint64_t>(d.offset);
      if (off > file_size_ || d.size > file_size_ - off) {
        note(past_end, [&] {
          return fmt::format(
              "{}: {} bytes of page data at offset {} "
              "end past the end of the file ({})",
              where(), d.size, off, file_size_);
        });
        continue;
      }
      // A flattened stream that lacks the record for this page.
      if (uint64_t w = src_.Written(off, d.size); w < d.size) {
        note(unwritten, [&] {
          return fmt::format(
              "{}: page data at offset {} was never written from offset {} "
              "on (no flattened record carries it)",
              where(), off, off + w);
        });
        continue;
      }
      bool raw_page = d.flags == 0 && d.size == block_size_;
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
                  off + block_size_ <= *first_off)) {
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
    CheckTableEnd(min_off, room_end, zero_first, missing.count != 0,
                  zero.count == 0 && overlap.count == 0 && bad.count == 0,
                  facts, findings);
    if (facts.dump_level && (*facts.dump_level & 1) && !descriptors_unchecked_)
      facts.pages_zero = zeros;
    facts.descriptors_unchecked += descriptors_unchecked_;
    if (missing.count)
      Add(findings, Severity::kIncomplete,
          unwritten_desc_ ? "flattened-hole" : "truncated",
          fmt::format("{}; {} of {} descriptors are missing", missing.first,
                      missing.count, ndesc_));
    if (zero.count)
      Add(findings, Severity::kIncomplete, "zero-descriptors",
          fmt::format("{} page descriptors inside the file are zero, a "
                      "write that was killed; the first is {}",
                      zero.count, zero.first));
    if (past_end.count)
      Add(findings, Severity::kIncomplete, "truncated",
          fmt::format("{}; {} pages are cut", past_end.first, past_end.count));
    if (bad.count)
      Add(findings, Severity::kCorrupt, "bad-descriptor",
          fmt::format("{}; {} descriptors are impossible", bad.first,
                      bad.count));
    if (overlap.count)
      Add(findings, Severity::kCorrupt, "overlap",
          fmt::format("{}; {} descriptors overlap", overlap.first,
                      overlap.count));
    if (unwritten.count)
      Add(findings, Severity::kIncomplete, "flattened-hole",
          fmt::format("{}; {} pages were never written", unwritten.first,
                      unwritten.count));
  }

  // Page data starts right after the room the bitmap gives the descriptor
  // table (or after the shared zero page there).  Anything else means the
  // bitmap counts a different number of pages than the table holds, and
  // every descriptor would be read for the wrong pfn.
  void CheckTableEnd(std::optional<uint64_t> min_off, uint64_t room_end,
                     bool zero_first, bool cut, bool descriptors_sound,
                     const DumpFacts& facts, Findings& findings) {
    if (cut) return;  // The file ends inside the table: reported already.
    if (!ndesc_) {
      if (!survey_.present_all) {
        Add(findings, Severity::kIncomplete, "empty-bitmap",
            fmt::format("first bitmap: none of the {} pfns is memory: the "
                        "bitmaps were never written",
                        max_mapnr_));
        return;
      }
      // A split part may cover a range with nothing to dump; the parts'
      // bitmaps are compared with each other.
      if (facts.split) return;
      // Nothing dumped: page data or descriptors after the bitmaps belong
      // to pages the second bitmap lost.
      std::vector<uint8_t> after(std::min<uint64_t>(
          4096, file_size_ > desc_off_ ? file_size_ - desc_off_ : 0));
      after.resize(src_.ReadAt(desc_off_, after));
      bool data = std::any_of(after.begin(), after.end(),
                              [](uint8_t b) { return b != 0; });
      if (data)
        Add(findings, Severity::kCorrupt, "bitmap-mismatch",
            fmt::format("second bitmap: no page is dumped, yet data follows "
                        "the bitmaps at offset {}: the second bitmap was "
                        "lost",
                        desc_off_));
      else
        Add(findings, Severity::kIncomplete, "no-pages",
            fmt::format("second bitmap: none of the {} pages of memory was "
                        "dumped",
                        survey_.present));
      return;
    }
    if (!min_off) return;  // No usable descriptor: reported already.
    if (*min_off == room_end ||
        (zero_first && *min_off == room_end + block_size_))
      return;
    if (*min_off > room_end && descriptors_sound) {
      // More room than the bitmap counts.  makedumpfile writes the second
      // bitmap cycle by cycle with the pages: a capture that stopped leaves
      // the rest of the bitmap, and the descriptors after the ones it
      // counts, zero, and every descriptor it counts sound.  A real
      // descriptor there, or descriptors read from page data, mean a
      // damaged bitmap.
      std::array<uint8_t, kPageDescSize> slot{};
      size_t got = src_.ReadAt(desc_end_, slot);
      bool real = std::any_of(slot.begin(), slot.begin() + got,
                              [](uint8_t b) { return b != 0; });
      if (!real) {
        Add(findings, Severity::kIncomplete, "bitmap-unwritten",
            fmt::format("page data starts at offset {}, after room for {} "
                        "descriptors, but the second bitmap counts {} and "
                        "the table is zero after them: the capture stopped "
                        "before it wrote the rest of the second bitmap",
                        *min_off, (*min_off - desc_off_) / kPageDescSize,
                        facts.split ? survey_.dumped_all : ndesc_));
        return;
      }
    }
    Add(findings, Severity::kCorrupt, "bitmap-mismatch",
        fmt::format("page data starts at offset {}, not right after the room "
                    "for the {} descriptors the bitmap counts (offset {}): "
                    "the bitmap and the descriptor table disagree",
                    *min_off, facts.split ? survey_.dumped_all : ndesc_,
                    room_end));
  }

  Source& src_;
  std::string prefix_;
  uint64_t file_size_ = 0;
  uint64_t desc_limit_ = 0;      // descriptors are read below this offset
  bool unwritten_desc_ = false;  // it is a hole in a flattened stream
  uint32_t block_size_ = 4096;
  uint64_t max_mapnr_ = 0, start_pfn_ = 0, end_pfn_ = 0;
  uint64_t bitmap_off_ = 0, bitmap_half_ = 0, desc_off_ = 0, desc_end_ = 0;
  uint64_t ndesc_ = 0, data_end_ = 0, scan_pages_ = 0;
  uint64_t descriptors_unchecked_ = 0;
  std::optional<uint64_t> zero_off_;
  bool walkable_ = false;
  std::optional<DescWalker> walker_;
  std::optional<PageJob> pending_;
  std::vector<uint64_t> rank_;
  BitmapSurvey survey_;
  std::optional<BitmapSurvey> surveyed_;
  uint64_t rank_block_ = 1 << 15;  // pfns per rank entry
  std::map<uint64_t, Bytes> page_cache_;
};

class SplitSetReader : public DumpReader {
 public:
  SplitSetReader(std::vector<Source*> parts, std::vector<std::string> names) {
    for (size_t i = 0; i < parts.size(); ++i)
      readers_.push_back(std::make_unique<KdumpReader>(
          *parts[i], fmt::format("split part {}: ", names[i])));
  }

  void set_full_walk(bool full) override {
    for (auto& r : readers_) r->set_full_walk(full);
  }

  void CheckStructure(DumpFacts& facts, Findings& findings) override {
    struct Range {
      uint64_t start, end;
    };
    std::vector<Range> ranges;
    uint64_t max_mapnr = 0;
    const BitmapSurvey* reference = nullptr;
    size_t reference_part = 0;
    for (size_t i = 0; i < readers_.size(); ++i) {
      DumpFacts pf;
      readers_[i]->CheckStructure(pf, findings);
      if (i == 0) {
        facts = pf;
        facts.pages_dumped = facts.pages_excluded = 0;
        facts.descriptors_unchecked = 0;
        if (facts.pages_zero) facts.pages_zero = 0;
      }
      facts.descriptors_unchecked += pf.descriptors_unchecked;
      if (pf.descriptors_unchecked) facts.pages_zero.reset();
      facts.pages_dumped += pf.pages_dumped;
      facts.pages_excluded += pf.pages_excluded;
      if (facts.pages_zero && pf.pages_zero)
        *facts.pages_zero += *pf.pages_zero;
      if (!pf.header_version) continue;  // header unreadable: range unknown
      if (!pf.split)
        findings.Add(
            Severity::kCorrupt, "split-mismatch",
            fmt::format("split set: part {} is not a split part", i + 1));
      if (max_mapnr && readers_[i]->max_mapnr() != max_mapnr)
        findings.Add(Severity::kCorrupt, "split-mismatch",
                     fmt::format("split set: part {} describes {} pages, "
                                 "part 1 {}",
                                 i + 1, readers_[i]->max_mapnr(), max_mapnr));
      max_mapnr = std::max(max_mapnr, readers_[i]->max_mapnr());
      ranges.push_back({readers_[i]->start_pfn(), readers_[i]->end_pfn()});
      // Every part carries the whole bitmaps of the same memory.
      const auto& mine = readers_[i]->survey();
      if (!mine) continue;
      if (!reference) {
        reference = &*mine;
        reference_part = i;
        continue;
      }
      for (int half = 0; half < 2; ++half)
        if (mine->digest[half] != reference->digest[half])
          findings.Add(Severity::kCorrupt, "split-mismatch",
                       fmt::format("split set: the {} bitmap of part {} "
                                   "differs from part {}'s",
                                   half ? "second" : "first", i + 1,
                                   reference_part + 1));
    }
    facts.format = "kdump-compressed";
    facts.split = true;
    std::sort(ranges.begin(), ranges.end(),
              [](const Range& a, const Range& b) { return a.start < b.start; });
    uint64_t covered = 0;
    for (const Range& r : ranges) {
      if (r.start > covered)
        findings.Add(Severity::kIncomplete, "split-part-missing",
                     fmt::format("split set: no part covers pfns [{}, {})",
                                 covered, r.start));
      else if (r.start < covered)
        findings.Add(
            Severity::kCorrupt, "overlap",
            fmt::format("split set: parts overlap at pfn {}", r.start));
      covered = std::max(covered, r.end);
    }
    if (!ranges.empty() && covered < max_mapnr)
      findings.Add(Severity::kIncomplete, "split-part-missing",
                   fmt::format("split set: no part covers pfns [{}, {})",
                               covered, max_mapnr));
  }

  bool NextBatch(std::vector<PageJob>& batch) override {
    while (current_ < readers_.size()) {
      if (readers_[current_]->NextBatch(batch)) return true;
      ++current_;
    }
    batch.clear();
    return false;
  }

  uint64_t PageCount() const override {
    uint64_t n = 0;
    for (const auto& r : readers_) n += r->PageCount();
    return n;
  }

  bool ReadPhysical(uint64_t paddr, std::span<uint8_t> out) override {
    // Page by page: consecutive pages may lie in different parts.
    size_t done = 0;
    while (done < out.size()) {
      uint64_t pa = paddr + done;
      KdumpReader* part = nullptr;
      uint64_t ps = 0;
      for (auto& r : readers_) {
        ps = r->block_size();
        if (r->HasPfn(pa / ps)) {
          part = r.get();
          break;
        }
      }
      if (!part) return false;
      size_t n = std::min<uint64_t>(out.size() - done, ps - pa % ps);
      if (!part->ReadPhysical(pa, out.subspan(done, n))) return false;
      done += n;
    }
    return true;
  }

 private:
  std::vector<std::unique_ptr<KdumpReader>> readers_;
  size_t current_ = 0;
};

}  // namespace

Probe ProbeKdump(Source& src) { return ProbeMagic(src, kKdumpSignature); }

std::unique_ptr<DumpReader> OpenKdumpReader(Source& src) {
  return std::make_unique<KdumpReader>(src);
}

std::optional<SplitIdentity> ReadSplitIdentity(Source& src) {
  std::vector<uint8_t> h(kKdumpHeaderSize), s(kKdumpSubHeaderSize);
  if (src.ReadAt(0, h) != h.size()) return std::nullopt;
  ByteView hv(h, 0, "kdump header");
  if (hv.CString(0, 8) != kKdumpSignature) return std::nullopt;
  int32_t version = static_cast<int32_t>(hv.Le32(8));
  uint32_t bs = hv.Le32(428);
  if (version < 2 || version > 6 || bs < 512 || bs > (1u << 20))
    return std::nullopt;
  if (src.ReadAt(bs, s) != s.size()) return std::nullopt;
  ByteView sv(s, bs, "kdump sub-header");
  SplitIdentity id;
  id.split = sv.Le32(12) != 0;
  id.max_mapnr = version >= 6 ? sv.Le64(96) : hv.Le32(440);
  id.start_pfn = version >= 6 ? sv.Le64(80) : sv.Le64(16);
  id.end_pfn = version >= 6 ? sv.Le64(88) : sv.Le64(24);
  id.utsname_release = hv.CString(12 + 2 * 65, 65);
  id.nodename = hv.CString(12 + 65, 65);
  id.timestamp = static_cast<int64_t>(hv.Le64(408));
  return id;
}

std::unique_ptr<DumpReader> OpenSplitSetReader(std::vector<Source*> parts,
                                               std::vector<std::string> names) {
  return std::make_unique<SplitSetReader>(std::move(parts), std::move(names));
}

}  // namespace nmimgr::vmcore
