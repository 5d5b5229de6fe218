// SPDX-License-Identifier: GPL-2.0-or-later
#include "module_state.h"

#include <charconv>
#include <cstdio>
#include <stdexcept>

namespace nmimgr::ctl {

const std::vector<std::string> kCounters = {
    "nmis",        "unmanaged",     "ignored", "dropped",       "panics",
    "would_panic", "latched_drops", "pending", "log_suppressed"};

namespace {

std::optional<uint64_t> Number(std::string_view s, int base = 10) {
  if (base == 16 && s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
    s.remove_prefix(2);
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty())
    return std::nullopt;
  return v;
}

}  // namespace

std::string HexCode(unsigned v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%02x", v);
  return buf;
}

std::map<std::string, std::string> PolicyKeys(const std::string& policy) {
  std::map<std::string, std::string> keys;
  for (const std::string& w : Words(policy)) {
    size_t eq = w.find('=');
    if (eq != std::string::npos) keys[w.substr(0, eq)] = w.substr(eq + 1);
  }
  return keys;
}

std::optional<std::string> ModuleStats::Get(std::string_view key) const {
  for (const auto& [k, v] : values)
    if (k == key) return v;
  return std::nullopt;
}

uint64_t ModuleStats::Counter(std::string_view key) const {
  std::optional<std::string> v = Get(key);
  if (!v) return 0;
  return Number(*v).value_or(0);
}

ModuleStats ParseStats(std::string_view text) {
  ModuleStats st;
  unsigned lineno = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text =
        nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++lineno;
    if (line.empty()) continue;
    std::vector<std::string> w = Words(line);
    auto bad = [&]() {
      return std::invalid_argument("stats line " + std::to_string(lineno) +
                                   ": unexpected \"" + std::string(line) +
                                   "\"");
    };
    if (w.size() < 2) throw bad();
    if (w[0] == "code" || w[0] == "raw") {
      std::optional<uint64_t> byte = Number(w[1], 16);
      std::optional<uint64_t> count =
          w.size() == 3 ? Number(w[2]) : std::nullopt;
      if (!byte || *byte > 255 || !count) throw bad();
      (w[0] == "code" ? st.codes : st.raw)[static_cast<unsigned>(*byte)] =
          *count;
    } else if (w[0] == "last_event") {
      if (w.size() == 2 && w[1] == "none") {
        st.last_event.reset();
        continue;
      }
      std::map<std::string, std::string> fields;
      for (size_t i = 1; i < w.size(); ++i) {
        size_t eq = w[i].find('=');
        if (eq == std::string::npos || eq == 0) throw bad();
        fields[w[i].substr(0, eq)] = w[i].substr(eq + 1);
      }
      st.last_event = std::move(fields);
    } else {
      std::string value(line.substr(line.find(w[0]) + w[0].size()));
      size_t b = value.find_first_not_of(" \t");
      st.values.emplace_back(w[0], value.substr(b));
    }
  }
  return st;
}

ModuleState ReadModule(const Host& host) {
  ModuleState m;
  // /sys/module/nmimgr exists for a loaded module (and for a built-in one
  // with parameters); initstate tells a module that is still loading.
  if (!host.Exists("/sys/module/nmimgr/parameters")) return m;
  std::optional<std::string> init =
      host.ReadLine("/sys/module/nmimgr/initstate");
  m.loaded = !init || *init == "live";
  if (!m.loaded) return m;
  for (const std::string& name : host.List("/sys/module/nmimgr/parameters")) {
    std::optional<std::string> v =
        host.ReadLine("/sys/module/nmimgr/parameters/" + name);
    if (v) m.params[name] = *v;
  }
  m.taint = host.ReadLine("/sys/module/nmimgr/taint");
  if (std::optional<std::string> text = host.Read("/sys/kernel/nmimgr/stats")) {
    try {
      m.stats = ParseStats(*text);
    } catch (const std::invalid_argument& e) {
      throw HostError(std::string("/sys/kernel/nmimgr/stats: ") + e.what());
    }
  }
  return m;
}

}  // namespace nmimgr::ctl
