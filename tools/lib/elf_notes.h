// SPDX-License-Identifier: GPL-2.0-or-later
//
// The PT_NOTE segments of an ELF64 vmcore (elf_phdrs.h finds them), after
// libkdumpfile's elfdump.c (process_elf_notes): an NT_PRSTATUS note per CPU
// that was saved, and VMCOREINFO, whose PAGESIZE sets the page size the
// load segments are cut into.  The notes themselves are parsed by notes.h.
//
// On-disk layout: each PT_NOTE segment's p_filesz bytes at p_offset are a
// sequence of notes (notes.h):
//
//   off size field
//     0    4 n_namesz, 4 4 n_descsz, 8 4 n_type
//    12    .. name, padded to 4; then desc, padded to 4
//
// The kernel's notes are never all zeros: a segment of zeros was allocated
// but never written.
#ifndef NMIMGR_TOOLS_LIB_ELF_NOTES_H_
#define NMIMGR_TOOLS_LIB_ELF_NOTES_H_

#include <cstdint>
#include <vector>

#include "elf_phdrs.h"
#include "findings.h"
#include "reader.h"
#include "source.h"

namespace nmimgr::vmcore {

// Reads every note segment into `facts` (cpus, vmcoreinfo and what it
// says).  Throws TruncatedError for a segment cut by the end of the file
// and CorruptError for an impossible size.
void ReadNoteSegments(Source& src, uint64_t file_size,
                      const std::vector<Segment>& notes, DumpFacts& facts,
                      Findings& findings);

// The page size VMCOREINFO names (PAGESIZE, a power of two from 512 to 1
// MiB), else 4096.
uint64_t ElfPageSize(const DumpFacts& facts);

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_ELF_NOTES_H_
