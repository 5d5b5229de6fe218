// SPDX-License-Identifier: GPL-2.0-or-later
//
// What the loaded nmimgr says about itself: its parameters
// (/sys/module/nmimgr/parameters/*) and its statistics
// (/sys/kernel/nmimgr/stats, docs/module.md "Statistics").
//
// The stats file is one `key value` pair a line, then `code 0xNN COUNT` and
// `raw 0xNN COUNT` lines; `last_event` is `none` or space-separated
// `field=value` pairs.  New keys may appear before the code lines, so an
// unknown key is kept, not refused.
#ifndef NMIMGR_TOOLS_CTL_MODULE_STATE_H_
#define NMIMGR_TOOLS_CTL_MODULE_STATE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "host.h"

namespace nmimgr::ctl {

struct ModuleStats {
  // Every `key value` line but code, raw and last_event, in file order.
  std::vector<std::pair<std::string, std::string>> values;
  std::map<unsigned, uint64_t> codes;  // matched code -> count
  std::map<unsigned, uint64_t> raw;    // raw byte -> count
  // last_event's fields (raw, code, type, cpu, action, uptime_ms), or
  // nullopt for `last_event none`.
  std::optional<std::map<std::string, std::string>> last_event;

  std::optional<std::string> Get(std::string_view key) const;
  // A counter's value, 0 when the key is missing.
  uint64_t Counter(std::string_view key) const;
  bool Flag(std::string_view key) const { return Counter(key) != 0; }
};

// Parses the stats file.  Throws std::invalid_argument naming the line on
// a line that is not `key value`.
ModuleStats ParseStats(std::string_view text);

// An event code or raw byte as the stats file and the reports write it:
// 0x followed by at least two hex digits.
std::string HexCode(unsigned v);

// The module's `policy` parameter split into its keys: "ignore= drop=
// panic=0 mask=0xc0 dry_run=0 confirm=0" -> {ignore: "", drop: "", ...}.
std::map<std::string, std::string> PolicyKeys(const std::string& policy);

// The counters of the stats file, in its order (docs/module.md).
extern const std::vector<std::string> kCounters;

struct ModuleState {
  bool loaded = false;
  std::map<std::string, std::string> params;  // name -> value, trimmed
  std::optional<ModuleStats> stats;
  std::optional<std::string> taint;  // /sys/module/nmimgr/taint

  std::string Param(const std::string& name) const {
    auto it = params.find(name);
    return it == params.end() ? std::string() : it->second;
  }
};

ModuleState ReadModule(const Host& host);

}  // namespace nmimgr::ctl

#endif  // NMIMGR_TOOLS_CTL_MODULE_STATE_H_
