// SPDX-License-Identifier: GPL-2.0-or-later
#include "trigger.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <tuple>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "checked.h"
#include "nmimgr_record.h"

namespace nmimgr::vmcore {
namespace {

constexpr std::string_view kLinePrefix = "nmimgr: panic on NMI event ";
constexpr std::string_view kPanicPrefix = "Kernel panic - not syncing: ";

bool Eat(std::string_view& s, std::string_view lit) {
  if (s.substr(0, lit.size()) != lit) return false;
  s.remove_prefix(lit.size());
  return true;
}

template <typename T>
bool Num(std::string_view& s, int base, T& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  if (ec != std::errc() || p == s.data()) return false;
  s.remove_prefix(static_cast<size_t>(p - s.data()));
  return true;
}

bool Printable(uint8_t c) { return c >= 0x20 && c < 0x7f; }

// The "[   12.345678]" stamp at the start of a log line (after a "<6>"
// level, as `dmesg -r` prints it), in nanoseconds.
std::optional<uint64_t> LineStampNs(std::string_view line) {
  if (Eat(line, "<")) {
    size_t gt = line.find('>');
    if (gt == std::string_view::npos || gt > 4) return std::nullopt;
    line.remove_prefix(gt + 1);
  }
  if (!Eat(line, "[")) return std::nullopt;
  while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  uint64_t secs = 0, frac = 0;
  if (!Num(line, 10, secs) || !Eat(line, ".")) return std::nullopt;
  size_t digits = 0;
  while (digits < line.size() && digits < 9 &&
         std::isdigit(static_cast<unsigned char>(line[digits])))
    ++digits;
  if (digits == 0 || digits >= line.size() || line[digits] != ']')
    return std::nullopt;
  std::string_view f = line.substr(0, digits);
  if (!Num(f, 10, frac)) return std::nullopt;
  for (size_t i = digits; i < 9; ++i) frac *= 10;
  if (secs > UINT64_MAX / 1000000000ull - 1) return std::nullopt;
  return secs * 1000000000ull + frac;
}

}  // namespace

const char* CheckName(Check c) {
  switch (c) {
    case Check::kUnchecked:
      return "unchecked";
    case Check::kMatch:
      return "match";
    case Check::kMismatch:
      return "mismatch";
  }
  return "?";
}

bool TriggerRecord::oops_under_way() const {
  return version == NMIMGR_RECORD_VERSION &&
         (flags & NMIMGR_RECORD_OOPS_UNDER_WAY);
}
bool TriggerRecord::panic_under_way() const {
  return version == NMIMGR_RECORD_VERSION &&
         (flags & NMIMGR_RECORD_PANIC_UNDER_WAY);
}
bool TriggerRecord::confirmed() const {
  return version == NMIMGR_RECORD_VERSION && (flags & NMIMGR_RECORD_CONFIRMED);
}
bool TriggerRecord::test() const {
  return version == NMIMGR_RECORD_VERSION && (flags & NMIMGR_RECORD_TEST);
}

std::optional<TriggerRecord> ParseRecord(std::span<const uint8_t> bytes) {
  // Magic, version and size: enough to know how long the record is.
  constexpr size_t kHeader = NMIMGR_RECORD_MAGIC_LEN + 4;
  if (bytes.size() < kHeader) return std::nullopt;
  if (std::memcmp(bytes.data(), NMIMGR_RECORD_MAGIC, NMIMGR_RECORD_MAGIC_LEN))
    return std::nullopt;
    // Offsets come from the module's own header, the one layout both share;
    // version 1 has the same fields up to would_panic.
#define NMIMGR_AT(field) offsetof(struct nmimgr_record, field)
  ByteView head(bytes.first(kHeader), 0, "trigger record");
  const uint16_t version = head.Le16(NMIMGR_AT(version));
  size_t size, sum_at;
  if (version == NMIMGR_RECORD_VERSION) {
    size = NMIMGR_RECORD_SIZE;
    sum_at = NMIMGR_RECORD_CHECKSUM_OFFSET;
  } else if (version == NMIMGR_RECORD_V1) {
    size = NMIMGR_RECORD_V1_SIZE;
    sum_at = NMIMGR_RECORD_V1_CHECKSUM_OFFSET;
  } else {
    return std::nullopt;
  }
  if (head.Le16(NMIMGR_AT(size)) != size || bytes.size() < size)
    return std::nullopt;
  ByteView v(bytes.first(size), 0, "trigger record");
  TriggerRecord r;
  r.version = version;
  r.flags = v.Le32(NMIMGR_AT(flags));
  if (!(r.flags & NMIMGR_RECORD_FIRED)) return std::nullopt;
  if (v.Le32(sum_at) !=
      nmimgr_record_checksum_n(bytes.data(), static_cast<unsigned>(sum_at)))
    return std::nullopt;
  r.raw_code = v.U8(NMIMGR_AT(raw_code));
  r.masked_code = v.U8(NMIMGR_AT(masked_code));
  r.event_mask = v.U8(NMIMGR_AT(event_mask));
  r.nmi_type = v.U8(NMIMGR_AT(nmi_type));
  r.cpu = v.Le32(NMIMGR_AT(cpu));
  r.mono_ns = v.Le64(NMIMGR_AT(mono_ns));
  r.real_ns = v.Le64(NMIMGR_AT(real_ns));
  r.boot_ns = v.Le64(NMIMGR_AT(boot_ns));
  r.nmis = v.Le64(NMIMGR_AT(nmis));
  r.dropped = v.Le64(NMIMGR_AT(dropped));
  r.ignored = v.Le64(NMIMGR_AT(ignored));
  r.unmanaged = v.Le64(NMIMGR_AT(unmanaged));
  r.would_panic = v.Le64(NMIMGR_AT(would_panic));
  if (version == NMIMGR_RECORD_VERSION) {
    r.nonce = v.Le64(NMIMGR_AT(nonce));
    r.phys = v.Le64(NMIMGR_AT(phys));
    r.confirm_ns = v.Le64(NMIMGR_AT(confirm_ns));
    r.confirm_min_ms = v.Le32(NMIMGR_AT(confirm_min_ms));
    r.confirm_max_ms = v.Le32(NMIMGR_AT(confirm_max_ms));
    r.oops_depth = v.Le32(NMIMGR_AT(oops_depth));
  }
#undef NMIMGR_AT
  return r;
}

std::optional<PanicLine> ParsePanicLine(std::string_view s) {
  PanicLine p;
  unsigned raw = 0, dec = 0, cpu = 0, mask = 0;
  if (!Eat(s, kLinePrefix) || !Eat(s, "0x") || !Num(s, 16, raw) ||
      !Eat(s, " (") || !Num(s, 10, dec) || !Eat(s, ") type=") || raw > 0xff ||
      dec != raw)
    return std::nullopt;
  size_t n = 0;
  while (n < s.size() && std::islower(static_cast<unsigned char>(s[n]))) ++n;
  if (n == 0) return std::nullopt;
  p.nmi_type = std::string(s.substr(0, n));
  s.remove_prefix(n);
  if (!Eat(s, " cpu=") || !Num(s, 10, cpu)) return std::nullopt;
  p.raw_code = static_cast<uint8_t>(raw);
  p.cpu = cpu;
  // Each field is a fixed number of hex digits.  Text read from memory may
  // run on into unrelated bytes ("mask=0xcfcf"), so read no more.
  auto hex = [&s](size_t digits, auto& out) {
    std::string_view d = s.substr(0, digits);
    if (d.size() != digits || !std::all_of(d.begin(), d.end(), [](char c) {
          return std::isdigit(static_cast<unsigned char>(c)) ||
                 (c >= 'a' && c <= 'f');
        }))
      return false;
    auto [end, ec] = std::from_chars(d.data(), d.data() + d.size(), out, 16);
    if (ec != std::errc() || end != d.data() + d.size()) return false;
    s.remove_prefix(digits);
    return true;
  };
  if (Eat(s, " mask=0x")) {
    std::string_view digits = s.substr(0, 2);
    const size_t before = digits.size();
    if (Num(digits, 16, mask)) {
      p.mask = static_cast<uint8_t>(mask);
      s.remove_prefix(before - digits.size());
    }
  }
  p.masked_code = p.mask ? (p.raw_code & *p.mask) : p.raw_code;
  // The version 2 form goes on: code=, record=, maybe " confirmed", maybe
  // " test".
  unsigned code = 0;
  uint64_t nonce = 0;
  if (p.mask && Eat(s, " code=0x") && hex(2, code)) {
    if (code != p.masked_code) return std::nullopt;
    p.code = static_cast<uint8_t>(code);
    if (Eat(s, " record=") && hex(16, nonce)) {
      p.nonce = nonce;
      p.confirmed = Eat(s, " confirmed");
      p.test = Eat(s, " test");
    }
  }
  return p;
}

std::string FormatPanicLine(const PanicLine& p) {
  std::string s = "nmimgr: panic on NMI event 0x" +
                  fmt::format("{:02x} ({}) type={} cpu={}", p.raw_code,
                              p.raw_code, p.nmi_type, p.cpu);
  if (p.mask) s += fmt::format(" mask=0x{:02x}", *p.mask);
  if (p.mask && p.code) {
    s += fmt::format(" code=0x{:02x}", *p.code);
    if (p.nonce) s += fmt::format(" record={:016x}", *p.nonce);
    if (p.nonce && p.confirmed) s += " confirmed";
    if (p.nonce && p.test) s += " test";
  }
  return s;
}

bool IsNmimgrPanicMessage(std::string_view message) {
  return message.substr(0, 8) == "nmimgr: ";
}

// The text of the log record a line starts: after an optional "<6>" level,
// an optional "[   12.345678] " stamp and an optional "[T123] " / "[C1] "
// caller id.  A continuation line (indented, no stamp) keeps its leading
// spaces and so never starts a record's text.
std::string_view RecordText(std::string_view line) {
  std::string_view s = line;
  if (Eat(s, "<")) {
    size_t gt = s.find('>');
    if (gt == std::string_view::npos || gt > 4) return line;
    s.remove_prefix(gt + 1);
  }
  if (LineStampNs(line)) {
    s.remove_prefix(s.find(']') + 1);
    if (!Eat(s, " ")) return {};
  }
  // The caller id, "[%6s]" of "T<pid>" or "C<cpu>".
  if (Eat(s, "[")) {
    size_t i = 0;
    while (i < s.size() && s[i] == ' ') ++i;
    size_t d = i + 1;
    if (i >= s.size() || (s[i] != 'T' && s[i] != 'C')) return {};
    while (d < s.size() && std::isdigit(static_cast<unsigned char>(s[d]))) ++d;
    if (d == i + 1 || d + 1 >= s.size() || s[d] != ']' || s[d + 1] != ' ')
      return {};
    s.remove_prefix(d + 2);
  }
  return s;
}

KernelLogFacts ScanKernelLog(std::string_view text) {
  KernelLogFacts f;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    std::optional<uint64_t> stamp = LineStampNs(line);
    if (stamp) f.last_log_ns = std::max(f.last_log_ns.value_or(0), *stamp);
    // Only the kernel's panic line counts, at the start of a record's text:
    // "Kernel panic - not syncing: nmimgr: panic on NMI event ...".  A line
    // that quotes it elsewhere (a shell echo, a log forwarder) is not it.
    std::string_view rec = RecordText(line);
    if (!Eat(rec, kPanicPrefix)) continue;
    if (rec.substr(0, kLinePrefix.size()) == kLinePrefix) {
      if (auto p = ParsePanicLine(rec)) f.nmimgr = p;
    }
    std::string msg(rec);
    while (!msg.empty() && (msg.back() == '\r' || msg.back() == ' '))
      msg.pop_back();
    f.panic_message = ValidUtf8(msg);
    f.panic_log_time.reset();
    if (stamp) f.panic_log_time = static_cast<double>(*stamp) / 1e9;
  }
  return f;
}

