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
    const Bytes* page = Page(pa / bs);
    if (!page) return false;
    size_t in_page = pa % bs;
    size_t n = std::min<size_t>(out.size() - done, bs - in_page);
    std::memcpy(out.data() + done, page->data() + in_page, n);
    done += n;
  }
  return true;
}

const KdumpReader::Bytes* KdumpReader::Page(uint64_t pfn) {
  if (auto it = page_cache_.find(pfn); it != page_cache_.end())
    return &it->second;
  if (!HasPfn(pfn)) return nullptr;
  const uint64_t bitmap2 = layout_.bitmap_off + layout_.bitmap_half;
  if (!BitmapBit(src_, bitmap2, pfn, "second bitmap")) return nullptr;
  if (!start_rank_) start_rank_ = rank_.Rank(src_, bitmap2, layout_.start_pfn);
  uint64_t index = rank_.Rank(src_, bitmap2, pfn) - *start_rank_;
  if (index >= table_.count()) return nullptr;
  std::optional<PageDesc> d = table_.Read(src_, index);
  if (!d || !table_.Sound(src_, *d)) return nullptr;
  Bytes data(d->size), page(layout_.block_size);
  if (src_.ReadAt(static_cast<uint64_t>(d->offset), data) != d->size)
    return nullptr;
  if (!DecodePage(d->flags, data, page).empty()) return nullptr;
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
