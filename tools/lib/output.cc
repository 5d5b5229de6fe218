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

const char* SeverityName(Severity s) {
  switch (s) {
    case Severity::kIncomplete:
      return "incomplete";
    case Severity::kCorrupt:
      return "corrupt";
    case Severity::kUnreadable:
      return "unreadable";
  }
  return "?";
}

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

// The trigger as the report states it: the record when there is one, else
// nmimgr's panic line.
json TriggerJson(const TriggerReport& t) {
  json j;
  const TriggerRecord* rec = t.records.empty() ? nullptr : &t.records.front();
  j["nmimgr"] = rec != nullptr || t.line.has_value();
  if (rec) {
    j["source"] = "record";
    j["raw_code"] = Code(rec->raw_code);
    j["masked_code"] = Code(rec->masked_code);
    j["event_mask"] = Code(rec->event_mask);
    j["nmi_type"] = nmimgr_type_name(rec->nmi_type);
    j["cpu"] = rec->cpu;
    j["time"] = {
        {"realtime_ns", rec->real_ns},
        {"realtime", IsoTime(static_cast<int64_t>(rec->real_ns / 1000000000),
                             static_cast<uint32_t>(rec->real_ns % 1000000000))},
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
  if (rec) {
    j["record"] = {
        {"flags", rec->flags},
        {"dry_run", (rec->flags & NMIMGR_RECORD_DRY_RUN) != 0},
        {"capture_kernel", (rec->flags & NMIMGR_RECORD_CAPTURE) != 0},
        {"nmis", rec->nmis},
        {"dropped", rec->dropped},
        {"ignored", rec->ignored},
        {"unmanaged", rec->unmanaged},
        {"would_panic", rec->would_panic},
        {"pfn", rec->pfn},
        {"page_offset", rec->page_offset}};
  } else {
    j["record"] = nullptr;
  }
  j["records_found"] = t.records.size();
  if (t.line) {
    j["panic_line"] = {
        {"source", t.line_source},
        {"raw_code", Code(t.line->raw_code)},
        {"masked_code", Code(t.line->masked_code)},
        {"event_mask", t.line->mask ? Code(*t.line->mask) : json(nullptr)},
        {"nmi_type", t.line->nmi_type},
        {"cpu", t.line->cpu}};
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

std::string Rel(const std::string& path, const std::string& dir) {
  return std::filesystem::path(path).lexically_relative(dir).string();
}

}  // namespace

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
                {"zero", Opt(f.pages_zero)}};
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
        r.set.files.size() == 1
            ? r.set.files.front()
            : fmt::format("{}/{{{} parts}}", r.set.dir, r.set.files.size());
    std::string format = f.format.empty() ? "-" : f.format;
    if (!r.container.empty()) format = r.container + "/" + format;
    if (!r.outer.empty()) format += "+" + r.outer;
    if (r.set.split) format += "/split";
    std::string trigger = "-";
    const TriggerReport& t = r.trigger;
    if (!t.records.empty())
      trigger = fmt::format("nmimgr {:#04x}&{:#04x}={:#04x} {} cpu{} (record)",
                            t.records[0].raw_code, t.records[0].event_mask,
                            t.records[0].masked_code,
                            nmimgr_type_name(t.records[0].nmi_type),
                            t.records[0].cpu);
    else if (t.line)
      trigger = fmt::format("nmimgr {:#04x} {} cpu{} ({})", t.line->raw_code,
                            t.line->nmi_type, t.line->cpu, t.line_source);
    else if (t.panic_message)
      trigger = "panic: " + t.panic_message->substr(0, 60);
    rows.push_back({name, format, VerdictName(r.verdict),
                    f.kernel_release.empty() ? "-" : f.kernel_release,
                    f.crash_time ? IsoTime(*f.crash_time) : "-",
                    f.dump_level ? std::to_string(*f.dump_level) : "-",
                    f.compression.empty() ? "-" : f.compression,
                    std::to_string(f.pages_dumped),
                    std::to_string(f.pages_excluded),
                    f.cpus ? std::to_string(*f.cpus) : "-", trigger});
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
    if (r.findings.all().empty()) continue;
    out << "\n"
        << (r.set.files.size() == 1 ? r.set.files.front() : r.set.dir) << ": "
        << VerdictName(r.verdict) << "\n";
    for (const Finding& x : r.findings.all())
      out << "  " << SeverityName(x.severity) << " (" << x.code
          << "): " << x.message << "\n";
  }
}

}  // namespace nmimgr::vmcore
