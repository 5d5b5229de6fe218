// SPDX-License-Identifier: GPL-2.0-or-later
#include "check.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "checked.h"
#include "dump_metrics.h"
#include "dump_open.h"
#include "findings.h"
#include "kernel_log.h"

namespace nmimgr::vmcore {
namespace {

constexpr uint64_t kMaxDmesg = 64ull << 20;

class Progress {
 public:
  Progress(bool on, std::string name) : on_(on), name_(std::move(name)) {}
  ~Progress() {
    if (on_ && shown_) fmt::print(stderr, "\r\033[K");
  }
  void operator()(uint64_t done, uint64_t total) {
    if (!on_) return;
    auto now = std::chrono::steady_clock::now();
    if (shown_ && now - last_ < std::chrono::milliseconds(200) && done < total)
      return;
    last_ = now;
    shown_ = true;
    fmt::print(stderr, "\r\033[K{}: {}% ({}/{} pages)", name_,
               total ? done * 100 / total : 100, done, total);
  }

 private:
  bool on_;
  std::string name_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_;
};

// A flattened stream that has its end marker but lacks records the dump
// needed (with no end marker, "no-end-marker" already says it all).
void ReportHoles(FlattenedSource* flat, DumpResult& r) {
  if (!flat || !flat->has_end_marker() || flat->hole_reads() == 0 ||
      r.findings.HasCode("flattened-hole"))
    return;
  r.findings.Add(FindingCode::kFlattenedHole,
                 fmt::format("flattened stream: no record carries dump "
                             "offsets {}, which the dump needs; {} reads "
                             "fell into such holes",
                             flat->FirstHole(), flat->hole_reads()));
}

void CheckInto(DumpResult& r, const CheckOptions& opts) {
  const DumpSet& set = r.set;
  if (!set.missing.empty()) {
    r.findings.Add(FindingCode::kDumpMissing, set.missing);
    return;
  }
  if (set.name_incomplete)
    r.findings.Add(
        FindingCode::kIncompleteName,
        fmt::format(
            "the name {} says the capture did not finish",
            std::filesystem::path(set.files.front()).filename().string()));
  OpenedDump opened;
  try {
    if (set.split)
      OpenSplitDump(set.files, opened);
    else
      OpenDump(set.files.front(), opened, r.findings);
  } catch (...) {
    r.outer = opened.outer;
    r.container = opened.container;
    throw;
  }
  r.outer = opened.outer;
  r.container = opened.container;
  DumpReader* reader = opened.reader.get();
  if (reader) {
    // The default check reads the descriptor table's ends; --deep all of it.
    reader->set_full_walk(opts.deep);
    reader->CheckStructure(r.facts, r.findings);
  }
  // Each compressed file's stream: cut short, or followed by bytes that
  // are neither a stream nor padding.  A split part's are named.
  for (size_t i = 0; i < opened.streams.size(); ++i) {
    StreamSource* st = opened.streams[i];
    if (!st) continue;
    if (!set.split) {
      if (st->Truncated())
        r.findings.Add(FindingCode::kOuterTruncated, st->TruncationMessage());
      if (!st->NotADump())
        if (auto t = st->TrailingData())
          r.findings.Add(FindingCode::kTrailingData, *t);
      continue;
    }
    std::string name = std::filesystem::path(set.files[i]).filename().string();
    if (st->Truncated())
      r.findings.Add(FindingCode::kOuterTruncated,
                     fmt::format("{}: {}", name, st->TruncationMessage()));
    if (auto t = st->TrailingData())
      r.findings.Add(FindingCode::kTrailingData,
                     fmt::format("{}: {}", name, *t));
  }

  // The kernel log: saved next to the dump, else the dump's printk ring
  // buffer, else (below) a text scan of the dump's memory.
  bool have_log = false;
  r.trigger.binding.crash_time = r.facts.crash_time;
  auto use_log = [&](std::string_view text, const char* source,
                     std::optional<uint64_t> last_ns) {
    KernelLogFacts k = ScanKernelLog(text);
    have_log = true;
    // The uptime at the crash, for binding records by their boot epoch.
    if (!last_ns) last_ns = k.last_log_ns;
    if (last_ns) {
      r.trigger.binding.uptime_ns = last_ns;
      r.trigger.binding.uptime_source = source;
    }
    r.trigger.log_source = source;
    if (k.nmimgr) {
      r.trigger.line = k.nmimgr;
      r.trigger.line_source = source;
    }
    if (k.panic_message) {
      r.trigger.panic_message = k.panic_message;
      r.trigger.panic_message_source = source;
      r.trigger.panic_log_time = k.panic_log_time;
    }
  };
  if (!set.dmesg_file.empty()) {
    FileSource log(set.dmesg_file);
    std::vector<uint8_t> text(std::min(log.Size(), kMaxDmesg));
    text.resize(log.ReadAt(0, text));
    use_log(std::string_view(reinterpret_cast<const char*>(text.data()),
                             text.size()),
            "dmesg-file", std::nullopt);
  } else if (reader && opts.scan && !r.facts.vmcoreinfo.empty()) {
    std::string why;
    if (auto log = ReadKernelLog(*reader, r.facts, &why)) {
      r.trigger.log_records = log->records;
      use_log(log->text, "dump-printk", log->last_ts_nsec);
    } else {
      r.trigger.log_note = ValidUtf8("printk ring buffer not read: " + why);
      spdlog::debug("{}: {}", set.files.front(), r.trigger.log_note);
    }
  }

  if (reader && opts.scan) {
    // The record through the page tables where that settles it; the text
    // of a log that could not be read, and --deep, need the page scan.
    RecordSearch& search = r.trigger.search;
    std::optional<TriggerScanner> walked;
    if (opts.deep) {
      search.reason = "--deep decodes every page";
    } else if (!have_log) {
      search.reason =
          "no kernel log was read: the page scan also looks for the panic "
          "text";
    } else {
      walked.emplace(false, r.trigger.binding);
      if (SearchByPageTables(*reader, r.facts, r.trigger.line.has_value(),
                             *walked, search)) {
        search.method = "page-tables";
        r.scan_mode = "trigger";
        r.scan.pages_decoded = search.pages_read;
        r.scan.stopped_early = true;
      } else {
        walked.reset();
      }
    }
    if (!walked) {
      search.method = "page-scan";
      walked.emplace(!have_log, r.trigger.binding);
      TriggerScanner& scanner = *walked;
      ScanOptions so;
      so.deep = opts.deep;
      so.threads = opts.threads;
      Progress progress(opts.progress,
                        std::filesystem::path(set.files.front()).filename());
      so.progress = [&](uint64_t d, uint64_t t) { progress(d, t); };
      r.scan_mode = opts.deep ? "deep" : "trigger";
      CatchErrors(r.findings, Catch::kDataErrors, "scanning pages: ", [&] {
        r.scan = ScanPages(*reader, r.facts.page_size, scanner, so, r.findings);
      });
      if (!have_log) {
        r.trigger.log_source = "dump-memory";
        if (auto l = scanner.memory_panic_line()) {
          r.trigger.line = l;
          r.trigger.line_source = "dump-memory";
        }
        if (auto m = scanner.memory_panic_message()) {
          r.trigger.panic_message = m;
          r.trigger.panic_message_source = "dump-memory";
        }
      }
    }
    r.trigger.records = walked->records();
    r.trigger.magic_hits = walked->magic_hits();
  }
  ChooseTrigger(r.trigger);
  ReportHoles(opened.flat, r);
}

}  // namespace

void ChooseTrigger(TriggerReport& t) {
  t.chosen.reset();
  // Best first: bound version 2 records by how many checks matched (phys,
  // crash time, boot epoch, nonce), then version 1 records; lowest pfn
  // breaks ties.  Rejected records never count.
  int best_score = -1;
  for (size_t i = 0; i < t.records.size(); ++i) {
    TriggerRecord& rec = t.records[i];
    if (t.line) BindToPanicLine(rec, *t.line);
    if (rec.binding.rejected()) continue;
    int score = 0;
    if (rec.version == NMIMGR_RECORD_VERSION) {
      const RecordBinding& b = rec.binding;
      score = 1;
      for (Check c : {b.phys, b.crash_time, b.boot_epoch, b.nonce})
        score += c == Check::kMatch;
    }
    if (score > best_score) {
      best_score = score;
      t.chosen = i;
    }
  }
  const TriggerRecord* rec = t.record();
  t.during_other_panic = (rec && rec->panic_under_way()) ||
                         (t.nmimgr() && t.panic_message &&
                          !IsNmimgrPanicMessage(*t.panic_message));
}

const char* VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kComplete:
      return "complete";
    case Verdict::kIncomplete:
      return "incomplete";
    case Verdict::kCorrupt:
      return "corrupt";
    case Verdict::kUnreadable:
      return "unreadable";
  }
  return "?";
}