std::optional<int64_t> BindingContext::BootEpochNs() const {
  if (!crash_time || !uptime_ns) return std::nullopt;
  __int128 e = static_cast<__int128>(*crash_time) * 1000000000 -
               static_cast<__int128>(*uptime_ns);
  if (e < INT64_MIN || e > INT64_MAX) return std::nullopt;
  return static_cast<int64_t>(e);
}

uint64_t BindingContext::ToleranceNs() const {
  return kBootEpochSlackNs + uptime_ns.value_or(0) / kBootEpochDriftDiv;
}

std::string BindingContext::Missing() const {
  if (!crash_time && !uptime_ns)
    return "the dump has no VMCOREINFO CRASHTIME and no kernel log "
           "timestamps";
  if (!crash_time) return "the dump has no VMCOREINFO CRASHTIME";
  if (!uptime_ns) return "no kernel log timestamps (uptime at the crash)";
  if (!BootEpochNs()) return "CRASHTIME is out of range";
  return {};
}

namespace {

std::string Seconds(__int128 ns) {
  const char* sign = ns < 0 ? "-" : "";
  unsigned __int128 a = ns < 0 ? -ns : ns;
  return fmt::format("{}{}.{:09}", sign, static_cast<uint64_t>(a / 1000000000),
                     static_cast<uint64_t>(a % 1000000000));
}

__int128 Abs(__int128 v) { return v < 0 ? -v : v; }

}  // namespace

