// SPDX-License-Identifier: GPL-2.0-or-later
#include "dump_metrics.h"

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

namespace nmimgr::vmcore {

namespace {
constexpr Verdict kVerdicts[] = {Verdict::kComplete, Verdict::kIncomplete,
                                 Verdict::kCorrupt, Verdict::kUnreadable};
}  // namespace

DumpSummary Summarize(const DumpResult& r) {
  return {VerdictName(r.verdict), r.facts.crash_time,
          r.trigger.nmimgr() && !r.trigger.during_other_panic};
}

std::vector<DumpSummary> SummariesFromAnnotation(const std::string& dir) {
  using nlohmann::json;
  std::ifstream in(dir + "/nmimgr.json");
  if (!in) return {};
  std::string text((std::istreambuf_iterator<char>(in)), {});
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return {};
  DumpSummary top;
  top.verdict = j.value("verdict", json()).is_string()
                    ? j["verdict"].get<std::string>()
                    : "unreadable";
  if (j.value("crash_time_epoch", json()).is_number_integer())
    top.crash_time = j["crash_time_epoch"].get<int64_t>();
  const json& t = j.value("trigger", json());
  top.nmimgr = t.is_object() && t.value("triggered_by_nmimgr", false);
  const json& all = j.value("dumps_in_directory", json());
  if (!all.is_array()) return {top};
  // Several dumps share one annotation: each with its verdict; the time
  // and trigger are the worst one's, which the annotation describes.
  std::vector<DumpSummary> out;
  for (const json& e : all) {
    DumpSummary s = top;
    s.verdict = e.is_object() && e.value("verdict", json()).is_string()
                    ? e["verdict"].get<std::string>()
                    : "unreadable";
    out.push_back(s);
  }
  return out;
}

void AddDumpMetrics(const std::vector<DumpSummary>& dumps, size_t errors,
                    metrics::Metrics& m) {
  for (Verdict v : kVerdicts) {
    size_t n = 0;
    for (const DumpSummary& d : dumps) n += d.verdict == VerdictName(v);
    m.Add("nmimgr_vmcore_dumps", "gauge",
          "Crash dumps under the checked paths, by verdict",
          {{"verdict", VerdictName(v)}}, static_cast<double>(n));
  }
  size_t by_nmimgr = 0;
  for (const DumpSummary& d : dumps) by_nmimgr += d.nmimgr;
  m.Add("nmimgr_vmcore_nmimgr_dumps", "gauge",
        "Crash dumps that nmimgr's panic on an NMI started", {},
        static_cast<double>(by_nmimgr));
  m.Add("nmimgr_vmcore_check_errors", "gauge",
        "Paths that could not be read and annotations that could not be "
        "written in the last check",
        {}, static_cast<double>(errors));
  // The newest dump by crash time (dumps without one do not compete).
  const DumpSummary* latest = nullptr;
  for (const DumpSummary& d : dumps)
    if (d.crash_time && (!latest || *d.crash_time > *latest->crash_time))
      latest = &d;
  if (!latest) return;
  m.Add("nmimgr_vmcore_latest_crash_time_seconds", "gauge",
        "Crash time of the newest dump (VMCOREINFO CRASHTIME)", {},
        static_cast<double>(*latest->crash_time));
  m.Add("nmimgr_vmcore_latest_complete", "gauge",
        "1 if the newest dump is complete", {},
        latest->verdict == VerdictName(Verdict::kComplete));
  m.Add("nmimgr_vmcore_latest_nmimgr", "gauge",
        "1 if nmimgr's panic on an NMI started the newest dump", {},
        latest->nmimgr);
}

}  // namespace nmimgr::vmcore
