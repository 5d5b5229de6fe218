// SPDX-License-Identifier: GPL-2.0-or-later
//
// nmimgrctl set: a new policy, validated by the module's own grammar (the
// policy core, module/policy.c), applied live in one write to
// /sys/module/nmimgr/parameters/policy (the module publishes it whole or
// refuses it and keeps the old one), and with --persist written into
// /etc/nmimgr.conf atomically and applied by `nmimgr-load --apply`, which
// also tells the kdump service and says what must be rebuilt.
//
// What is not given keeps its value: the policy in force (the file's when
// nmimgr is not loaded).
#ifndef NMIMGR_TOOLS_CTL_SET_H_
#define NMIMGR_TOOLS_CTL_SET_H_

#include <optional>
#include <ostream>
#include <string>

#include "host.h"

namespace nmimgr::ctl {

struct SetRequest {
  std::optional<std::string> ignore, drop, panic, mask, confirm;
  std::optional<bool> dry_run;
  bool persist = false;
  std::string config = "/etc/nmimgr.conf";
  std::string loader;
};

// Exit status: 0 set; 1 the request is invalid (nothing changed); 2 could
// not be done (nmimgr not loaded without --persist, a file that cannot be
// written); 3 the module or nmimgr-load refused it (the policy in force is
// unchanged).
enum SetStatus { kSetOk = 0, kSetInvalid = 1, kSetCannot = 2, kSetRefused = 3 };

// The canonical policy CURRENT becomes with REQ applied, or nullopt with
// the policy core's message in *ERROR.
std::optional<std::string> ComposePolicy(const std::string& current,
                                         const SetRequest& req,
                                         std::string* error);

// TEXT (an nmimgr.conf) with its policy keys (policy, ignore, drop, panic,
// mask, dry_run, confirm and their events_* / event_mask names) replaced by
// POLICY written key by key where the first of them stood (else at the
// end); comments and every other line kept as they are.
std::string RewriteConfig(const std::string& text, const std::string& policy);

int RunSet(const Host& host, const SetRequest& req, std::ostream& out,
           std::ostream& err);

}  // namespace nmimgr::ctl

#endif  // NMIMGR_TOOLS_CTL_SET_H_
