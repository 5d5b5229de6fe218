// SPDX-License-Identifier: GPL-2.0-or-later
//
// Page codecs of the kdump-compressed format.  A page descriptor's flags say
// how its page is stored: 0 raw, 0x1 zlib (compress2 stream), 0x2 LZO
// (lzo1x_1), 0x4 snappy (raw snappy block), 0x20 zstd (one frame).
#ifndef NMIMGR_TOOLS_LIB_CODEC_H_
#define NMIMGR_TOOLS_LIB_CODEC_H_

#include <cstdint>
#include <span>
#include <string>

namespace nmimgr::vmcore {

inline constexpr uint32_t kDumpZlib = 0x1;
inline constexpr uint32_t kDumpLzo = 0x2;
inline constexpr uint32_t kDumpSnappy = 0x4;
inline constexpr uint32_t kDumpIncomplete = 0x8;
inline constexpr uint32_t kDumpExcludedVmemmap = 0x10;
inline constexpr uint32_t kDumpZstd = 0x20;
inline constexpr uint32_t kDumpCodecMask =
    kDumpZlib | kDumpLzo | kDumpSnappy | kDumpZstd;

// Name of the codec bit(s) in `flags`: "none", "zlib", ... or "invalid".
std::string CodecName(uint32_t flags);

// Decodes `in` into exactly out.size() bytes.  Returns an empty string on
// success, else what went wrong ("zlib data decompresses to 100 bytes, not
// 4096").
std::string DecodePage(uint32_t flags, std::span<const uint8_t> in,
                       std::span<uint8_t> out);

// Encoders, for the test builder.  Return false when the codec fails.
bool EncodePage(uint32_t flags, std::span<const uint8_t> in, std::string& out);

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_CODEC_H_
