// SPDX-License-Identifier: GPL-2.0-or-later
//
// node_exporter's textfile collector format: `# HELP` and `# TYPE` once per
// family, then its samples; names carry the `nmimgr_` prefix, counters end
// in `_total`; no timestamps.  The file is written to a temporary file in
// the same directory and renamed over the old one, so that the collector
// never reads half of it.  Shared by nmimgrctl and nmimgr-vmcore-check.
#ifndef NMIMGR_TOOLS_METRICS_PROMETHEUS_H_
#define NMIMGR_TOOLS_METRICS_PROMETHEUS_H_

#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace nmimgr::metrics {

class Metrics {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

  // A sample of family NAME (created on first use with TYPE "gauge" or
  // "counter" and HELP; a counter's name must end in _total).
  void Add(const std::string& name, const std::string& type,
           const std::string& help, const Labels& labels, double value);
  std::string Text() const;

 private:
  struct Family {
    std::string name, type, help;
    std::vector<std::pair<Labels, double>> samples;
  };
  std::vector<Family> families_;
};

// The file could not be written; the old one is untouched.
class WriteError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Writes TEXT to PATH atomically (temporary file in PATH's directory,
// fsync, rename).  WriteError on failure; the old file is then untouched.
void WriteFileAtomically(const std::string& path, const std::string& text);

}  // namespace nmimgr::metrics

#endif  // NMIMGR_TOOLS_METRICS_PROMETHEUS_H_
