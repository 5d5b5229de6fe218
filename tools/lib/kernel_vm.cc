// SPDX-License-Identifier: GPL-2.0-or-later
#include "kernel_vm.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>

#include "checked.h"
#include "notes.h"

namespace nmimgr::vmcore {
namespace {

constexpr uint64_t kPteAddrMask = 0x000ffffffffff000ull;
constexpr uint64_t kPresent = 1, kWritable = 2, kLarge = 0x80;
constexpr uint64_t kPage = 4096;

}  // namespace

bool Vmcoreinfo::Has(const std::string& key) const {
  return VmcoreinfoValue(text_, key).has_value();
}

uint64_t Vmcoreinfo::Parse(const std::string& key, int base) const {
  auto v = VmcoreinfoValue(text_, key);
  if (!v) throw VmError("vmcoreinfo has no " + key);
  const char* b = v->data();
  const char* e = b + v->size();
  if (base == 10 && !v->empty() && (*v)[0] == '-') {
    int64_t sv = 0;
    auto [p, ec] = std::from_chars(b, e, sv, base);
    if (ec == std::errc() && p == e) return static_cast<uint64_t>(sv);
  } else {
    uint64_t uv = 0;
    auto [p, ec] = std::from_chars(b, e, uv, base);
    if (ec == std::errc() && p == e) return uv;
  }
  throw VmError(fmt::format("vmcoreinfo {}={} is not a number", key, *v));
}

KernelVm::KernelVm(DumpReader& reader, const Vmcoreinfo& vi) : r_(reader) {
  phys_base_ = vi.Dec("NUMBER(phys_base)");
  top_va_ = vi.Hex("SYMBOL(init_top_pgt)");
  if (top_va_ < kStartKernelMap)
    throw VmError("init_top_pgt is not a kernel symbol");
  root_ = top_va_ - kStartKernelMap + phys_base_;
  levels_ = vi.Has("NUMBER(pgtable_l5_enabled)") &&
                    vi.Dec("NUMBER(pgtable_l5_enabled)") != 0
                ? 5
                : 4;
  // The encryption bit is an address bit in every entry (SME/SEV).
  uint64_t sme = vi.Has("NUMBER(sme_mask)") ? vi.Dec("NUMBER(sme_mask)") : 0;
  addr_mask_ = kPteAddrMask & ~sme;
}

uint64_t KernelVm::Translate(uint64_t va, const char* what, bool text_linear) {
  if (text_linear && va >= kStartKernelMap)
    return va - kStartKernelMap + phys_base_;
  uint64_t table = root_;
  for (int level = levels_; level >= 1; --level) {
    int shift = 12 + 9 * (level - 1);
    uint64_t index = (va >> shift) & 511;
    uint8_t b[8];
    if (!r_.ReadPhysical(table + index * 8, b))
      throw VmError(fmt::format(
          "the page table for {} at {:#x} (physical {:#x}) is not in the dump",
          what, va, table));
    uint64_t e = ByteView(b, 0, "page table entry").Le64(0);
    if (!(e & kPresent))
      throw VmError(fmt::format("{} at {:#x} is not mapped", what, va));
    if (level == 1 || ((level == 2 || level == 3) && (e & kLarge))) {
      uint64_t page_mask = (1ull << shift) - 1;
      return (EntryAddress(e) & ~page_mask) | (va & page_mask);
    }
    table = EntryAddress(e);
  }
  throw VmError("page walk fell through");
}

void KernelVm::Read(uint64_t va, std::span<uint8_t> out, const char* what) {
  size_t done = 0;
  while (done < out.size()) {
    uint64_t v = va + done;
    size_t n = std::min<uint64_t>(out.size() - done, kPage - v % kPage);
    uint64_t pa = Translate(v, what);
    if (!r_.ReadPhysical(pa, out.subspan(done, n)))
      throw VmError(
          fmt::format("{} at {:#x} (physical {:#x}) is not in the "
                      "dump",
                      what, v, pa));
    done += n;
  }
}

uint64_t KernelVm::U64(uint64_t va, const char* what) {
  uint8_t b[8];
  Read(va, b, what);
  return ByteView(b, 0, what).Le64(0);
}

uint32_t KernelVm::U32(uint64_t va, const char* what) {
  uint8_t b[4];
  Read(va, b, what);
  return ByteView(b, 0, what).Le32(0);
}

std::string KernelVm::CheckSelfMapped() {
  try {
    uint64_t pa = Translate(top_va_, "init_top_pgt", false);
    if (pa != root_)
      return fmt::format(
          "the page tables map init_top_pgt ({:#x}) to physical {:#x}, not "
          "to {:#x} where phys_base puts it",
          top_va_, pa, root_);
  } catch (const VmError& e) {
    return fmt::format("the page tables do not map the kernel: {}", e.what());
  }
  return {};
}

VmWalkStats KernelVm::ForEachPage(
    uint64_t lo, uint64_t hi, bool writable_only,
    const std::function<void(uint64_t, uint64_t)>& fn) {
  VmWalkStats st;
  if (lo >= hi) return st;
  int top_shift = 12 + 9 * levels_;  // bits the top table resolves
  uint64_t base = lo & ~((1ull << top_shift) - 1);
  WalkTable(root_, levels_, base, lo, hi, writable_only, st, fn);
  return st;
}

void KernelVm::WalkTable(uint64_t table, int level, uint64_t base, uint64_t lo,
                         uint64_t hi, bool writable_only, VmWalkStats& st,
                         const std::function<void(uint64_t, uint64_t)>& fn) {
  std::array<uint8_t, kPage> page;
  if (!r_.ReadPhysical(table, page)) {
    ++st.tables_missing;
    return;
  }
  ++st.tables_read;
  // The entries are copied out first: the callback and the levels below
  // read other pages through the same reader.
  std::array<uint64_t, 512> entries;
  ByteView v(page, 0, "page table");
  for (size_t i = 0; i < 512; ++i) entries[i] = v.Le64(i * 8);
  const int shift = 12 + 9 * (level - 1);
  const uint64_t span = 1ull << shift;
  const uint64_t first = lo > base ? (lo - base) >> shift : 0;
  const uint64_t last = std::min<uint64_t>(511, (hi - 1 - base) >> shift);
  for (uint64_t i = first; i <= last; ++i) {
    const uint64_t e = entries[i];
    if (!(e & kPresent) || (writable_only && !(e & kWritable))) continue;
    const uint64_t va = base + i * span;
    if (level == 1 || ((level == 2 || level == 3) && (e & kLarge))) {
      const uint64_t pa = EntryAddress(e) & ~(span - 1);
      const uint64_t from = std::max(lo, va);
      const uint64_t to = std::min(hi - 1, va + (span - 1));
      for (uint64_t p = from; p <= to && p >= from; p += kPage) {
        ++st.pages_mapped;
        fn(p, pa + (p - va));
      }
      continue;
    }
    WalkTable(EntryAddress(e), level - 1, va, std::max(lo, va),
              std::min(hi - 1, va + (span - 1)) + 1, writable_only, st, fn);
  }
}

KernelRanges KernelRangesOf(const Vmcoreinfo& vi) {
  KernelRanges k;
  uint64_t size = kDefaultImageSize;
  if (vi.Has("NUMBER(KERNEL_IMAGE_SIZE)")) {
    uint64_t s = vi.Dec("NUMBER(KERNEL_IMAGE_SIZE)");
    // The image and the module area share the top 2 GiB.
    if (s >= kPage && s < kModulesEnd - kStartKernelMap) {
      size = s & ~(kPage - 1);
      k.image_size_known = true;
    }
  }
  k.image_hi = kStartKernelMap + size;
  k.modules_lo = k.image_hi;
  return k;
}

}  // namespace nmimgr::vmcore
