// SPDX-License-Identifier: GPL-2.0-or-later
//
// nmimgr-vmcore-check --prometheus: what the checked dumps say, as
// node_exporter textfile metrics (docs/vmcore-check.md "Metrics").  Labels
// are bounded: the verdict only, never a dump's name.
#ifndef NMIMGR_TOOLS_LIB_DUMP_METRICS_H_
#define NMIMGR_TOOLS_LIB_DUMP_METRICS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "check.h"
#include "prometheus.h"

namespace nmimgr::vmcore {

struct DumpSummary {
  std::string verdict;                // complete, incomplete, corrupt, ...
  std::optional<int64_t> crash_time;  // seconds since the epoch
  bool nmimgr = false;                // nmimgr's panic started this dump
};

DumpSummary Summarize(const DumpResult& r);

// The dumps of DIR as its current nmimgr.json describes them (for the
// directories that --new skips); empty when it cannot be read.
std::vector<DumpSummary> SummariesFromAnnotation(const std::string& dir);

// ERRORS: paths that could not be read and annotations that could not be
// written.
void AddDumpMetrics(const std::vector<DumpSummary>& dumps, size_t errors,
                    metrics::Metrics& m);

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_DUMP_METRICS_H_
