// SPDX-License-Identifier: GPL-2.0-or-later
#include "codec.h"

#include <fmt/format.h>
#include <libdeflate.h>
#include <lzo/lzo1x.h>
#include <snappy.h>
#include <zlib.h>
#include <zstd.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

namespace nmimgr::vmcore {
namespace {

void LzoInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { lzo_init(); });
}

// zlib pages are decoded with libdeflate: on the real lab dumps and on the
// bench's pages it decodes 1.6-2.2x as fast as zlib's uncompress() and
// 15-20% faster than ISA-L's igzip, to the same bytes (bench/run.sh, (b)
// and (f); docs/vmcore-check.md).  Like uncompress() it checks the
// stream's Adler-32.  One decompressor per thread: it holds its decode
// tables and is not thread-safe.
libdeflate_decompressor* Inflater() {
  struct Free {
    void operator()(libdeflate_decompressor* d) const {
      libdeflate_free_decompressor(d);
    }
  };
  thread_local std::unique_ptr<libdeflate_decompressor, Free> d(
      libdeflate_alloc_decompressor());
  if (!d) throw std::bad_alloc();
  return d.get();
}

std::string ZlibError(libdeflate_result r) {
  switch (r) {
    case LIBDEFLATE_BAD_DATA:
      return "invalid or corrupt stream";
    case LIBDEFLATE_INSUFFICIENT_SPACE:
      return "more data than one page";
    default:
      return fmt::format("libdeflate error {}", static_cast<int>(r));
  }
}

}  // namespace

std::string CodecName(uint32_t flags) {
  switch (flags & kDumpCodecMask) {
    case 0:
      return "none";
    case kDumpZlib:
      return "zlib";
    case kDumpLzo:
      return "lzo";
    case kDumpSnappy:
      return "snappy";
    case kDumpZstd:
      return "zstd";
  }
  return "invalid";
}

std::string DecodePage(uint32_t flags, std::span<const uint8_t> in,
                       std::span<uint8_t> out) {
  size_t want = out.size();
  switch (flags & kDumpCodecMask) {
    case 0:
      if (in.size() != want)
        return fmt::format("raw page is {} bytes, not {}", in.size(), want);
      std::memcpy(out.data(), in.data(), want);
      return {};
    case kDumpZlib: {
      size_t len = 0;
      libdeflate_result r = libdeflate_zlib_decompress(
          Inflater(), in.data(), in.size(), out.data(), want, &len);
      if (r != LIBDEFLATE_SUCCESS)
        return fmt::format("zlib data does not decompress ({})", ZlibError(r));
      if (len != want)
        return fmt::format("zlib data decompresses to {} bytes, not {}", len,
                           want);
      return {};
    }
    case kDumpLzo: {
      LzoInitOnce();
      lzo_uint len = want;
      int r = lzo1x_decompress_safe(in.data(), in.size(), out.data(), &len,
                                    nullptr);
      if (r != LZO_E_OK)
        return fmt::format("lzo data does not decompress (error {})", r);
      if (len != want)
        return fmt::format("lzo data decompresses to {} bytes, not {}", len,
                           want);
      return {};
    }
    case kDumpSnappy: {
      const char* p = reinterpret_cast<const char*>(in.data());
      size_t len = 0;
      if (!snappy::GetUncompressedLength(p, in.size(), &len))
        return "snappy data does not decompress (bad length)";
      if (len != want)
        return fmt::format("snappy data decompresses to {} bytes, not {}", len,
                           want);
      if (!snappy::RawUncompress(p, in.size(),
                                 reinterpret_cast<char*>(out.data())))
        return "snappy data does not decompress";
      return {};
    }
    case kDumpZstd: {
      size_t r = ZSTD_decompress(out.data(), want, in.data(), in.size());
      if (ZSTD_isError(r))
        return fmt::format("zstd data does not decompress ({})",
                           ZSTD_getErrorName(r));
      if (r != want)
        return fmt::format("zstd data decompresses to {} bytes, not {}", r,
                           want);
      return {};
    }
  }
  return fmt::format("invalid compression flags {:#x}", flags);
}

bool EncodePage(uint32_t flags, std::span<const uint8_t> in, std::string& out) {
  switch (flags & kDumpCodecMask) {
    case 0:
      out.assign(reinterpret_cast<const char*>(in.data()), in.size());
      return true;
    case kDumpZlib: {
      uLongf len = compressBound(in.size());
      out.resize(len);
      if (compress2(reinterpret_cast<Bytef*>(out.data()), &len, in.data(),
                    in.size(), 1) != Z_OK)
        return false;
      out.resize(len);
      return true;
    }
    case kDumpLzo: {
      LzoInitOnce();
      std::vector<uint8_t> wrk(LZO1X_1_MEM_COMPRESS);
      lzo_uint len = in.size() + in.size() / 16 + 64 + 3;
      out.resize(len);
      if (lzo1x_1_compress(in.data(), in.size(),
                           reinterpret_cast<uint8_t*>(out.data()), &len,
                           wrk.data()) != LZO_E_OK)
        return false;
      out.resize(len);
      return true;
    }
    case kDumpSnappy:
      snappy::Compress(reinterpret_cast<const char*>(in.data()), in.size(),
                       &out);
      return true;
    case kDumpZstd: {
      out.resize(ZSTD_compressBound(in.size()));
      size_t r = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 1);
      if (ZSTD_isError(r)) return false;
      out.resize(r);
      return true;
    }
  }
  return false;
}

}  // namespace nmimgr::vmcore