void BindRecord(TriggerRecord& r, const BindingContext& ctx) {
  RecordBinding& b = r.binding;
  b = {};
  if (r.version != NMIMGR_RECORD_VERSION) return;  // version 1: not bound
  b.phys = r.phys == r.paddr ? Check::kMatch : Check::kMismatch;
  if (ctx.crash_time) {
    __int128 limit = (static_cast<__int128>(*ctx.crash_time) + 1) * 1000000000;
    b.crash_time = static_cast<__int128>(r.real_ns) <= limit ? Check::kMatch
                                                             : Check::kMismatch;
  }
  __int128 diff = 0;
  if (std::optional<int64_t> dump = ctx.BootEpochNs()) {
    __int128 by_boot = static_cast<__int128>(r.real_ns) - r.boot_ns - *dump;
    __int128 by_mono = static_cast<__int128>(r.real_ns) - r.mono_ns - *dump;
    diff = Abs(by_boot) <= Abs(by_mono) ? by_boot : by_mono;
    b.boot_epoch_diff_ns =
        static_cast<int64_t>(std::clamp<__int128>(diff, INT64_MIN, INT64_MAX));
    b.boot_epoch = Abs(diff) <= static_cast<__int128>(ctx.ToleranceNs())
                       ? Check::kMatch
                       : Check::kMismatch;
  }
  if (b.phys == Check::kMismatch) {
    b.reject_code = "phys-mismatch";
    b.reject_message = fmt::format(
        "found at physical address {:#x}, it says it lives at {:#x}: a copy "
        "of a record, not the record itself",
        r.paddr, r.phys);
  } else if (b.crash_time == Check::kMismatch) {
    b.reject_code = "later-than-crash";
    b.reject_message = fmt::format(
        "its realtime {} s is later than the crash (CRASHTIME {} s, whole "
        "seconds): not written before this crash",
        Seconds(r.real_ns), *ctx.crash_time);
  } else if (b.boot_epoch == Check::kMismatch) {
    b.reject_code = "boot-epoch-mismatch";
    b.reject_message = fmt::format(
        "its boot began {} s {} the crashed kernel's (CRASHTIME {} s minus "
        "uptime {} s from the {} log; tolerance {} s): a record from another "
        "boot",
        Seconds(Abs(diff)), diff < 0 ? "before" : "after", *ctx.crash_time,
        Seconds(*ctx.uptime_ns), ctx.uptime_source, Seconds(ctx.ToleranceNs()));
  }
}

