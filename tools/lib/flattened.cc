// SPDX-License-Identifier: GPL-2.0-or-later
#include "flattened.h"

#include <fmt/format.h>

#include <array>
#include <cstring>

#include "checked.h"

namespace nmimgr::vmcore {

Probe ProbeFlattened(Source& src) {
  // The signature is NUL-padded to 16 bytes: match it with its first NUL.
  return ProbeMagic(src, std::string_view("makedumpfile\0", 13));
}

FlattenedSource::FlattenedSource(Source& file, Findings& findings)
    : file_(file) {
  const uint64_t file_size = file.Size();
  std::array<uint8_t, 32> hdr{};
  size_t got = file.ReadAt(0, hdr);
  if (got < hdr.size()) {
    findings.Add(FindingCode::kTruncated,
                 fmt::format("flattened header: file ends at {} bytes, "
                             "within the {}-byte header",
                             file_size, kFlatHeaderSize));
    return;
  }
  ByteView h(hdr, 0, "flattened header");
  int64_t type = h.Be64s(16), version = h.Be64s(24);
  if (type != 1 || version != 1) {
    findings.Add(FindingCode::kBadVersion,
                 fmt::format("flattened header: type {} version {}, "
                             "expected type 1 version 1",
                             type, version));
    return;
  }
  if (file_size < kFlatHeaderSize) {
    findings.Add(FindingCode::kTruncated,
                 fmt::format("flattened header: file ends at {} bytes, "
                             "within the {}-byte header",
                             file_size, kFlatHeaderSize));
    return;
  }
  uint64_t pos = kFlatHeaderSize;
  for (uint64_t n = 0;; ++n) {
    if (pos == file_size) {
      findings.Add(FindingCode::kNoEndMarker,
                   fmt::format("flattened stream ends at offset {} after {} "
                               "records without its end marker",
                               pos, n));
      return;
    }
    std::array<uint8_t, 16> rh{};
    if (file.ReadAt(pos, rh) != rh.size()) {
      findings.Add(FindingCode::kTruncated,
                   fmt::format("flattened record {} at offset {}: header "
                               "cut by the end of the file ({})",
                               n, pos, file_size));
      return;
    }
    ByteView r(rh, pos, "flattened record header");
    int64_t off = r.Be64s(0), len = r.Be64s(8);
    if (off == -1 && len == -1) {
      end_marker_ = true;
      records_ = n;
      if (pos + 16 != file_size)
        findings.Add(FindingCode::kTrailingData,
                     fmt::format("flattened stream: {} bytes after the end "
                                 "marker at offset {}",
                                 file_size - pos - 16, pos));
      return;
    }
    if (off < 0 || len < 0) {
      findings.Add(FindingCode::kImpossibleSize,
                   fmt::format("flattened record {} at offset {}: offset {} "
                               "size {}",
                               n, pos, off, len));
      return;
    }
    uint64_t data = pos + 16;
    uint64_t uoff = static_cast<uint64_t>(off),
             ulen = static_cast<uint64_t>(len);
    // Offsets are off_t: the record must end below 2^63.
    uint64_t lend = uoff + ulen;
    if (ulen > static_cast<uint64_t>(INT64_MAX) - uoff) {
      findings.Add(FindingCode::kImpossibleSize,
                   fmt::format("flattened record {} at offset {}: offset {} + "
                               "size {} overflows",
                               n, pos, off, len));
      return;
    }
    if (ulen > file_size - data) {
      findings.Add(FindingCode::kTruncated,
                   fmt::format("flattened record {} at offset {}: {} bytes "
                               "of data for dump offset {} end past the end "
                               "of the file ({})",
                               n, pos, ulen, uoff, file_size));
      records_ = n;
      return;
    }
    if (ulen > 0) {
      Insert(uoff, ulen, data);
      size_ = std::max(size_, lend);
    }
    pos = data + ulen;
  }
}

void FlattenedSource::Insert(uint64_t start, uint64_t len, uint64_t file_off) {
  uint64_t end = start + len;
  // Trim or split every extent that overlaps [start, end): the new record
  // wins.
  auto it = map_.lower_bound(start);
  if (it != map_.begin()) {
    auto prev = std::prev(it);
    if (prev->second.end > start) it = prev;
  }
  while (it != map_.end() && it->first < end) {
    uint64_t s = it->first;
    Extent e = it->second;
    it = map_.erase(it);
    if (s < start) map_[s] = {start, e.file_off};
    if (e.end > end) map_[end] = {e.end, e.file_off + (end - s)};
  }
  map_[start] = {end, file_off};
}

size_t FlattenedSource::ReadAt(uint64_t offset, std::span<uint8_t> out) {
  // An empty span may have a null data(): never hand it to memset.
  if (out.empty() || offset >= size_) return 0;
  size_t n = std::min<uint64_t>(out.size(), size_ - offset);
  std::memset(out.data(), 0, n);
  uint64_t end = offset + n;
  auto it = map_.upper_bound(offset);
  if (it != map_.begin()) --it;
  uint64_t covered_to = offset;  // bytes before this are accounted for
  auto hole = [&](uint64_t a) {
    std::lock_guard lock(mu_);
    if (hole_reads_++ == 0) {
      hole_start_ = a;
    }
  };
  for (; it != map_.end() && it->first < end; ++it) {
    uint64_t s = std::max(it->first, offset);
    uint64_t e = std::min(it->second.end, end);
    if (s >= e) continue;
    if (s > covered_to) hole(covered_to);
    covered_to = e;
    std::span<uint8_t> dst = out.subspan(s - offset, e - s);
    uint64_t src = it->second.file_off + (s - it->first);
    if (file_.ReadAt(src, dst) != dst.size())
      throw IoError(
          fmt::format("reading {}: flattened record data at "
                      "offset {} vanished",
                      file_.Name(), src));
  }
  if (covered_to < end) hole(covered_to);
  return n;
}

uint64_t FlattenedSource::Written(uint64_t offset, uint64_t len) {
  if (offset >= size_) return 0;
  const uint64_t end = offset + std::min(len, size_ - offset);
  auto it = map_.upper_bound(offset);
  if (it != map_.begin()) --it;
  uint64_t covered_to = offset;
  // Extents are disjoint and sorted: walk them while they join up.
  for (; it != map_.end() && covered_to < end; ++it) {
    if (it->second.end <= covered_to) continue;
    if (it->first > covered_to) break;
    covered_to = it->second.end;
  }
  return std::min(covered_to, end) - offset;
}

uint64_t FlattenedSource::hole_reads() const {
  std::lock_guard lock(mu_);
  return hole_reads_;
}

std::string FlattenedSource::FirstHole() const {
  std::lock_guard lock(mu_);
  // Name the whole gap between records that the first hole read fell into,
  // not just the part that read touched (which depends on read order).
  auto next = map_.upper_bound(hole_start_);
  uint64_t a = next == map_.begin() ? 0 : std::prev(next)->second.end;
  uint64_t b = next == map_.end() ? size_ : next->first;
  return fmt::format("[{}, {})", a, std::max(a, b));
}

}  // namespace nmimgr::vmcore
