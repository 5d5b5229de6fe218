// SPDX-License-Identifier: GPL-2.0-or-later
//
// The fuzz entries: one function per reader or parser of nmimgr_vmcore that
// takes bytes from a file, and one for the module's policy core
// (module/policy.c).  Each libFuzzer target calls one of them, and the
// replay test (bench/CMakeLists.txt, nmimgr-fuzz-replay) runs every input
// kept in fuzz/corpus/<target>/ through the same function in a normal build.
//
// An entry returns normally for every input.  The library's own error types
// (IoError, CorruptError, TruncatedError) are caught where CheckDump catches
// them, by the same CatchErrors (findings.h); any other exception, a crash,
// or a sanitizer report is a bug.  Dumps are opened as the check opens them
// (OpenDump, OpenSplitDump: dump_open.h).
#ifndef NMIMGR_FUZZ_ENTRIES_H_
#define NMIMGR_FUZZ_ENTRIES_H_

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace nmimgr::fuzz {

using Entry = void (*)(const uint8_t* data, size_t size);

struct Target {
  const char* name;  // fuzz target nmimgr-fuzz-<name>, fuzz/corpus/<name>/
  Entry entry;
  const char* what;
};

// All targets, in a fixed order.
const std::vector<Target>& Targets();
// The target called `name`, or nullptr.
const Target* FindTarget(std::string_view name);

// Input layouts of the targets whose input is not one file:
//
// split:      byte 0: number of parts - 1 (mod 4); then per part a 4-byte
//             little-endian length (cut to what is left) and the bytes.
// kernel-log: VMCOREINFO text, one NUL, then physical memory from
//             kKernelLogMemBase (the builder's phys_base, pfn 40).
// trigger:    kernel log text, also scanned as raw 4 KiB pages for records
//             and panic lines in memory.
// policy:     a string for every parser of module/policy.c (a NUL ends it);
//             the same bytes also make up a policy: 32 per list as a bit
//             set, then mask, dry_run and the confirmation window
//             (policy_entry.cc).
inline constexpr uint64_t kKernelLogMemBase = 40 * 4096;

// The policy core's entry (policy_entry.cc): it needs only module/policy.c,
// not the library.
void FuzzPolicy(const uint8_t* data, size_t size);

}  // namespace nmimgr::fuzz

#endif  // NMIMGR_FUZZ_ENTRIES_H_
