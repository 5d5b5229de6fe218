// SPDX-License-Identifier: GPL-2.0-or-later
#include "kdump_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "checked.h"
#include "codec.h"

namespace nmimgr::vmcore {
namespace {

constexpr size_t kBatchPages = 256;
// Descriptors read at once by a page lookup: 3 KiB.
constexpr uint64_t kDescRun = 128;

}  // namespace

void KdumpReader::CheckStructure(DumpFacts& facts, Findings& findings) {
  if (!CatchErrors(findings, Catch::kDataErrors, prefix_,
                   [&] { Check(facts, findings); }))
    walkable_ = false;
}

// Inline: the per-page step of NextBatch.
inline std::optional<PageJob> KdumpReader::NextJob() {
  if (pending_) {
    std::optional<PageJob> j = pending_;
    pending_.reset();
    return j;
  }
  const std::optional<uint64_t>& zero_off = table_.zero_off();
  PageDesc d;
  while (walker_->Next(d)) {
    if (!d.present) return std::nullopt;
    if (!table_.Sound(src_, d)) continue;
    PageJob j;
    j.src = &src_;
    j.pfn = d.pfn;
    j.index = d.index;
    j.offset = static_cast<uint64_t>(d.offset);
    j.size = d.size;
    j.flags = d.flags;
    j.zero_page = zero_off && *zero_off == j.offset;
    return j;
  }
  return std::nullopt;
}

bool KdumpReader::NextBatch(std::vector<PageJob>& batch) {
  batch.clear();
  if (!walkable_) return false;
  if (!walker_) walker_.emplace(table_.Walker(src_, layout_));
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

bool KdumpReader::ReadPhysical(uint64_t paddr, std::span<uint8_t> out) {
  const uint32_t bs = layout_.block_size;
  size_t done = 0;
  while (done < out.size()) {
    uint64_t pa = paddr + done;
    size_t in_page = pa % bs;
    size_t n = std::min<size_t>(out.size() - done, bs - in_page);
    // A whole page that is not cached is decoded where it is wanted (the
    // kernel log's rings); parts of pages go through the cache (page
    // tables, the record search's look at the next page).
    if (n == bs && !page_cache_.contains(pa / bs)) {
      if (!DecodeInto(pa / bs, out.subspan(done, n))) return false;
    } else {
      const Bytes* page = Page(pa / bs);
      if (!page) return false;
      std::memcpy(out.data() + done, page->data() + in_page, n);
    }
    done += n;
  }
  return true;
}

std::optional<uint64_t> KdumpReader::DescIndex(uint64_t pfn) {
  const uint64_t bitmap2 = layout_.bitmap_off + layout_.bitmap_half;
  const uint64_t first = pfn / kWindowPfns * kWindowPfns;
  if (!window_first_ || *window_first_ != first) {
    // HasPfn: pfn < end_pfn <= max_mapnr, so the window starts inside the
    // bytes of the second bitmap that Check required to be written.
    const uint64_t cover =
        std::min(layout_.bitmap_half, (layout_.max_mapnr + 7) / 8);
    const uint64_t len = std::min(kWindowPfns / 8, cover - first / 8);
    window_.assign(kWindowPfns / 8, 0);
    ReadBitmapBytes(src_, bitmap2 + first / 8,
                    std::span<uint8_t>(window_.data(), len), "second bitmap");
    window_rank_ = rank_.Rank(src_, bitmap2, first);
    window_first_ = first;
  }
  const uint64_t rel = pfn - first;
  if (!(window_[rel / 8] >> (rel % 8) & 1)) return std::nullopt;
  if (!start_rank_) start_rank_ = rank_.Rank(src_, bitmap2, layout_.start_pfn);
  return window_rank_ + CountLeadingBits(window_, rel) - *start_rank_;
}

bool KdumpReader::DecodeInto(uint64_t pfn, std::span<uint8_t> out) {
  if (!HasPfn(pfn)) return false;
  std::optional<uint64_t> index = DescIndex(pfn);
  if (!index || *index >= table_.count()) return false;
  // Descriptors are read a run at a time: the pages looked up are mostly
  // neighbours.
  if (*index < descs_first_ || *index >= descs_first_ + descs_count_) {
    descs_first_ = *index;
    descs_count_ = table_.ReadRun(src_, *index, kDescRun, descs_);
  }
  if (*index >= descs_first_ + descs_count_) return false;
  const uint64_t at = (*index - descs_first_) * kPageDescSize;
  PageDesc d;
  d.index = *index;
  d.at = layout_.desc_off + *index * kPageDescSize;
  d.present = true;
  DecodePageDesc(
      ByteView(std::span<const uint8_t>(descs_).subspan(at, kPageDescSize),
               d.at, "page descriptor"),
      d);
  if (!table_.Sound(src_, d)) return false;
  packed_.resize(d.size);
  if (src_.ReadAt(static_cast<uint64_t>(d.offset), packed_) != d.size)
    return false;
  return DecodePage(d.flags, packed_, out).empty();
}

const KdumpReader::Bytes* KdumpReader::Page(uint64_t pfn) {
  if (auto it = page_cache_.find(pfn); it != page_cache_.end())
    return &it->second;
  Bytes page(layout_.block_size);
  if (!DecodeInto(pfn, page)) return nullptr;
  if (page_cache_.size() >= 256) page_cache_.clear();
  return &(page_cache_[pfn] = std::move(page));
}

void KdumpReader::Check(DumpFacts& facts, Findings& findings) {
  file_size_ = src_.Size();
  facts.format = "kdump-compressed";
  KdumpHeader header;
  KdumpSubHeader sub;
  ReadKdumpLayout(src_, layout_, header, sub, facts, findings, prefix_);
  // Metadata inside the sub-header blocks.
  ReadKdumpMetadata(src_, file_size_, header, sub, layout_, facts, findings);

  const KdumpLayout& l = layout_;
  if (l.bitmap_off > file_size_ || l.bitmap_len > file_size_ - l.bitmap_off)
    throw TruncatedError(fmt::format(
        "bitmap: {} bytes at offset {} end past the end of the file ({})",
        l.bitmap_len, l.bitmap_off, file_size_));
  // A bitmap the stream never wrote is missing, not zeros to count: the
  // work below must stay bounded by the bytes on disk.  Each half must be
  // written as far as its bytes cover max_mapnr; makedumpfile leaves the
  // rest of the half's last block unwritten (ReadBitmapBytes).
  const uint64_t cover = std::min(l.bitmap_half, (l.max_mapnr + 7) / 8);
  RequireWritten(src_, l.bitmap_off, cover, "first bitmap");
  RequireWritten(src_, l.bitmap_off + l.bitmap_half, cover, "second bitmap");

  // The rank index from the same pass.
  rank_.Size(l.max_mapnr);
  survey_ = SurveyBitmaps(src_, l.bitmap_off, l.bitmap_half, l.start_pfn,
                          l.end_pfn, l.max_mapnr, &rank_, split_part_);
  rank_.Build();
  const BitmapSurvey& bm = *survey_;
  ReportBitmapSurvey(bm, l.max_mapnr, findings, prefix_);
  const uint64_t present = bm.present, dumped = bm.dumped;
  facts.pages_dumped = dumped;
  facts.pages_excluded = present > dumped ? present - dumped : 0;
  table_.Size(src_, file_size_, l, dumped);
  walkable_ = true;
  table_.Walk(src_, l, bm, rank_, full_walk_, facts, findings, prefix_);
  const uint64_t data_end = std::max(table_.end(), table_.data_end());
  if (sub.eraseinfo_size && sub.eraseinfo_off < data_end)
    findings.Add(FindingCode::kOverlap,
                 fmt::format("{}eraseinfo at offset {} overlaps the "
                             "descriptors or page data (which end at {})",
                             prefix_, sub.eraseinfo_off, data_end));
}

Probe ProbeKdump(Source& src) { return ProbeMagic(src, kKdumpSignature); }

std::unique_ptr<DumpReader> OpenKdumpReader(Source& src) {
  return std::make_unique<KdumpReader>(src);
}

}  // namespace nmimgr::vmcore
