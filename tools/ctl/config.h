// SPDX-License-Identifier: GPL-2.0-or-later
//
// The configuration as nmimgr-load, the one reader of /etc/nmimgr.conf
// (nmimgr.conf(5)), reads it: nmimgrctl never parses the file itself.
// `nmimgr-load --check` prints every setting in canonical form
// (`key = value`), `--cmdline` the words the capture kernel's command line
// gets from it.
#ifndef NMIMGR_TOOLS_CTL_CONFIG_H_
#define NMIMGR_TOOLS_CTL_CONFIG_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "host.h"

namespace nmimgr::ctl {

struct Config {
  std::string path;      // as on the machine: /etc/nmimgr.conf
  bool present = false;  // the file exists (else every setting is default)
  bool valid = false;    // nmimgr-load accepted it
  std::string error;     // why not: nmimgr-load's message
  std::map<std::string, std::string> settings;  // key -> canonical value
  std::vector<std::string> capture_words;       // nmimgr-load --cmdline

  std::string Get(const std::string& key) const {
    auto it = settings.find(key);
    return it == settings.end() ? std::string() : it->second;
  }
  bool Yes(const std::string& key) const { return Get(key) == "yes"; }
};

// nmimgr-load: $NMIMGR_LOAD, else the installed one.
std::string DefaultLoader();

// Reads PATH (on the machine) with LOADER.  HostError when nmimgr-load
// cannot be run; an invalid file is a Config with valid false.
Config ReadConfig(const Host& host, const std::string& loader,
                  const std::string& path = "/etc/nmimgr.conf");

// Shell variables NAMES as FILE (on the machine) sets them, read the way
// the service that owns it reads it: sourced by SHELL ("sh" for Debian's
// /etc/default/kdump-tools, "bash" for /etc/sysconfig/kdump).  A variable
// the file does not set is missing from the result; nullopt when the file
// does not exist.  HostError when the shell fails.
std::optional<std::map<std::string, std::string>> ShellVariables(
    const Host& host, const std::string& file, const std::string& shell,
    const std::vector<std::string>& names);

}  // namespace nmimgr::ctl

#endif  // NMIMGR_TOOLS_CTL_CONFIG_H_
