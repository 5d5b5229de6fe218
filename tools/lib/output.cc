// SPDX-License-Identifier: GPL-2.0-or-later
//
// The --json document, the dump object shared with nmimgr.json, and the
// default table.  The schema is documented in docs/vmcore-check.md; fields
// are only ever added.
#include <fmt/format.h>

#include <ctime>
#include <filesystem>

#include "check.h"
#include "nmimgr_record.h"

namespace nmimgr::vmcore {
namespace {

using nlohmann::json;

std::string IsoTime(int64_t secs, uint32_t nanos = 0) {
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  if (!gmtime_r(&t, &tm)) return {};
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  if (nanos) return fmt::format("{}.{:09d}Z", buf, nanos);
  return std::string(buf) + "Z";
}

template <typename T>
json Opt(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

json Code(uint8_t v) {
  return {{"value", v}, {"hex", fmt::format("{:#04x}", v)}};
}

// Version 1's flag bits 1 and 2 (DRY_RUN, CAPTURE): never set by any
// module, retired in version 2; still reported for the schema's sake.
constexpr uint32_t kV1DryRun = 1u << 1, kV1Capture = 1u << 2;

std::string Hex64(uint64_t v) { return fmt::format("{:016x}", v); }

json RealTime(uint64_t ns) {
  return IsoTime(static_cast<int64_t>(ns / 1000000000),
                 static_cast<uint32_t>(ns % 1000000000));
}

json BindingJson(const RecordBinding& b) {
  return {{"phys", CheckName(b.phys)},
          {"crash_time", CheckName(b.crash_time)},
          {"boot_epoch", CheckName(b.boot_epoch)},
          {"nonce", CheckName(b.nonce)},
          {"boot_epoch_difference_seconds",
           b.boot_epoch_diff_ns
               ? json(static_cast<double>(*b.boot_epoch_diff_ns) / 1e9)
               : json(nullptr)}};
}

// Where a record was found and what it says of itself.
json RecordJson(const TriggerRecord& r) {
  const bool v2 = r.version == NMIMGR_RECORD_VERSION;
  json j = {
      {"version", r.version},
      {"bound", r.bound()},
      {"flags", r.flags},
      {"dry_run", !v2 && (r.flags & kV1DryRun) != 0},
      {"capture_kernel", !v2 && (r.flags & kV1Capture) != 0},
      {"oops_under_way", r.oops_under_way()},
      {"panic_under_way", r.panic_under_way()},
      {"confirmed", r.confirmed()},
      {"test", r.test()},
      {"nmis", r.nmis},
      {"dropped", r.dropped},
      {"ignored", r.ignored},
      {"unmanaged", r.unmanaged},
      {"would_panic", r.would_panic},
      {"pfn", r.pfn},
      {"page_offset", r.page_offset},
      {"paddr", r.paddr},
      {"phys", v2 ? json(r.phys) : json(nullptr)},
      {"nonce", v2 ? json(Hex64(r.nonce)) : json(nullptr)},
      {"oops_depth", v2 ? json(r.oops_depth) : json(nullptr)},
      {"confirm", v2 && r.confirm_max_ms ? json{{"monotonic_ns", r.confirm_ns},
                                                {"min_ms", r.confirm_min_ms},
                                                {"max_ms", r.confirm_max_ms}}
                                         : json(nullptr)},
      {"binding", v2 ? BindingJson(r.binding) : json(nullptr)}};
  return j;
}

json RejectedJson(const TriggerRecord& r) {
  return {
      {"version", r.version},
      {"pfn", r.pfn},
      {"page_offset", r.page_offset},
      {"paddr", r.paddr},
      {"phys",
       r.version == NMIMGR_RECORD_VERSION ? json(r.phys) : json(nullptr)},
      {"nonce", r.version == NMIMGR_RECORD_VERSION ? json(Hex64(r.nonce))
                                                   : json(nullptr)},
      {"raw_code", Code(r.raw_code)},
      {"cpu", r.cpu},
      {"realtime_ns", r.real_ns},
      {"realtime", RealTime(r.real_ns)},
      {"boottime_ns", r.boot_ns},
      {"reason", r.binding.reject_code},
      {"message", r.binding.reject_message},
      {"binding", r.version == NMIMGR_RECORD_VERSION ? BindingJson(r.binding)
                                                     : json(nullptr)}};
}

// The trigger as the report states it: the chosen record when there is one,
// else nmimgr's panic line.
json TriggerJson(const TriggerReport& t) {
  json j;
  const TriggerRecord* rec = t.record();
  j["nmimgr"] = t.nmimgr();
  j["triggered_by_nmimgr"] = t.nmimgr() && !t.during_other_panic;
  j["during_other_panic"] = t.during_other_panic;
  // the NMI nmimgrctl test sent (record flag, or " test" on the panic line)
  j["test"] = rec ? rec->test() : (t.line && t.line->test);
  if (rec) {
    j["source"] = "record";
    j["raw_code"] = Code(rec->raw_code);
    j["masked_code"] = Code(rec->masked_code);
    j["event_mask"] = Code(rec->event_mask);
    j["nmi_type"] = nmimgr_type_name(rec->nmi_type);
    j["cpu"] = rec->cpu;
    j["time"] = {{"realtime_ns", rec->real_ns},
                 {"realtime", RealTime(rec->real_ns)},
                 {"monotonic_ns", rec->mono_ns},
                 {"boottime_ns", rec->boot_ns}};
  } else if (t.line) {
    j["source"] = "kernel-log:" + t.line_source;
    j["raw_code"] = Code(t.line->raw_code);
    j["masked_code"] = Code(t.line->masked_code);
    j["event_mask"] = t.line->mask ? Code(*t.line->mask) : json(nullptr);
    j["nmi_type"] = t.line->nmi_type;
    j["cpu"] = t.line->cpu;
    j["time"] = t.panic_log_time ? json{{"log_seconds", *t.panic_log_time}}
                                 : json(nullptr);
  } else {
    j["source"] = nullptr;
  }
  j["record"] = rec ? RecordJson(*rec) : json(nullptr);
  j["records_found"] = t.records.size();
  json rejected = json::array();
  for (const TriggerRecord& r : t.records)
    if (r.binding.rejected()) rejected.push_back(RejectedJson(r));
  j["records_rejected"] = rejected;
  const RecordSearch& s = t.search;
  j["record_search"] =
      s.method.empty()
          ? json(nullptr)
          : json{{"method", s.method},
                 {"reason", s.reason.empty() ? json(nullptr) : json(s.reason)},
                 {"ranges", s.ranges},
                 {"page_tables_read", s.tables_read},
                 {"page_tables_missing", s.tables_missing},
                 {"pages_read", s.pages_read},
                 {"pages_missing", s.pages_missing}};
  const BindingContext& b = t.binding;
  std::optional<int64_t> epoch = b.BootEpochNs();
  std::string missing = b.Missing();
  j["binding"] = {
      {"crash_time_epoch", Opt(b.crash_time)},
      {"uptime_seconds", b.uptime_ns
                             ? json(static_cast<double>(*b.uptime_ns) / 1e9)
                             : json(nullptr)},
      {"uptime_source", b.uptime_ns ? json(b.uptime_source) : json(nullptr)},
      {"boot_epoch", epoch && *epoch >= 0
                         ? RealTime(static_cast<uint64_t>(*epoch))
                         : json(nullptr)},
      {"boot_epoch_ns", Opt(epoch)},
      {"tolerance_seconds",
       epoch ? json(static_cast<double>(b.ToleranceNs()) / 1e9)
             : json(nullptr)},
      {"time_checked", missing.empty()},
      {"note", missing.empty()
                   ? json(nullptr)
                   : json("records could not be bound by time: " + missing)}};
  if (t.line) {
    j["panic_line"] = {
        {"source", t.line_source},
        {"raw_code", Code(t.line->raw_code)},
        {"masked_code", Code(t.line->masked_code)},
        {"event_mask", t.line->mask ? Code(*t.line->mask) : json(nullptr)},
        {"nmi_type", t.line->nmi_type},
        {"cpu", t.line->cpu},
        {"code", t.line->code ? Code(*t.line->code) : json(nullptr)},
        {"record", t.line->nonce ? json(Hex64(*t.line->nonce)) : json(nullptr)},
        {"confirmed", t.line->confirmed},
        {"test", t.line->test}};
    if (rec && (rec->raw_code != t.line->raw_code || rec->cpu != t.line->cpu))
      j["panic_line"]["disagrees_with_record"] = true;
  } else {
    j["panic_line"] = nullptr;
  }
  j["kernel_log"] = {
      {"source", t.log_source.empty() ? json(nullptr) : json(t.log_source)},
      {"records", Opt(t.log_records)},
      {"note", t.log_note.empty() ? json(nullptr) : json(t.log_note)}};
  j["panic_message"] = Opt(t.panic_message);
  j["panic_message_source"] =
      t.panic_message ? json(t.panic_message_source) : json(nullptr);
  return j;
}

// The TRIGGER column.
std::string TriggerCell(const TriggerReport& t) {
  const TriggerRecord* rec = t.record();
  std::string what;
  if (rec) {
    what =
        fmt::format("nmimgr {:#04x}&{:#04x}={:#04x} {} cpu{} (record v{}, {}",
                    rec->raw_code, rec->event_mask, rec->masked_code,
                    nmimgr_type_name(rec->nmi_type), rec->cpu, rec->version,
                    rec->bound() ? "bound" : "not bound");
    if (rec->confirmed()) what += ", confirmed";
    if (rec->test()) what += ", test";
    if (rec->oops_under_way()) what += ", oops under way";
    what += ")";
  } else if (t.line) {
    what = fmt::format("nmimgr {:#04x} {} cpu{} ({}{}{})", t.line->raw_code,
                       t.line->nmi_type, t.line->cpu, t.line_source,
                       t.line->confirmed ? ", confirmed" : "",
                       t.line->test ? ", test" : "");
  }
  if (t.during_other_panic) {
    std::string cell = "nmimgr fired during another panic";
    if (t.panic_message) cell += ": panic: " + t.panic_message->substr(0, 60);
    return cell + "; " + what;
  }
  if (!what.empty()) return what;
  if (t.panic_message) return "panic: " + t.panic_message->substr(0, 60);
  return "-";
}

// Lines under the table about the trigger: rejected records, and a record
// chosen without every check.
std::vector<std::string> TriggerNotes(const TriggerReport& t) {
  std::vector<std::string> notes;
  const RecordSearch& s = t.search;
  if (s.method == "page-tables") {
    std::string ranges;
    for (const std::string& r : s.ranges)
      ranges += (ranges.empty() ? "" : ", ") + r;
    notes.push_back(fmt::format(
        "record searched through the page tables ({}: {} tables, {} pages "
        "read){}",
        ranges, s.tables_read, s.pages_read,
        s.reason.empty() ? "" : "; " + s.reason));
  } else if (s.method == "page-scan") {
    notes.push_back("record searched by the page scan: " + s.reason);
  }
  for (const TriggerRecord& r : t.records) {
    if (!r.binding.rejected()) continue;
    notes.push_back(fmt::format(
        "rejected record v{} at pfn {} offset {} (paddr {:#x}): {}: {}",
        r.version, r.pfn, r.page_offset, r.paddr, r.binding.reject_code,
        r.binding.reject_message));
  }
  if (const TriggerRecord* rec = t.record()) {
    if (rec->version != NMIMGR_RECORD_VERSION)
      notes.push_back(fmt::format(
          "record v{} at pfn {} offset {}: version 1, not bound to this dump",
          rec->version, rec->pfn, rec->page_offset));
    else if (std::string m = t.binding.Missing(); !m.empty())
      notes.push_back(
          fmt::format("record at pfn {} offset {}: not checked by time: {}",
                      rec->pfn, rec->page_offset, m));
    if (rec->panic_under_way())
      notes.push_back(
          "the record says nmi_panic() returned: another panic "
          "was already under way");
    if (rec->oops_under_way())
      notes.push_back(fmt::format(
          "the record says an oops or panic was under way when it fired "
          "(oops_in_progress {})",
          rec->oops_depth));
    if (rec->confirmed())
      notes.push_back("the panic was confirmed by a second NMI");
    if (rec->test())
      notes.push_back(
          "the NMI was nmimgrctl test's (sent through "
          "/sys/kernel/nmimgr/test), not a button or a fault");
  }
  return notes;
}

// The trigger in a journal line: nmimgr's event code and action, or "not
// nmimgr", or "unknown" when nothing of the dump could be read.
std::string JournalTrigger(const DumpResult& r) {
  const TriggerReport& t = r.trigger;
  const TriggerRecord* rec = t.record();
  if (rec || t.line) {
    const bool confirmed = rec ? rec->confirmed() : t.line->confirmed;
    const bool test = rec ? rec->test() : t.line->test;
    std::string what =
        rec ? fmt::format(
                  "nmimgr event {:#04x} action panic{}{} (raw {:#04x}, "
                  "{}, cpu {}, record v{} {})",
                  rec->masked_code, confirmed ? " confirmed" : "",
                  test ? " test" : "", rec->raw_code,
                  nmimgr_type_name(rec->nmi_type), rec->cpu, rec->version,
                  rec->bound() ? "bound" : "not bound")
            : fmt::format(
                  "nmimgr event {:#04x} action panic{}{} (raw {:#04x}, "
                  "{}, cpu {}, kernel log {})",
                  t.line->masked_code, confirmed ? " confirmed" : "",
                  test ? " test" : "", t.line->raw_code, t.line->nmi_type,
                  t.line->cpu, t.line_source);
    if (t.during_other_panic) {
      what += ", during another panic";
      if (t.panic_message) what += ": " + t.panic_message->substr(0, 60);
    }
    return what;
  }
  if (r.verdict == Verdict::kUnreadable || r.set.files.empty())
    return "unknown";
  if (t.panic_message)
    return "not nmimgr (panic: " + t.panic_message->substr(0, 60) + ")";
  return "not nmimgr";
}

std::string Rel(const std::string& path, const std::string& dir) {
  return std::filesystem::path(path).lexically_relative(dir).string();
}

// The length of the well-formed UTF-8 sequence at s[i] (1 to 4), or 0.
size_t Utf8Len(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[i + k]); };
  const auto cont = [&](size_t k) {
    return i + k < s.size() && (b(k) & 0xc0) == 0x80;
  };
  uint8_t c = b(0);
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xe0 && b(1) < 0xa0) return 0;   // overlong
    if (c == 0xed && b(1) >= 0xa0) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xf0 && b(1) < 0x90) return 0;
    if (c == 0xf4 && b(1) >= 0x90) return 0;
    return 4;
  }
  return 0;
}

}  // namespace

