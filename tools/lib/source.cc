// SPDX-License-Identifier: GPL-2.0-or-later
#include "source.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "checked.h"

namespace nmimgr::vmcore {

void ReadExact(Source& src, uint64_t offset, std::span<uint8_t> out,
               std::string_view what) {
  size_t got = src.ReadAt(offset, out);
  if (got != out.size())
    throw TruncatedError(fmt::format(
        "reading {}: short read at offset {} ({} bytes wanted, data ends at "
        "{})",
        what, offset, out.size(), offset + got));
}

void RequireWritten(Source& src, uint64_t offset, uint64_t length,
                    std::string_view what) {
  uint64_t size = src.Size();
  if (offset > size || length > size - offset)
    throw TruncatedError(fmt::format(
        "reading {}: {} bytes at offset {} lie past the end of the data ({})",
        what, length, offset, size));
  uint64_t written = src.Written(offset, length);
  if (written < length) {
    uint64_t hole = offset + written;
    throw UnwrittenError(fmt::format(
        "{}: {} bytes at offset {}: no data was written at offset {} (the "
        "flattened stream has no record for it)",
        what, length, offset, hole));
  }
}

std::vector<uint8_t> ReadVector(Source& src, uint64_t offset, uint64_t length,
                                std::string_view what) {
  // Never allocate more than the data holds: a corrupt length must not turn
  // into a huge allocation, nor a claimed size that was never written.
  RequireWritten(src, offset, length, what);
  std::vector<uint8_t> buf(length);
  ReadExact(src, offset, buf, what);
  return buf;
}

FileSource::FileSource(const std::string& path) : path_(path) {
  // O_NONBLOCK: a FIFO put where a dump should be is refused below instead
  // of blocking the open until a writer comes; O_NOCTTY for a terminal.
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd_ < 0)
    throw IoError(fmt::format("opening {}: {}", path, std::strerror(errno)));
  struct stat st;
  if (::fstat(fd_, &st) != 0) {
    int err = errno;
    ::close(fd_);
    throw IoError(fmt::format("stat {}: {}", path, std::strerror(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw IoError(fmt::format("opening {}: not a regular file", path));
  }
  size_ = static_cast<uint64_t>(st.st_size);
}

FileSource::~FileSource() {
  if (fd_ >= 0) ::close(fd_);
}

size_t FileSource::ReadAt(uint64_t offset, std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd_, out.data() + done, out.size() - done,
                        static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw IoError(fmt::format("reading {} at offset {}: {}", path_,
                                offset + done, std::strerror(errno)));
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

uint64_t FileSource::DataFrom(uint64_t offset) {
  if (offset >= size_) return size_;
  off_t at = ::lseek(fd_, static_cast<off_t>(offset), SEEK_DATA);
  if (at < 0) return errno == ENXIO ? size_ : offset;  // ENXIO: only a hole
  return std::min(static_cast<uint64_t>(at), size_);
}

uint64_t FileSource::HoleFrom(uint64_t offset) {
  if (offset >= size_) return size_;
  off_t at = ::lseek(fd_, static_cast<off_t>(offset), SEEK_HOLE);
  if (at < 0) return size_;
  return std::clamp(static_cast<uint64_t>(at), offset, size_);
}

size_t MemorySource::ReadAt(uint64_t offset, std::span<uint8_t> out) {
  // An empty span may have a null data(): never hand it to memcpy.
  if (out.empty() || offset >= data_.size()) return 0;
  size_t n = std::min<uint64_t>(out.size(), data_.size() - offset);
  std::memcpy(out.data(), data_.data() + offset, n);
  return n;
}

}  // namespace nmimgr::vmcore