void BindToPanicLine(TriggerRecord& r, const PanicLine& line) {
  RecordBinding& b = r.binding;
  if (r.version == NMIMGR_RECORD_VERSION) {
    if (!line.nonce) return;
    b.nonce = *line.nonce == r.nonce ? Check::kMatch : Check::kMismatch;
    if (b.nonce == Check::kMismatch && !b.rejected()) {
      b.reject_code = "nonce-mismatch";
      b.reject_message = fmt::format(
          "its nonce {:016x} is not the record={:016x} of nmimgr's panic "
          "line: not the record this panic filled",
          r.nonce, *line.nonce);
    }
    return;
  }
  if (line.raw_code != r.raw_code || line.cpu != r.cpu) {
    b.reject_code = "panic-line-mismatch";
    b.reject_message = fmt::format(
        "a version 1 record of event {:#04x} on cpu {}, but nmimgr's panic "
        "line names event {:#04x} on cpu {}",
        r.raw_code, r.cpu, line.raw_code, line.cpu);
  }
}

namespace {

// The first 8-byte-aligned offset at or after `from` (a multiple of 8) where
// `page` holds `magic`, else page.size().  The --deep check runs this over
// every dumped page: with SSE2 (every x86_64) 64 bytes a step, a 64-bit
// word equal where both its 32-bit halves are.
size_t FindMagic(std::span<const uint8_t> page, size_t from, uint64_t magic) {
  size_t off = from;
#ifdef __SSE2__
  const __m128i m = _mm_set1_epi64x(static_cast<long long>(magic));
  auto eq64 = [&](size_t at) {
    __m128i v =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(page.data() + at));
    __m128i e = _mm_cmpeq_epi32(v, m);
    return _mm_and_si128(e, _mm_shuffle_epi32(e, 0xb1));
  };
  for (; off + 64 <= page.size(); off += 64) {
    __m128i any = _mm_or_si128(_mm_or_si128(eq64(off), eq64(off + 16)),
                               _mm_or_si128(eq64(off + 32), eq64(off + 48)));
    if (_mm_movemask_epi8(any)) break;
  }
#endif
  for (; off + 8 <= page.size(); off += 8) {
    uint64_t w;
    std::memcpy(&w, page.data() + off, 8);
    if (w == magic) return off;
  }
  return page.size();
}

}  // namespace