std::string TerminalText(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t n = Utf8Len(s, i);
    if (n == 0) {  // not UTF-8: the byte, escaped
      out += fmt::format("\\x{:02x}", static_cast<uint8_t>(s[i]));
      ++i;
      continue;
    }
    uint32_t cp = 0;
    if (n == 1) {
      cp = static_cast<uint8_t>(s[i]);
    } else {
      cp = static_cast<uint8_t>(s[i]) & (0x7f >> n);
      for (size_t k = 1; k < n; ++k)
        cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3f);
    }
    if (cp == '\\') {
      out += "\\\\";
    } else if (cp < 0x20 || cp == 0x7f) {
      out += fmt::format("\\x{:02x}", cp);
    } else if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x061c ||
               (cp >= 0x200b && cp <= 0x200f) ||
               (cp >= 0x2028 && cp <= 0x202e) ||
               (cp >= 0x2060 && cp <= 0x206f) || cp == 0xfeff) {
      // C1 controls (0x9b is CSI on some terminals), line separators,
      // zero-width and bidirectional controls that reorder what follows.
      out += fmt::format("\\u{{{:04x}}}", cp);
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
  return out;
}

std::string JournalLine(const DumpResult& r, const std::string& annotation) {
  int priority = 6;  // LOG_INFO: complete
  if (r.verdict == Verdict::kIncomplete || r.verdict == Verdict::kCorrupt)
    priority = 4;  // LOG_WARNING: a finding, exit status 1
  if (r.verdict == Verdict::kUnreadable || annotation == "failed")
    priority = 3;  // LOG_ERR: the check failed, exit status 2
  std::string name =
      r.set.files.size() <= 1
          ? (r.set.files.empty() ? r.set.dir : r.set.files.front())
          : fmt::format("{}/{{{} parts}}", r.set.dir, r.set.files.size());
  std::string codes;
  for (const Finding& x : r.findings.all())
    if (("," + codes + ",").find("," + x.code + ",") == std::string::npos)
      codes += (codes.empty() ? "" : ",") + x.code;
  std::string line =
      fmt::format("<{}>{}: {}; reasons: {}; trigger: {}", priority, name,
                  VerdictName(r.verdict), codes.empty() ? "none" : codes,
                  JournalTrigger(r));
  if (!annotation.empty()) line += "; annotation " + annotation;
  return TerminalText(line);
}

