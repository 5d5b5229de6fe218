// SPDX-License-Identifier: GPL-2.0-or-later
#include "reader.h"

#include <algorithm>
#include <cstring>

#include "checked.h"

namespace nmimgr::vmcore {

void Findings::Add(Severity s, std::string code, std::string message) {
  // Messages quote dump text (vmcoreinfo values, log lines): keep them valid
  // UTF-8 whatever they quote.
  all_.push_back({s, std::move(code), ValidUtf8(message)});
}

bool Findings::Has(Severity s) const {
  return std::any_of(all_.begin(), all_.end(),
                     [s](const Finding& f) { return f.severity == s; });
}

bool Findings::HasCode(const std::string& code) const {
  return std::any_of(all_.begin(), all_.end(),
                     [&](const Finding& f) { return f.code == code; });
}

Probe ProbeMagic(Source& src, std::string_view magic) {
  std::vector<uint8_t> buf(magic.size());
  size_t n = src.ReadAt(0, buf);
  if (std::memcmp(buf.data(), magic.data(), n) != 0) return Probe::kNotMine;
  return n == magic.size() ? Probe::kMine : Probe::kTooShort;
}

const std::vector<Format>& Formats() {
  static const std::vector<Format> formats = {
      {"kdump-compressed", ProbeKdump, OpenKdumpReader},
      {"elf64", ProbeElf, OpenElfReader},
  };
  return formats;
}

}  // namespace nmimgr::vmcore
