// SPDX-License-Identifier: GPL-2.0-or-later
//
// The kernel log read out of a dump: the printk ring buffer of Linux 5.10
// and later (the lockless ringbuffer), found and laid out through
// VMCOREINFO, for dumps that come without a saved dmesg file.  x86_64 only.
//
// What VMCOREINFO gives and how it is used:
//   SYMBOL(prb)                  address of `struct printk_ringbuffer *prb`
//   OFFSET(printk_ringbuffer.desc_ring), .text_data_ring
//   OFFSET(prb_desc_ring.count_bits), .descs, .infos, .head_id, .tail_id
//   SIZE(prb_desc), OFFSET(prb_desc.state_var), .text_blk_lpos
//   OFFSET(prb_data_blk_lpos.begin), .next
//   SIZE(printk_info), OFFSET(printk_info.ts_nsec), .text_len
//   OFFSET(prb_data_ring.size_bits), .data
//   OFFSET(atomic_long_t.counter)
//   NUMBER(phys_base), SYMBOL(init_top_pgt), NUMBER(pgtable_l5_enabled)
//
// Descriptor state_var: the top two bits are the state (1 committed,
// 2 finalized hold readable records), the rest the record id; a record's id
// indexes the descriptor and info arrays modulo 2^count_bits.  A text block
// at lpos `begin` .. `next` in a data ring of 2^size_bits bytes starts with
// the record id (8 bytes) and then the text; when begin and next lie in
// different wraps of the ring the block was placed at index 0.  An lpos with
// bit 0 set means the record has no text.
//
// Kernel virtual addresses: the kernel text mapping (from
// 0xffffffff80000000) is linear with phys_base; any other address is walked
// through the page tables at init_top_pgt (4 or 5 levels, 1 GiB and 2 MiB
// pages).
#ifndef NMIMGR_TOOLS_LIB_KERNEL_LOG_H_
#define NMIMGR_TOOLS_LIB_KERNEL_LOG_H_

#include <optional>
#include <string>

#include "reader.h"

namespace nmimgr::vmcore {

struct KernelLog {
  std::string text;  // "[    3.449047] message\n" per record, oldest first
  uint64_t records = 0;
  // The largest ts_nsec of a readable record: the uptime, by printk's
  // local_clock, of the last message before the dump.
  std::optional<uint64_t> last_ts_nsec;
};

// Reads the log; nullopt with `why` ("vmcoreinfo has no SYMBOL(prb)", ...)
// when the dump does not allow it.  Never throws for missing or bad data.
std::optional<KernelLog> ReadKernelLog(DumpReader& reader,
                                       const DumpFacts& facts,
                                       std::string* why);

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_KERNEL_LOG_H_
