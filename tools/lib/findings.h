// SPDX-License-Identifier: GPL-2.0-or-later
//
// Findings: what a check says about a dump, each with a stable code from one
// table (kFindingCodes) that fixes its severity.  docs/vmcore-check.md's
// "Verdicts" table documents the same codes; test_findings.cc holds the two
// to each other.
//
// Errors become findings in one place, AddErrorFinding (after bloaty's single
// catch in BloatyMain and libkdumpfile's kdump_status): readers and the
// check throw the error types of checked.h, and whoever stops at an error
// hands it to AddErrorFinding (or lets CatchErrors do it).
#ifndef NMIMGR_TOOLS_LIB_FINDINGS_H_
#define NMIMGR_TOOLS_LIB_FINDINGS_H_

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "checked.h"

namespace nmimgr::vmcore {

// What a finding means for the verdict.
enum class Severity {
  kIncomplete,  // data is missing: truncated, flagged, killed write
  kCorrupt,     // data is there but impossible
  kUnreadable,  // the tool could not read it (I/O)
};

// "incomplete", "corrupt", "unreadable".
const char* SeverityName(Severity s);

enum class FindingCode : uint8_t {
  kTruncated,
  kIncompleteFlag,
  kZeroDescriptors,
  kZeroFilled,
  kEmptyBitmap,
  kNoPages,
  kBitmapUnwritten,
  kZeroData,
  kFlattenedHole,
  kNoEndMarker,
  kOuterTruncated,
  kIncompleteName,
  kSplitPartMissing,
  kDumpMissing,
  kUnknownFormat,
  kUnsupported,
  kBadVersion,
  kCorrupt,
  kImpossibleSize,
  kBadDescriptor,
  kOverlap,
  kBitmapMismatch,
  kBadNote,
  kBadPage,
  kTrailingData,
  kSplitMismatch,
  kIoError,
};

struct FindingCodeInfo {
  FindingCode code;
  std::string_view name;  // the stable code of the JSON output
  Severity severity;
  std::string_view meaning;  // one line; the doc's table says more
};

// Every finding code, in FindingCode order.
inline constexpr std::array<FindingCodeInfo, 27> kFindingCodes = {{
    {FindingCode::kTruncated, "truncated", Severity::kIncomplete,
     "the file ends inside a structure"},
    {FindingCode::kIncompleteFlag, "incomplete-flag", Severity::kIncomplete,
     "makedumpfile flagged the dump incomplete (out of space)"},
    {FindingCode::kZeroDescriptors, "zero-descriptors", Severity::kIncomplete,
     "page descriptors all zero inside the file: a killed write"},
    {FindingCode::kZeroFilled, "zero-filled", Severity::kIncomplete,
     "written, but the data never reached the disk"},
    {FindingCode::kEmptyBitmap, "empty-bitmap", Severity::kIncomplete,
     "the kdump bitmaps mark no memory: never written"},
    {FindingCode::kNoPages, "no-pages", Severity::kIncomplete,
     "the second bitmap dumps none of the memory"},
    {FindingCode::kBitmapUnwritten, "bitmap-unwritten", Severity::kIncomplete,
     "the capture stopped before it wrote the rest of the second bitmap"},
    {FindingCode::kZeroData, "zero-data", Severity::kIncomplete,
     "compressed page data that is all zero bytes"},
    {FindingCode::kFlattenedHole, "flattened-hole", Severity::kIncomplete,
     "a flattened stream lacks records for bytes the dump needs"},
    {FindingCode::kNoEndMarker, "no-end-marker", Severity::kIncomplete,
     "flattened stream without its end marker"},
    {FindingCode::kOuterTruncated, "outer-truncated", Severity::kIncomplete,
     "a whole-file xz/gzip/bzip2/lz4 stream ends early"},
    {FindingCode::kIncompleteName, "incomplete-name", Severity::kIncomplete,
     "the file's name says the capture did not finish"},
    {FindingCode::kSplitPartMissing, "split-part-missing",
     Severity::kIncomplete, "no part of a split set covers a pfn range"},
    {FindingCode::kDumpMissing, "dump-missing", Severity::kIncomplete,
     "the dump directory has no dump file"},
    {FindingCode::kUnknownFormat, "unknown-format", Severity::kCorrupt,
     "no known dump signature"},
    {FindingCode::kUnsupported, "unsupported", Severity::kCorrupt,
     "an ELF dump that is 32-bit or big-endian"},
    {FindingCode::kBadVersion, "bad-version", Severity::kCorrupt,
     "flattened type/version not 1/1"},
    {FindingCode::kCorrupt, "corrupt", Severity::kCorrupt,
     "an impossible header field or bitmap bits past max_mapnr"},
    {FindingCode::kImpossibleSize, "impossible-size", Severity::kCorrupt,
     "a flattened record with an impossible offset or size"},
    {FindingCode::kBadDescriptor, "bad-descriptor", Severity::kCorrupt,
     "a page descriptor with impossible flags or size"},
    {FindingCode::kOverlap, "overlap", Severity::kCorrupt,
     "data that overlaps other data"},
    {FindingCode::kBitmapMismatch, "bitmap-mismatch", Severity::kCorrupt,
     "the bitmaps and the descriptor table disagree"},
    {FindingCode::kBadNote, "bad-note", Severity::kCorrupt,
     "an ELF note running past its segment"},
    {FindingCode::kBadPage, "bad-page", Severity::kCorrupt,
     "a page that does not decode to exactly one page"},
    {FindingCode::kTrailingData, "trailing-data", Severity::kCorrupt,
     "bytes after the end of a container or stream"},
    {FindingCode::kSplitMismatch, "split-mismatch", Severity::kCorrupt,
     "parts of a split set that disagree"},
    {FindingCode::kIoError, "io-error", Severity::kUnreadable,
     "open or read failed"},
}};

// The table's entry of `code`.
constexpr const FindingCodeInfo& InfoOf(FindingCode code) {
  return kFindingCodes[static_cast<size_t>(code)];
}

struct Finding {
  Severity severity;
  std::string code;     // stable identifier, see docs/vmcore-check.md
  std::string message;  // lowercase, chained context
};

class Findings {
 public:
  // The severity is the code's (kFindingCodes).
  void Add(FindingCode code, std::string message);
  // For callers that name a code by its text: throws std::logic_error when
  // `code` is not in kFindingCodes or has another severity there.
  void Add(Severity s, std::string_view code, std::string message);
  const std::vector<Finding>& all() const { return all_; }
  bool Has(Severity s) const;
  bool HasCode(const std::string& code) const;
  bool HasCode(FindingCode code) const;

