// SPDX-License-Identifier: GPL-2.0-or-later
//
// Finding what triggered a dump: nmimgr's trigger record in the dump's
// memory (layout in module/nmimgr_record.h) and nmimgr's panic line, or the
// kernel's panic message, in the kernel log.
//
// The record is 96 bytes with 8-byte natural alignment.  That alignment does
// NOT keep it inside one 4 KiB page: a record at page offset 4008 to 4088
// crosses into the next page.  The module's memory is virtually contiguous,
// but the next virtual page need not be the next physical page, so a
// scanner of physical pages can only see a crossing record when the two
// pages happen to be physically adjacent; the scanner does look there (the
// page engine passes a prefix of the next pfn).  A module that aligns its
// record to 128 bytes removes the case.
#ifndef NMIMGR_TOOLS_LIB_TRIGGER_H_
#define NMIMGR_TOOLS_LIB_TRIGGER_H_

#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "scan.h"

namespace nmimgr::vmcore {

struct TriggerRecord {
  uint32_t flags = 0;
  uint8_t raw_code = 0, masked_code = 0, event_mask = 0, nmi_type = 0;
  uint32_t cpu = 0;
  uint64_t mono_ns = 0, real_ns = 0, boot_ns = 0;
  uint64_t nmis = 0, dropped = 0, ignored = 0, unmanaged = 0, would_panic = 0;
  uint64_t pfn = 0;  // where it was found
  uint32_t page_offset = 0;
};

// Checks magic, version, size, the FIRED flag and the checksum, in that
// order; nullopt when any fails.  `bytes` must hold at least 96 bytes.
std::optional<TriggerRecord> ParseRecord(std::span<const uint8_t> bytes);

// nmimgr's panic line:
//   nmimgr: panic on NMI event 0x21 (33) type=unknown cpu=0 mask=0xcf
// The code printed is the raw port 0x61 byte; the masked code is
// raw & mask (raw when there is no mask).
struct PanicLine {
  uint8_t raw_code = 0;
  std::optional<uint8_t> mask;
  uint8_t masked_code = 0;
  std::string nmi_type;
  uint32_t cpu = 0;
};

// Parses the line at the start of `text` (which begins with "nmimgr: panic
// on NMI event ").  nullopt when it does not have the fixed form.
std::optional<PanicLine> ParsePanicLine(std::string_view text);

// The line as the module prints it (two hex digits for code and mask).
std::string FormatPanicLine(const PanicLine& p);

struct KernelLogFacts {
  std::optional<PanicLine> nmimgr;
  std::optional<std::string> panic_message;  // after "not syncing: "
  std::optional<double> panic_log_time;      // [seconds] of the panic line
};

// Scans kernel log text (vmcore-dmesg.txt, dmesg.<stamp>, or "dmesg"
// output): the last nmimgr panic line and the last kernel panic message.
KernelLogFacts ScanKernelLog(std::string_view text);

// Page visitor that looks for valid trigger records and, when `want_log`,
// for the panic line and message in memory (the printk buffer's text).
class TriggerScanner : public PageVisitor {
 public:
  explicit TriggerScanner(bool want_log) : want_log_(want_log) {}
  void Visit(uint64_t seq, uint64_t pfn, std::span<const uint8_t> page,
             std::span<const uint8_t> next) override;
  // Done at the first batch by which a valid record (and, when the log is
  // wanted, a cleanly ended panic line) has been seen.
  std::optional<uint64_t> DoneAt() const override;
  void Truncate(uint64_t seq) override;

  // Distinct valid records, lowest pfn first.
  std::vector<TriggerRecord> records() const;
  std::optional<PanicLine> memory_panic_line() const;
  std::optional<std::string> memory_panic_message() const;
  uint64_t magic_hits() const;

 private:
  template <typename T>
  struct Hit {
    uint64_t seq;
    uint64_t pfn;
    bool clean;  // ended in NUL or newline
    T value;
  };
  template <typename T>
  static std::optional<T> Best(const std::vector<Hit<T>>& hits);
  void ScanText(uint64_t seq, uint64_t pfn, std::span<const uint8_t> buf,
                size_t limit);

  bool want_log_;
  mutable std::mutex mu_;
  std::vector<Hit<TriggerRecord>> records_;
  std::vector<uint64_t> magic_seqs_;
  std::vector<Hit<PanicLine>> lines_;
  std::vector<Hit<std::string>> messages_;
};

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_TRIGGER_H_
