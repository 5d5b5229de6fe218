// SPDX-License-Identifier: GPL-2.0-or-later
//
// makedumpfile's flattened format (-F; what Debian's kdump-tools writes),
// read in place: an index of its records gives a random-access view of the
// dump it carries, without rearranging the file.
//
// On-disk layout (all integers big-endian, signed 64-bit):
//
//   off    size  field
//     0      16  signature   "makedumpfile", NUL-padded
//    16       8  type        1 (TYPE_FLAT_HEADER)
//    24       8  version     1 (VERSION_FLAT_HEADER)
//    32    4064  zero        the header block is 4096 bytes
//   4096         records, each:
//                   8  offset     where the data goes in the dump
//                   8  buf_size   bytes of data that follow
//            buf_size  data
//   end marker: a record header with offset = -1 and buf_size = -1.
//
// A later record overrides an earlier one where they overlap (makedumpfile
// rewrites its headers).  Bytes of the logical dump that no record covers
// read as zero, as they would in the rearranged sparse file, but they are
// data the stream never delivered: readers check structures against
// Written() and report what lies there as missing.  The logical size is the
// largest offset + buf_size of a record that carries data (an empty record
// writes nothing and does not extend it).  A stream cut short lacks the end
// marker (makedumpfile never flags a flattened dump incomplete itself).
#ifndef NMIMGR_TOOLS_LIB_FLATTENED_H_
#define NMIMGR_TOOLS_LIB_FLATTENED_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "reader.h"
#include "source.h"

namespace nmimgr::vmcore {

inline constexpr uint64_t kFlatHeaderSize = 4096;

Probe ProbeFlattened(Source& src);

class FlattenedSource : public Source {
 public:
  // Indexes the records of `file`; problems become findings.  Throws IoError.
  FlattenedSource(Source& file, Findings& findings);

  uint64_t Size() override { return size_; }
  size_t ReadAt(uint64_t offset, std::span<uint8_t> out) override;
  // From the record map: the bytes up to the first one no record carries.
  uint64_t Written(uint64_t offset, uint64_t len) override;
  bool ThreadSafe() const override { return file_.ThreadSafe(); }
  std::string Name() const override { return file_.Name(); }

  uint64_t records() const { return records_; }
  bool has_end_marker() const { return end_marker_; }
  // Reads that asked for bytes no record carries: the dump needed data the
  // stream never delivered.  Padding between structures is never read, so
  // any such read means missing data.
  uint64_t hole_reads() const;
  std::string FirstHole() const;  // "[a, b)" of the first one

 private:
  struct Extent {
    uint64_t end;       // logical end (exclusive)
    uint64_t file_off;  // file offset of the logical start
  };
  void Insert(uint64_t start, uint64_t len, uint64_t file_off);

  Source& file_;
  std::map<uint64_t, Extent> map_;  // logical start -> extent, disjoint
  uint64_t size_ = 0;
  uint64_t records_ = 0;
  bool end_marker_ = false;
  mutable std::mutex mu_;
  uint64_t hole_reads_ = 0;
  uint64_t hole_start_ = 0;
};

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_FLATTENED_H_