json DumpToJson(const DumpResult& r) {
  const DumpFacts& f = r.facts;
  json j;
  j["path"] = r.set.dir;
  json files = json::array();
  for (const auto& p : r.set.files) files.push_back(Rel(p, r.set.dir));
  j["files"] = files;
  j["layout"] = r.set.layout;
  j["dmesg_file"] = r.set.dmesg_file.empty()
                        ? json(nullptr)
                        : json(Rel(r.set.dmesg_file, r.set.dir));
  j["format"] = f.format.empty() ? json(nullptr) : json(f.format);
  j["container"] = r.container.empty() ? json(nullptr) : json(r.container);
  j["outer_compression"] = r.outer.empty() ? json(nullptr) : json(r.outer);
  j["split"] = r.set.split;
  j["verdict"] = VerdictName(r.verdict);
  json reasons = json::array();
  for (const Finding& x : r.findings.all())
    reasons.push_back({{"severity", SeverityName(x.severity)},
                       {"code", x.code},
                       {"message", x.message}});
  j["reasons"] = reasons;
  j["kernel_release"] =
      f.kernel_release.empty() ? json(nullptr) : json(f.kernel_release);
  j["machine"] = f.machine.empty() ? json(nullptr) : json(f.machine);
  j["crash_time"] = f.crash_time ? json(IsoTime(*f.crash_time)) : json(nullptr);
  j["crash_time_epoch"] = Opt(f.crash_time);
  j["dump_time"] = f.dump_time ? json(IsoTime(*f.dump_time)) : json(nullptr);
  j["header_version"] = Opt(f.header_version);
  j["dump_level"] = Opt(f.dump_level);
  j["compression"] =
      f.compression.empty() ? json(nullptr) : json(f.compression);
  j["page_size"] = f.page_size;
  j["pages"] = {{"dumped", f.pages_dumped},
                {"excluded", f.pages_excluded},
                {"zero", Opt(f.pages_zero)},
                {"descriptors_unchecked", f.descriptors_unchecked}};
  j["cpus"] = Opt(f.cpus);
  j["scan"] = {{"mode", r.scan_mode},
               {"pages_decoded", r.scan.pages_decoded},
               {"pages_bad", r.scan.pages_bad},
               {"stopped_early", r.scan.stopped_early}};
  j["trigger"] = TriggerJson(r.trigger);
  return j;
}

