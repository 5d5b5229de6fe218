// SPDX-License-Identifier: GPL-2.0-or-later
#include "config.h"

#include <cstdlib>

#ifndef NMIMGR_LOAD_PATH
#define NMIMGR_LOAD_PATH "/usr/sbin/nmimgr-load"
#endif

namespace nmimgr::ctl {

std::string DefaultLoader() {
  const char* env = std::getenv("NMIMGR_LOAD");
  return env && *env ? env : NMIMGR_LOAD_PATH;
}

namespace {

std::vector<std::string> LoaderArgs(const Host& host, const std::string& loader,
                                    const std::string& path) {
  std::vector<std::string> argv = {loader, "-q", "-c",
                                   host.Path(path).string()};
  if (!host.live()) {
    argv.push_back("--sysroot");
    argv.push_back(host.root().string());
  }
  return argv;
}

}  // namespace

Config ReadConfig(const Host& host, const std::string& loader,
                  const std::string& path) {
  Config c;
  c.path = path;
  c.present = host.Exists(path);
  std::vector<std::string> argv = LoaderArgs(host, loader, path);
  argv.push_back("--check");
  ProcessResult r = RunProcess(argv);
  if (r.status == 127 && r.out.empty())
    throw HostError("cannot run " + loader + ": " + Trim(r.err));
  if (r.status != 0) {
    c.error = Trim(r.err.empty() ? r.out : r.err);
    if (c.error.empty())
      c.error = loader + " --check exited " + std::to_string(r.status);
    return c;
  }
  c.valid = true;
  for (const std::string& line : Lines(r.out)) {
    size_t eq = line.find(" = ");
    if (eq != std::string::npos)
      c.settings[line.substr(0, eq)] = line.substr(eq + 3);
  }
  argv.back() = "--cmdline";
  r = RunProcess(argv);
  if (r.status == 0) c.capture_words = Words(r.out);
  return c;
}

std::optional<std::map<std::string, std::string>> ShellVariables(
    const Host& host, const std::string& file, const std::string& shell,
    const std::vector<std::string>& names) {
  if (!host.Exists(file)) return std::nullopt;
  // Each variable as NAME, a set/unset mark and its value, NUL-separated:
  // values may hold newlines.
  std::string script =
      ". \"$1\" >/dev/null 2>&1 </dev/null; shift; for v; do "
      "eval \"s=\\${$v+1} x=\\${$v-}\"; "
      "printf '%s\\0%s\\0%s\\0' \"$v\" \"$s\" \"$x\"; done";
  std::vector<std::string> argv = {shell, "-c", script, shell,
                                   host.Path(file).string()};
  argv.insert(argv.end(), names.begin(), names.end());
  ProcessResult r = RunProcess(argv);
  if (r.status != 0)
    throw HostError("reading " + file + " with " + shell + ": exit status " +
                    std::to_string(r.status));
  std::vector<std::string> fields;
  size_t pos = 0;
  while (pos < r.out.size()) {
    size_t z = r.out.find('\0', pos);
    if (z == std::string::npos) break;
    fields.push_back(r.out.substr(pos, z - pos));
    pos = z + 1;
  }
  std::map<std::string, std::string> vars;
  for (size_t i = 0; i + 2 < fields.size(); i += 3)
    if (fields[i + 1] == "1") vars[fields[i]] = fields[i + 2];
  return vars;
}

}  // namespace nmimgr::ctl
