// SPDX-License-Identifier: GPL-2.0-or-later
//
// Opening a dump, the one way the check, discovery and the fuzz targets do
// it (and nmimgrctl, when it reads dumps): each file through its whole-file
// compression (outer.h) and its flattened container (flattened.h) to the reader
// that takes the format (reader.h's Formats(), probed in order), or, for a
// split set, each part through its compression to the split-set reader
// (kdump_split.h).
//
// What a dump file looks like from the outside in:
//
//   outer      xz/gzip/bzip2/lz4 magic at offset 0: a stream to decode
//   (inside)   all zeros in the first 4 KiB: written, never reached disk
//   flattened  "makedumpfile\0" at offset 0: records to index
//   format     "KDUMP   " (kdump_reader.h) or 7F "ELF" (elf_phdrs.h)
#ifndef NMIMGR_TOOLS_LIB_DUMP_OPEN_H_
#define NMIMGR_TOOLS_LIB_DUMP_OPEN_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "findings.h"
#include "flattened.h"
#include "outer.h"
#include "reader.h"
#include "source.h"

namespace nmimgr::vmcore {

// Whether `src` starts with a dump's signature: kMine for a flattened
// stream or a format of Formats(), kTooShort when the data ends inside one
// of their signatures.  A whole-file compression is not looked into
// (DetectOuter tells it).
Probe ProbeDumpSignature(Source& src);

// `raw` through its whole-file compression, when it has one.
struct Unwrapped {
  std::unique_ptr<Source> src;     // the stream, or `raw` itself
  StreamSource* stream = nullptr;  // src when it is a stream
  std::string outer;               // "xz", "gzip", "bzip2", "lz4" or ""
};
Unwrapped UnwrapOuter(std::unique_ptr<Source> raw);

struct OpenOptions {
  // Only the format of this name (Format::name); empty: every format.
  std::string_view format;
};

// One dump, opened for reading.
struct OpenedDump {
  // The sources the reader reads, kept alive for it (each file's first).
  std::vector<std::unique_ptr<Source>> sources;
  // nullptr when no reader takes the dump: the findings say why.
  std::unique_ptr<DumpReader> reader;
  std::string outer;      // "xz", "gzip", "bzip2", "lz4" or ""
  std::string container;  // "flattened" or ""
  // Per file, its whole-file stream, or nullptr.
  std::vector<StreamSource*> streams;
  FlattenedSource* flat = nullptr;  // one file's flattened container
};

// Opens one dump file read from `raw` (named `name` in findings) into
// `dump`, which is filled as it goes: what was learned before an error
// (outer, container) stays.  What keeps the file from a reader (empty,
// zeros, a stream that is no dump, no known signature) becomes a finding.
// Throws the errors of checked.h.
void OpenDump(std::unique_ptr<Source> raw, const std::string& name,
              OpenedDump& dump, Findings& findings,
              const OpenOptions& opts = {});
// The same for a file on disk.
void OpenDump(const std::string& path, OpenedDump& dump, Findings& findings,
              const OpenOptions& opts = {});

// Opens the parts of a split set (sorted by start pfn) into `dump`, each
// through its whole-file compression; `names` name them in findings.
void OpenSplitDump(std::vector<std::unique_ptr<Source>> parts,
                   std::vector<std::string> names, OpenedDump& dump);
// The same for files on disk (named by their file names).
void OpenSplitDump(const std::vector<std::string>& paths, OpenedDump& dump);

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_DUMP_OPEN_H_
