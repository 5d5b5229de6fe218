// SPDX-License-Identifier: GPL-2.0-or-later
#include "kdump_header.h"

#include <fmt/format.h>

#include <bit>
#include <vector>

#include "checked.h"
#include "codec.h"
#include "notes.h"

namespace nmimgr::vmcore {
namespace {

constexpr uint64_t kUtsnameLen = 65;  // each of the 6 fields

// utsname field `i` (0 sysname, 1 nodename, 2 release, 4 machine).
std::string Utsname(const ByteView& h, int i) {
  return h.CString(12 + i * kUtsnameLen, kUtsnameLen);
}

}  // namespace

KdumpHeader ReadKdumpHeader(Source& src) {
  std::vector<uint8_t> buf(kKdumpHeaderSize);
  size_t got = src.ReadAt(0, buf);
  if (got < buf.size())
    throw TruncatedError(fmt::format(
        "kdump header: file ends at {} bytes, within the {}-byte header", got,
        kKdumpHeaderSize));
  ByteView h(buf, 0, "kdump header");
  if (h.CString(0, 8) != kKdumpSignature)
    throw CorruptError("kdump header: bad signature");
  KdumpHeader k;
  k.version = static_cast<int32_t>(h.Le32(8));
  k.nodename = Utsname(h, 1);
  k.release = Utsname(h, 2);
  k.machine = Utsname(h, 4);
  k.timestamp = static_cast<int64_t>(h.Le64(408));
  k.status = h.Le32(424);
  k.block_size = static_cast<int32_t>(h.Le32(428));
  k.sub_hdr_size = static_cast<int32_t>(h.Le32(432));
  k.bitmap_blocks = h.Le32(436);
  k.max_mapnr32 = h.Le32(440);
  k.nr_cpus = static_cast<int32_t>(h.Le32(460));
  return k;
}

KdumpSubHeader ReadKdumpSubHeader(Source& src, const KdumpHeader& h,
                                  uint64_t block_size) {
  std::vector<uint8_t> buf(kKdumpSubHeaderSize);
  if (src.ReadAt(block_size, buf) < buf.size())
    throw TruncatedError(fmt::format(
        "kdump sub-header: {} bytes at offset {} end past the end of the "
        "file ({})",
        kKdumpSubHeaderSize, block_size, src.Size()));
  ByteView s(buf, block_size, "kdump sub-header");
  const int v = h.version;
  KdumpSubHeader k;
  k.dump_level = static_cast<int32_t>(s.Le32(8));
  k.max_mapnr = v >= 6 ? s.Le64(96) : h.max_mapnr32;
  if (v >= 2) {
    k.split = s.Le32(12) != 0;
    k.start_pfn = v >= 6 ? s.Le64(80) : s.Le64(16);
    k.end_pfn = v >= 6 ? s.Le64(88) : s.Le64(24);
  }
  if (v >= 3) {
    k.vmcoreinfo_off = s.Le64(32);
    k.vmcoreinfo_size = s.Le64(40);
  }
  if (v >= 4) {
    k.note_off = s.Le64(48);
    k.note_size = s.Le64(56);
  }
  if (v >= 5) {
    k.eraseinfo_off = s.Le64(64);
    k.eraseinfo_size = s.Le64(72);
  }
  return k;
}

void ReadKdumpLayout(Source& src, KdumpLayout& l, KdumpHeader& header,
                     KdumpSubHeader& sub, DumpFacts& facts, Findings& findings,
                     std::string_view prefix) {
  header = ReadKdumpHeader(src);
  const KdumpHeader& h = header;
  if (h.version < 1 || h.version > 6)
    throw CorruptError(fmt::format(
        "kdump header: version {} is not one of 1 to 6", h.version));
  facts.header_version = h.version;
  facts.kernel_release = h.release;
  facts.machine = h.machine;
  facts.dump_time = h.timestamp;
  const int32_t bs = h.block_size;
  if (bs < 512 || bs > (1 << 20) || (bs & (bs - 1)) != 0)
    throw CorruptError(fmt::format(
        "kdump header: block size {} is not a power of two from 512 to "
        "1 MiB",
        bs));
  l.block_size = static_cast<uint32_t>(bs);
  facts.page_size = l.block_size;
  if (h.sub_hdr_size < 1 || h.sub_hdr_size > (1 << 16))
    throw CorruptError(
        fmt::format("kdump header: sub-header size of {} blocks is impossible",
                    h.sub_hdr_size));
  if (h.status & kDumpIncomplete)
    findings.Add(FindingCode::kIncompleteFlag,
                 std::string(prefix) +
                     "kdump header: the incomplete flag (status 0x8) is set: "
                     "makedumpfile ran out of space");
  uint32_t codec = h.status & kDumpCodecMask;
  if (std::popcount(codec) > 1)
    throw CorruptError(fmt::format(
        "kdump header: status {:#x} names more than one codec", h.status));
  facts.compression = CodecName(codec);

  sub = ReadKdumpSubHeader(src, h, l.block_size);
  facts.dump_level = sub.dump_level;
  l.max_mapnr = sub.max_mapnr;
  facts.max_mapnr = l.max_mapnr;
  l.start_pfn = 0;
  l.end_pfn = l.max_mapnr;
  if (sub.split) {
    facts.split = true;
    l.start_pfn = sub.start_pfn;
    l.end_pfn = sub.end_pfn;
    if (l.start_pfn > l.end_pfn || l.end_pfn > l.max_mapnr)
      throw CorruptError(fmt::format(
          "kdump sub-header: split range [{}, {}) does not fit max_mapnr "
          "{}",
          l.start_pfn, l.end_pfn, l.max_mapnr));
  }

  l.bitmap_off = CheckedMul(1 + static_cast<uint64_t>(h.sub_hdr_size),
                            l.block_size, "kdump bitmap offset");
  l.bitmap_len = CheckedMul(h.bitmap_blocks, l.block_size, "kdump bitmap size");
  if (h.bitmap_blocks == 0 || h.bitmap_blocks % 2 != 0)
    throw CorruptError(
        fmt::format("kdump header: bitmap of {} blocks cannot hold two bitmaps",
                    h.bitmap_blocks));
  l.bitmap_half = l.bitmap_len / 2;
  if (l.max_mapnr > l.bitmap_half * 8)
    throw CorruptError(fmt::format(
        "kdump header: bitmap of {} blocks cannot describe max_mapnr {} "
        "pages",
        h.bitmap_blocks, l.max_mapnr));
  l.desc_off =
      CheckedAdd(l.bitmap_off, l.bitmap_len, "kdump descriptor offset");
}

void ReadKdumpMetadata(Source& src, uint64_t file_size, const KdumpHeader& h,
                       const KdumpSubHeader& sub, const KdumpLayout& layout,
                       DumpFacts& facts, Findings& findings) {
  const uint64_t bs = layout.block_size;
  // Whether the region is there to read; throws when it cannot be.
  auto region = [&](uint64_t off, uint64_t size, const char* what,
                    bool inside_sub) -> bool {
    if (size == 0) return false;
    if (size > kMaxNoteBytes)
      throw CorruptError(fmt::format(
          "kdump sub-header: {} size {} is impossible", what, size));
    uint64_t end = CheckedAdd(off, size, what);
    if (inside_sub &&
        (off < bs + kKdumpSubHeaderSize || end > layout.bitmap_off))
      throw CorruptError(fmt::format(
          "kdump sub-header: {} at [{}, {}) overlaps the headers or the "
          "bitmap (sub-header area [{}, {}))",
          what, off, end, bs, layout.bitmap_off));
    if (end > file_size)
      throw TruncatedError(fmt::format(
          "{}: {} bytes at offset {} end past the end of the file ({})", what,
          size, off, file_size));
    return true;
  };
  if (region(sub.vmcoreinfo_off, sub.vmcoreinfo_size, "vmcoreinfo", true)) {
    std::vector<uint8_t> vi =
        ReadVector(src, sub.vmcoreinfo_off, sub.vmcoreinfo_size, "vmcoreinfo");
    ApplyVmcoreinfo(
        ByteView(vi, sub.vmcoreinfo_off, "vmcoreinfo").CString(0, vi.size()),
        facts);
  }
  if (region(sub.note_off, sub.note_size, "elf notes", true)) {
    std::vector<uint8_t> nb =
        ReadVector(src, sub.note_off, sub.note_size, "elf notes");
    NoteSummary ns = ParseNotes(nb, sub.note_off, findings);
    if (ns.prstatus) facts.cpus = ns.prstatus;
    if (facts.vmcoreinfo.empty()) ApplyVmcoreinfo(ns.vmcoreinfo, facts);
  }
  if (!facts.cpus && h.nr_cpus > 0)
    facts.cpus = static_cast<uint32_t>(h.nr_cpus);
  region(sub.eraseinfo_off, sub.eraseinfo_size, "eraseinfo", false);
}

}  // namespace nmimgr::vmcore
