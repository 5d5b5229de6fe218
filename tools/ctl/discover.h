// SPDX-License-Identifier: GPL-2.0-or-later
//
// nmimgrctl discover: what this machine's NMIs read as, found while the
// admin presses the BMC's NMI button.  For the duration every code is
// dropped (and dry run is on), so that no NMI panics the machine: dry run
// alone would leave unclaimed NMIs to the kernel, whose
// unknown_nmi_panic=1 panics.  Each NMI nmimgr logs is reported (type, raw
// byte, code under the mask in force, CPU), a policy is proposed, and the
// policy in force before is written back on every way out: the end of
// --duration or --count, Ctrl-C, SIGTERM, a lost terminal (SIGHUP).
//
// The kernel log is read from /dev/kmsg, from its end: records
// "PRIO,SEQ,USEC,FLAGS;TEXT".  With --root it is ROOT/dev/kmsg (the tests
// make it a FIFO).
#ifndef NMIMGR_TOOLS_CTL_DISCOVER_H_
#define NMIMGR_TOOLS_CTL_DISCOVER_H_

#include <optional>
#include <ostream>
#include <string>

#include "host.h"

namespace nmimgr::ctl {

struct DiscoverOptions {
  double duration_s = 0;  // 0: until a signal
  unsigned count = 0;     // stop after this many NMIs; 0: no limit
  std::string platforms = "/usr/share/nmimgr/platforms.json";
};

struct SeenNmi {
  unsigned raw = 0, code = 0, cpu = 0;
  std::string type;
};

// An nmimgr log line (the text of a kernel log record) for one NMI.
std::optional<SeenNmi> ParseNmiLine(const std::string& text);

// Exit status: 0 NMIs seen and the policy restored; 1 none seen (restored);
// 2 could not start (nmimgr not loaded); 3 the policy could not be
// restored (the message says how to restore it).
int RunDiscover(const Host& host, const DiscoverOptions& opts,
                std::ostream& out, std::ostream& err);

}  // namespace nmimgr::ctl

#endif  // NMIMGR_TOOLS_CTL_DISCOVER_H_
