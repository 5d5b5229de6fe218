// SPDX-License-Identifier: GPL-2.0-or-later
//
// nmimgrctl: will this server produce a usable dump when the BMC's NMI
// button is pressed?  A thin main: a command and its options in, one
// library call, exit status out.
#include <boost/program_options.hpp>
#include <cstdlib>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "discover.h"
#include "doctor.h"
#include "host.h"
#include "prometheus.h"
#include "set.h"
#include "status.h"
#include "test.h"

namespace po = boost::program_options;
namespace ctl = nmimgr::ctl;

namespace {

constexpr const char* kUsage =
    "usage: nmimgrctl COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  status   the policy in force, counters, last event, and\n"
    "           /etc/nmimgr.conf against what is loaded\n"
    "  doctor   every condition a BMC-triggered dump depends on, each with\n"
    "           its verdict, the evidence read and the fix\n"
    "  set      a new policy (--panic, --drop, --ignore, --mask, --confirm,\n"
    "           --dry-run): validated, applied live, with --persist written\n"
    "           to nmimgr.conf and applied with nmimgr-load --apply\n"
    "  discover while the BMC's NMI button is pressed: every NMI dropped and\n"
    "           reported (type, raw byte, code, CPU), a policy proposed, the\n"
    "           policy in force restored on every way out\n"
    "  test     crash this machine through the real NMI path (nmimgr's own\n"
    "           trigger) once doctor finds it ready; --report on the next\n"
    "           boot gives the dump's verdict and trigger\n";

constexpr const char* kExit =
    "\nexit status:\n"
    "  status: 0 nmimgr loaded and following nmimgr.conf; 1 not loaded,\n"
    "          nmimgr.conf invalid, or drift; 2 could not check\n"
    "  doctor: 0 ready; 1 not ready (a check failed); 2 could not check\n"
    "          (no check failed, one could not be made)\n"
    "  set:    0 set; 1 invalid (nothing changed); 2 could not (not loaded\n"
    "          without --persist, file not writable); 3 refused by the module\n"
    "          or nmimgr-load (the policy in force is unchanged)\n"
    "  discover: 0 NMIs seen; 1 none seen; 2 could not start; 3 the policy\n"
    "          could not be restored (nmimgr-load --apply restores it)\n"
    "  test:   1 refused (no --yes-crash-this-machine, not ready); 2 could\n"
    "          not (not loaded, no trigger); 3 the NMI did not crash the\n"
    "          machine; --report: 0 the test's dump is complete, 1 missing,\n"
    "          incomplete or not the test's, 2 no test pending\n"
    "  2 also for a usage error.\n";

#ifndef NMIMGR_VMCORE_CHECK_PATH
#define NMIMGR_VMCORE_CHECK_PATH "/usr/bin/nmimgr-vmcore-check"
#endif

#ifndef NMIMGR_PLATFORMS_PATH
#define NMIMGR_PLATFORMS_PATH "/usr/share/nmimgr/platforms.json"
#endif

struct Options {
  std::string command;
  std::string root = "/";
  std::string loader = ctl::DefaultLoader();
  std::string prometheus;
  bool json = false;
  bool no_mem_usage = false;
  nmimgr::ctl::SetRequest set;
  nmimgr::ctl::DiscoverOptions discover;
  nmimgr::ctl::TestOptions test;
};

int Fail(const std::string& msg) {
  std::cerr << "nmimgrctl: " << msg << "\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options opts;
  opts.discover.platforms = NMIMGR_PLATFORMS_PATH;
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help and exit")(
      "json,j", po::bool_switch(&opts.json),
      "print a JSON report (schemas nmimgrctl-status/1, nmimgrctl-doctor/1)")(
      "prometheus", po::value<std::string>(&opts.prometheus),
      "also write the metrics to FILE for node_exporter's textfile "
      "collector (atomically: a temporary file, then a rename)")(
      "root", po::value<std::string>(&opts.root),
      "look at the tree under DIR (its /sys, /proc, /etc, /lib/modules) "
      "instead of this machine; nothing is run against it but nmimgr-load "
      "--sysroot")("loader", po::value<std::string>(&opts.loader),
                   "nmimgr-load to read nmimgr.conf with (default: "
                   "$NMIMGR_LOAD or the installed one)")(
      "no-mem-usage", po::bool_switch(&opts.no_mem_usage),
      "doctor: do not run makedumpfile --mem-usage for the dump size");
  po::options_description setopts("set (what is not given keeps its value)");
  setopts.add_options()("panic", po::value<std::string>(),
                        "codes that panic: LIST")(
      "drop", po::value<std::string>(), "codes claimed and counted: LIST")(
      "ignore", po::value<std::string>(), "codes left to the kernel: LIST")(
      "mask", po::value<std::string>(),
      "bits of the byte that form the code (keeps 0xc0)")(
      "confirm", po::value<std::string>(),
      "0, 1 or MIN-MAX ms: panic on a second press")(
      "dry-run", "log panic decisions, panic on nothing")("no-dry-run",
                                                          "dry run off")(
      "persist", po::bool_switch(&opts.set.persist),
      "also write nmimgr.conf (atomically) and apply it with nmimgr-load "
      "--apply")("config", po::value<std::string>(&opts.set.config),
                 "the file (default /etc/nmimgr.conf)");
  desc.add(setopts);
  po::options_description disc("discover");
  disc.add_options()("duration", po::value<double>(&opts.discover.duration_s),
                     "stop after SECONDS (default: at Ctrl-C or SIGTERM)")(
      "count", po::value<unsigned>(&opts.discover.count), "stop after N NMIs")(
      "platforms", po::value<std::string>(&opts.discover.platforms),
      "the platform notes (default " NMIMGR_PLATFORMS_PATH ")");
  desc.add(disc);
  po::options_description testopts("test");
  testopts.add_options()(
      "yes-crash-this-machine", po::bool_switch(&opts.test.yes),
      "really crash it (without: print the plan, run doctor, refuse)")(
      "report", po::bool_switch(&opts.test.report),
      "after the reboot: the verdict and trigger of the test's dump")(
      "journal", po::bool_switch(&opts.test.journal),
      "--report as one line with its sd-daemon(3) priority");
  desc.add(testopts);
  po::options_description hidden;
  hidden.add_options()("command", po::value<std::string>(&opts.command));
  po::options_description all;
  all.add(desc).add(hidden);
  po::positional_options_description pos;
  pos.add("command", 1);
  po::variables_map vm;
  try {
    po::store(
        po::command_line_parser(argc, argv).options(all).positional(pos).run(),
        vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "nmimgrctl: " << e.what() << "\n" << kUsage;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << kUsage << "\n" << desc << kExit;
    return 0;
  }
  static const std::set<std::string> kCommands = {"status", "doctor", "set",
                                                  "discover", "test"};
  if (!kCommands.count(opts.command)) {
    std::cerr << "nmimgrctl: "
              << (opts.command.empty()
                      ? "no command given"
                      : "unknown command '" + opts.command + "'")
              << "\n"
              << kUsage;
    return 2;
  }
  try {
    ctl::Host host(opts.root);
    if (!host.Exists("/"))
      return Fail("--root " + opts.root + ": no such directory");
    nmimgr::metrics::Metrics metrics;
    int status;
    if (opts.command == "set") {
      ctl::SetRequest& r = opts.set;
      r.loader = opts.loader;
      for (const char* key : {"panic", "drop", "ignore", "mask", "confirm"}) {
        if (!vm.count(key)) continue;
        std::string v = vm[key].as<std::string>();
        std::string k = key;
        (k == "panic"    ? r.panic
         : k == "drop"   ? r.drop
         : k == "ignore" ? r.ignore
         : k == "mask"   ? r.mask
                         : r.confirm) = v;
      }
      if (vm.count("dry-run") && vm.count("no-dry-run"))
        return Fail("--dry-run and --no-dry-run exclude each other");
      if (vm.count("dry-run")) r.dry_run = true;
      if (vm.count("no-dry-run")) r.dry_run = false;
      if (!r.panic && !r.drop && !r.ignore && !r.mask && !r.confirm &&
          !r.dry_run)
        return Fail(
            "set: nothing to set (give --panic, --drop, --ignore, --mask, "
            "--confirm or --dry-run)");
      return ctl::RunSet(host, r, std::cout, std::cerr);
    }
    if (opts.command == "test") {
      if (opts.json || !opts.prometheus.empty())
        return Fail(
            "test: --json and --prometheus are not test's (--report "
            "--journal logs one line)");
      if (opts.test.yes && opts.test.report)
        return Fail("--yes-crash-this-machine and --report exclude each other");
      if (opts.test.journal && !opts.test.report)
        return Fail("--journal goes with --report");
      opts.test.loader = opts.loader;
      opts.test.mem_usage = !opts.no_mem_usage;
      const char* vc = std::getenv("NMIMGR_VMCORE_CHECK");
      opts.test.vmcore_check = vc && *vc ? vc : NMIMGR_VMCORE_CHECK_PATH;
      return ctl::RunTest(host, opts.test, std::cout, std::cerr);
    }
    if (opts.command == "discover")
      return ctl::RunDiscover(host, opts.discover, std::cout, std::cerr);
    if (opts.command == "status") {
      ctl::Status s = ctl::ReadStatus(host, opts.loader);
      if (opts.json)
        std::cout << ctl::StatusJson(s).dump(2) << "\n";
      else
        ctl::PrintStatus(s, std::cout);
      ctl::AddStatusMetrics(s, metrics);
      status = s.ExitStatus();
    } else {
      ctl::DoctorOptions d;
      d.loader = opts.loader;
      d.mem_usage = !opts.no_mem_usage;
      ctl::DoctorReport r = ctl::RunDoctor(host, d);
      if (opts.json)
        std::cout << ctl::DoctorJson(r).dump(2) << "\n";
      else
        ctl::PrintDoctor(r, std::cout);
      ctl::AddDoctorMetrics(r, metrics);
      status = r.ExitStatus();
    }
    if (!opts.prometheus.empty())
      nmimgr::metrics::WriteFileAtomically(opts.prometheus, metrics.Text());
    return status;
  } catch (const std::exception& e) {
    return Fail(e.what());
  }
}
