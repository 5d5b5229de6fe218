// SPDX-License-Identifier: GPL-2.0-or-later
//
// nmimgrctl test: the end-to-end proof an admin runs once, in a maintenance
// window.  It crashes the machine through the real NMI path: nmimgr's own
// trigger (/sys/kernel/nmimgr/test) sends an NMI to a CPU through its local
// APIC, nmimgr decides on it with the policy in force, fills its record and
// panics, the capture kernel writes the dump.  On the next boot `test
// --report` (nmimgr-test-report.service) finds that dump by the record's
// nonce and reports its verdict and trigger from nmimgr-vmcore-check.
//
// Before it crashes anything it prints what it will do, runs doctor, and
// refuses without --yes-crash-this-machine, when doctor finds the machine
// not ready, in dry run, and when nmimgr is latched.  What binds the dump
// to the test is kept in /var/lib/nmimgr/test.json (schema
// nmimgrctl-test/1): the record's nonce, the boot it was started in, the
// dump directory; the report moves it to test-last.json with the result.
#ifndef NMIMGR_TOOLS_CTL_TEST_H_
#define NMIMGR_TOOLS_CTL_TEST_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "host.h"

namespace nmimgr::ctl {

struct TestOptions {
  bool yes = false;       // --yes-crash-this-machine
  bool report = false;    // --report: the dump of the last test
  bool journal = false;   // --report --journal: one sd-daemon line
  bool mem_usage = true;  // doctor's makedumpfile --mem-usage (live only)
  std::string loader;     // nmimgr-load, for doctor
  std::string vmcore_check;
};

// The pending test and the last result, under the root.
inline constexpr const char* kTestPending = "/var/lib/nmimgr/test.json";
inline constexpr const char* kTestLast = "/var/lib/nmimgr/test-last.json";

// The dumps of an nmimgr-vmcore-check --json report whose trigger is the
// record with NONCE (16 hex digits), most complete first.
std::vector<nlohmann::json> DumpsOfRecord(const nlohmann::json& report,
                                          const std::string& nonce);

// The dumps of the report whose crash time is at or after EPOCH (less a
// minute for the clocks), and those too damaged to give one that are not
// complete: what the capture kernel wrote since a test began, newest first.
std::vector<nlohmann::json> DumpsSince(const nlohmann::json& report,
                                       int64_t epoch);

// Exit status of the test: 1 refused (no --yes-crash-this-machine, not
// ready, dry run, latched), 2 could not (nmimgr not loaded, a module
// without the trigger, the trigger failed), 3 the NMI reached nmimgr and
// the machine did not crash (the message says what the policy did).
// Of --report: 0 the test's dump is complete and its trigger is the
// test's record; 1 the dump is missing, incomplete or not the test's; 2 no
// test pending, or the check could not run.
int RunTest(const Host& host, const TestOptions& opts, std::ostream& out,
            std::ostream& err);

}  // namespace nmimgr::ctl

#endif  // NMIMGR_TOOLS_CTL_TEST_H_