void TriggerScanner::Visit(uint64_t seq, uint64_t pfn, uint64_t paddr,
                           std::span<const uint8_t> page,
                           std::span<const uint8_t> next) {
  // Records: the magic at every 8-byte-aligned offset of the page.
  uint64_t magic;
  std::memcpy(&magic, NMIMGR_RECORD_MAGIC, 8);
  uint8_t joined[NMIMGR_RECORD_SIZE];
  for (size_t off = FindMagic(page, 0, magic); off < page.size();
       off = FindMagic(page, off + 8, magic)) {
    // As much of the largest layout as there is; ParseRecord wants the
    // whole record of the version it finds.
    std::span<const uint8_t> rec;
    if (off + NMIMGR_RECORD_SIZE <= page.size()) {
      rec = page.subspan(off, NMIMGR_RECORD_SIZE);
    } else {
      size_t head = page.size() - off;
      size_t tail = std::min(NMIMGR_RECORD_SIZE - head, next.size());
      std::memcpy(joined, page.data() + off, head);
      if (tail) std::memcpy(joined + head, next.data(), tail);
      rec = std::span<const uint8_t>(joined, head + tail);
    }
    std::optional<TriggerRecord> r = ParseRecord(rec);
    if (r) {
      r->pfn = pfn;
      r->page_offset = static_cast<uint32_t>(off);
      r->paddr = paddr + off;
      BindRecord(*r, ctx_);
    }
    std::lock_guard lock(mu_);
    magic_seqs_.push_back(seq);
    if (r) records_.push_back({seq, pfn, true, *r});
  }
  if (!want_log_) return;
  // Text: the page plus a prefix of the next one, for lines that cross.
  thread_local std::vector<uint8_t> buf;
  buf.assign(page.begin(), page.end());
  buf.insert(buf.end(), next.begin(), next.end());
  ScanText(seq, pfn, buf, page.size());
}

