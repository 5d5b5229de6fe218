// SPDX-License-Identifier: GPL-2.0-or-later
//
// The ELF header and program header table of an ELF64 vmcore (a copy of
// /proc/vmcore, makedumpfile -E), after libkdumpfile's elfdump.c
// (init_elf64, process_elf64_phdr): the segments the note and load pieces
// (elf_notes.h, elf_loads.h) read.
//
// On-disk layout (little-endian ELF64 core file):
//
//   off  size  field (ELF header, 64 bytes)
//     0    16  e_ident: 7F 'E' 'L' 'F', class 2 (64-bit), data 1 (LSB),
//              version 1
//    16     2  e_type      4 (ET_CORE)
//    18     2  e_machine   62 (EM_X86_64)
//    32     8  e_phoff     program header table
//    40     8  e_shoff     section headers (only for PN_XNUM)
//    48     4  e_flags     bit 0: makedumpfile's incomplete flag
//    54     2  e_phentsize 56
//    56     2  e_phnum     0xffff (PN_XNUM): the count is sh_info (offset
//                          44) of section header 0
//   program header (56 bytes each, at e_phoff):
//     0     4  p_type      1 PT_LOAD, 4 PT_NOTE
//     8     8  p_offset    file offset of the segment's data
//    24     8  p_paddr     physical address
//    32     8  p_filesz    bytes in the file
//    40     8  p_memsz     bytes of memory (filesz < memsz: the rest was
//                          excluded by makedumpfile)
#ifndef NMIMGR_TOOLS_LIB_ELF_PHDRS_H_
#define NMIMGR_TOOLS_LIB_ELF_PHDRS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "findings.h"
#include "reader.h"
#include "source.h"

namespace nmimgr::vmcore {

// A PT_LOAD or PT_NOTE segment.
struct Segment {
  size_t index;  // in the program header table
  uint64_t offset, paddr, filesz, memsz;
  uint64_t avail;  // bytes of filesz actually in the file (and written)
};

// Reads and checks the ELF header and the program headers: appends each
// PT_LOAD to `loads` and each PT_NOTE to `notes` as it is read, sets
// facts.machine, adds incomplete-flag and flattened-hole findings.  Returns
// false, with an unsupported finding, for a valid ELF of another class or
// byte order.  Throws TruncatedError or CorruptError.
bool ReadProgramHeaders(Source& src, uint64_t file_size,
                        std::vector<Segment>& loads,
                        std::vector<Segment>& notes, DumpFacts& facts,
                        Findings& findings);

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_ELF_PHDRS_H_
