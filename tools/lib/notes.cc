// SPDX-License-Identifier: GPL-2.0-or-later
#include "notes.h"

#include <fmt/format.h>

#include <charconv>

#include "checked.h"

namespace nmimgr::vmcore {
namespace {

uint64_t Align4(uint64_t v) { return (v + 3) & ~uint64_t{3}; }

}  // namespace

NoteSummary ParseNotes(std::span<const uint8_t> data, uint64_t base,
                       Findings& findings) {
  NoteSummary sum;
  ByteView v(data, base, "elf note");
  uint64_t pos = 0;
  while (pos + 12 <= v.size()) {
    uint32_t namesz = v.Le32(pos), descsz = v.Le32(pos + 4),
             type = v.Le32(pos + 8);
    if (namesz == 0 && descsz == 0 && type == 0) break;  // zero padding
    uint64_t name_off = pos + 12;
    uint64_t desc_off = name_off + Align4(namesz);
    uint64_t next = desc_off + Align4(descsz);
    if (next > v.size()) {
      findings.Add(FindingCode::kBadNote,
                   fmt::format("elf note at offset {}: name {} and desc {} "
                               "bytes run past the {}-byte note segment",
                               base + pos, namesz, descsz, v.size()));
      break;
    }
    std::string name = v.CString(name_off, namesz);
    if (name == "CORE" && type == 1) ++sum.prstatus;
    if (name == "VMCOREINFO") sum.vmcoreinfo = v.CString(desc_off, descsz);
    pos = next;
  }
  return sum;
}

std::optional<std::string> VmcoreinfoValue(const std::string& text,
                                           const std::string& key) {
  std::string needle = key + "=";
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    if (text.compare(pos, needle.size(), needle) == 0)
      return text.substr(pos + needle.size(), eol - pos - needle.size());
    pos = eol + 1;
  }
  return std::nullopt;
}

void ApplyVmcoreinfo(const std::string& text, DumpFacts& facts) {
  if (text.empty()) return;
  facts.vmcoreinfo = text;
  if (auto r = VmcoreinfoValue(text, "OSRELEASE"); r && !r->empty())
    facts.kernel_release = *r;
  if (auto t = VmcoreinfoValue(text, "CRASHTIME")) {
    int64_t v = 0;
    auto [p, ec] = std::from_chars(t->data(), t->data() + t->size(), v);
    if (ec == std::errc() && p == t->data() + t->size()) facts.crash_time = v;
  }
}

}  // namespace nmimgr::vmcore
