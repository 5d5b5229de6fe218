// SPDX-License-Identifier: GPL-2.0-or-later
//
// The check of one dump and of a whole command line: discovery, the reader
// for each format, the structural walk, the page scan for the trigger, the
// verdict, and the output.
#ifndef NMIMGR_TOOLS_LIB_CHECK_H_
#define NMIMGR_TOOLS_LIB_CHECK_H_

#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "discover.h"
#include "reader.h"
#include "record_search.h"
#include "scan.h"
#include "trigger.h"

namespace nmimgr::vmcore {

enum class Verdict { kComplete, kIncomplete, kCorrupt, kUnreadable };
const char* VerdictName(Verdict v);

struct CheckOptions {
  bool deep = false;
  bool scan = true;  // look into page data for the trigger
  unsigned threads = 1;
  bool progress = false;  // progress indicator on stderr
};

struct TriggerReport {
  // Valid, fired records (magic, version, size, FIRED, checksum), lowest
  // pfn first, each with its binding (trigger.h).
  std::vector<TriggerRecord> records;
  // The record named as the trigger: index into `records`.
  std::optional<size_t> chosen;
  BindingContext binding;
  std::optional<PanicLine> line;             // nmimgr's panic line
  std::string line_source;                   // "dmesg-file" or "dump-memory"
  std::optional<std::string> panic_message;  // the kernel's panic message
  std::string panic_message_source;
  std::optional<double> panic_log_time;
  uint64_t magic_hits = 0;
  // Where the kernel log came from: "dmesg-file", "dump-printk" (the printk
  // ring buffer in the dump), "dump-memory" (text scan of page data), "".
  std::string log_source;
  std::optional<uint64_t> log_records;  // records read from the ring buffer
  std::string log_note;                 // why the ring buffer could not be read
  // nmimgr fired during a panic something else started: the chosen record
  // has PANIC_UNDER_WAY, or the kernel's panic message is not nmimgr's.
  bool during_other_panic = false;
  // How the records were looked for (record_search.h).
  RecordSearch search;

  const TriggerRecord* record() const {
    return chosen ? &records[*chosen] : nullptr;
  }
  // A chosen record or nmimgr's panic line.
  bool nmimgr() const { return chosen.has_value() || line.has_value(); }
};

// Binds every record to the panic line, chooses the trigger record (the
// best bound version 2 record, else a version 1 record the line does not
// contradict) and decides `during_other_panic`.  Call after the scan.
void ChooseTrigger(TriggerReport& t);

// A file a check read, as it was when the check began: what an annotation
// records so that `--new` can tell whether the files changed since.
struct FileStamp {
  std::string name;  // relative to the dump directory
  uint64_t size = 0;
  int64_t mtime_ns = 0;
};

// The stamps of SET's dump files and saved log as they are now (files that
// cannot be stat()ed are left out: the check reports them).
std::vector<FileStamp> StampsOf(const DumpSet& set);

struct DumpResult {
  DumpSet set;
  std::vector<FileStamp> stamps;  // the dump files and the saved log
  Verdict verdict = Verdict::kComplete;
  DumpFacts facts;
  Findings findings;
  std::string container;           // "flattened" or ""
  std::string outer;               // "xz", "gzip", "bzip2", "lz4" or ""
  std::string scan_mode = "none";  // "none", "trigger", "deep"
  ScanStats scan;
  TriggerReport trigger;
};

Verdict VerdictOf(const Findings& f);

DumpResult CheckDump(const DumpSet& set, const CheckOptions& opts);

// The dump object of the JSON output and of nmimgr.json
// (docs/vmcore-check.md).
nlohmann::json DumpToJson(const DumpResult& r);
// The whole --json document.
nlohmann::json ReportToJson(const std::vector<DumpResult>& results,
                            const std::vector<std::string>& errors,
                            int exit_status);
// `s` made safe for a terminal: each control character (C0, DEL, C1), line
// separator, zero-width or bidirectional control and each byte that is not
// well-formed UTF-8 is written as \xNN or \u{NNNN}, and a backslash as \\,
// so no escape sequence in dump-derived text or a file name reaches the
// terminal and the text can be read back unambiguously.
std::string TerminalText(std::string_view s);
// The default table; every dump-derived string passes TerminalText.
void PrintTable(const std::vector<DumpResult>& results, std::ostream& out);

// Writes <dir>/nmimgr.json for `r`: to a temporary file in the same
// directory, then rename(2), which replaces a symbolic link at the final
// name instead of following it.  Leaves an identical file untouched.
// When the directory holds several dumps (`in_dir`, `r` among them), `r`
// must be the worst of them and the file lists each with its verdict
// under "dumps_in_directory".  Returns "written", "unchanged"; throws
// IoError.
std::string Annotate(const DumpResult& r,
                     const std::vector<const DumpResult*>& in_dir = {});

// The tool and version an annotation names as its writer
// ("nmimgr-vmcore-check 0.1.0").
std::string AnnotationWriter();

// Why the dump directory `dir`, whose dumps are `sets` (as discovered),
// needs checking under `--new`: "no annotation", "annotation unreadable",
// "annotation by <writer>" (another schema or tool version), "files
// differ" (a dump or saved log was added, removed or renamed), "<file>
// changed" (size or modification time differ from the recorded ones).
// Empty when its nmimgr.json is current.
std::string WhyNew(const std::string& dir,
                   const std::vector<const DumpSet*>& sets);

// One line for the journal (--journal): the sd-daemon(3) priority prefix
// (<6> complete, <4> incomplete or corrupt, <3> unreadable or a failed
// annotation), the dump, its verdict, the codes of its findings, the
// trigger and, with --annotate, what became of nmimgr.json ("written",
// "unchanged", "failed", "not written").  Dump-derived text passes
// TerminalText, so the line is always one line.
std::string JournalLine(const DumpResult& r, const std::string& annotation);

struct Options {
  std::vector<std::string> paths;
  bool json = false;
  bool quiet = false;
  bool annotate = false;
  // Only dump directories whose nmimgr.json is missing or not current
  // (WhyNew); the others are neither checked nor reported.
  bool only_new = false;
  bool journal = false;  // one JournalLine per dump instead of the table
  // Also write node_exporter metrics of every dump found here (dumps that
  // only_new skips count as their current annotation says).
  std::string prometheus;
  CheckOptions check;
};

// Exit status: 0 every dump complete, 1 some dump is not, 2 usage or I/O
// errors (including an unreadable dump or a failed annotation).  Dumps
// that `only_new` skips do not count.  Each line on `err` starts with
// "<program>: " (after its priority under --journal): the library has no
// name of its own, the program that calls it passes its own.
int Run(const Options& opts, std::string_view program, std::ostream& out,
        std::ostream& err);

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_CHECK_H_
