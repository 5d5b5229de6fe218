// SPDX-License-Identifier: GPL-2.0-or-later
//
// Finding what triggered a dump: nmimgr's trigger record in the dump's
// memory (layout in module/nmimgr_record.h) and nmimgr's panic line, or the
// kernel's panic message, in the kernel log.
//
// Two record layouts are read: version 2 (128 bytes, checksum at 124 over
// bytes 0..123) and version 1 (96 bytes, checksum at 92 over 0..91).  The
// module aligns a version 2 record to 128 bytes, so it never crosses a page.
// A version 1 record is 8-byte aligned only and may cross into the next
// page at page offsets 4008-4088; module memory is virtually contiguous, but
// the next virtual page need not be the next physical one, so the scanner
// sees a crossing record only when the two pages are physically adjacent
// (the page engine passes a prefix of the next pfn).
//
// A valid record (magic, version, size, FIRED, checksum) is not yet the
// trigger.  A version 2 record is bound to the dump (BindRecord):
//   phys        its `phys` field equals the physical address it was found
//               at; a copy elsewhere in memory fails;
//   crash time  real_ns <= (CRASHTIME + 1) s: CRASHTIME (VMCOREINFO, set by
//               the crashing kernel, whole seconds) is never earlier than
//               the record, so a later record belongs to another boot;
//   boot epoch  real_ns - boot_ns, the wall-clock time the record's boot
//               began, equals the dump's CRASHTIME - uptime at the crash,
//               the uptime being the largest printk timestamp in the dump's
//               log, within kBootEpochSlackNs + uptime / kBootEpochDriftDiv
//               (see there); real_ns - mono_ns is accepted too, because
//               printk's clock and CLOCK_MONOTONIC stop in suspend while
//               CLOCK_BOOTTIME does not;
//   nonce       equals the record= field of nmimgr's panic line, when the
//               log has that line in its version 2 form.
// A check that lacks its input (no CRASHTIME, no log timestamps, no panic
// line) is "unchecked", not failed.  A version 1 record cannot be bound: it
// counts unless nmimgr's panic line names another code or CPU.
#ifndef NMIMGR_TOOLS_LIB_TRIGGER_H_
#define NMIMGR_TOOLS_LIB_TRIGGER_H_

#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "nmimgr_record.h"
#include "scan.h"

namespace nmimgr::vmcore {

// Where a check of the binding came out.
enum class Check { kUnchecked, kMatch, kMismatch };
const char* CheckName(Check c);  // "unchecked", "match", "mismatch"

struct RecordBinding {
  Check phys = Check::kUnchecked;
  Check crash_time = Check::kUnchecked;
  Check boot_epoch = Check::kUnchecked;
  Check nonce = Check::kUnchecked;
  // Signed difference, record minus dump, of the boot epochs (the form
  // that came closer), when both are known.
  std::optional<int64_t> boot_epoch_diff_ns;
  // Why the record is not the trigger ("" when it may be): a stable code
  // ("phys-mismatch", "later-than-crash", "boot-epoch-mismatch",
  // "nonce-mismatch", "panic-line-mismatch") and a lowercase sentence.
  std::string reject_code;
  std::string reject_message;
  bool rejected() const { return !reject_code.empty(); }
};

struct TriggerRecord {
  uint16_t version = 0;  // NMIMGR_RECORD_VERSION or NMIMGR_RECORD_V1
  uint32_t flags = 0;
  uint8_t raw_code = 0, masked_code = 0, event_mask = 0, nmi_type = 0;
  uint32_t cpu = 0;
  uint64_t mono_ns = 0, real_ns = 0, boot_ns = 0;
  uint64_t nmis = 0, dropped = 0, ignored = 0, unmanaged = 0, would_panic = 0;
  // Version 2 only (zero in a version 1 record).
  uint64_t nonce = 0, phys = 0, confirm_ns = 0;
  uint32_t confirm_min_ms = 0, confirm_max_ms = 0, oops_depth = 0;
  // Where it was found: the page's pfn, the offset in that page, and the
  // physical address of its first byte.
  uint64_t pfn = 0;
  uint32_t page_offset = 0;
  uint64_t paddr = 0;
  RecordBinding binding;  // filled by BindRecord

