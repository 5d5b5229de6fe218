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

void ByteView::Check(uint64_t offset, uint64_t length) const {
  if (offset > data_.size() || length > data_.size() - offset)
    throw CorruptError(fmt::format(
        "{}: field at offset {} of {} bytes lies outside the {}-byte "
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

uint32_t ByteView::Le32(uint64_t offset) const {
  Check(offset, 4);
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = v << 8 | data_[offset + i];
  return v;
}

uint64_t ByteView::Le64(uint64_t offset) const {
  Check(offset, 8);
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | data_[offset + i];
  return v;
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
  return s;
}

std::string Hex(uint64_t value) { return fmt::format("{:#x}", value); }

}  // namespace nmimgr::vmcore
