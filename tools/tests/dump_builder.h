// SPDX-License-Identifier: GPL-2.0-or-later
//
// A small builder of test dumps (after libkdumpfile's mkdiskdump): writes
// ELF64, kdump-compressed (each codec, header versions 1-6), flattened and
// split dumps, and whole-file compressed copies, from a description, and
// reports where each structure landed so tests can cut and corrupt at every
// boundary.
#ifndef NMIMGR_TOOLS_TESTS_DUMP_BUILDER_H_
#define NMIMGR_TOOLS_TESTS_DUMP_BUILDER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "outer.h"

namespace nmimgr::testing {

using Bytes = std::vector<uint8_t>;

struct DumpSpec {
  uint32_t page_size = 4096;
  uint64_t max_mapnr = 64;
  std::map<uint64_t, Bytes> pages;  // dumped pages: pfn -> content
  std::set<uint64_t> excluded;      // present but not dumped
  uint32_t codec = 0;               // kdump flag: 0, 0x1, 0x2, 0x4, 0x20
  int header_version = 6;
  int dump_level = 31;
  std::string release = "6.1.0-56-amd64";
  std::string machine = "x86_64";
  int64_t timestamp = 1764100000;   // header timestamp (dump time)
  int64_t crash_time = 1764099990;  // vmcoreinfo CRASHTIME
  bool with_crash_time = true;      // false: no CRASHTIME line
  uint32_t cpus = 2;                // NT_PRSTATUS notes
  bool incomplete_flag = false;
  std::string extra_vmcoreinfo;  // appended to VMCOREINFO
  bool pgtable_l5 = false;       // NUMBER(pgtable_l5_enabled)=1
};

struct PrintkRecord {
  uint64_t ts_nsec;
  std::string text;
};

// Lays out a printk ring buffer (Linux 5.10+ format) in pages 50-56 of
// `spec` (which must describe at least 64 pfns), with phys_base at pfn 40,
// and adds the VMCOREINFO that describes it.  Record ids start at `first_id`,
// text at ring position `first_lpos` (a block that does not fit before the
// end of the 4 KiB ring wraps to its start).  With `direct_map` the
// descriptor array is addressed through the direct map and so through page
// tables at init_top_pgt.
void AddPrintkRing(DumpSpec& spec, const std::vector<PrintkRecord>& records,
                   uint64_t first_id = 0, uint64_t first_lpos = 0,
                   bool direct_map = false);

// The kernel's page tables as x86_64 lays them out, in pages 54 and 57-62
// of `spec` (the top table at pfn 54 is shared with AddPrintkRing's; call
// this after it): the kernel text mapping maps pfns 40-63 from
// 0xffffffff80000000 (phys_base at pfn 40, so init_top_pgt maps to itself),
// and the first 2 MiB of the module area, from kModuleArea, map
// `module_pages` with 4 KiB pages.  With spec.pgtable_l5 the top table is a
// PML5 and pfn 62 the P4D.  Adds init_top_pgt, phys_base and, with
// `image_size`, KERNEL_IMAGE_SIZE to VMCOREINFO when they are not there.
inline constexpr uint64_t kModuleArea = 0xffffffffc0000000ull;
struct ModulePage {
  uint32_t index;  // virtual page: kModuleArea + index * 4096, index < 512
  uint64_t pfn;
  bool writable = true;
};
struct KernelTables {
  std::vector<ModulePage> module_pages;
  bool image_size = true;
};
void AddKernelPageTables(DumpSpec& spec, const KernelTables& t);
// The kernel text mapping's address of `pfn` (phys_base at pfn 40).
uint64_t KernelTextVa(uint64_t pfn);

// Where the structures of a built dump lie.
struct Layout {
  uint64_t header_end = 0;  // kdump: 464; elf: 64
  uint64_t sub_off = 0, notes_off = 0, notes_size = 0;
  uint64_t bitmap_off = 0, bitmap_len = 0;
  uint64_t desc_off = 0, data_off = 0;
  std::vector<uint64_t> desc_at;     // kdump: each descriptor's offset
  std::vector<uint64_t> page_at;     // each stored page's data offset
  std::vector<uint64_t> page_size;   // and stored size
  std::vector<uint64_t> segment_at;  // elf: PT_LOAD data offsets
  uint64_t phdr_off = 0, phdr_end = 0;
  uint64_t file_size = 0;
  // Every structural boundary (and the byte before it), sorted, < size.
  std::vector<uint64_t> Boundaries() const;
};

// A page of `fill`, with `text` written at `offset`.
Bytes Page(uint32_t page_size, uint8_t fill, const std::string& text = {},
           size_t offset = 0);
// A valid, fired version 2 trigger record (128 bytes), phys 0.  Its
// clocks: mono_ns 5.0 s, boot_ns 5.1 s, real_ns as given (the default is
// 0.12 s after DumpSpec's default CRASHTIME), so its boot epoch is
// CRASHTIME - 4.98 s.
Bytes Record(uint8_t raw, uint8_t mask, uint8_t type, uint32_t cpu,
             uint64_t real_ns = 1764099990123456789ull, uint32_t flags = 1);

// The fields of a version 2 record a binding test varies.
struct RecordSpec {
  uint8_t raw = 0x21, mask = 0xcf, type = 1;
  uint32_t cpu = 0;
  uint32_t flags = 1;  // NMIMGR_RECORD_FIRED
  uint64_t mono_ns = 5000000000ull;
  uint64_t real_ns = 1764099990123456789ull;
  uint64_t boot_ns = 5100000000ull;
  uint64_t nonce = 0x0123456789abcdefull;
  std::optional<uint64_t> phys;  // default: where PlaceRecord puts it
  uint32_t oops_depth = 0;
};
Bytes Record(const RecordSpec& r, uint64_t phys);

// Writes a record into page `pfn` of `spec` (a page of 0x5c when absent) at
// `offset`, with phys = pfn * page size + offset unless `r.phys` says
// otherwise.  Returns the physical address it was written at.
uint64_t PlaceRecord(DumpSpec& spec, uint64_t pfn, uint32_t offset,
                     const RecordSpec& r = {});

// A version 1 record (96 bytes, checksum at 92), as modules before the
// binding wrote it.
Bytes RecordV1(uint8_t raw, uint8_t mask, uint8_t type, uint32_t cpu,
               uint64_t real_ns = 1764099990123456789ull);

// A printk ring (AddPrintkRing) whose last message, the kernel's panic
// message `panic`, is at `uptime_ns`: what the binding reads as the uptime
// at the crash.  The default, 5.12 s, matches Record()'s clocks and the
// default CRASHTIME.
void AddCrashLog(DumpSpec& spec, uint64_t uptime_ns = 5120000000ull,
                 const std::string& panic = "sysrq triggered crash");

Bytes BuildKdump(const DumpSpec& spec, Layout* layout = nullptr);

// Writes to `path` a sparse kdump-compressed file describing 2^28 pfns
// (1 TiB of 4 KiB pages) with one dumped raw page every GiB and one
// excluded page after each: large bitmaps that are mostly holes on disk,
// for the scale test and the benchmark.  Throws std::runtime_error on I/O.
struct SparseKdump {
  uint64_t max_mapnr;
  uint64_t dumped_pages;
};
SparseKdump WriteSparseKdump1TiB(const std::string& path);
// The same for `max_mapnr` pfns with a dumped page (and an excluded one 8
// pfns later) every `stride` pfns: the file's apparent size follows the
// bitmaps the header claims, its blocks on disk the pages it holds.
SparseKdump WriteSparseKdump(const std::string& path, uint64_t max_mapnr,
                             uint64_t stride);
// Writes to `path` a kdump-compressed dump the size of a large server's:
// `spec.max_mapnr` pfns all present in the first bitmap (1 TiB for 2^28),
// the pages of `spec` (its codec), and `bulk_pages` more dumped pages from
// pfn 2^20 up, each stored as its own copy of one compressed page, so the
// file grows with them as a real dump's does.  The bitmaps and the
// descriptor table are written out in full, as makedumpfile writes them.
// Throws std::runtime_error on I/O.
// The small part of such a dump: a server kernel's pages in pfns 0-63 (a
// printk ring with a panic message, the page tables, a module area of 40
// writable pages over pfns 0-39, a bound record in pfn 30) and zlib pages;
// max_mapnr as given.
DumpSpec ServerSpec(uint64_t max_mapnr);
void WriteFleetKdump(const std::string& path, const DumpSpec& spec,
                     uint64_t bulk_pages);
// Parts of a split set over pfn ranges split at `cuts` (ascending, inside
// (0, max_mapnr)).
std::vector<Bytes> BuildSplit(const DumpSpec& spec,
                              const std::vector<uint64_t>& cuts);
Bytes BuildElf(const DumpSpec& spec, Layout* layout = nullptr);

struct FlatOptions {
  uint64_t record_size = 4096;  // data bytes per record at most
  bool end_marker = true;
  bool rewrite_header = false;  // header sent as zeros first, real at end
  // Dump byte ranges [first, second) that no record carries, as makedumpfile
  // leaves a block's padding unwritten (each bitmap half past the bytes that
  // cover max_mapnr, the header block past the header).
  std::vector<std::pair<uint64_t, uint64_t>> unwritten;
};
// The flattened form of a dump image; record_at gets each record's offset.
Bytes Flatten(const Bytes& dump, const FlatOptions& opts = {},
              std::vector<uint64_t>* record_at = nullptr);

// Whole-file compression as kdump-tools does it.
Bytes Compress(vmcore::OuterKind kind, const Bytes& data);

void WriteFile(const std::string& path, const Bytes& data);
Bytes ReadFile(const std::string& path);

// A fresh temporary directory, removed with the object.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const {
    return path_ + "/" + name;
  }

 private:
  std::string path_;
};

}  // namespace nmimgr::testing

#endif  // NMIMGR_TOOLS_TESTS_DUMP_BUILDER_H_