 private:
  std::vector<Finding> all_;
};

// The one mapping from the library's errors (checked.h) to findings:
// IoError -> io-error, UnwrittenError -> flattened-hole, TruncatedError ->
// truncated, CorruptError -> corrupt; `prefix` goes before the message.
// Returns false, adding nothing, for any other exception.
bool AddErrorFinding(Findings& findings, const std::exception& error,
                     std::string_view prefix = {});

// Which of the library's errors CatchErrors turns into findings: a reader's
// structural walk lets an I/O error through to the check of the dump, which
// reports it; the check catches all of them.
enum class Catch { kDataErrors, kAllErrors };

// Runs fn(); a library error it throws (of the kinds `which` names) becomes
// a finding through AddErrorFinding.  Returns false when fn threw one.
template <class Fn>
bool CatchErrors(Findings& findings, Catch which, std::string_view prefix,
                 Fn&& fn) {
  try {
    fn();
    return true;
  } catch (const IoError& e) {
    if (which != Catch::kAllErrors) throw;
    AddErrorFinding(findings, e, prefix);
  } catch (const TruncatedError& e) {
    AddErrorFinding(findings, e, prefix);
  } catch (const CorruptError& e) {
    AddErrorFinding(findings, e, prefix);
  }
  return false;
}

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_FINDINGS_H_
