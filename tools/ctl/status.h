// SPDX-License-Identifier: GPL-2.0-or-later
//
// nmimgrctl status: the policy in force, the module's counters and last
// event, and /etc/nmimgr.conf against what is loaded.
#ifndef NMIMGR_TOOLS_CTL_STATUS_H_
#define NMIMGR_TOOLS_CTL_STATUS_H_

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "config.h"
#include "module_state.h"
#include "prometheus.h"

namespace nmimgr::ctl {

// A setting whose loaded value is not the file's.
struct Drift {
  std::string setting;  // policy, types, capture_drop
  std::string file;     // what nmimgr.conf says (canonical)
  std::string loaded;   // what the module has
};

struct Status {
  ModuleState module;
  Config config;
  std::vector<Drift> drift;
  // Exit status: 0 loaded and as configured, 1 not loaded or drifted,
  // 2 could not check (set by the caller on errors).
  int ExitStatus() const;
};

Status ReadStatus(const Host& host, const std::string& loader);

// The drift between a file and a module (pure: tested on its own).
std::vector<Drift> CompareConfig(const Config& config, const ModuleState& m);

void PrintStatus(const Status& s, std::ostream& out);
nlohmann::json StatusJson(const Status& s);  // schema nmimgrctl-status/1
void AddStatusMetrics(const Status& s, metrics::Metrics& metrics);

}  // namespace nmimgr::ctl

#endif  // NMIMGR_TOOLS_CTL_STATUS_H_
