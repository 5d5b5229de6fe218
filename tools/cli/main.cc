// SPDX-License-Identifier: GPL-2.0-or-later
//
// nmimgr-vmcore-check: checks kernel crash dumps for completeness and for
// what triggered them.  A thin main: options in, one library call, exit
// status out.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

#include "check.h"

namespace po = boost::program_options;

namespace {

constexpr const char* kProgram = "nmimgr-vmcore-check";

constexpr const char* kUsage =
    "usage: nmimgr-vmcore-check [OPTIONS] PATH...\n"
    "\n"
    "Checks kernel crash dumps: whether each is complete, and whether nmimgr\n"
    "triggered it.  PATH is a crash root (/var/crash), one dump directory, or\n"
    "one dump file.  Reads ELF, kdump-compressed (zlib, lzo, snappy, zstd),\n"
    "flattened and split dumps, also inside .xz/.gz/.bz2/.lz4 files.\n";

constexpr const char* kExit =
    "\nexit status:\n"
    "  0  every dump is complete\n"
    "  1  some dump is incomplete or corrupt\n"
    "  2  usage error, or an I/O error (a path or dump could not be read,\n"
    "     nmimgr.json could not be written)\n"
    "with --new, dumps skipped as already annotated do not count.\n"
    "\n"
    "--new: a dump directory is new when its nmimgr.json is missing or\n"
    "unreadable, was written by another version of this tool, or records\n"
    "other files, sizes or modification times than the directory's dumps\n"
    "and saved kernel logs now have.\n";

// --threads N: a decimal number from 1 to kMaxScanThreads, nothing else
// (no sign, no base prefix, no trailing text).
std::optional<unsigned> ParseThreads(const std::string& s) {
  if (s.empty() || s.size() > 4) return std::nullopt;
  unsigned n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<unsigned>(c - '0');
  }
  if (n < 1 || n > nmimgr::vmcore::kMaxScanThreads) return std::nullopt;
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  nmimgr::vmcore::Options opts;
  std::string threads;
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help and exit")(
      "json,j", po::bool_switch(&opts.json),
      "print a JSON report (schema nmimgr-vmcore-check/1)")(
      "quiet,q", po::bool_switch(&opts.quiet),
      "print nothing; only the exit status tells")(
      "deep", po::bool_switch(&opts.check.deep),
      "decompress every page and check it against its descriptor")(
      "no-scan",
      "structure only: do not read page data (no trigger record "
      "search; the panic line comes from a saved dmesg file only)")(
      "annotate", po::bool_switch(&opts.annotate),
      "write the finding next to each dump as nmimgr.json")(
      "new", po::bool_switch(&opts.only_new),
      "only dump directories whose nmimgr.json is missing or not current "
      "(see below); the others are skipped")(
      "journal", po::bool_switch(&opts.journal),
      "one line per dump (path, verdict, reasons, trigger, annotation), "
      "prefixed with its sd-daemon(3) priority: <6> complete, <4> "
      "incomplete or corrupt, <3> error")(
      "prometheus", po::value<std::string>(&opts.prometheus),
      "also write node_exporter textfile metrics of the dumps to FILE "
      "(atomically; with --new, skipped dumps count as annotated)")(
      "threads", po::value<std::string>(&threads),
      "threads for page decoding, 1 to 256 (default: all cores, at most "
      "256)")("verbose,v", "log what is being done to stderr");
  po::options_description hidden;
  hidden.add_options()("path",
                       po::value<std::vector<std::string>>(&opts.paths));
  po::options_description all;
  all.add(desc).add(hidden);
  po::positional_options_description pos;
  pos.add("path", -1);

  po::variables_map vm;
  try {
    po::store(
        po::command_line_parser(argc, argv).options(all).positional(pos).run(),
        vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "nmimgr-vmcore-check: " << e.what() << "\n" << kUsage;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << kUsage << "\n" << desc << kExit;
    return 0;
  }
  if (opts.paths.empty()) {
    std::cerr << "nmimgr-vmcore-check: no PATH given\n" << kUsage;
    return 2;
  }
  if (opts.json + opts.quiet + opts.journal > 1) {
    std::cerr << "nmimgr-vmcore-check: --json, --quiet and --journal exclude "
                 "each other\n";
    return 2;
  }
  // The library logs at debug level only (-v): under --journal, priority 7.
  spdlog::set_pattern(opts.journal ? "<7>nmimgr-vmcore-check: %v"
                                   : "nmimgr-vmcore-check: %v");
  spdlog::set_level(vm.count("verbose") ? spdlog::level::debug
                                        : spdlog::level::warn);
  opts.check.scan = vm.count("no-scan") == 0;
  if (!opts.check.scan && opts.check.deep) {
    std::cerr << "nmimgr-vmcore-check: --deep and --no-scan exclude each "
                 "other\n";
    return 2;
  }
  if (vm.count("threads")) {
    std::optional<unsigned> n = ParseThreads(threads);
    if (!n) {
      std::cerr << "nmimgr-vmcore-check: --threads: expected a number from 1 "
                   "to "
                << nmimgr::vmcore::kMaxScanThreads << ", got '"
                << nmimgr::vmcore::TerminalText(threads) << "'\n"
                << kUsage;
      return 2;
    }
    opts.check.threads = *n;
  } else {
    opts.check.threads = std::clamp(std::thread::hardware_concurrency(), 1u,
                                    nmimgr::vmcore::kMaxScanThreads);
  }
  opts.check.progress = !opts.quiet && !opts.journal && ::isatty(STDERR_FILENO);
  try {
    return nmimgr::vmcore::Run(opts, kProgram, std::cout, std::cerr);
  } catch (const std::exception& e) {
    std::cerr << (opts.journal ? "<3>" : "") << "nmimgr-vmcore-check: "
              << nmimgr::vmcore::TerminalText(e.what()) << "\n";
    return 2;
  }
}
