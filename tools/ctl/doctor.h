// SPDX-License-Identifier: GPL-2.0-or-later
//
// nmimgrctl doctor: every condition a BMC-triggered dump depends on, each
// with a verdict, the evidence it read and the fix.  The check ids are
// stable (docs/nmimgrctl.md lists them); new checks get new ids.
#ifndef NMIMGR_TOOLS_CTL_DOCTOR_H_
#define NMIMGR_TOOLS_CTL_DOCTOR_H_

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "host.h"
#include "prometheus.h"

namespace nmimgr::ctl {

enum class Verdict { kOk, kWarn, kFail, kUnknown };
const char* VerdictName(Verdict v);  // ok, warn, fail, unknown

struct Finding {
  std::string id;
  Verdict verdict = Verdict::kUnknown;
  std::string summary;
  std::vector<std::pair<std::string, std::string>> evidence;
  std::string fix;  // empty when there is nothing to do
};

struct DoctorOptions {
  std::string loader;  // nmimgr-load
  // Run makedumpfile --mem-usage on /proc/kcore for the dump size (only on
  // the live machine, as root).
  bool mem_usage = true;
};

struct DoctorReport {
  std::vector<Finding> findings;
  // 0 ready (no fail, no unknown), 1 not ready (a fail), 2 could not check
  // (no fail, an unknown).
  int ExitStatus() const;
};

// The ids, in report order.
extern const std::vector<std::string> kDoctorChecks;

DoctorReport RunDoctor(const Host& host, const DoctorOptions& opts);

void PrintDoctor(const DoctorReport& r, std::ostream& out);
nlohmann::json DoctorJson(const DoctorReport& r);  // nmimgrctl-doctor/1
void AddDoctorMetrics(const DoctorReport& r, metrics::Metrics& metrics);

// kdumpctl's recommendation for the crash kernel reservation on a machine
// with SYSTEM_RAM bytes (kdump_get_arch_recommend_crashkernel, x86_64:
// 2G-64G:256M,64G-:512M); 0 below 2 GiB.
uint64_t RecommendedBaseline(uint64_t system_ram);

}  // namespace nmimgr::ctl

#endif  // NMIMGR_TOOLS_CTL_DOCTOR_H_
