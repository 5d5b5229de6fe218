// SPDX-License-Identifier: GPL-2.0-or-later
//
// Finding dumps in the layouts that exist in the field.
//
//   Fedora/RHEL kdumpctl:  <root>/<ip>-YYYY-MM-DD-HH:MM:SS/
//       vmcore, vmcore-incomplete (while writing), vmcore.flat (ssh targets)
//       vmcore-dmesg.txt, kexec-dmesg.log (the capture kernel's own log)
//   `kdumpctl test`:  <root>/kdump-test-<epoch>-<ns>/, the same files and
//       vmcore-creation.status ("fail" before the dump, "success" after)
//   Debian/Ubuntu kdump-tools:  <root>/YYYYMMDDHHMM/ or
//                               <root>/<ip-or-host>-YYYYMMDDHHMM/ (remote)
//       dump.<stamp>, dump-incomplete (while writing), vmcore.<stamp> (copy
//       fallback), dump.<stamp>.xz|.gz|.bz2|.lz4 (whole-file compression)
//       dmesg.<stamp>
//   Split sets (makedumpfile --split): several kdump-compressed files in one
//   directory whose headers say split and agree on the system and time.
//
// A PATH may be a crash root, one dump directory or one dump file; a crash
// root may itself be a symbolic link.
#ifndef NMIMGR_TOOLS_LIB_DISCOVER_H_
#define NMIMGR_TOOLS_LIB_DISCOVER_H_

#include <string>
#include <vector>

namespace nmimgr::vmcore {

struct DumpSet {
  std::string dir;                 // where the dump lives (and nmimgr.json)
  std::vector<std::string> files;  // one file, or the parts of a split set
  std::string layout;              // "kdumpctl", "kdump-tools", "unknown"
  std::string dmesg_file;          // the crashed kernel's saved log, or ""
  bool name_incomplete = false;    // vmcore-incomplete, dump-incomplete
  bool split = false;
  // Set when the directory shows a dump was to be written but holds none
  // (only the saved log; the dump name is dangling, a FIFO, a device):
  // why, for the "dump-missing" finding.  `files` is then empty.
  std::string missing;
};

struct Discovery {
  std::vector<DumpSet> dumps;
  std::vector<std::string> errors;  // paths that could not be examined
};

Discovery Discover(const std::vector<std::string>& paths);

// Whether `name` is a dump file name of either layout.
bool IsDumpFileName(const std::string& name);
// Layout named by a dump directory's name, or "unknown".
std::string LayoutOfDirName(const std::string& name);

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_DISCOVER_H_
