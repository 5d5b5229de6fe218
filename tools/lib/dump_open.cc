// SPDX-License-Identifier: GPL-2.0-or-later
#include "dump_open.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "kdump_split.h"

namespace nmimgr::vmcore {
namespace {

constexpr uint64_t kZeroHead = 4096;

// The reader among Formats() (or only opts.format) that takes `src`;
// nullptr, with a finding, when none does.  `too_short`: a container's
// probe already saw a signature cut short.
std::unique_ptr<DumpReader> ProbeFormats(Source& src, const std::string& name,
                                         bool too_short, Findings& findings,
                                         const OpenOptions& opts) {
  for (const Format& f : Formats()) {
    if (!opts.format.empty() && opts.format != f.name) continue;
    Probe p = f.probe(src);
    if (p == Probe::kMine) return f.open(src);
    too_short |= p == Probe::kTooShort;
  }
  if (too_short)
    findings.Add(FindingCode::kTruncated,
                 fmt::format("{}: the data ends after {} bytes, inside a "
                             "dump signature",
                             name, src.Size()));
  else
    findings.Add(FindingCode::kUnknownFormat,
                 fmt::format("{}: no known dump signature (ELF, KDUMP, "
                             "makedumpfile)",
                             name));
  return nullptr;
}

}  // namespace

Probe ProbeDumpSignature(Source& src) {
  Probe flat = ProbeFlattened(src);
  if (flat == Probe::kMine) return Probe::kMine;
  bool too_short = flat == Probe::kTooShort;
  for (const Format& f : Formats()) {
    Probe p = f.probe(src);
    if (p == Probe::kMine) return Probe::kMine;
    too_short |= p == Probe::kTooShort;
  }
  return too_short ? Probe::kTooShort : Probe::kNotMine;
}

Unwrapped UnwrapOuter(std::unique_ptr<Source> raw) {
  Unwrapped u;
  if (OuterKind k = DetectOuter(*raw); k != OuterKind::kNone) {
    std::unique_ptr<StreamSource> stream = OpenOuter(std::move(raw), k);
    u.stream = stream.get();
    u.src = std::move(stream);
    u.outer = OuterName(k);
  } else {
    u.src = std::move(raw);
  }
  return u;
}

void OpenDump(std::unique_ptr<Source> raw, const std::string& name,
              OpenedDump& o, Findings& findings, const OpenOptions& opts) {
  Unwrapped u = UnwrapOuter(std::move(raw));
  Source* src = u.src.get();
  o.outer = u.outer;
  o.streams.push_back(u.stream);
  o.sources.push_back(std::move(u.src));
  if (u.stream) {
    // A stream whose first decoded bytes are no dump's is decoded no
    // further (a compression bomb).
    if (std::optional<std::string> not_dump = u.stream->NotADump()) {
      findings.Add(FindingCode::kUnknownFormat,
                   fmt::format("{}: {}", name, *not_dump));
      return;
    }
  }
  if (src->Size() == 0) {
    findings.Add(FindingCode::kTruncated,
                 fmt::format("{}: the file is empty", name));
    return;
  }
  {
    // A file whose start is all zeros was written but never reached the
    // disk (file size updated, data blocks lost in a reset).
    std::vector<uint8_t> head(std::min<uint64_t>(src->Size(), kZeroHead));
    size_t got = src->ReadAt(0, head);
    head.resize(got);
    if (!head.empty() && std::all_of(head.begin(), head.end(),
                                     [](uint8_t b) { return b == 0; })) {
      findings.Add(FindingCode::kZeroFilled,
                   fmt::format("{}: the first {} bytes are zero: the file "
                               "was written but its data never reached "
                               "the disk",
                               name, got));
      return;
    }
  }
  Probe flat = ProbeFlattened(*src);
  if (flat == Probe::kMine) {
    auto fl = std::make_unique<FlattenedSource>(*src, findings);
    src = fl.get();
    o.flat = fl.get();
    o.sources.push_back(std::move(fl));
    o.container = "flattened";
    if (src->Size() == 0) return;  // Findings say why.
  }
  o.reader = ProbeFormats(*src, name, flat == Probe::kTooShort, findings, opts);
}

void OpenDump(const std::string& path, OpenedDump& dump, Findings& findings,
              const OpenOptions& opts) {
  OpenDump(std::make_unique<FileSource>(path), path, dump, findings, opts);
}

namespace {

// Adds a split part, read through its decoder when it is compressed
// (dump.1.xz).
void AddPart(OpenedDump& o, std::vector<Source*>& srcs,
             std::unique_ptr<Source> part) {
  Unwrapped u = UnwrapOuter(std::move(part));
  if (u.stream) o.outer = u.outer;
  o.streams.push_back(u.stream);
  srcs.push_back(u.src.get());
  o.sources.push_back(std::move(u.src));
}

}  // namespace

void OpenSplitDump(std::vector<std::unique_ptr<Source>> parts,
                   std::vector<std::string> names, OpenedDump& o) {
  std::vector<Source*> srcs;
  for (std::unique_ptr<Source>& part : parts) AddPart(o, srcs, std::move(part));
  o.reader = OpenSplitSetReader(std::move(srcs), std::move(names));
}

void OpenSplitDump(const std::vector<std::string>& paths, OpenedDump& o) {
  std::vector<Source*> srcs;
  std::vector<std::string> names;
  for (const std::string& p : paths) {
    AddPart(o, srcs, std::make_unique<FileSource>(p));
    names.push_back(std::filesystem::path(p).filename().string());
  }
  o.reader = OpenSplitSetReader(std::move(srcs), std::move(names));
}

}  // namespace nmimgr::vmcore
