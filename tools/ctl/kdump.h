// SPDX-License-Identifier: GPL-2.0-or-later
//
// The machine's kdump service as nmimgrctl needs it: which one (Debian's
// kdump-tools or Fedora's kdumpctl), the capture kernel's command line, its
// initramfs, where dumps go, and the command that reloads it.  Facts from
// shared/PIPELINE.md sections 2 and 3:
//
// - kdump-tools saves the kexec command it loaded with in
//   $KDUMP_COREDIR/kexec_cmd (`... --command-line="WORDS" ...`); its
//   initrd is /var/lib/kdump/initrd.img (a link to initrd.img-<ver>).
// - kdumpctl records the command line nowhere: it is rebuilt here as
//   kdumpctl's prepare_cmdline builds it, KDUMP_COMMANDLINE or
//   /proc/cmdline, minus the options KDUMP_COMMANDLINE_REMOVE names (and
//   the ones it always removes), plus KDUMP_COMMANDLINE_APPEND.  The
//   words kdumpctl adds for watchdogs and the boot CPU are left out: they
//   do not decide anything checked here but the watchdog pre-timeouts,
//   which kdumpctl always adds for the watchdog-core drivers it finds.
#ifndef NMIMGR_TOOLS_CTL_KDUMP_H_
#define NMIMGR_TOOLS_CTL_KDUMP_H_

#include <optional>
#include <string>
#include <vector>

#include "host.h"

namespace nmimgr::ctl {

enum class KdumpService { kNone, kKdumpTools, kKdumpctl };

struct KdumpSetup {
  KdumpService service = KdumpService::kNone;
  std::string name;  // "kdump-tools", "kdumpctl", "none"
  // The capture kernel's command line, and where it came from.
  std::optional<std::vector<std::string>> capture_cmdline;
  std::string cmdline_source;
  std::string initrd;          // the capture initramfs (may not exist)
  std::string dump_dir;        // where dumps are written
  std::string reload;          // the command that rebuilds and reloads
  std::string kernel_release;  // the running kernel's
  // kdumpctl only: the watchdog drivers it disarms on its own
  // (<driver>.pretimeout=0 for each /sys/class/watchdog device).
  std::vector<std::string> implied_words;
};

KdumpSetup ReadKdumpSetup(const Host& host);

// The value of --command-line= or --append= in a kexec command, unquoted.
std::optional<std::string> KexecCommandLine(const std::string& kexec_cmd);

// OPTION's words in CMDLINE ("name" or "name=value"), by name.
std::vector<std::string> OptionWords(const std::vector<std::string>& cmdline,
                                     const std::string& name);

}  // namespace nmimgr::ctl

#endif  // NMIMGR_TOOLS_CTL_KDUMP_H_
