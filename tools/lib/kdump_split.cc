// SPDX-License-Identifier: GPL-2.0-or-later
#include "kdump_split.h"

#include <fmt/format.h>

#include <algorithm>

#include "checked.h"
#include "kdump_header.h"
#include "kdump_reader.h"

namespace nmimgr::vmcore {
namespace {

class SplitSetReader : public DumpReader {
 public:
  SplitSetReader(std::vector<Source*> parts, std::vector<std::string> names) {
    for (size_t i = 0; i < parts.size(); ++i)
      readers_.push_back(std::make_unique<KdumpReader>(
          *parts[i], fmt::format("split part {}: ", names[i]), true));
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
            FindingCode::kSplitMismatch,
            fmt::format("split set: part {} is not a split part", i + 1));
      if (max_mapnr && readers_[i]->max_mapnr() != max_mapnr)
        findings.Add(FindingCode::kSplitMismatch,
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
          findings.Add(FindingCode::kSplitMismatch,
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
        findings.Add(FindingCode::kSplitPartMissing,
                     fmt::format("split set: no part covers pfns [{}, {})",
                                 covered, r.start));
      else if (r.start < covered)
        findings.Add(
            FindingCode::kOverlap,
            fmt::format("split set: parts overlap at pfn {}", r.start));
      covered = std::max(covered, r.end);
    }
    if (!ranges.empty() && covered < max_mapnr)
      findings.Add(FindingCode::kSplitPartMissing,
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

std::optional<SplitIdentity> ReadSplitIdentity(Source& src) {
  // Laxer than the reader: a part is grouped by these fields, and the check
  // of the set judges the rest.
  try {
    KdumpHeader h = ReadKdumpHeader(src);
    if (h.version < 2 || h.version > 6 || h.block_size < 512 ||
        h.block_size > (1 << 20))
      return std::nullopt;
    KdumpSubHeader s =
        ReadKdumpSubHeader(src, h, static_cast<uint32_t>(h.block_size));
    SplitIdentity id;
    id.split = s.split;
    id.max_mapnr = s.max_mapnr;
    id.start_pfn = s.start_pfn;
    id.end_pfn = s.end_pfn;
    id.utsname_release = h.release;
    id.nodename = h.nodename;
    id.timestamp = h.timestamp;
    return id;
  } catch (const TruncatedError&) {
    return std::nullopt;
  } catch (const CorruptError&) {
    return std::nullopt;
  }
}

std::unique_ptr<DumpReader> OpenSplitSetReader(std::vector<Source*> parts,
                                               std::vector<std::string> names) {
  return std::make_unique<SplitSetReader>(std::move(parts), std::move(names));
}

}  // namespace nmimgr::vmcore
