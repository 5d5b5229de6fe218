// SPDX-License-Identifier: GPL-2.0-or-later
#include "kernel_log.h"

#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <span>

#include "checked.h"
#include "kernel_vm.h"

namespace nmimgr::vmcore {
namespace {

constexpr uint64_t kMaxRingBytes = 64ull << 20;

using Fail = VmError;

// A buffer of `n` bytes, not zeroed, its pages made present up front: the
// rings' copy is about 0.6 MB of fresh memory for a 128 KiB log, a page
// fault per 4 KiB page as the reads fill it, and under virtualisation a
// fault costs several microseconds (the default check of the 18 MB lab dump
// took 1.2 ms less with one madvise).  MADV_POPULATE_WRITE needs Linux
// 5.14; elsewhere the call fails and the pages fault in as before.
std::unique_ptr<uint8_t[]> PopulatedBuffer(uint64_t n) {
  auto buf = std::make_unique_for_overwrite<uint8_t[]>(n);
#ifdef MADV_POPULATE_WRITE
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t at = reinterpret_cast<uintptr_t>(buf.get());
  const uintptr_t lo = (at + page - 1) & ~(page - 1),
                  hi = (at + n) & ~(page - 1);
  if (hi > lo)
    ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_POPULATE_WRITE);
#endif
  return buf;
}

KernelLog Read(DumpReader& reader, const DumpFacts& facts) {
  if (!facts.machine.empty() && facts.machine != "x86_64")
    throw Fail("reading the kernel log is supported on x86_64 only, not " +
               facts.machine);
  Vmcoreinfo vi(facts.vmcoreinfo);
  if (!vi.Has("SYMBOL(prb)"))
    throw Fail("vmcoreinfo has no SYMBOL(prb) (kernel older than 5.10?)");
  KernelVm mem(reader, vi);
  auto off = [&](const char* k) {
    return vi.Dec(std::string("OFFSET(") + k + ")");
  };
  auto size = [&](const char* k) {
    return vi.Dec(std::string("SIZE(") + k + ")");
  };
  const uint64_t counter = off("atomic_long_t.counter");

  uint64_t prb = mem.U64(vi.Hex("SYMBOL(prb)"), "prb");
  uint64_t desc_ring = prb + off("printk_ringbuffer.desc_ring");
  uint64_t text_ring = prb + off("printk_ringbuffer.text_data_ring");
  uint32_t count_bits =
      mem.U32(desc_ring + off("prb_desc_ring.count_bits"), "count_bits");
  uint64_t descs = mem.U64(desc_ring + off("prb_desc_ring.descs"), "descs");
  uint64_t infos = mem.U64(desc_ring + off("prb_desc_ring.infos"), "infos");
  uint64_t head_id =
      mem.U64(desc_ring + off("prb_desc_ring.head_id") + counter, "head_id");
  uint64_t tail_id =
      mem.U64(desc_ring + off("prb_desc_ring.tail_id") + counter, "tail_id");
  uint32_t size_bits =
      mem.U32(text_ring + off("prb_data_ring.size_bits"), "size_bits");
  uint64_t data = mem.U64(text_ring + off("prb_data_ring.data"), "data");

  const uint64_t desc_size = size("prb_desc"), info_size = size("printk_info");
  if (count_bits > 24 || size_bits > 26 || size_bits < 4 || desc_size < 24 ||
      info_size < 24)
    throw Fail(
        fmt::format("printk ring sizes are impossible (count_bits {}, "
                    "size_bits {})",
                    count_bits, size_bits));
  const uint64_t count = 1ull << count_bits, ring = 1ull << size_bits;
  if (count * (desc_size + info_size) + ring > kMaxRingBytes)
    throw Fail("printk ring is too large");
  // Not zeroed first: mem.Read fills every byte or throws.
  const uint64_t dlen = count * desc_size, ilen = count * info_size;
  std::unique_ptr<uint8_t[]> buf = PopulatedBuffer(dlen + ilen + ring);
  std::span<uint8_t> dbuf(buf.get(), dlen), ibuf(buf.get() + dlen, ilen),
      text(buf.get() + dlen + ilen, ring);
  mem.Read(descs, dbuf, "printk descriptors");
  mem.Read(infos, ibuf, "printk infos");
  mem.Read(data, text, "printk text");
  ByteView dv(dbuf, 0, "printk descriptors"), iv(ibuf, 0, "printk infos"),
      tv(text, 0, "printk text");

  const uint64_t sv_off = off("prb_desc.state_var") + counter;
  const uint64_t lpos_off = off("prb_desc.text_blk_lpos");
  const uint64_t begin_off = lpos_off + off("prb_data_blk_lpos.begin");
  const uint64_t next_off = lpos_off + off("prb_data_blk_lpos.next");
  const uint64_t ts_off = off("printk_info.ts_nsec");
  const uint64_t len_off = off("printk_info.text_len");
  constexpr uint64_t kIdMask = ~(3ull << 62);

  KernelLog log;
  uint64_t id = tail_id & kIdMask;
  for (uint64_t n = 0; n <= count; ++n, id = (id + 1) & kIdMask) {
    uint64_t idx = id & (count - 1);
    ByteView d = dv.Slice(idx * desc_size, desc_size);
    uint64_t sv = d.Le64(sv_off);
    uint64_t state = sv >> 62;
    bool done = id == (head_id & kIdMask);
    if ((sv & kIdMask) == id && (state == 1 || state == 2)) {
      uint64_t begin = d.Le64(begin_off), next = d.Le64(next_off);
      ByteView info = iv.Slice(idx * info_size, info_size);
      uint64_t ts = info.Le64(ts_off);
      uint16_t text_len = info.Le16(len_off);
      std::string line;
      if (!(begin & 1) && !(next & 1)) {
        uint64_t b = begin & (ring - 1), blk;
        if ((begin >> size_bits) == (next >> size_bits)) {
          blk = next - begin;
        } else {
          b = 0;
          blk = next & (ring - 1);
        }
        if (blk >= 8 && b + blk <= ring)
          line = tv.Slice(b + 8, std::min<uint64_t>(text_len, blk - 8))
                     .CString(0, std::min<uint64_t>(text_len, blk - 8));
      }
      // Continuation lines are indented under the text, as dmesg and
      // makedumpfile --dump-dmesg print them.
      std::string prefix =
          fmt::format("[{:5}.{:06}] ", ts / 1000000000, ts % 1000000000 / 1000);
      std::string indent(prefix.size(), ' ');
      log.text += prefix;
      for (char c : line) {
        log.text += c;
        if (c == '\n') log.text += indent;
      }
      log.text += '\n';
      ++log.records;
      log.last_ts_nsec = std::max(log.last_ts_nsec.value_or(0), ts);
    }
    if (done) break;
  }
  return log;
}

}  // namespace

std::optional<KernelLog> ReadKernelLog(DumpReader& reader,
                                       const DumpFacts& facts,
                                       std::string* why) {
  try {
    return Read(reader, facts);
  } catch (const Fail& e) {
    if (why) *why = e.what();
  } catch (const CorruptError& e) {
    if (why) *why = e.what();
  } catch (const TruncatedError& e) {
    if (why) *why = e.what();
  }
  return std::nullopt;
}

}  // namespace nmimgr::vmcore