void TriggerScanner::ScanText(uint64_t seq, uint64_t pfn,
                              std::span<const uint8_t> buf, size_t limit) {
  auto find_all = [&](std::string_view needle, auto&& on_hit) {
    const uint8_t* base = buf.data();
    size_t from = 0;
    while (from < limit) {
      const void* hit =
          memmem(base + from, buf.size() - from, needle.data(), needle.size());
      if (!hit) return;
      size_t at = static_cast<size_t>(static_cast<const uint8_t*>(hit) - base);
      if (at >= limit) return;
      size_t end = at;
      while (end < buf.size() && Printable(buf[end])) ++end;
      // A copy that ends in NUL or a newline (panic()'s own buffer, a log
      // line) is trusted over one that runs into other bytes.
      bool clean = end < buf.size() && (buf[end] == 0 || buf[end] == '\n');
      on_hit(
          std::string_view(reinterpret_cast<const char*>(base + at), end - at),
          clean);
      from = at + 1;
    }
  };
  const uint8_t* base = buf.data();
  find_all(kPanicPrefix, [&](std::string_view text, bool clean) {
    // The kernel's panic line, not a quote of it: what comes before it
    // (spaces skipped) is not running text.  In the 5.10+ ring a record's
    // text follows its 8-byte id, whose top byte is 0x3f ('?': the state
    // bits masked off) or 0; in the older log_buf it follows the
    // level/flags byte; a rendered copy has its "[   42.1]" stamp (or
    // caller id) before it.
    size_t at = static_cast<size_t>(
        reinterpret_cast<const uint8_t*>(text.data()) - base);
    while (at > 0 && base[at - 1] == ' ') --at;
    if (at > 0) {
      uint8_t b = base[at - 1];
      if (Printable(b) && b != '?' && b != ']') return;
    }
    std::string_view msg = text.substr(kPanicPrefix.size());
    // Skip the format string in the kernel image ("%s") and empty text.
    if (msg.empty() || msg[0] == '%') return;
    std::string text_msg(msg);
    // nmimgr's own message has a fixed form: render it from its fields, so
    // bytes that follow the text in memory cannot leak into it.
    std::optional<PanicLine> p;
    if (msg.substr(0, kLinePrefix.size()) == kLinePrefix)
      p = ParsePanicLine(msg);
    std::lock_guard lock(mu_);
    if (p) {
      lines_.push_back({seq, pfn, clean, *p});
      text_msg = FormatPanicLine(*p);
      clean = true;
    }
    messages_.push_back({seq, pfn, clean, std::move(text_msg)});
  });
}

std::optional<uint64_t> TriggerScanner::DoneAt() const {
  std::lock_guard lock(mu_);
  std::optional<uint64_t> rec, line;
  for (const auto& h : records_)
    if (!h.value.binding.rejected()) rec = std::min(rec.value_or(h.seq), h.seq);
  if (!rec) return std::nullopt;
  if (!want_log_) return rec;
  for (const auto& h : lines_)
    if (h.clean) line = std::min(line.value_or(h.seq), h.seq);
  if (!line) return std::nullopt;
  return std::max(*rec, *line);
}

void TriggerScanner::Truncate(uint64_t seq) {
  std::lock_guard lock(mu_);
  auto drop = [seq](auto& v) {
    std::erase_if(v, [seq](const auto& h) { return h.seq > seq; });
  };
  drop(records_);
  drop(lines_);
  drop(messages_);
  std::erase_if(magic_seqs_, [seq](uint64_t s) { return s > seq; });
}

template <typename T>
std::optional<T> TriggerScanner::Best(const std::vector<Hit<T>>& hits) {
  const Hit<T>* best = nullptr;
  for (const auto& h : hits)
    if (!best || (h.clean && !best->clean) ||
        (h.clean == best->clean && h.pfn < best->pfn))
      best = &h;
  if (!best) return std::nullopt;
  if constexpr (std::is_same_v<T, std::string>) return ValidUtf8(best->value);
  return best->value;
}

std::vector<TriggerRecord> TriggerScanner::records() const {
  std::lock_guard lock(mu_);
  std::vector<TriggerRecord> all;
  for (const auto& h : records_) all.push_back(h.value);
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return std::tie(a.pfn, a.page_offset) < std::tie(b.pfn, b.page_offset);
  });
  std::vector<TriggerRecord> out;
  for (const TriggerRecord& r : all) {
    // The same memory seen twice, or (version 1, which cannot say where
    // it lives) an equal record anywhere.
    bool dup = std::any_of(out.begin(), out.end(), [&](const TriggerRecord& o) {
      return o.version == r.version && o.real_ns == r.real_ns &&
             o.mono_ns == r.mono_ns && o.raw_code == r.raw_code &&
             o.cpu == r.cpu && o.nmis == r.nmis && o.nonce == r.nonce &&
             (r.version == NMIMGR_RECORD_V1 || o.paddr == r.paddr);
    });
    if (!dup) out.push_back(r);
  }
  return out;
}

std::optional<PanicLine> TriggerScanner::memory_panic_line() const {
  std::lock_guard lock(mu_);
  return Best(lines_);
}

std::optional<std::string> TriggerScanner::memory_panic_message() const {
  std::lock_guard lock(mu_);
  return Best(messages_);
}

uint64_t TriggerScanner::magic_hits() const {
  std::lock_guard lock(mu_);
  return magic_seqs_.size();
}

}  // namespace nmimgr::vmcore
