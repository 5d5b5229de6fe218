// SPDX-License-Identifier: GPL-2.0-or-later
#include "elf_phdrs.h"

#include <fmt/format.h>

#include <algorithm>
#include <string>

#include "checked.h"

namespace nmimgr::vmcore {
namespace {

constexpr uint64_t kEhdrSize = 64;
constexpr uint64_t kPhdrSize = 56;
constexpr uint64_t kShdrSize = 64;
constexpr uint32_t kPtLoad = 1;
constexpr uint32_t kPtNote = 4;
constexpr uint16_t kEtCore = 4;
constexpr uint16_t kEmX8664 = 62;
constexpr uint64_t kPnXnum = 0xffff;

}  // namespace

bool ReadProgramHeaders(Source& src, uint64_t file_size,
                        std::vector<Segment>& loads,
                        std::vector<Segment>& notes, DumpFacts& facts,
                        Findings& findings) {
  std::vector<uint8_t> eb(kEhdrSize);
  size_t got = src.ReadAt(0, eb);
  if (got < eb.size())
    throw TruncatedError(fmt::format(
        "elf header: file ends at {} bytes, within the 64-byte header", got));
  ByteView e(eb, 0, "elf header");
  const uint8_t elf_class = e.U8(4), data = e.U8(5);
  if ((elf_class == 1 || elf_class == 2) && (data == 1 || data == 2) &&
      (elf_class != 2 || data != 1)) {
    // A valid dump of another kind: say so rather than call it broken.
    findings.Add(FindingCode::kUnsupported,
                 fmt::format("elf header: class {} data encoding {}: only "
                             "64-bit little-endian dumps are supported",
                             elf_class, data));
    return false;
  }
  if (elf_class != 2)
    throw CorruptError(
        fmt::format("elf header: class {} is not ELFCLASS64", elf_class));
  if (data != 1)
    throw CorruptError(
        fmt::format("elf header: data encoding {} is not little-endian", data));
  if (e.Le16(16) != kEtCore)
    throw CorruptError(
        fmt::format("elf header: type {} is not ET_CORE", e.Le16(16)));
  if (e.Le16(54) != kPhdrSize)
    throw CorruptError(fmt::format(
        "elf header: program header size {} is not 56", e.Le16(54)));
  if (e.Le16(18) == kEmX8664) facts.machine = "x86_64";
  if (e.Le32(48) & 1)
    findings.Add(FindingCode::kIncompleteFlag,
                 "elf header: makedumpfile's incomplete flag (e_flags "
                 "0x1) is set: it ran out of space");
  uint64_t phoff = e.Le64(32);
  uint64_t phnum = e.Le16(56);
  if (phnum == kPnXnum) {
    std::vector<uint8_t> sh =
        ReadVector(src, e.Le64(40), kShdrSize, "section header 0");
    phnum = ByteView(sh, e.Le64(40), "section header 0").Le32(44);
  }
  uint64_t ph_len = CheckedMul(phnum, kPhdrSize, "program headers");
  uint64_t ph_end = CheckedAdd(phoff, ph_len, "program headers");
  if (phnum == 0) throw CorruptError("elf header: no program headers");
  if (ph_end > file_size)
    throw TruncatedError(fmt::format(
        "program headers: {} headers at offset {} end past the end of the "
        "file ({})",
        phnum, phoff, file_size));
  std::vector<uint8_t> pb = ReadVector(src, phoff, ph_len, "program headers");
  ByteView ph(pb, phoff, "program headers");

  uint64_t unwritten = 0;
  std::string first_unwritten;
  for (uint64_t i = 0; i < phnum; ++i) {
    ByteView p = ph.Slice(i * kPhdrSize, kPhdrSize);
    uint32_t type = p.Le32(0);
    if (type != kPtLoad && type != kPtNote) continue;
    Segment s{i, p.Le64(8), p.Le64(24), p.Le64(32), p.Le64(40), 0};
    uint64_t end = CheckedAdd(s.offset, s.filesz, fmt::format("segment {}", i));
    if (type == kPtLoad && s.filesz > s.memsz)
      throw CorruptError(fmt::format(
          "segment {} (paddr {:#x}): {} bytes in the file exceed its {} "
          "bytes of memory",
          i, s.paddr, s.filesz, s.memsz));
    if (s.filesz && s.offset < ph_end && end > 0)
      throw CorruptError(fmt::format(
          "segment {}: data at offset {} overlaps the elf and program "
          "headers (which end at {})",
          i, s.offset, ph_end));
    s.avail =
        s.offset >= file_size ? 0 : std::min(s.filesz, file_size - s.offset);
    // Data a flattened stream never wrote is missing, not pages of zeros
    // to scan: keep only the written start of the segment.
    uint64_t w = type == kPtLoad ? src.Written(s.offset, s.avail) : s.avail;
    if (w < s.avail) {
      if (unwritten++ == 0)
        first_unwritten = fmt::format(
            "segment {} (paddr {:#x}): file range [{}, {}) was never "
            "written from offset {} on (no flattened record carries it)",
            i, s.paddr, s.offset, s.offset + s.filesz, s.offset + w);
      s.avail = w;
    }
    (type == kPtLoad ? loads : notes).push_back(s);
  }
  if (unwritten)
    findings.Add(FindingCode::kFlattenedHole,
                 fmt::format("{}; {} segments have unwritten data",
                             first_unwritten, unwritten));
  return true;
}

}  // namespace nmimgr::vmcore
