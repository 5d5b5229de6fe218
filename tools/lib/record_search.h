// SPDX-License-Identifier: GPL-2.0-or-later
//
// Finding nmimgr's trigger record without reading the whole dump.  The
// record is a static object of the module (module/nmimgr_main.c), so it
// lies in the module area, or in the kernel image's data when nmimgr is
// built in.  The search walks the crashed kernel's page tables
// (kernel_vm.h) over the module area and shows the trigger scanner only the
// pages mapped there writable: the module wrote the record through that
// mapping, so a page it could not write cannot hold it.  The kernel image is
// walked too when the module area holds no record and the kernel log has
// nmimgr's panic line (a built-in nmimgr).  Pages are shown in virtual
// order with a prefix of the next virtual page, so a version 1 record that
// crosses into a page that is not physically adjacent is read whole.
//
// The walk settles the search when it finds a record, or when it read every
// table and page of the ranges it walked; otherwise (no VMCOREINFO for the
// walk, tables that do not map the kernel, tables or pages of the range not
// in the dump) the caller falls back to the page scan of the whole dump,
// and `reason` says why.
#ifndef NMIMGR_TOOLS_LIB_RECORD_SEARCH_H_
#define NMIMGR_TOOLS_LIB_RECORD_SEARCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "reader.h"
#include "trigger.h"

namespace nmimgr::vmcore {

struct RecordSearch {
  std::string method;  // "page-tables", "page-scan"; "" when not searched
  // Why the page scan ran, or, after a walk, a note on what it covered
  // (e.g. the default module area when VMCOREINFO lacks the image size).
  std::string reason;
  std::vector<std::string> ranges;  // walked: "modules", "kernel-image"
  uint64_t tables_read = 0, tables_missing = 0;
  uint64_t pages_read = 0, pages_missing = 0;
};

// Walks as the file comment says; returns true when the walk settled the
// search (the scanner then holds what it found), false when the page scan
// must run (with a fresh scanner: this one has seen part of the dump).
bool SearchByPageTables(DumpReader& reader, const DumpFacts& facts,
                        bool builtin_wanted, TriggerScanner& scanner,
                        RecordSearch& search);

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_RECORD_SEARCH_H_
