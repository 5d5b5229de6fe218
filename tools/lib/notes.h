// SPDX-License-Identifier: GPL-2.0-or-later
//
// ELF note parsing shared by the ELF and kdump-compressed readers.
//
// Note layout (little-endian, 4-byte aligned):
//   off size field
//     0    4 n_namesz   name length including its NUL
//     4    4 n_descsz   descriptor length
//     8    4 n_type     NT_PRSTATUS (1) per CPU under name "CORE";
//                       0 for "VMCOREINFO"
//    12    .. name, padded to 4; then desc, padded to 4
#ifndef NMIMGR_TOOLS_LIB_NOTES_H_
#define NMIMGR_TOOLS_LIB_NOTES_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "reader.h"

namespace nmimgr::vmcore {

// The most bytes of notes or VMCOREINFO a dump's headers may claim (a
// kdump sub-header's regions, an ELF note segment).
inline constexpr uint64_t kMaxNoteBytes = 64ull << 20;

struct NoteSummary {
  uint32_t prstatus = 0;   // NT_PRSTATUS notes: one per CPU that was saved
  std::string vmcoreinfo;  // text of the VMCOREINFO note, if any
};

// Parses notes in `data` (read from file offset `base`).  A note that runs
// past the buffer is a corrupt finding; parsing stops there.
NoteSummary ParseNotes(std::span<const uint8_t> data, uint64_t base,
                       Findings& findings);

// Value of KEY=value in vmcoreinfo text, if present.
std::optional<std::string> VmcoreinfoValue(const std::string& text,
                                           const std::string& key);

// Fills kernel_release, crash_time and page size from vmcoreinfo text.
void ApplyVmcoreinfo(const std::string& text, DumpFacts& facts);

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_NOTES_H_
