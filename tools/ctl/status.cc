// SPDX-License-Identifier: GPL-2.0-or-later
#include "status.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>

namespace nmimgr::ctl {

namespace {

std::set<std::string> TypeSet(const std::string& s) {
  std::set<std::string> out;
  std::string cur;
  for (char c : s + ",") {
    if (c == ',' || c == ' ') {
      if (!cur.empty()) out.insert(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  return out;
}


}  // namespace

int Status::ExitStatus() const {
  return module.loaded && config.valid && drift.empty() ? 0 : 1;
}

std::vector<Drift> CompareConfig(const Config& config, const ModuleState& m) {
  std::vector<Drift> drift;
  if (!config.valid || !m.loaded) return drift;
  if (config.Get("policy") != m.Param("policy"))
    drift.push_back({"policy", config.Get("policy"), m.Param("policy")});
  // types is load-time only: a change needs a reload of the module
  if (TypeSet(config.Get("types")) != TypeSet(m.Param("types")))
    drift.push_back({"types", config.Get("types"), m.Param("types")});
  if (config.Get("capture_drop") != m.Param("capture_drop"))
    drift.push_back(
        {"capture_drop", config.Get("capture_drop"), m.Param("capture_drop")});
  return drift;
}

Status ReadStatus(const Host& host, const std::string& loader) {
  Status s;
  s.module = ReadModule(host);
  s.config = ReadConfig(host, loader);
  s.drift = CompareConfig(s.config, s.module);
  return s;
}

void PrintStatus(const Status& s, std::ostream& out) {
  const ModuleState& m = s.module;
  if (!m.loaded) {
    out << "nmimgr: not loaded\n";
  } else {
    const ModuleStats* st = m.stats ? &*m.stats : nullptr;
    bool capture = st && st->Flag("capture_kernel");
    out << "nmimgr: loaded" << (capture ? " in a kdump capture kernel" : "")
        << (st && st->Flag("latched")
                ? ", latched (every managed NMI is dropped)"
                : "")
        << "\n";
    out << "  policy        " << m.Param("policy") << "\n";
    out << "  types         " << m.Param("types") << "\n";
    auto keys = PolicyKeys(m.Param("policy"));
    out << "  dry run       "
        << (keys["dry_run"] == "1" ? "on: nothing panics" : "off") << "\n";
    out << "  confirm       "
        << (keys["confirm"] == "0" || keys["confirm"].empty()
                ? std::string("off: the first press panics")
                : "press twice, " + keys["confirm"] + " ms apart")
        << "\n";
    out << "  capture_drop  " << m.Param("capture_drop") << "\n";
    if (st) {
      out << "  counters     ";
      for (const std::string& c : kCounters)
        out << " " << c << "=" << st->Counter(c);
      out << "\n";
      if (!st->codes.empty()) {
        out << "  codes        ";
        for (const auto& [code, n] : st->codes)
          out << " " << HexCode(code) << "=" << n;
        out << "\n";
      }
      out << "  last event    ";
      if (!st->last_event) {
        out << "none\n";
      } else {
        bool first = true;
        for (const char* f :
             {"raw", "code", "type", "cpu", "action", "uptime_ms"}) {
          auto it = st->last_event->find(f);
          if (it == st->last_event->end()) continue;
          out << (first ? "" : " ") << f << "=" << it->second;
          first = false;
        }
        out << "\n";
      }
      out << "  record        " << (st->Flag("fired") ? "fired" : "not fired")
          << "\n";
    }
  }
  const Config& c = s.config;
  out << "config: " << c.path;
  if (!c.valid) {
    out << ": invalid: " << c.error << "\n";
  } else {
    out << (c.present ? "" : " (absent: every setting is its default)") << "\n";
    for (const char* k : {"policy", "types", "capture_drop"})
      out << "  " << k << std::string(14 - std::string(k).size(), ' ')
          << c.Get(k) << "\n";
  }
  if (!s.drift.empty()) {
    out << "drift: the loaded module does not follow " << c.path << "\n";
    for (const Drift& d : s.drift)
      out << "  " << d.setting << ": file "
          << (d.file.empty() ? "(empty)" : d.file) << ", loaded "
          << (d.loaded.empty() ? "(empty)" : d.loaded) << "\n";
    bool types =
        std::any_of(s.drift.begin(), s.drift.end(),
                    [](const Drift& d) { return d.setting == "types"; });
    out << "  fix: nmimgr-load --apply"
        << (types ? " (types is load-time only: modprobe -r nmimgr first)" : "")
        << "\n";
  } else if (m.loaded && c.valid) {
    out << "drift: none (the module follows " << c.path << ")\n";
  }
}

nlohmann::json StatusJson(const Status& s) {
  using nlohmann::json;
  const ModuleState& m = s.module;
  json j = {{"schema", "nmimgrctl-status/1"}, {"loaded", m.loaded}};
  if (m.loaded) {
    auto keys = PolicyKeys(m.Param("policy"));
    json mod = {{"policy", m.Param("policy")},
                {"ignore", keys["ignore"]},
                {"drop", keys["drop"]},
                {"panic", keys["panic"]},
                {"mask", keys["mask"]},
                {"dry_run", keys["dry_run"] == "1"},
                {"confirm", keys["confirm"]},
                {"types", m.Param("types")},
                {"capture_drop", m.Param("capture_drop")}};
    if (m.stats) {
      const ModuleStats& st = *m.stats;
      json counters = json::object();
      for (const std::string& c : kCounters) counters[c] = st.Counter(c);
      json codes = json::object(), raw = json::object();
      for (const auto& [code, n] : st.codes) codes[HexCode(code)] = n;
      for (const auto& [b, n] : st.raw) raw[HexCode(b)] = n;
      mod["counters"] = counters;
      mod["codes"] = codes;
      mod["raw"] = raw;
      mod["latched"] = st.Flag("latched");
      mod["capture_kernel"] = st.Flag("capture_kernel");
      mod["fired"] = st.Flag("fired");
      mod["last_event"] = st.last_event ? json(*st.last_event) : json(nullptr);
    }
    j["module"] = mod;
  }
  json conf = {{"path", s.config.path},
               {"present", s.config.present},
               {"valid", s.config.valid}};
  if (s.config.valid) {
    conf["settings"] = s.config.settings;
  } else {
    conf["error"] = s.config.error;
  }
  j["config"] = conf;
  json drift = json::array();
  for (const Drift& d : s.drift)
    drift.push_back(
        {{"setting", d.setting}, {"file", d.file}, {"loaded", d.loaded}});
  j["drift"] = drift;
  return j;
}

void AddStatusMetrics(const Status& s, metrics::Metrics& metrics) {
  const ModuleState& m = s.module;
  metrics.Add("nmimgr_module_loaded", "gauge", "1 if nmimgr.ko is loaded", {},
              m.loaded);
  metrics.Add("nmimgr_config_drift", "gauge",
              "1 if the loaded module does not follow /etc/nmimgr.conf (or the "
              "file is invalid)",
              {}, !s.drift.empty() || !s.config.valid);
  if (!m.loaded || !m.stats) return;
  const ModuleStats& st = *m.stats;
  auto keys = PolicyKeys(m.Param("policy"));
  metrics.Add("nmimgr_dry_run", "gauge", "1 if panic decisions are only logged",
              {}, keys["dry_run"] == "1");
  metrics.Add("nmimgr_latched", "gauge",
              "1 once nmimgr decided to panic, or in a capture kernel", {},
              st.Flag("latched"));
  // one family with a bounded label: the stats file's actions
  const std::vector<std::pair<const char*, const char*>> actions = {
      {"unmanaged", "unmanaged"},
      {"ignored", "ignore"},
      {"dropped", "drop"},
      {"panics", "panic"},
      {"would_panic", "would_panic"},
      {"latched_drops", "latched_drop"},
      {"pending", "pending"}};
  metrics.Add("nmimgr_nmis_total", "counter", "NMIs nmimgr was called for", {},
              static_cast<double>(st.Counter("nmis")));
  for (const auto& [key, action] : actions)
    metrics.Add("nmimgr_nmi_actions_total", "counter",
                "NMIs by the action nmimgr took", {{"action", action}},
                static_cast<double>(st.Counter(key)));
  // codes under the mask: at most 256 values, 4 with the default mask
  for (const auto& [code, n] : st.codes)
    metrics.Add("nmimgr_nmi_codes_total", "counter",
                "NMIs by event code as matched under the mask in force",
                {{"code", HexCode(code)}}, static_cast<double>(n));
  metrics.Add("nmimgr_log_suppressed_total", "counter",
              "NMI log lines held back by the rate limit", {},
              static_cast<double>(st.Counter("log_suppressed")));
}

}  // namespace nmimgr::ctl
