// SPDX-License-Identifier: GPL-2.0-or-later
//
// Byte sources a dump reader reads from: a plain file (pread), a buffer in
// memory (tests), a whole-file compressed stream (outer.h) and the logical
// view of a flattened stream (flattened.h).  All are random access from the
// reader's point of view; a source decides how to serve that.
#ifndef NMIMGR_TOOLS_LIB_SOURCE_H_
#define NMIMGR_TOOLS_LIB_SOURCE_H_

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nmimgr::vmcore {

class Source {
 public:
  virtual ~Source() = default;
  // Size of the data in bytes.  May have to read a stream to its end once.
  virtual uint64_t Size() = 0;
  // Reads up to out.size() bytes at `offset`; returns fewer only at the end
  // of the data.  Throws IoError when the underlying file cannot be read and
  // CorruptError when a compressed container cannot be decoded.
  virtual size_t ReadAt(uint64_t offset, std::span<uint8_t> out) = 0;
  // How many bytes at the start of [offset, offset + len) are backed by data
  // that was written (a prefix length, at most len).  Readers check a
  // structure against it before walking it, so that the work they do stays
  // bounded by bytes on disk, not by sizes the dump claims.  The default:
  // everything before Size() (a plain file's holes read as zeros, which is
  // fine); a flattened stream answers from its record map.
  virtual uint64_t Written(uint64_t offset, uint64_t len) {
    uint64_t size = Size();
    if (offset >= size) return 0;
    return std::min(len, size - offset);
  }
  // The first offset at or after `offset` that may hold data, or Size()
  // when none does.  A sparse file's holes read as zeros; readers that
  // count or scan skip them, so that a header claiming a huge region costs
  // only the bytes on disk.  The default: every byte may hold data.
  virtual uint64_t DataFrom(uint64_t offset) {
    return std::min(offset, Size());
  }
  // The end of the data run that holds `offset`: the next hole or Size().
  virtual uint64_t HoleFrom(uint64_t offset) {
    (void)offset;
    return Size();
  }
  // Whether concurrent ReadAt calls are safe.
  virtual bool ThreadSafe() const { return false; }
  // A name for messages (the file path).
  virtual std::string Name() const = 0;
};

// Reads exactly out.size() bytes at `offset`.  A short read throws
// TruncatedError: "reading <what>: short read at offset O (N bytes wanted,
// data ends at S)".
void ReadExact(Source& src, uint64_t offset, std::span<uint8_t> out,
               std::string_view what);
// Throws TruncatedError when [offset, offset + length) goes past the end of
// the data and UnwrittenError when part of it was never written: "<what>:
// N bytes at offset O: no data was written for [a, b)".
void RequireWritten(Source& src, uint64_t offset, uint64_t length,
                    std::string_view what);
// Calls fn(a, b) for each run [a, b) inside [offset, offset + len) that may
// hold data (Source::DataFrom), in order; bytes outside the runs read as
// zeros.
template <class Fn>
void ForEachDataRun(Source& src, uint64_t offset, uint64_t len, Fn&& fn) {
  const uint64_t end = offset + std::min(len, UINT64_MAX - offset);
  for (uint64_t at = offset; at < end;) {
    uint64_t a = std::max(at, src.DataFrom(at));
    if (a >= end) break;
    uint64_t b = std::min(end, std::max(a + 1, src.HoleFrom(a)));
    fn(a, b);
    at = b;
  }
}
// ReadExact into a new buffer, after RequireWritten.
std::vector<uint8_t> ReadVector(Source& src, uint64_t offset, uint64_t length,
                                std::string_view what);

class FileSource : public Source {
 public:
  // Opens read-only.  Throws IoError.
  explicit FileSource(const std::string& path);
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  uint64_t Size() override { return size_; }
  size_t ReadAt(uint64_t offset, std::span<uint8_t> out) override;
  // SEEK_DATA and SEEK_HOLE; where the file system has no hole support the
  // whole file is one data run.
  uint64_t DataFrom(uint64_t offset) override;
  uint64_t HoleFrom(uint64_t offset) override;
  bool ThreadSafe() const override { return true; }
  std::string Name() const override { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

class MemorySource : public Source {
 public:
  MemorySource(std::vector<uint8_t> data, std::string name = "<memory>")
      : data_(std::move(data)), name_(std::move(name)) {}
  uint64_t Size() override { return data_.size(); }
  size_t ReadAt(uint64_t offset, std::span<uint8_t> out) override;
  bool ThreadSafe() const override { return true; }
  std::string Name() const override { return name_; }

 private:
  std::vector<uint8_t> data_;
  std::string name_;
};

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_SOURCE_H_
