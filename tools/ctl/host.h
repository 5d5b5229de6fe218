// SPDX-License-Identifier: GPL-2.0-or-later
//
// The machine nmimgrctl looks at: its files, under a root prefix so that the
// tests can hand it a fake /sys, /proc and /etc (--root DIR), and the
// programs it runs.
#ifndef NMIMGR_TOOLS_CTL_HOST_H_
#define NMIMGR_TOOLS_CTL_HOST_H_

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace nmimgr::ctl {

// A file that exists but cannot be read, a program that cannot be started:
// the check that needed it could not be made.
class HostError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct FileInfo {
  uint64_t size = 0;
  int64_t mtime_ns = 0;  // modification time, ns since the epoch
};

class Host {
 public:
  // ROOT "/" is this machine; anything else is a tree laid out like one.
  explicit Host(std::filesystem::path root = "/");

  const std::filesystem::path& root() const { return root_; }
  // The root is this machine: its programs may be run against it, the
  // running kernel is the one described.
  bool live() const { return live_; }

  // ABS (an absolute path on the machine) under the root.
  std::filesystem::path Path(std::string_view abs) const;
  bool Exists(std::string_view abs) const;
  // The file's bytes; nullopt when it does not exist.  Reading at most
  // LIMIT bytes (sysfs and proc files are small; a limit keeps a runaway
  // file from filling memory).  HostError when it exists but cannot be read.
  std::optional<std::string> Read(std::string_view abs,
                                  size_t limit = 1 << 20) const;
  // Read() with the trailing newline and blanks removed.
  std::optional<std::string> ReadLine(std::string_view abs) const;
  std::optional<FileInfo> Info(std::string_view abs) const;
  // Names in a directory, sorted; empty when it does not exist.
  std::vector<std::string> List(std::string_view abs) const;
  // The last component of the target of a symbolic link, or nullopt.
  std::optional<std::string> LinkName(std::string_view abs) const;

 private:
  std::filesystem::path root_;
  bool live_;
};

struct ProcessResult {
  int status = -1;  // exit status; 128 + N for a signal N
  std::string out;
  std::string err;
};

// Runs ARGV[0] (looked up in PATH) with the environment of this process and
// stdin from /dev/null, and collects what it prints.  HostError when it
// cannot be started.
ProcessResult RunProcess(const std::vector<std::string>& argv);

// Whitespace-separated words of TEXT.
std::vector<std::string> Words(std::string_view text);
// TEXT without leading and trailing blanks (space, tab, CR, LF).
std::string Trim(std::string_view text);
// The lines of TEXT, without their newlines.
std::vector<std::string> Lines(std::string_view text);

}  // namespace nmimgr::ctl

#endif  // NMIMGR_TOOLS_CTL_HOST_H_
