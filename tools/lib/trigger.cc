// SPDX-License-Identifier: GPL-2.0-or-later
#include "trigger.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <tuple>

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

}  // namespace

std::optional<TriggerRecord> ParseRecord(std::span<const uint8_t> bytes) {
  if (bytes.size() < NMIMGR_RECORD_SIZE) return std::nullopt;
  ByteView v(bytes.first(NMIMGR_RECORD_SIZE), 0, "trigger record");
  if (std::memcmp(bytes.data(), NMIMGR_RECORD_MAGIC, NMIMGR_RECORD_MAGIC_LEN))
    return std::nullopt;
    // Offsets come from the module's own header, the one layout both share.
#define NMIMGR_AT(field) offsetof(struct nmimgr_record, field)
  if (v.Le16(NMIMGR_AT(version)) != NMIMGR_RECORD_VERSION) return std::nullopt;
  if (v.Le16(NMIMGR_AT(size)) != NMIMGR_RECORD_SIZE) return std::nullopt;
  TriggerRecord r;
  r.flags = v.Le32(NMIMGR_AT(flags));
  if (!(r.flags & NMIMGR_RECORD_FIRED)) return std::nullopt;
  if (v.Le32(NMIMGR_RECORD_CHECKSUM_OFFSET) !=
      nmimgr_record_checksum(bytes.data()))
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
  // The mask is a byte: at most two hex digits.  Text read from memory may
  // run on into unrelated bytes ("mask=0xcfcf"), so read no more.
  if (Eat(s, " mask=0x")) {
    std::string_view digits = s.substr(0, 2);
    if (Num(digits, 16, mask)) p.mask = static_cast<uint8_t>(mask);
  }
  p.masked_code = p.mask ? (p.raw_code & *p.mask) : p.raw_code;
  return p;
}

std::string FormatPanicLine(const PanicLine& p) {
  std::string s = "nmimgr: panic on NMI event 0x" +
                  fmt::format("{:02x} ({}) type={} cpu={}", p.raw_code,
                              p.raw_code, p.nmi_type, p.cpu);
  if (p.mask) s += fmt::format(" mask=0x{:02x}", *p.mask);
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
    if (size_t at = line.find(kLinePrefix); at != std::string_view::npos) {
      // "Kernel panic - not syncing: nmimgr: ..." and the handler's own
      // line both match; either will do.
      if (auto p = ParsePanicLine(line.substr(at))) f.nmimgr = p;
    }
    if (size_t at = line.find(kPanicPrefix); at != std::string_view::npos) {
      std::string msg(line.substr(at + kPanicPrefix.size()));
      while (!msg.empty() && (msg.back() == '\r' || msg.back() == ' '))
        msg.pop_back();
      f.panic_message = ValidUtf8(msg);
      f.panic_log_time.reset();
      // "[   12.345678] Kernel panic ..." (dmesg, vmcore-dmesg.txt).
      size_t lb = line.find('['), rb = line.find(']');
      if (lb != std::string_view::npos && rb != std::string_view::npos &&
          lb < rb && rb < at) {
        std::string ts(line.substr(lb + 1, rb - lb - 1));
        char* end = nullptr;
        double t = std::strtod(ts.c_str(), &end);
        if (end && *end == '\0' && end != ts.c_str()) f.panic_log_time = t;
      }
    }
  }
  return f;
}

void TriggerScanner::Visit(uint64_t seq, uint64_t pfn,
                           std::span<const uint8_t> page,
                           std::span<const uint8_t> next) {
  // Records: the magic at every 8-byte-aligned offset of the page.
  uint64_t magic;
  std::memcpy(&magic, NMIMGR_RECORD_MAGIC, 8);
  uint8_t joined[NMIMGR_RECORD_SIZE];
  for (size_t off = 0; off + 8 <= page.size(); off += 8) {
    uint64_t w;
    std::memcpy(&w, page.data() + off, 8);
    if (w != magic) continue;
    std::span<const uint8_t> rec;
    if (off + NMIMGR_RECORD_SIZE <= page.size()) {
      rec = page.subspan(off, NMIMGR_RECORD_SIZE);
    } else {
      size_t head = page.size() - off, tail = NMIMGR_RECORD_SIZE - head;
      if (next.size() >= tail) {
        std::memcpy(joined, page.data() + off, head);
        std::memcpy(joined + head, next.data(), tail);
        rec = joined;
      }
    }
    std::optional<TriggerRecord> r;
    if (!rec.empty()) r = ParseRecord(rec);
    std::lock_guard lock(mu_);
    magic_seqs_.push_back(seq);
    if (!r) continue;
    r->pfn = pfn;
    r->page_offset = static_cast<uint32_t>(off);
    records_.push_back({seq, pfn, true, *r});
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
  find_all(kLinePrefix, [&](std::string_view text, bool clean) {
    if (auto p = ParsePanicLine(text)) {
      std::lock_guard lock(mu_);
      lines_.push_back({seq, pfn, clean, *p});
    }
  });
  find_all(kPanicPrefix, [&](std::string_view text, bool clean) {
    std::string_view msg = text.substr(kPanicPrefix.size());
    // Skip the format string in the kernel image ("%s") and empty text.
    if (msg.empty() || msg[0] == '%') return;
    std::string text_msg(msg);
    // nmimgr's own message has a fixed form: render it from its fields, so
    // bytes that follow the text in memory cannot leak into it.
    if (auto p = ParsePanicLine(msg)) {
      text_msg = FormatPanicLine(*p);
      clean = true;
    }
    std::lock_guard lock(mu_);
    messages_.push_back({seq, pfn, clean, std::move(text_msg)});
  });
}

std::optional<uint64_t> TriggerScanner::DoneAt() const {
  std::lock_guard lock(mu_);
  std::optional<uint64_t> rec, line;
  for (const auto& h : records_) rec = std::min(rec.value_or(h.seq), h.seq);
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
    bool dup = std::any_of(out.begin(), out.end(), [&](const TriggerRecord& o) {
      return o.real_ns == r.real_ns && o.mono_ns == r.mono_ns &&
             o.raw_code == r.raw_code && o.cpu == r.cpu && o.nmis == r.nmis;
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