Verdict VerdictOf(const Findings& f) {
  if (f.Has(Severity::kUnreadable)) return Verdict::kUnreadable;
  if (f.Has(Severity::kCorrupt)) return Verdict::kCorrupt;
  if (f.Has(Severity::kIncomplete)) return Verdict::kIncomplete;
  return Verdict::kComplete;
}

// Size and modification time of what the check is about to read, taken
// before it reads: a dump rewritten during the check then differs from its
// annotation's record and is new again.
std::vector<FileStamp> StampsOf(const DumpSet& set) {
  std::vector<std::string> paths = set.files;
  if (!set.dmesg_file.empty()) paths.push_back(set.dmesg_file);
  std::vector<FileStamp> stamps;
  for (const std::string& p : paths) {
    struct stat st;
    if (::stat(p.c_str(), &st) != 0) continue;  // the check reports it
    stamps.push_back(
        {std::filesystem::path(p).lexically_relative(set.dir).string(),
         static_cast<uint64_t>(st.st_size),
         static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 +
             st.st_mtim.tv_nsec});
  }
  return stamps;
}

DumpResult CheckDump(const DumpSet& set, const CheckOptions& opts) {
  DumpResult r;
  r.set = set;
  r.stamps = StampsOf(set);
  CatchErrors(r.findings, Catch::kAllErrors, {}, [&] { CheckInto(r, opts); });
  r.verdict = VerdictOf(r.findings);
  return r;
}

