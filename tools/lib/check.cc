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
#include "flattened.h"
#include "kdump_reader.h"
#include "kernel_log.h"
#include "outer.h"

namespace nmimgr::vmcore {
namespace {

constexpr uint64_t kMaxDmesg = 64ull << 20;

// Sources of one dump, kept alive for the reader.
struct Opened {
  std::vector<std::unique_ptr<Source>> owned;
  Source* top = nullptr;
};

// Opens one file through its outer compression and flattened container.
// Returns nullptr (with a finding) when no reader can take it.
std::unique_ptr<DumpReader> OpenOne(const std::string& path, Opened& o,
                                    DumpResult& r) {
  auto file = std::make_unique<FileSource>(path);
  Source* src = file.get();
  o.owned.push_back(std::move(file));
  if (OuterKind k = DetectOuter(*src); k != OuterKind::kNone) {
    auto stream = OpenOuter(std::move(o.owned.back()), k);
    o.owned.pop_back();
    src = stream.get();
    r.outer = OuterName(k);
    // A stream whose first decoded bytes are no dump's is decoded no
    // further (a compression bomb).
    std::optional<std::string> not_dump = stream->NotADump();
    o.owned.push_back(std::move(stream));
    if (not_dump) {
      r.findings.Add(Severity::kCorrupt, "unknown-format",
                     fmt::format("{}: {}", path, *not_dump));
      return nullptr;
    }
  }
  if (src->Size() == 0) {
    r.findings.Add(Severity::kIncomplete, "truncated",
                   fmt::format("{}: the file is empty", path));
    return nullptr;
  }
  {
    // A file whose start is all zeros was written but never reached the
    // disk (file size updated, data blocks lost in a reset).
    std::vector<uint8_t> head(std::min<uint64_t>(src->Size(), 4096));
    size_t got = src->ReadAt(0, head);
    head.resize(got);
    if (!head.empty() && std::all_of(head.begin(), head.end(),
                                     [](uint8_t b) { return b == 0; })) {
      r.findings.Add(Severity::kIncomplete, "zero-filled",
                     fmt::format("{}: the first {} bytes are zero: the file "
                                 "was written but its data never reached "
                                 "the disk",
                                 path, got));
      return nullptr;
    }
  }
  Probe flat = ProbeFlattened(*src);
  if (flat == Probe::kMine) {
    auto fl = std::make_unique<FlattenedSource>(*src, r.findings);
    src = fl.get();
    o.owned.push_back(std::move(fl));
    r.container = "flattened";
    if (src->Size() == 0) return nullptr;  // Findings say why.
  }
  bool too_short = flat == Probe::kTooShort;
  for (const Format& f : Formats()) {
    Probe p = f.probe(*src);
    if (p == Probe::kMine) {
      o.top = src;
      return f.open(*src);
    }
    too_short |= p == Probe::kTooShort;
  }
  if (too_short)
    r.findings.Add(Severity::kIncomplete, "truncated",
                   fmt::format("{}: the data ends after {} bytes, inside a "
                               "dump signature",
                               path, src->Size()));
  else
    r.findings.Add(Severity::kCorrupt, "unknown-format",
                   fmt::format("{}: no known dump signature (ELF, KDUMP, "
                               "makedumpfile)",
                               path));
  return nullptr;
}

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
  r.findings.Add(Severity::kIncomplete, "flattened-hole",
                 fmt::format("flattened stream: no record carries dump "
                             "offsets {}, which the dump needs; {} reads "
                             "fell into such holes",
                             flat->FirstHole(), flat->hole_reads()));
}

void CheckInto(DumpResult& r, const CheckOptions& opts) {
  const DumpSet& set = r.set;
  if (!set.missing.empty()) {
    r.findings.Add(Severity::kIncomplete, "dump-missing", set.missing);
    return;
  }
  if (set.name_incomplete)
    r.findings.Add(
        Severity::kIncomplete, "incomplete-name",
        fmt::format(
            "the name {} says the capture did not finish",
            std::filesystem::path(set.files.front()).filename().string()));
  Opened opened;
  std::unique_ptr<DumpReader> reader;
  FlattenedSource* flat = nullptr;
  std::vector<Opened> parts;
  StreamSource* stream = nullptr;
  if (set.split && set.files.size() >= 1) {
    std::vector<Source*> srcs;
    std::vector<std::string> names;
    for (const auto& f : set.files) {
      std::unique_ptr<Source> fsrc = std::make_unique<FileSource>(f);
      // A compressed part (dump.1.xz) is read through its decoder.
      if (OuterKind k = DetectOuter(*fsrc); k != OuterKind::kNone) {
        fsrc = OpenOuter(std::move(fsrc), k);
        r.outer = OuterName(k);
      }
      srcs.push_back(fsrc.get());
      names.push_back(std::filesystem::path(f).filename().string());
      opened.owned.push_back(std::move(fsrc));
    }
    reader = OpenSplitSetReader(srcs, names);
  } else {
    reader = OpenOne(set.files.front(), opened, r);
    if (!opened.owned.empty())
      stream = dynamic_cast<StreamSource*>(opened.owned.front().get());
    for (auto& o : opened.owned)
      if (auto* f = dynamic_cast<FlattenedSource*>(o.get())) flat = f;
  }
  if (reader) {
    // The default check reads the descriptor table's ends; --deep all of it.
    reader->set_full_walk(opts.deep);
    reader->CheckStructure(r.facts, r.findings);
  }
  if (stream && stream->Truncated())
    r.findings.Add(Severity::kIncomplete, "outer-truncated",
                   stream->TruncationMessage());
  if (stream && !stream->NotADump())
    if (auto t = stream->TrailingData())
      r.findings.Add(Severity::kCorrupt, "trailing-data", *t);
  if (set.split)
    for (size_t i = 0; i < opened.owned.size(); ++i)
      if (auto* st = dynamic_cast<StreamSource*>(opened.owned[i].get()); st) {
        std::string name =
            std::filesystem::path(set.files[i]).filename().string();
        if (st->Truncated())
          r.findings.Add(Severity::kIncomplete, "outer-truncated",
                         fmt::format("{}: {}", name, st->TruncationMessage()));
        if (auto t = st->TrailingData())
          r.findings.Add(Severity::kCorrupt, "trailing-data",
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
      try {
        r.scan = ScanPages(*reader, r.facts.page_size, scanner, so, r.findings);
      } catch (const CorruptError& e) {
        r.findings.Add(Severity::kCorrupt, "corrupt",
                       fmt::format("scanning pages: {}", e.what()));
      } catch (const TruncatedError& e) {
        r.findings.Add(Severity::kIncomplete, "truncated",
                       fmt::format("scanning pages: {}", e.what()));
      }
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
  ReportHoles(flat, r);
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
  try {
    CheckInto(r, opts);
  } catch (const IoError& e) {
    r.findings.Add(Severity::kUnreadable, "io-error", e.what());
  } catch (const CorruptError& e) {
    r.findings.Add(Severity::kCorrupt, "corrupt", e.what());
  } catch (const TruncatedError& e) {
    r.findings.Add(Severity::kIncomplete, "truncated", e.what());
  }
  r.verdict = VerdictOf(r.findings);
  return r;
}

int Run(const Options& opts, std::ostream& out, std::ostream& err) {
  // In --journal mode every line, errors included, carries its sd-daemon(3)
  // priority so that journald files it at that level.
  const std::string err_prefix =
      std::string(opts.journal ? "<3>" : "") + "nmimgr-vmcore-check: ";
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
    err << "nmimgr-vmcore-check: "
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
