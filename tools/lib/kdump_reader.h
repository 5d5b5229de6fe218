// SPDX-License-Identifier: GPL-2.0-or-later
//
// Reader for makedumpfile's kdump-compressed format (header versions 1-6):
// one file, whole or a part of a split set (kdump_split.h reads the set).
// The pieces, one per on-disk structure, each with its layout:
//
//   kdump_header.h       disk_dump_header and kdump_sub_header (offset 0,
//                        block 1), the metadata they point at, and where
//                        everything else lies
//   kdump_bitmap.h       the two bitmaps after the sub-header blocks
//   kdump_descriptors.h  the page descriptor table after the bitmaps, and
//                        the rules for a descriptor
//   kdump_split.h        split sets (makedumpfile --split)
//
// This reader strings them together: headers, one pass over the bitmaps
// (which also builds the rank index), the descriptor walk, and then pages
// for the page engine.
#ifndef NMIMGR_TOOLS_LIB_KDUMP_READER_H_
#define NMIMGR_TOOLS_LIB_KDUMP_READER_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kdump_bitmap.h"
#include "kdump_descriptors.h"
#include "kdump_header.h"
#include "kdump_split.h"
#include "reader.h"

namespace nmimgr::vmcore {

class KdumpReader : public DumpReader {
 public:
  // `prefix` goes before every finding's message (a split part's name);
  // `split_part`: the reader of one part of a split set, whose bitmaps are
  // compared with the other parts' (BitmapSurvey::digest).
  explicit KdumpReader(Source& src, std::string prefix = {},
                       bool split_part = false)
      : src_(src), prefix_(std::move(prefix)), split_part_(split_part) {}

  void CheckStructure(DumpFacts& facts, Findings& findings) override;
  bool NextBatch(std::vector<PageJob>& batch) override;
  uint64_t PageCount() const override { return table_.scan_pages(); }
  bool ReadPhysical(uint64_t paddr, std::span<uint8_t> out) override;

  // After CheckStructure: whether this file's pages can be read, and which.
  bool HasPfn(uint64_t pfn) const {
    return walkable_ && pfn >= layout_.start_pfn && pfn < layout_.end_pfn;
  }
  uint64_t start_pfn() const { return layout_.start_pfn; }
  uint64_t end_pfn() const { return layout_.end_pfn; }
  uint64_t max_mapnr() const { return layout_.max_mapnr; }
  // Valid once CheckStructure read the bitmaps.
  const std::optional<BitmapSurvey>& survey() const { return survey_; }
  uint32_t block_size() const { return layout_.block_size; }

 private:
  using Bytes = std::vector<uint8_t>;

  void Check(DumpFacts& facts, Findings& findings);
  // Pfns whose second-bitmap bits one lookup window holds: 4 KiB of it.
  static constexpr uint64_t kWindowPfns = 1 << 15;

  // The decoded page at `pfn`, or nullptr when it is not in the dump.
  const Bytes* Page(uint64_t pfn);
  // Decodes the page at `pfn` into `out` (block_size bytes); false when it
  // is not in the dump.
  bool DecodeInto(uint64_t pfn, std::span<uint8_t> out);
  // The number of `pfn`'s descriptor, or nullopt when it was not dumped.
  std::optional<uint64_t> DescIndex(uint64_t pfn);
  std::optional<PageJob> NextJob();

  Source& src_;
  std::string prefix_;
  bool split_part_;
  uint64_t file_size_ = 0;
  KdumpLayout layout_;
  RankIndex rank_;
  std::optional<uint64_t> start_rank_;  // Rank() of start_pfn, once
  std::optional<BitmapSurvey> survey_;
  DescTable table_;
  bool walkable_ = false;
  std::optional<DescWalker> walker_;
  std::optional<PageJob> pending_;
  std::map<uint64_t, Bytes> page_cache_;
  // The second bitmap's bytes for the kWindowPfns pfns from window_first_
  // and the rank of the first: neighbouring lookups read no bitmap again.
  std::optional<uint64_t> window_first_;
  uint64_t window_rank_ = 0;
  Bytes window_;
  // Descriptors [descs_first_, descs_first_ + descs_count_), read last.
  uint64_t descs_first_ = 0, descs_count_ = 0;
  Bytes descs_;
  Bytes packed_;  // the stored bytes of the page being decoded
};

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_KDUMP_READER_H_