int Run(const Options& opts, std::string_view program, std::ostream& out,
        std::ostream& err) {
  // In --journal mode every line, errors included, carries its sd-daemon(3)
  // priority so that journald files it at that level.
  const std::string err_prefix =
      fmt::format("{}{}: ", opts.journal ? "<3>" : "", program);
  Discovery disc = Discover(opts.paths);
  int status = 0;
  for (const auto& e : disc.errors) {
    err << err_prefix << TerminalText(e) << "\n";
    status = 2;
  }
  size_t skipped = 0;
  std::vector<DumpSummary> summaries;  // for --prometheus
  if (opts.only_new) {
    // Newness is a directory's: it has one nmimgr.json for all its dumps.
    std::map<std::string, std::vector<const DumpSet*>> by_dir;
    for (const DumpSet& set : disc.dumps) by_dir[set.dir].push_back(&set);
    std::map<std::string, std::string> why;
    for (const auto& [dir, sets] : by_dir) why[dir] = WhyNew(dir, sets);
    std::vector<DumpSet> fresh;
    std::set<std::string> skipped_dirs;
    for (DumpSet& set : disc.dumps) {
      if (why[set.dir].empty()) {
        spdlog::debug("{}: annotation is current, skipped", set.dir);
        ++skipped;
        skipped_dirs.insert(set.dir);
        continue;
      }
      spdlog::debug("{}: new: {}", set.dir, why[set.dir]);
      fresh.push_back(std::move(set));
    }
    disc.dumps = std::move(fresh);
    if (!opts.prometheus.empty())
      for (const std::string& dir : skipped_dirs)
        for (DumpSummary& d : SummariesFromAnnotation(dir))
          summaries.push_back(std::move(d));
  }
  std::vector<DumpResult> results;
  for (const DumpSet& set : disc.dumps) {
    spdlog::debug("checking {}", set.dir);
    results.push_back(CheckDump(set, opts.check));
    const DumpResult& r = results.back();
    if (r.verdict == Verdict::kUnreadable)
      status = 2;
    else if (r.verdict != Verdict::kComplete && status == 0)
      status = 1;
  }
  std::map<std::string, std::string> annotation;  // dir -> what became of it
  if (opts.annotate) {
    // One nmimgr.json per directory: with several dumps in it, the worst
    // one's, so a broken dump is never annotated "complete" by its
    // neighbour.
    std::map<std::string, std::vector<const DumpResult*>> by_dir;
    std::vector<std::string> dirs;
    for (const DumpResult& r : results) {
      if (!by_dir.count(r.set.dir)) dirs.push_back(r.set.dir);
      by_dir[r.set.dir].push_back(&r);
    }
    for (const std::string& dir : dirs) {
      const std::vector<const DumpResult*>& in_dir = by_dir[dir];
      const DumpResult* worst = in_dir.front();
      for (const DumpResult* d : in_dir)
        if (d->verdict > worst->verdict) worst = d;
      if (in_dir.size() == 1 && worst->verdict == Verdict::kUnreadable) {
        annotation[dir] = "not written";
        continue;
      }
      try {
        std::string what = Annotate(*worst, in_dir);
        spdlog::debug("{}/nmimgr.json {}", dir, what);
        annotation[dir] = what;
      } catch (const IoError& e) {
        err << err_prefix << TerminalText(e.what()) << "\n";
        annotation[dir] = "failed";
        status = 2;
      }
    }
  }
  if (!opts.prometheus.empty()) {
    size_t errors = disc.errors.size();
    for (const auto& [dir, what] : annotation) errors += what == "failed";
    for (const DumpResult& r : results) summaries.push_back(Summarize(r));
    metrics::Metrics m;
    AddDumpMetrics(summaries, errors, m);
    try {
      metrics::WriteFileAtomically(opts.prometheus, m.Text());
    } catch (const metrics::WriteError& e) {
      err << err_prefix << TerminalText(e.what()) << "\n";
      status = 2;
    }
  }
  if (opts.journal) {
    for (const DumpResult& r : results)
      out << JournalLine(r, opts.annotate ? annotation[r.set.dir] : "") << "\n";
    if (results.empty() && disc.errors.empty())
      out << "<6>"
          << (skipped
                  ? fmt::format("no new dumps ({} already annotated)", skipped)
                  : std::string("no dumps found"))
          << "\n";
    return status;
  }
  if (results.empty() && disc.errors.empty() && !opts.quiet && !opts.json)
    err << program << ": "
        << (skipped
                ? fmt::format("no new dumps ({} already annotated)", skipped)
                : std::string("no dumps found"))
        << "\n";
  if (opts.json)
    out << ReportToJson(results, disc.errors, status)
               .dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
        << "\n";
  else if (!opts.quiet)
    PrintTable(results, out);
  return status;
}

}  // namespace nmimgr::vmcore
