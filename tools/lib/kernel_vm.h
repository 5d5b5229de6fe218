// SPDX-License-Identifier: GPL-2.0-or-later
//
// The crashed kernel's virtual memory, read through its own page tables, as
// VMCOREINFO locates them (x86_64: 4- and 5-level paging, KASLR, SME).
//
// What VMCOREINFO gives and how it is used:
//   SYMBOL(init_top_pgt)        virtual address of the top page table
//   NUMBER(phys_base)           the kernel text mapping's physical offset:
//                               pa = va - 0xffffffff80000000 + phys_base
//   NUMBER(pgtable_l5_enabled)  5-level paging (absent: 4 levels)
//   NUMBER(sme_mask)            the memory encryption bit, cleared from
//                               every table entry (absent: none)
//   NUMBER(KERNEL_IMAGE_SIZE)   the kernel image's reach: the module area
//                               starts there (absent: 512 MiB, the
//                               non-KASLR size, so the walk covers both)
//
// The page walk is trusted only when the tables map init_top_pgt's own
// virtual address to the physical address phys_base gives for it: tables
// that do not map the kernel (damaged, excluded, or a dump that never had
// them) cannot say where the module area lies.
#ifndef NMIMGR_TOOLS_LIB_KERNEL_VM_H_
#define NMIMGR_TOOLS_LIB_KERNEL_VM_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>

#include "reader.h"

namespace nmimgr::vmcore {

// A missing or malformed VMCOREINFO value, an address that is not mapped or
// not in the dump: the message says which.
class VmError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// VMCOREINFO's KEY=value lines, as numbers.
class Vmcoreinfo {
 public:
  explicit Vmcoreinfo(const std::string& text) : text_(text) {}
  uint64_t Hex(const std::string& key) const { return Parse(key, 16); }
  uint64_t Dec(const std::string& key) const { return Parse(key, 10); }
  bool Has(const std::string& key) const;

 private:
  uint64_t Parse(const std::string& key, int base) const;
  const std::string& text_;
};

inline constexpr uint64_t kStartKernelMap = 0xffffffff80000000ull;
// MODULES_END on x86_64 since Linux 4.x; the fixmap lies above it.
inline constexpr uint64_t kModulesEnd = 0xffffffffff000000ull;
// KERNEL_IMAGE_SIZE without KASLR (with it: 1 GiB, in VMCOREINFO).
inline constexpr uint64_t kDefaultImageSize = 512ull << 20;

struct VmWalkStats {
  uint64_t tables_read = 0;     // page-table pages read
  uint64_t tables_missing = 0;  // tables an entry points at, not in the dump
  uint64_t pages_mapped = 0;    // 4 KiB pages handed to the callback
};

class KernelVm {
 public:
  // Throws VmError when VMCOREINFO lacks init_top_pgt or phys_base.
  KernelVm(DumpReader& reader, const Vmcoreinfo& vi);

  // The physical address of `va`: linear in the kernel text mapping when
  // `text_linear`, else through the tables.  Throws VmError (unmapped, or a
  // table not in the dump; `what` names the object in the message).
  uint64_t Translate(uint64_t va, const char* what, bool text_linear = true);
  // Reads `out.size()` bytes at `va`, page by page; throws VmError.
  void Read(uint64_t va, std::span<uint8_t> out, const char* what);
  uint64_t U64(uint64_t va, const char* what);
  uint32_t U32(uint64_t va, const char* what);

  // Why the tables cannot be walked (see the file comment), or "".
  std::string CheckSelfMapped();

  // Calls `fn(va, pa)` for each mapped 4 KiB page of [lo, hi) (page-aligned,
  // lo < hi, one half of the address space), in virtual address order;
  // with `writable_only`, only pages every level maps writable.  Large pages
  // are handed out 4 KiB at a time.  Tables not in the dump are counted and
  // skipped.
  VmWalkStats ForEachPage(uint64_t lo, uint64_t hi, bool writable_only,
                          const std::function<void(uint64_t, uint64_t)>& fn);

  int levels() const { return levels_; }
  uint64_t root() const { return root_; }
  uint64_t top_va() const { return top_va_; }

 private:
  void WalkTable(uint64_t table, int level, uint64_t base, uint64_t lo,
                 uint64_t hi, bool writable_only, VmWalkStats& st,
                 const std::function<void(uint64_t, uint64_t)>& fn);
  uint64_t EntryAddress(uint64_t e) const { return e & addr_mask_; }

  DumpReader& r_;
  uint64_t phys_base_ = 0, root_ = 0, top_va_ = 0;
  uint64_t addr_mask_ = 0;
  int levels_ = 4;
};

// Where a kernel's modules and image lie in its virtual address space.
struct KernelRanges {
  uint64_t image_lo = kStartKernelMap, image_hi = 0;
  uint64_t modules_lo = 0, modules_hi = kModulesEnd;
  bool image_size_known = false;  // NUMBER(KERNEL_IMAGE_SIZE) was there
};
KernelRanges KernelRangesOf(const Vmcoreinfo& vi);

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_KERNEL_VM_H_
