// SPDX-License-Identifier: GPL-2.0-or-later
#include "checked.h"

#include <fmt/format.h>

namespace nmimgr::vmcore {

uint64_t CheckedAdd(uint64_t a, uint64_t b, std::string_view what) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r))
    throw CorruptError(fmt::format("{}: {} + {} overflows", what, a, b));
  return r;
}

uint64_t CheckedMul(uint64_t a, uint64_t b, std::string_view what) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r))
    throw CorruptError(fmt::format("{}: {} * {} overflows", what, a, b));
  return r;
}

void ByteView::OutOfBounds(uint64_t offset, uint64_t length) const {
  throw CorruptError(
      fmt::format("{}: field at offset {} of {} bytes lies outside the {}-byte "
                  "structure at file offset {}",
                  what_, offset, length, data_.size(), base_));
}

ByteView ByteView::Slice(uint64_t offset, uint64_t length) const {
  Check(offset, length);
  return ByteView(data_.subspan(offset, length), base_ + offset, what_);
}

uint8_t ByteView::U8(uint64_t offset) const {
  Check(offset, 1);
  return data_[offset];
}

uint16_t ByteView::Le16(uint64_t offset) const {
  Check(offset, 2);
  return static_cast<uint16_t>(data_[offset] | data_[offset + 1] << 8);
}

int64_t ByteView::Be64s(uint64_t offset) const {
  Check(offset, 8);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | data_[offset + i];
  return static_cast<int64_t>(v);
}

std::string ByteView::CString(uint64_t offset, uint64_t length) const {
  Check(offset, length);
  std::string s(reinterpret_cast<const char*>(data_.data() + offset), length);
  if (auto nul = s.find('\0'); nul != std::string::npos) s.resize(nul);
  return ValidUtf8(s);
}

namespace {

// Length of the well-formed UTF-8 sequence at the start of `s`, or 0.
size_t Utf8SequenceLength(std::string_view s) {
  auto b = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  auto cont = [&](size_t i, uint8_t lo = 0x80, uint8_t hi = 0xbf) {
    return i < s.size() && b(i) >= lo && b(i) <= hi;
  };
  uint8_t c = b(0);
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    uint8_t lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    return cont(1, lo, hi) && cont(2) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    uint8_t lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

}  // namespace

std::string ValidUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    size_t n = Utf8SequenceLength(text);
    if (n == 0) {
      out += "\xef\xbf\xbd";  // U+FFFD for the one byte
      n = 1;
    } else {
      out.append(text.substr(0, n));
    }
    text.remove_prefix(n);
  }
  return out;
}

std::string Hex(uint64_t value) { return fmt::format("{:#x}", value); }

}  // namespace nmimgr::vmcore