  bool bound() const {  // a version 2 record found where it says it lives
    return version == NMIMGR_RECORD_VERSION && binding.phys == Check::kMatch &&
           !binding.rejected();
  }
  bool oops_under_way() const;
  bool panic_under_way() const;
  bool confirmed() const;
  bool test() const;  // sent by nmimgrctl test (/sys/kernel/nmimgr/test)
};

// Checks magic, version (2 or 1), size (128 or 96), the FIRED flag and the
// checksum, in that order; nullopt when any fails.  `bytes` must hold the
// whole record of its version (128 or 96 bytes); more is ignored.
std::optional<TriggerRecord> ParseRecord(std::span<const uint8_t> bytes);

// nmimgr's panic line, old and new form:
//   nmimgr: panic on NMI event 0x21 (33) type=unknown cpu=0 mask=0xcf
//   nmimgr: panic on NMI event 0x21 (33) type=unknown cpu=0 mask=0xc0
//       code=0x00 record=0123456789abcdef[ confirmed]      (one line)
// The code printed first is the raw port 0x61 byte; the masked code is
// raw & mask (raw when there is no mask); code= repeats it, record= is the
// nonce of the record the module filled, " confirmed" says a second NMI
// confirmed the panic.
struct PanicLine {
  uint8_t raw_code = 0;
  std::optional<uint8_t> mask;
  uint8_t masked_code = 0;
  std::string nmi_type;
  uint32_t cpu = 0;
  std::optional<uint8_t> code;    // code=, the new form
  std::optional<uint64_t> nonce;  // record=
  bool confirmed = false;
  bool test = false;  // " test": the NMI nmimgrctl test sent
};

// Parses the line at the start of `text` (which begins with "nmimgr: panic
// on NMI event ").  nullopt when it does not have the fixed form (also when
// code= is not raw & mask).  Text after the fields is ignored.
std::optional<PanicLine> ParsePanicLine(std::string_view text);

// The line as the module prints it (two hex digits for code and mask).
std::string FormatPanicLine(const PanicLine& p);

// True when a kernel panic message (the text after "not syncing: ") is
// nmimgr's own.
bool IsNmimgrPanicMessage(std::string_view message);

struct KernelLogFacts {
  std::optional<PanicLine> nmimgr;
  std::optional<std::string> panic_message;  // after "not syncing: "
  std::optional<double> panic_log_time;      // [seconds] of the panic line
  // The largest "[seconds]" stamp of any line, in nanoseconds.
  std::optional<uint64_t> last_log_ns;
};

// Scans kernel log text (vmcore-dmesg.txt, dmesg.<stamp>, or "dmesg"
// output): the last nmimgr panic line, the last kernel panic message, and
// the largest timestamp.
KernelLogFacts ScanKernelLog(std::string_view text);

// What the dump says about the crashed kernel's clocks, for the binding.
struct BindingContext {
  std::optional<int64_t> crash_time;  // VMCOREINFO CRASHTIME, seconds
  std::optional<uint64_t> uptime_ns;  // largest printk timestamp
  std::string uptime_source;          // "dump-printk", "dmesg-file"

  // CRASHTIME - uptime in ns since the epoch; nullopt when either is
  // missing or out of range.
  std::optional<int64_t> BootEpochNs() const;
  // How far the record's boot epoch may be from BootEpochNs().
  uint64_t ToleranceNs() const;
  // Why a time check cannot be made ("" when both are known).
  std::string Missing() const;
};

// Fixed part of the boot epoch tolerance: CRASHTIME is whole seconds (up to
// 1 s early), the last log line precedes the crash, and printk's clock and
// the timekeeping clocks start a little apart at boot.
inline constexpr uint64_t kBootEpochSlackNs = 5'000'000'000ull;
// Proportional part, uptime / 10000 (100 ppm): printk's local_clock runs on
// the raw TSC while CLOCK_REALTIME and CLOCK_BOOTTIME are disciplined by
// NTP, so the two drift apart by the oscillator's error over the uptime.
inline constexpr uint64_t kBootEpochDriftDiv = 10000;

// The phys and time checks of a version 2 record (nothing for version 1),
// into r.binding; sets the reject code of the first check that fails.
void BindRecord(TriggerRecord& r, const BindingContext& ctx);
// The panic line check: the nonce for a version 2 record, code and CPU for
// a version 1 record.  Call after BindRecord.
void BindToPanicLine(TriggerRecord& r, const PanicLine& line);

// Page visitor that looks for valid trigger records and, when `want_log`,
// for the panic line and message in memory (the printk buffer's text).
class TriggerScanner : public PageVisitor {
 public:
  explicit TriggerScanner(bool want_log, BindingContext ctx = {})
      : want_log_(want_log), ctx_(std::move(ctx)) {}
  void Visit(uint64_t seq, uint64_t pfn, uint64_t paddr,
             std::span<const uint8_t> page,
             std::span<const uint8_t> next) override;
  // Done at the first batch by which a record that may be the trigger (a
  // version 1 record, or a version 2 record that passes the phys and time
  // checks) and, when the log is wanted, a cleanly ended panic line have
  // been seen.  A copy or a stale record does not end the scan.
  std::optional<uint64_t> DoneAt() const override;
  void Truncate(uint64_t seq) override;

  // Distinct valid records, lowest pfn first, with the phys and time checks
  // made.  Copies at different addresses are distinct (version 2); equal
  // version 1 records count once.
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
  BindingContext ctx_;
  mutable std::mutex mu_;
  std::vector<Hit<TriggerRecord>> records_;
  std::vector<uint64_t> magic_seqs_;
  std::vector<Hit<PanicLine>> lines_;
  std::vector<Hit<std::string>> messages_;
};

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_TRIGGER_H_
