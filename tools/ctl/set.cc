// SPDX-License-Identifier: GPL-2.0-or-later
#include "set.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <vector>

#include "config.h"
#include "module_state.h"
#include "policy.h"
#include "prometheus.h"

namespace nmimgr::ctl {

namespace {

const std::set<std::string> kPolicyKeys = {
    "policy",      "ignore",       "drop",      "panic",
    "mask",        "dry_run",      "confirm",   "events_ignore",
    "events_drop", "events_panic", "event_mask"};

}  // namespace

std::optional<std::string> ComposePolicy(const std::string& current,
                                         const SetRequest& req,
                                         std::string* error) {
  std::map<std::string, std::string> keys = PolicyKeys(current);
  // each value alone first, so that the message names the option
  struct nmimgr_codeset set;
  char err[NMIMGR_ERR_BUF];
  const std::vector<std::pair<const char*, const std::optional<std::string>*>>
      lists = {
          {"ignore", &req.ignore}, {"drop", &req.drop}, {"panic", &req.panic}};
  for (const auto& [key, value] : lists) {
    if (!*value) continue;
    if (nmimgr_parse_list((*value)->c_str(), &set, err, sizeof(err)) != 0) {
      *error = std::string("--") + key + ": " + err;
      return std::nullopt;
    }
    keys[key] = **value;
  }
  if (req.mask) {
    uint8_t m;
    if (nmimgr_parse_mask(req.mask->c_str(), &m, err, sizeof(err)) != 0) {
      *error = std::string("--mask: ") + err;
      return std::nullopt;
    }
    keys["mask"] = *req.mask;
  }
  if (req.confirm) {
    uint32_t lo, hi;
    if (nmimgr_parse_confirm(req.confirm->c_str(), &lo, &hi, err,
                             sizeof(err)) != 0) {
      *error = std::string("--confirm: ") + err;
      return std::nullopt;
    }
    keys["confirm"] = *req.confirm;
  }
  if (req.dry_run) keys["dry_run"] = *req.dry_run ? "1" : "0";
  std::string text;
  for (const auto& [k, v] : keys)
    text += (text.empty() ? "" : " ") + k + "=" + v;
  struct nmimgr_policy p;
  if (nmimgr_policy_parse(text.c_str(), &p, err, sizeof(err)) != 0) {
    *error = err;
    return std::nullopt;
  }
  char buf[NMIMGR_POLICY_BUF];
  nmimgr_policy_format(&p, buf, sizeof(buf));
  return std::string(buf);
}

std::string RewriteConfig(const std::string& text, const std::string& policy) {
  std::map<std::string, std::string> keys = PolicyKeys(policy);
  std::string block = "# set by nmimgrctl set\n";
  for (const char* k :
       {"ignore", "drop", "panic", "mask", "dry_run", "confirm"})
    block += std::string(k) + " = " + keys[k] + "\n";
  std::string out;
  bool placed = false;
  std::vector<std::string> lines = Lines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    std::string t = Trim(line);
    size_t eq = t.find('=');
    bool policy_line = !t.empty() && t[0] != '#' && eq != std::string::npos &&
                       kPolicyKeys.count(Trim(t.substr(0, eq)));
    if (policy_line) {
      if (!placed) out += block;
      placed = true;
      continue;
    }
    // our own earlier marker goes with the block it introduced
    if (t == "# set by nmimgrctl set" && i + 1 < lines.size()) continue;
    out += line + "\n";
  }
  if (!placed) out += (out.empty() || out.back() == '\n' ? "" : "\n") + block;
  return out;
}

int RunSet(const Host& host, const SetRequest& req, std::ostream& out,
           std::ostream& err) {
  ModuleState m = ReadModule(host);
  Config file = ReadConfig(host, req.loader, req.config);
  if (req.persist && !file.valid) {
    err << "nmimgrctl: " << req.config
        << " is invalid, not rewriting it: " << file.error << "\n";
    return kSetCannot;
  }
  if (!m.loaded && !req.persist) {
    err << "nmimgrctl: nmimgr is not loaded: nothing to set live (--persist "
           "writes "
        << req.config << " and loads it)\n";
    return kSetCannot;
  }
  std::string current = m.loaded ? m.Param("policy") : file.Get("policy");
  std::string error;
  std::optional<std::string> policy = ComposePolicy(current, req, &error);
  if (!policy) {
    err << "nmimgrctl: " << error << "; nothing changed\n";
    return kSetInvalid;
  }
  if (!req.persist) {
    const std::filesystem::path param =
        host.Path("/sys/module/nmimgr/parameters/policy");
    int fd = ::open(param.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : ::write(fd, policy->data(), policy->size());
    int e = errno;
    if (fd >= 0) ::close(fd);
    if (n != static_cast<ssize_t>(policy->size())) {
      err << "nmimgrctl: nmimgr refused \"" << *policy
          << "\": " << std::strerror(e)
          << " (the kernel log says why); the policy in force is unchanged\n";
      return kSetRefused;
    }
    std::string back =
        host.ReadLine("/sys/module/nmimgr/parameters/policy").value_or("");
    out << "policy in force: " << back << "\n";
    if (file.valid && file.Get("policy") != back)
      out << req.config << " still says \"" << file.Get("policy")
          << "\": the next boot and the capture kernel use the file (--persist "
             "writes it)\n";
    return back == *policy ? kSetOk : kSetRefused;
  }
  // --persist: the new file, checked by nmimgr-load before it replaces the old
  std::string text = host.Read(req.config).value_or("");
  std::string next = RewriteConfig(text, *policy);
  const std::string real = host.Path(req.config).string();
  const std::string candidate = real + ".nmimgrctl-new";
  metrics::WriteFileAtomically(candidate, next);
  Config check = ReadConfig(Host("/"), req.loader, candidate);
  if (!check.valid || check.Get("policy") != *policy) {
    ::unlink(candidate.c_str());
    err << "nmimgrctl: the rewritten " << req.config
        << " does not read back as \"" << *policy << "\""
        << (check.valid ? "" : ": " + check.error) << "; nothing changed\n";
    return kSetCannot;
  }
  struct stat st;
  if (::stat(real.c_str(), &st) == 0)
    ::chmod(candidate.c_str(), st.st_mode & 07777);
  if (::rename(candidate.c_str(), real.c_str()) != 0) {
    int e = errno;
    ::unlink(candidate.c_str());
    err << "nmimgrctl: renaming into " << req.config << ": " << std::strerror(e)
        << "\n";
    return kSetCannot;
  }
  out << req.config << ": policy = " << *policy << "\n";
  // nmimgr-load --apply: live, the kdump service, and what to rebuild
  std::vector<std::string> argv = {req.loader, "-c", real, "--apply"};
  if (!host.live()) {
    argv.push_back("--sysroot");
    argv.push_back(host.root().string());
  }
  ProcessResult r = RunProcess(argv);
  out << r.out;
  err << r.err;
  if (r.status != 0) {
    err << "nmimgrctl: nmimgr-load --apply exited " << r.status << "; "
        << req.config << " is written, the policy in force is unchanged\n";
    return kSetRefused;
  }
  return kSetOk;
}

}  // namespace nmimgr::ctl
