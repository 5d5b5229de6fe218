// SPDX-License-Identifier: GPL-2.0-or-later
#include "dump_builder.h"

#include <bzlib.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <lz4frame.h>
#include <lzma.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <stdexcept>

#include "codec.h"
#include "nmimgr_record.h"
#include "notes.h"

namespace nmimgr::testing {
namespace {

void Put(Bytes& b, uint64_t off, uint64_t v, int n) {
  if (b.size() < off + n) b.resize(off + n);
  for (int i = 0; i < n; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
}
void PutBe64(Bytes& b, uint64_t off, int64_t sv) {
  uint64_t v = static_cast<uint64_t>(sv);
  if (b.size() < off + 8) b.resize(off + 8);
  for (int i = 0; i < 8; ++i)
    b[off + i] = static_cast<uint8_t>(v >> (56 - 8 * i));
}
void PutStr(Bytes& b, uint64_t off, const std::string& s) {
  if (b.size() < off + s.size()) b.resize(off + s.size());
  std::memcpy(b.data() + off, s.data(), s.size());
}
void Append(Bytes& b, const Bytes& x) { b.insert(b.end(), x.begin(), x.end()); }
uint64_t RoundUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

void AddNote(Bytes& b, const std::string& name, uint32_t type,
             const Bytes& desc) {
  uint64_t at = b.size();
  Put(b, at, name.size() + 1, 4);
  Put(b, at + 4, desc.size(), 4);
  Put(b, at + 8, type, 4);
  PutStr(b, at + 12, name);
  b.resize(at + 12 + RoundUp(name.size() + 1, 4));
  Append(b, desc);
  b.resize(RoundUp(b.size(), 4));
}

std::string Vmcoreinfo(const DumpSpec& s) {
  return "OSRELEASE=" + s.release +
         "\nPAGESIZE=" + std::to_string(s.page_size) +
         (s.with_crash_time ? "\nCRASHTIME=" + std::to_string(s.crash_time)
                            : std::string()) +
         "\nNUMBER(pgtable_l5_enabled)=" + (s.pgtable_l5 ? "1" : "0") + "\n" +
         s.extra_vmcoreinfo;
}

// ELF notes: one NT_PRSTATUS per CPU, then VMCOREINFO.  Returns the notes
// and the offset of the VMCOREINFO text inside them.
Bytes Notes(const DumpSpec& s, uint64_t* vmcoreinfo_at) {
  Bytes n;
  for (uint32_t i = 0; i < s.cpus; ++i) AddNote(n, "CORE", 1, Bytes(336, 0));
  std::string vi = Vmcoreinfo(s);
  *vmcoreinfo_at = n.size() + 12 + RoundUp(sizeof("VMCOREINFO"), 4);
  AddNote(n, "VMCOREINFO", 0, Bytes(vi.begin(), vi.end()));
  return n;
}

bool IsZero(const Bytes& p) {
  return std::all_of(p.begin(), p.end(), [](uint8_t c) { return c == 0; });
}

Bytes KdumpPart(const DumpSpec& s, bool split, uint64_t start, uint64_t end,
                Layout* L) {
  const uint64_t bs = s.page_size;
  Layout lay;
  uint64_t vi_at = 0;
  Bytes notes = Notes(s, &vi_at);
  uint64_t sub_blocks = (104 + notes.size() + bs - 1) / bs;
  uint64_t half = RoundUp((s.max_mapnr + 7) / 8, bs);
  uint64_t bitmap_blocks = 2 * half / bs;

  Bytes b(bs, 0);
  PutStr(b, 0, "KDUMP   ");
  Put(b, 8, s.header_version, 4);
  PutStr(b, 12, "Linux");
  PutStr(b, 12 + 65, "testhost");
  PutStr(b, 12 + 2 * 65, s.release);
  PutStr(b, 12 + 3 * 65, "#1 SMP PREEMPT_DYNAMIC Debian");
  PutStr(b, 12 + 4 * 65, s.machine);
  Put(b, 408, s.timestamp, 8);
  Put(b, 424, s.codec | (s.incomplete_flag ? vmcore::kDumpIncomplete : 0), 4);
  Put(b, 428, bs, 4);
  Put(b, 432, sub_blocks, 4);
  Put(b, 436, bitmap_blocks, 4);
  Put(b, 440, std::min<uint64_t>(s.max_mapnr, UINT32_MAX), 4);
  Put(b, 460, s.cpus, 4);
  lay.header_end = 464;

  // Sub-header, notes right behind it.
  lay.sub_off = bs;
  b.resize((1 + sub_blocks) * bs, 0);
  Put(b, bs + 8, s.dump_level, 4);
  Put(b, bs + 12, split ? 1 : 0, 4);
  Put(b, bs + 16, start, 8);
  Put(b, bs + 24, end, 8);
  lay.notes_off = bs + 104;
  lay.notes_size = notes.size();
  if (s.header_version >= 3) {
    Put(b, bs + 32, lay.notes_off + vi_at, 8);
    Put(b, bs + 40, Vmcoreinfo(s).size(), 8);
  }
  if (s.header_version >= 4) {
    Put(b, bs + 48, lay.notes_off, 8);
    Put(b, bs + 56, notes.size(), 8);
  }
  if (s.header_version >= 6) {
    Put(b, bs + 80, start, 8);
    Put(b, bs + 88, end, 8);
    Put(b, bs + 96, s.max_mapnr, 8);
  }
  std::memcpy(b.data() + lay.notes_off, notes.data(), notes.size());

  // Bitmaps.
  lay.bitmap_off = b.size();
  lay.bitmap_len = 2 * half;
  b.resize(b.size() + 2 * half, 0);
  auto set = [&](uint64_t base, uint64_t pfn) {
    b[base + pfn / 8] |= static_cast<uint8_t>(1u << (pfn % 8));
  };
  for (const auto& [pfn, data] : s.pages) {
    set(lay.bitmap_off, pfn);
    set(lay.bitmap_off + half, pfn);
  }
  for (uint64_t pfn : s.excluded) set(lay.bitmap_off, pfn);

  // Descriptors for the pages in [start, end), then the data.
  std::vector<std::pair<uint64_t, const Bytes*>> mine;
  for (const auto& [pfn, data] : s.pages)
    if (pfn >= start && pfn < end) mine.push_back({pfn, &data});
  lay.desc_off = b.size();
  // makedumpfile sizes the table by every dumpable page of the bitmap, also
  // in a split part, whose own descriptors fill only the start of it.
  b.resize(b.size() + (split ? s.pages.size() : mine.size()) * 24, 0);
  lay.data_off = b.size();
  std::optional<uint64_t> zero_at;
  if (s.dump_level & 1) {
    zero_at = b.size();
    b.resize(b.size() + bs, 0);
  }
  for (size_t i = 0; i < mine.size(); ++i) {
    const Bytes& page = *mine[i].second;
    uint64_t at = lay.desc_off + i * 24;
    lay.desc_at.push_back(at);
    uint64_t off;
    uint32_t size, flags = 0;
    if (zero_at && IsZero(page)) {
      off = *zero_at;
      size = bs;
    } else {
      std::string enc;
      if (s.codec && vmcore::EncodePage(s.codec, page, enc) &&
          enc.size() < bs) {
        flags = s.codec;
      } else {
        enc.assign(page.begin(), page.end());
      }
      off = b.size();
      size = static_cast<uint32_t>(enc.size());
      b.insert(b.end(), enc.begin(), enc.end());
    }
    lay.page_at.push_back(off);
    lay.page_size.push_back(size);
    Put(b, at, off, 8);
    Put(b, at + 8, size, 4);
    Put(b, at + 12, flags, 4);
  }
  lay.file_size = b.size();
  if (L) *L = lay;
  return b;
}

}  // namespace

std::vector<uint64_t> Layout::Boundaries() const {
  std::set<uint64_t> s = {0,          1,
                          header_end, sub_off,
                          notes_off,  notes_off + notes_size,
                          bitmap_off, bitmap_off + bitmap_len / 2,
                          desc_off,   data_off,
                          phdr_off,   phdr_end};
  for (uint64_t v : desc_at) s.insert({v, v + 12});
  for (size_t i = 0; i < page_at.size(); ++i)
    s.insert({page_at[i], page_at[i] + page_size[i] / 2});
  for (uint64_t v : segment_at) s.insert({v, v + 100});
  s.insert(file_size - 1);
  std::set<uint64_t> out;
  for (uint64_t v : s) {
    if (v > 0 && v - 1 < file_size) out.insert(v - 1);
    if (v < file_size) out.insert(v);
  }
  return {out.begin(), out.end()};
}

Bytes Page(uint32_t page_size, uint8_t fill, const std::string& text,
           size_t offset) {
  Bytes p(page_size, fill);
  std::memcpy(p.data() + offset, text.data(),
              std::min(text.size(), page_size - offset));
  return p;
}

namespace {

// The fields versions 1 and 2 share (offsets 0..87).
void PutCommon(Bytes& r, uint16_t version, uint16_t size, const RecordSpec& s) {
#define AT(field) offsetof(struct nmimgr_record, field)
  PutStr(r, 0, NMIMGR_RECORD_MAGIC);
  Put(r, AT(version), version, 2);
  Put(r, AT(size), size, 2);
  Put(r, AT(flags), s.flags, 4);
  r[AT(raw_code)] = s.raw;
  r[AT(masked_code)] = s.raw & s.mask;
  r[AT(event_mask)] = s.mask;
  r[AT(nmi_type)] = s.type;
  Put(r, AT(cpu), s.cpu, 4);
  Put(r, AT(mono_ns), s.mono_ns, 8);
  Put(r, AT(real_ns), s.real_ns, 8);
  Put(r, AT(boot_ns), s.boot_ns, 8);
  Put(r, AT(nmis), 3, 8);
  Put(r, AT(dropped), 1, 8);
#undef AT
}

}  // namespace

Bytes Record(const RecordSpec& s, uint64_t phys) {
  Bytes r(NMIMGR_RECORD_SIZE, 0);
  PutCommon(r, NMIMGR_RECORD_VERSION, NMIMGR_RECORD_SIZE, s);
  Put(r, offsetof(struct nmimgr_record, nonce), s.nonce, 8);
  Put(r, offsetof(struct nmimgr_record, phys), phys, 8);
  Put(r, offsetof(struct nmimgr_record, oops_depth), s.oops_depth, 4);
  Put(r, NMIMGR_RECORD_CHECKSUM_OFFSET, nmimgr_record_checksum(r.data()), 4);
  return r;
}

Bytes Record(uint8_t raw, uint8_t mask, uint8_t type, uint32_t cpu,
             uint64_t real_ns, uint32_t flags) {
  RecordSpec s;
  s.raw = raw;
  s.mask = mask;
  s.type = type;
  s.cpu = cpu;
  s.real_ns = real_ns;
  s.flags = flags;
  return Record(s, 0);
}

uint64_t PlaceRecord(DumpSpec& spec, uint64_t pfn, uint32_t offset,
                     const RecordSpec& r) {
  const uint64_t at = pfn * spec.page_size + offset;
  Bytes rec = Record(r, r.phys.value_or(at));
  auto it = spec.pages.find(pfn);
  if (it == spec.pages.end())
    it = spec.pages.emplace(pfn, Page(spec.page_size, 0x5c)).first;
  if (offset + rec.size() > it->second.size())
    throw std::runtime_error("PlaceRecord: the record does not fit the page");
  std::memcpy(it->second.data() + offset, rec.data(), rec.size());
  return at;
}

Bytes RecordV1(uint8_t raw, uint8_t mask, uint8_t type, uint32_t cpu,
               uint64_t real_ns) {
  RecordSpec s;
  s.raw = raw;
  s.mask = mask;
  s.type = type;
  s.cpu = cpu;
  s.real_ns = real_ns;
  Bytes r(NMIMGR_RECORD_V1_SIZE, 0);
  PutCommon(r, NMIMGR_RECORD_V1, NMIMGR_RECORD_V1_SIZE, s);
  Put(r, NMIMGR_RECORD_V1_CHECKSUM_OFFSET,
      nmimgr_record_checksum_n(r.data(), NMIMGR_RECORD_V1_CHECKSUM_OFFSET), 4);
  return r;
}

void AddCrashLog(DumpSpec& spec, uint64_t uptime_ns, const std::string& panic) {
  AddPrintkRing(spec, {{1000000, "Linux version " + spec.release},
                       {uptime_ns, "Kernel panic - not syncing: " + panic}});
}

void AddPrintkRing(DumpSpec& spec, const std::vector<PrintkRecord>& records,
                   uint64_t first_id, uint64_t first_lpos, bool direct_map) {
  const uint64_t kMap = 0xffffffff80000000ull, kPhysBase = 40 * 4096;
  const uint64_t kDirect = 0xffff888000000000ull;
  auto text_va = [&](uint64_t pa) { return kMap + pa - kPhysBase; };
  auto pa = [](uint64_t pfn, uint64_t off = 0) { return pfn * 4096 + off; };
  std::map<uint64_t, Bytes> pg;
  for (uint64_t pfn = 50; pfn <= 56; ++pfn) pg[pfn] = Bytes(4096, 0);
  const uint64_t rb = 256, count_bits = 4, size_bits = 12;
  const uint64_t count = 1 << count_bits, ring = 1 << size_bits;
  Bytes& p50 = pg[50];
  Put(p50, 0, text_va(pa(50, rb)), 8);  // prb
  Put(p50, rb + 0, count_bits, 4);
  Put(p50, rb + 8, direct_map ? kDirect + pa(51) : text_va(pa(51)), 8);
  Put(p50, rb + 16, text_va(pa(52)), 8);
  uint64_t last_id = first_id + records.size() - 1;
  Put(p50, rb + 24, last_id, 8);
  Put(p50, rb + 32, first_id, 8);
  Put(p50, rb + 48, size_bits, 4);
  Put(p50, rb + 56, text_va(pa(53)), 8);
  uint64_t lpos = first_lpos;
  for (size_t i = 0; i < records.size(); ++i) {
    uint64_t id = first_id + i, idx = id & (count - 1);
    const std::string& t = records[i].text;
    uint64_t blk = RoundUp(8 + t.size(), 8);
    uint64_t begin = lpos, at = lpos & (ring - 1), next;
    if (at + blk > ring) {  // wraps: the block goes to the ring's start
      at = 0;
      next = ((lpos >> size_bits) + 1) * ring + blk;
    } else {
      next = lpos + blk;
    }
    Put(pg[53], at, id, 8);
    PutStr(pg[53], at + 8, t);
    Put(pg[51], idx * 24, (2ull << 62) | id, 8);
    Put(pg[51], idx * 24 + 8, begin, 8);
    Put(pg[51], idx * 24 + 16, next, 8);
    Put(pg[52], idx * 88, id, 8);
    Put(pg[52], idx * 88 + 8, records[i].ts_nsec, 8);
    Put(pg[52], idx * 88 + 16, t.size(), 2);
    lpos = next;
  }
  // Page tables: PGD at pfn 54 -> PUD at 55 -> PMD at 56 -> one 2 MiB page
  // at physical 0, mapped at the direct map's start.
  Put(pg[54], ((kDirect >> 39) & 511) * 8, pa(55) | 0x63, 8);
  Put(pg[55], 0, pa(56) | 0x63, 8);
  Put(pg[56], 0, 0x83, 8);
  for (auto& [pfn, page] : pg) spec.pages[pfn] = page;
  spec.extra_vmcoreinfo +=
      "SYMBOL(prb)=" + fmt::format("{:x}", text_va(pa(50))) +
      "\nSYMBOL(init_top_pgt)=" + fmt::format("{:x}", text_va(pa(54))) +
      "\nNUMBER(phys_base)=" + std::to_string(kPhysBase) +
      "\nOFFSET(printk_ringbuffer.desc_ring)=0"
      "\nOFFSET(printk_ringbuffer.text_data_ring)=48"
      "\nOFFSET(prb_desc_ring.count_bits)=0"
      "\nOFFSET(prb_desc_ring.descs)=8"
      "\nOFFSET(prb_desc_ring.infos)=16"
      "\nOFFSET(prb_desc_ring.head_id)=24"
      "\nOFFSET(prb_desc_ring.tail_id)=32"
      "\nSIZE(prb_desc)=24"
      "\nOFFSET(prb_desc.state_var)=0"
      "\nOFFSET(prb_desc.text_blk_lpos)=8"
      "\nOFFSET(prb_data_blk_lpos.begin)=0"
      "\nOFFSET(prb_data_blk_lpos.next)=8"
      "\nSIZE(printk_info)=88"
      "\nOFFSET(printk_info.seq)=0"
      "\nOFFSET(printk_info.ts_nsec)=8"
      "\nOFFSET(printk_info.text_len)=16"
      "\nOFFSET(prb_data_ring.size_bits)=0"
      "\nOFFSET(prb_data_ring.data)=8"
      "\nOFFSET(atomic_long_t.counter)=0\n";
}

uint64_t KernelTextVa(uint64_t pfn) {
  return 0xffffffff80000000ull + (pfn - 40) * 4096;
}

void AddKernelPageTables(DumpSpec& spec, const KernelTables& t) {
  constexpr uint64_t kTable = 0x63;  // present, writable, accessed, dirty
  auto pa = [](uint64_t pfn) { return pfn * 4096; };
  auto table = [&](uint64_t pfn) -> Bytes& {
    Bytes& p = spec.pages[pfn];
    if (p.size() != 4096) p = Bytes(4096, 0);
    return p;
  };
  const uint64_t top = 54, p4d = 62, pud = 57, pmd_image = 58, pte_image = 59,
                 pmd_modules = 60, pte_modules = 61;
  if (spec.pgtable_l5) {
    Put(table(top), 511 * 8, pa(p4d) | kTable, 8);
    Put(table(p4d), 511 * 8, pa(pud) | kTable, 8);
  } else {
    Put(table(top), 511 * 8, pa(pud) | kTable, 8);
  }
  // PUD 510: 0xffffffff80000000, the kernel image; 511: the module area.
  Put(table(pud), 510 * 8, pa(pmd_image) | kTable, 8);
  Put(table(pud), 511 * 8, pa(pmd_modules) | kTable, 8);
  Put(table(pmd_image), 0, pa(pte_image) | kTable, 8);
  for (uint64_t pfn = 40; pfn < 64; ++pfn)
    Put(table(pte_image), (pfn - 40) * 8, pa(pfn) | kTable, 8);
  Put(table(pmd_modules), 0, pa(pte_modules) | kTable, 8);
  table(pte_modules);
  for (const ModulePage& m : t.module_pages)
    Put(table(pte_modules), m.index * 8,
        pa(m.pfn) | (m.writable ? kTable : kTable & ~uint64_t{2}), 8);
  const std::string vi = Vmcoreinfo(spec);
  auto add = [&](const std::string& key, const std::string& value) {
    if (!vmcore::VmcoreinfoValue(vi, key))
      spec.extra_vmcoreinfo += key + "=" + value + "\n";
  };
  add("SYMBOL(init_top_pgt)", fmt::format("{:x}", KernelTextVa(top)));
  add("NUMBER(phys_base)", std::to_string(pa(40)));
  if (t.image_size) add("NUMBER(KERNEL_IMAGE_SIZE)", "1073741824");
}

Bytes BuildKdump(const DumpSpec& spec, Layout* layout) {
  return KdumpPart(spec, false, 0, spec.max_mapnr, layout);
}

std::vector<Bytes> BuildSplit(const DumpSpec& spec,
                              const std::vector<uint64_t>& cuts) {
  std::vector<Bytes> parts;
  uint64_t start = 0;
  for (size_t i = 0; i <= cuts.size(); ++i) {
    uint64_t end = i < cuts.size() ? cuts[i] : spec.max_mapnr;
    parts.push_back(KdumpPart(spec, true, start, end, nullptr));
    start = end;
  }
  return parts;
}

Bytes BuildElf(const DumpSpec& s, Layout* layout) {
  Layout lay;
  const uint64_t ps = s.page_size;
  // Runs of consecutive dumped pfns become PT_LOAD segments.
  std::vector<std::pair<uint64_t, uint64_t>> runs;  // first pfn, count
  for (const auto& [pfn, data] : s.pages) {
    if (!runs.empty() && runs.back().first + runs.back().second == pfn)
      ++runs.back().second;
    else
      runs.push_back({pfn, 1});
  }
  uint64_t vi_at = 0;
  Bytes notes = Notes(s, &vi_at);
  uint64_t phnum = 1 + runs.size();
  Bytes b(64, 0);
  b[0] = 0x7f;
  PutStr(b, 1, "ELF");
  b[4] = 2;
  b[5] = 1;
  b[6] = 1;
  Put(b, 16, 4, 2);   // ET_CORE
  Put(b, 18, 62, 2);  // EM_X86_64
  Put(b, 20, 1, 4);
  Put(b, 32, 64, 8);  // e_phoff
  Put(b, 48, s.incomplete_flag ? 1 : 0, 4);
  Put(b, 52, 64, 2);
  Put(b, 54, 56, 2);
  Put(b, 56, phnum, 2);
  lay.header_end = 64;
  lay.phdr_off = 64;
  lay.phdr_end = 64 + phnum * 56;
  b.resize(lay.phdr_end, 0);
  lay.notes_off = b.size();
  lay.notes_size = notes.size();
  Append(b, notes);
  b.resize(RoundUp(b.size(), ps), 0);
  // PT_NOTE
  Put(b, 64, 4, 4);
  Put(b, 64 + 8, lay.notes_off, 8);
  Put(b, 64 + 32, notes.size(), 8);
  Put(b, 64 + 40, notes.size(), 8);
  for (size_t i = 0; i < runs.size(); ++i) {
    uint64_t ph = 64 + (i + 1) * 56;
    uint64_t off = b.size();
    lay.segment_at.push_back(off);
    for (uint64_t k = 0; k < runs[i].second; ++k) {
      lay.page_at.push_back(b.size());
      lay.page_size.push_back(ps);
      Append(b, s.pages.at(runs[i].first + k));
    }
    Put(b, ph, 1, 4);
    Put(b, ph + 4, 7, 4);
    Put(b, ph + 8, off, 8);
    Put(b, ph + 16, 0xffff888000000000ull + runs[i].first * ps, 8);
    Put(b, ph + 24, runs[i].first * ps, 8);
    Put(b, ph + 32, runs[i].second * ps, 8);
    Put(b, ph + 40, runs[i].second * ps, 8);
  }
  lay.file_size = b.size();
  if (layout) *layout = lay;
  return b;
}

Bytes Flatten(const Bytes& dump, const FlatOptions& o,
              std::vector<uint64_t>* record_at) {
  Bytes f(4096, 0);
  PutStr(f, 0, "makedumpfile");
  PutBe64(f, 16, 1);
  PutBe64(f, 24, 1);
  auto record = [&](uint64_t off, const uint8_t* data, uint64_t len) {
    if (record_at) record_at->push_back(f.size());
    uint64_t at = f.size();
    PutBe64(f, at, static_cast<int64_t>(off));
    PutBe64(f, at + 8, static_cast<int64_t>(len));
    f.insert(f.end(), data, data + len);
  };
  uint64_t head = std::min<uint64_t>(dump.size(), 4096);
  Bytes zeros(head, 0);
  uint64_t pos = 0;
  if (o.rewrite_header) {
    record(0, zeros.data(), head);
    pos = head;
  }
  while (pos < dump.size()) {
    auto gap =
        std::find_if(o.unwritten.begin(), o.unwritten.end(),
                     [&](auto r) { return pos >= r.first && pos < r.second; });
    if (gap != o.unwritten.end()) {
      pos = std::min<uint64_t>(gap->second, dump.size());
      continue;
    }
    uint64_t len = std::min(o.record_size, dump.size() - pos);
    for (auto [a, b] : o.unwritten)
      if (a > pos && a < pos + len) len = a - pos;
    record(pos, dump.data() + pos, len);
    pos += len;
  }
  if (o.rewrite_header) record(0, dump.data(), head);
  if (o.end_marker) {
    uint64_t at = f.size();
    PutBe64(f, at, -1);
    PutBe64(f, at + 8, -1);
  }
  return f;
}

Bytes Compress(vmcore::OuterKind kind, const Bytes& d) {
  Bytes out;
  switch (kind) {
    case vmcore::OuterKind::kXz: {
      out.resize(lzma_stream_buffer_bound(d.size()));
      size_t pos = 0;
      if (lzma_easy_buffer_encode(1, LZMA_CHECK_CRC64, nullptr, d.data(),
                                  d.size(), out.data(), &pos,
                                  out.size()) != LZMA_OK)
        throw std::runtime_error("xz encode");
      out.resize(pos);
      return out;
    }
    case vmcore::OuterKind::kGzip: {
      z_stream z{};
      deflateInit2(&z, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
      out.resize(deflateBound(&z, d.size()) + 64);
      z.next_in = const_cast<Bytef*>(d.data());
      z.avail_in = static_cast<uInt>(d.size());
      z.next_out = out.data();
      z.avail_out = static_cast<uInt>(out.size());
      if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        throw std::runtime_error("gzip encode");
      out.resize(z.total_out);
      deflateEnd(&z);
      return out;
    }
    case vmcore::OuterKind::kBzip2: {
      unsigned len = static_cast<unsigned>(d.size() + d.size() / 100 + 600);
      out.resize(len);
      if (BZ2_bzBuffToBuffCompress(
              reinterpret_cast<char*>(out.data()), &len,
              reinterpret_cast<char*>(const_cast<uint8_t*>(d.data())),
              static_cast<unsigned>(d.size()), 1, 0, 0) != BZ_OK)
        throw std::runtime_error("bzip2 encode");
      out.resize(len);
      return out;
    }
    case vmcore::OuterKind::kLz4: {
      out.resize(LZ4F_compressFrameBound(d.size(), nullptr));
      size_t n = LZ4F_compressFrame(out.data(), out.size(), d.data(), d.size(),
                                    nullptr);
      if (LZ4F_isError(n)) throw std::runtime_error("lz4 encode");
      out.resize(n);
      return out;
    }
    case vmcore::OuterKind::kNone:
      break;
  }
  return d;
}

void WriteFile(const std::string& path, const Bytes& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data.data()),
          static_cast<std::streamsize>(data.size()));
  if (!f) throw std::runtime_error("writing " + path);
}

Bytes ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

TempDir::TempDir() {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / "nmimgr-test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

SparseKdump WriteSparseKdump1TiB(const std::string& path) {
  // 1 TiB of 4 KiB pages (32 MiB per bitmap), a dumped page every GiB.
  return WriteSparseKdump(path, 1ull << 28, 1ull << 18);
}

SparseKdump WriteSparseKdump(const std::string& path, uint64_t max_mapnr,
                             uint64_t stride) {
  const uint64_t half = (max_mapnr / 8 + 4095) / 4096 * 4096;
  const uint64_t bitmap_off = 2 * 4096;
  const uint64_t desc_off = bitmap_off + 2 * half;
  const uint64_t npages = max_mapnr / stride;
  auto pwrite_all = [](int fd, const void* p, size_t n, uint64_t off) {
    if (::pwrite(fd, p, n, static_cast<off_t>(off)) != static_cast<ssize_t>(n))
      throw std::runtime_error(std::string("pwrite: ") + std::strerror(errno));
  };

  DumpSpec spec;
  spec.max_mapnr = 8;
  Bytes head = BuildKdump(spec);
  head.resize(bitmap_off);
  Put(head, 436, 2 * half / 4096, 4);  // bitmap_blocks
  Put(head, 440, max_mapnr, 4);        // max_mapnr (32-bit field)
  Put(head, 4096 + 96, max_mapnr, 8);  // sub-header max_mapnr_64

  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0)
    throw std::runtime_error("creating " + path + ": " + std::strerror(errno));
  pwrite_all(fd, head.data(), head.size(), 0);
  const uint8_t one = 1;                                    // pfn % 8 == 0
  const uint64_t data_off = desc_off + npages * 24 + 4096;  // after zero page
  Bytes descs(npages * 24);
  for (uint64_t i = 0; i < npages; ++i) {
    uint64_t pfn = i * stride;
    pwrite_all(fd, &one, 1, bitmap_off + pfn / 8);
    pwrite_all(fd, &one, 1, bitmap_off + half + pfn / 8);
    pwrite_all(fd, &one, 1, bitmap_off + (pfn + 8) / 8);  // an excluded page
    Put(descs, i * 24, data_off + i * 4096, 8);
    Put(descs, i * 24 + 8, 4096, 4);
  }
  pwrite_all(fd, descs.data(), descs.size(), desc_off);
  Bytes page = Page(4096, 0x6b);
  for (uint64_t i = 0; i < npages; ++i)
    pwrite_all(fd, page.data(), page.size(), data_off + i * 4096);
  ::close(fd);
  return {max_mapnr, npages};
}

DumpSpec ServerSpec(uint64_t max_mapnr) {
  DumpSpec spec;
  spec.max_mapnr = max_mapnr;
  spec.codec = vmcore::kDumpZlib;
  for (uint64_t pfn = 0; pfn < 40; ++pfn)
    spec.pages[pfn] = Page(4096, static_cast<uint8_t>(0x40 + pfn),
                           "module page " + std::to_string(pfn), 64);
  AddCrashLog(spec);
  KernelTables t;
  for (uint32_t i = 0; i < 40; ++i) t.module_pages.push_back({i, i});
  AddKernelPageTables(spec, t);
  PlaceRecord(spec, 30, 1024);
  return spec;
}

void WriteFleetKdump(const std::string& path, const DumpSpec& spec,
                     uint64_t bulk_pages) {
  constexpr uint64_t kBulkFrom = 1ull << 20;
  const uint64_t bs = spec.page_size, max_mapnr = spec.max_mapnr;
  if (bs != 4096 || max_mapnr % 8 || kBulkFrom + bulk_pages > max_mapnr ||
      (!spec.pages.empty() && spec.pages.rbegin()->first >= kBulkFrom))
    throw std::invalid_argument("WriteFleetKdump: impossible layout");
  // The header, sub-header and notes as BuildKdump lays them out.
  DumpSpec bare = spec;
  bare.pages.clear();
  bare.excluded.clear();
  Layout lay;
  Bytes head = BuildKdump(bare, &lay);
  head.resize(lay.bitmap_off);
  const uint64_t half = lay.bitmap_len / 2;

  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0)
    throw std::runtime_error("creating " + path + ": " + std::strerror(errno));
  uint64_t at = 0;
  auto out = [&](const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    while (n) {
      ssize_t w = ::pwrite(fd, b, n, static_cast<off_t>(at));
      if (w <= 0) {
        ::close(fd);
        throw std::runtime_error("writing " + path + ": " +
                                 std::strerror(errno));
      }
      b += w;
      n -= static_cast<size_t>(w);
      at += static_cast<uint64_t>(w);
    }
  };
  out(head.data(), head.size());
  // First bitmap: all of RAM is there.  Second: the dumped pages.
  Bytes chunk(1 << 20);
  auto bitmap = [&](auto&& bit_of_pfn_range) {
    for (uint64_t byte = 0; byte < half; byte += chunk.size()) {
      size_t n =
          static_cast<size_t>(std::min<uint64_t>(chunk.size(), half - byte));
      bit_of_pfn_range(byte, std::span<uint8_t>(chunk.data(), n));
      out(chunk.data(), n);
    }
  };
  bitmap([&](uint64_t byte, std::span<uint8_t> b) {
    for (size_t i = 0; i < b.size(); ++i)
      b[i] = byte + i < max_mapnr / 8 ? 0xff : 0;
  });
  bitmap([&](uint64_t byte, std::span<uint8_t> b) {
    std::fill(b.begin(), b.end(), 0);
    auto mark = [&](uint64_t pfn) {
      if (pfn / 8 >= byte && pfn / 8 < byte + b.size())
        b[pfn / 8 - byte] |= static_cast<uint8_t>(1u << (pfn % 8));
    };
    for (const auto& [pfn, data] : spec.pages) mark(pfn);
    uint64_t lo = std::max(kBulkFrom, byte * 8);
    uint64_t hi = std::min(kBulkFrom + bulk_pages, (byte + b.size()) * 8);
    for (uint64_t pfn = lo; pfn < hi; ++pfn) mark(pfn);
  });
  // Descriptors, the shared zero page, the data.
  const uint64_t count = spec.pages.size() + bulk_pages;
  const uint64_t desc_off = at, zero_off = desc_off + count * 24;
  uint64_t data = zero_off + bs;
  std::vector<std::string> small;
  for (const auto& [pfn, page] : spec.pages) {
    std::string enc;
    if (!(spec.codec && vmcore::EncodePage(spec.codec, page, enc) &&
          enc.size() < bs))
      enc.assign(page.begin(), page.end());
    small.push_back(std::move(enc));
  }
  std::string bulk;
  {
    Bytes page = Page(4096, 0x6b, "fleet page");
    if (!(spec.codec && vmcore::EncodePage(spec.codec, page, bulk) &&
          bulk.size() < bs))
      bulk.assign(page.begin(), page.end());
  }
  const uint32_t bulk_flags = bulk.size() < bs ? spec.codec : 0;
  Bytes descs;
  auto desc = [&](uint64_t size, uint32_t flags) {
    size_t d = descs.size();
    descs.resize(d + 24);
    Put(descs, d, data, 8);
    Put(descs, d + 8, size, 4);
    Put(descs, d + 12, flags, 4);
    data += size;
    if (descs.size() >= (1 << 20)) {
      out(descs.data(), descs.size());
      descs.clear();
    }
  };
  for (const std::string& enc : small)
    desc(enc.size(), enc.size() < bs ? spec.codec : 0);
  for (uint64_t i = 0; i < bulk_pages; ++i) desc(bulk.size(), bulk_flags);
  out(descs.data(), descs.size());
  Bytes zero(bs, 0);
  out(zero.data(), zero.size());
  for (const std::string& enc : small) out(enc.data(), enc.size());
  std::string run;
  for (uint64_t i = 0; i < bulk_pages; ++i) {
    run += bulk;
    if (run.size() >= (1 << 20) || i + 1 == bulk_pages) {
      out(run.data(), run.size());
      run.clear();
    }
  }
  ::close(fd);
}

}  // namespace nmimgr::testing
