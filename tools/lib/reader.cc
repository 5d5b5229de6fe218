// SPDX-License-Identifier: GPL-2.0-or-later
#include "reader.h"

#include <algorithm>
#include <cstring>

#include "checked.h"

namespace nmimgr::vmcore {

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