json ReportToJson(const std::vector<DumpResult>& results,
                  const std::vector<std::string>& errors, int exit_status) {
  json j;
  j["schema"] = "nmimgr-vmcore-check/1";
  json dumps = json::array();
  for (const auto& r : results) dumps.push_back(DumpToJson(r));
  j["dumps"] = dumps;
  j["errors"] = errors;
  j["exit_status"] = exit_status;
  return j;
}

void PrintTable(const std::vector<DumpResult>& results, std::ostream& out) {
  std::vector<std::vector<std::string>> rows = {
      {"DUMP", "FORMAT", "VERDICT", "KERNEL", "CRASH TIME", "LEVEL", "COMP",
       "DUMPED", "EXCLUDED", "CPUS", "TRIGGER"}};
  for (const auto& r : results) {
    const DumpFacts& f = r.facts;
    std::string name =
        r.set.files.size() <= 1
            ? (r.set.files.empty() ? r.set.dir : r.set.files.front())
            : fmt::format("{}/{{{} parts}}", r.set.dir, r.set.files.size());
    std::string format = f.format.empty() ? "-" : f.format;
    if (!r.container.empty()) format = r.container + "/" + format;
    if (!r.outer.empty()) format += "+" + r.outer;
    if (r.set.split) format += "/split";
    std::string trigger = TriggerCell(r.trigger);
    rows.push_back(
        {TerminalText(name), format, VerdictName(r.verdict),
         f.kernel_release.empty() ? "-" : TerminalText(f.kernel_release),
         f.crash_time ? IsoTime(*f.crash_time) : "-",
         f.dump_level ? std::to_string(*f.dump_level) : "-",
         f.compression.empty() ? "-" : f.compression,
         std::to_string(f.pages_dumped), std::to_string(f.pages_excluded),
         f.cpus ? std::to_string(*f.cpus) : "-", TerminalText(trigger)});
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i)
      width[i] = std::max(width[i], row[i].size());
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size())
        line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out << line << "\n";
  }
  for (const auto& r : results) {
    std::vector<std::string> notes = TriggerNotes(r.trigger);
    if (notes.empty()) continue;
    out << "\n"
        << TerminalText(r.set.files.size() == 1 ? r.set.files.front()
                                                : r.set.dir)
        << ": trigger\n";
    for (const std::string& n : notes) out << "  " << TerminalText(n) << "\n";
  }
  for (const auto& r : results) {
    if (r.findings.all().empty()) continue;
    out << "\n"
        << TerminalText(r.set.files.size() == 1 ? r.set.files.front()
                                                : r.set.dir)
        << ": " << VerdictName(r.verdict) << "\n";
    for (const Finding& x : r.findings.all())
      out << "  " << SeverityName(x.severity) << " (" << x.code
          << "): " << TerminalText(x.message) << "\n";
  }
}

}  // namespace nmimgr::vmcore
