// SPDX-License-Identifier: GPL-2.0-or-later
#include "findings.h"

#include <algorithm>

namespace nmimgr::vmcore {
namespace {

// The table is indexed by FindingCode: each entry must sit at its own index.
constexpr bool TableInOrder() {
  for (size_t i = 0; i < kFindingCodes.size(); ++i)
    if (static_cast<size_t>(kFindingCodes[i].code) != i) return false;
  return true;
}
static_assert(TableInOrder(), "kFindingCodes must be in FindingCode order");
static_assert(kFindingCodes.size() ==
                  static_cast<size_t>(FindingCode::kIoError) + 1,
              "every FindingCode needs its entry in kFindingCodes");

}  // namespace

const char* SeverityName(Severity s) {
  switch (s) {
    case Severity::kIncomplete:
      return "incomplete";
    case Severity::kCorrupt:
      return "corrupt";
    case Severity::kUnreadable:
      return "unreadable";
  }
  return "?";
}

void Findings::Add(FindingCode code, std::string message) {
  const FindingCodeInfo& info = InfoOf(code);
  // Messages quote dump text (vmcoreinfo values, log lines): keep them valid
  // UTF-8 whatever they quote.
  all_.push_back({info.severity, std::string(info.name), ValidUtf8(message)});
}

void Findings::Add(Severity s, std::string_view code, std::string message) {
  auto it = std::find_if(
      kFindingCodes.begin(), kFindingCodes.end(),
      [&](const FindingCodeInfo& info) { return info.name == code; });
  if (it == kFindingCodes.end())
    throw std::logic_error("finding code '" + std::string(code) +
                           "' is not in the table");
  if (it->severity != s)
    throw std::logic_error("finding code '" + std::string(code) +
                           "' has another severity");
  Add(it->code, std::move(message));
}

bool Findings::Has(Severity s) const {
  return std::any_of(all_.begin(), all_.end(),
                     [s](const Finding& f) { return f.severity == s; });
}

bool Findings::HasCode(const std::string& code) const {
  return std::any_of(all_.begin(), all_.end(),
                     [&](const Finding& f) { return f.code == code; });
}

bool Findings::HasCode(FindingCode code) const {
  return HasCode(std::string(InfoOf(code).name));
}

bool AddErrorFinding(Findings& findings, const std::exception& error,
                     std::string_view prefix) {
  FindingCode code;
  if (dynamic_cast<const IoError*>(&error))
    code = FindingCode::kIoError;
  else if (dynamic_cast<const UnwrittenError*>(&error))
    code = FindingCode::kFlattenedHole;
  else if (dynamic_cast<const TruncatedError*>(&error))
    code = FindingCode::kTruncated;
  else if (dynamic_cast<const CorruptError*>(&error))
    code = FindingCode::kCorrupt;
  else
    return false;
  findings.Add(code, std::string(prefix) + error.what());
  return true;
}

}  // namespace nmimgr::vmcore
