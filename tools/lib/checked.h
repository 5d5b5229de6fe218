// SPDX-License-Identifier: GPL-2.0-or-later
//
// Checked helpers that every read of dump data goes through: error types that
// keep "missing or truncated", "corrupt" and "I/O failure" apart, overflow-
// checked arithmetic on offsets and sizes, and explicit little/big-endian
// decoding from bounds-checked byte views.
#ifndef NMIMGR_TOOLS_LIB_CHECKED_H_
#define NMIMGR_TOOLS_LIB_CHECKED_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

namespace nmimgr::vmcore {

// The data a structure needs is not there: the file ends too early.
class TruncatedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The data lies inside the dump's size but was never written: a flattened
// stream that has no record for it (Source::Written).  Missing data, like
// truncation, but reported as such.
class UnwrittenError : public TruncatedError {
 public:
  using TruncatedError::TruncatedError;
};

// The data is there but cannot be what it claims to be.
class CorruptError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The tool could not read a file (open, read or stat failed).
class IoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// a + b, or CorruptError naming `what` when the sum overflows 64 bits.
uint64_t CheckedAdd(uint64_t a, uint64_t b, std::string_view what);
// a * b, or CorruptError naming `what` when the product overflows 64 bits.
uint64_t CheckedMul(uint64_t a, uint64_t b, std::string_view what);

// A read-only view of bytes that were read from a file at `base`.  Every
// accessor checks its bounds and throws CorruptError (the structure asked for
// bytes outside the buffer it was declared in) naming `what`.
class ByteView {
 public:
  ByteView(std::span<const uint8_t> data, uint64_t base, std::string_view what)
      : data_(data), base_(base), what_(what) {}

  size_t size() const { return data_.size(); }
  uint64_t base() const { return base_; }
  std::span<const uint8_t> bytes() const { return data_; }

  ByteView Slice(uint64_t offset, uint64_t length) const;
  uint8_t U8(uint64_t offset) const;
  uint16_t Le16(uint64_t offset) const;
  // Inline: the descriptor walk reads four fields of every descriptor.
  uint32_t Le32(uint64_t offset) const {
    Check(offset, 4);
    uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = v << 8 | data_[offset + i];
    return v;
  }
  uint64_t Le64(uint64_t offset) const {
    Check(offset, 8);
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = v << 8 | data_[offset + i];
    return v;
  }
  int64_t Be64s(uint64_t offset) const;
  // Bytes [offset, offset+length) as text, cut at the first NUL.
  std::string CString(uint64_t offset, uint64_t length) const;

 private:
  void Check(uint64_t offset, uint64_t length) const {
    if (offset > data_.size() || length > data_.size() - offset)
      OutOfBounds(offset, length);
  }
  [[noreturn]] void OutOfBounds(uint64_t offset, uint64_t length) const;

  std::span<const uint8_t> data_;
  uint64_t base_;
  std::string_view what_;
};

// `text` as valid UTF-8: each byte that does not start or continue a
// well-formed sequence (overlong forms, surrogates and code points past
// U+10FFFF included) becomes U+FFFD.  Every string read from a dump goes
// through this before it reaches a finding, a fact or the JSON output, so
// text the kernel wrote in any encoding cannot break the report.
std::string ValidUtf8(std::string_view text);

// Formats a value as 0x-prefixed lowercase hex.
std::string Hex(uint64_t value);

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_CHECKED_H_
