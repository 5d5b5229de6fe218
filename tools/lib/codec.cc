// SPDX-License-Identifier: GPL-2.0-or-later
#include "codec.h"

#include <fmt/format.h>

#include <cstring>
#include <memory>
#include <vector>

#include "codec_libs.h"

namespace nmimgr::vmcore {
namespace {

// zlib pages are decoded with libdeflate: on the real lab dumps and on the
// bench's pages it decodes 1.6-2.2x as fast as zlib's uncompress() and
// 15-20% faster than ISA-L's igzip, to the same bytes (bench/run.sh, (b)
// and (f); docs/vmcore-check.md).  Like uncompress() it checks the
// stream's Adler-32.  One decompressor per thread: it holds its decode
// tables and is not thread-safe.
libdeflate_decompressor* Inflater() {
  struct Free {
    void operator()(libdeflate_decompressor* d) const {
      Deflate().free_decompressor(d);
    }
  };
  thread_local std::unique_ptr<libdeflate_decompressor, Free> d(
      Deflate().alloc_decompressor());
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
      libdeflate_result r = Deflate().zlib_decompress(
          Inflater(), in.data(), in.size(), out.data(), want, &len);
      if (r != LIBDEFLATE_SUCCESS)
        return fmt::format("zlib data does not decompress ({})", ZlibError(r));
      if (len != want)
        return fmt::format("zlib data decompresses to {} bytes, not {}", len,
                           want);
      return {};
    }
    case kDumpLzo: {
      lzo_uint len = want;
      int r = Lzo().decompress_safe(in.data(), in.size(), out.data(), &len,
                                    nullptr);
      if (r != LZO_E_OK)
        return fmt::format("lzo data does not decompress (error {})", r);
      if (len != want)
        return fmt::format("lzo data decompresses to {} bytes, not {}", len,
                           want);
      return {};
    }
    case kDumpSnappy: {
      const SnappyLib& snappy = Snappy();
      const char* p = reinterpret_cast<const char*>(in.data());
      size_t len = 0;
      if (snappy.uncompressed_length(p, in.size(), &len) != SNAPPY_OK)
        return "snappy data does not decompress (bad length)";
      if (len != want)
        return fmt::format("snappy data decompresses to {} bytes, not {}", len,
                           want);
      if (snappy.uncompress(p, in.size(), reinterpret_cast<char*>(out.data()),
                            &len) != SNAPPY_OK)
        return "snappy data does not decompress";
      return {};
    }
    case kDumpZstd: {
      const ZstdLib& zstd = Zstd();
      size_t r = zstd.decompress(out.data(), want, in.data(), in.size());
      if (zstd.is_error(r))
        return fmt::format("zstd data does not decompress ({})",
                           zstd.error_name(r));
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
      const ZlibLib& zlib = Zlib();
      uLongf len = zlib.compress_bound(in.size());
      out.resize(len);
      if (zlib.compress_level(reinterpret_cast<Bytef*>(out.data()), &len,
                              in.data(), in.size(), 1) != Z_OK)
        return false;
      out.resize(len);
      return true;
    }
    case kDumpLzo: {
      std::vector<uint8_t> wrk(LZO1X_1_MEM_COMPRESS);
      lzo_uint len = in.size() + in.size() / 16 + 64 + 3;
      out.resize(len);
      if (Lzo().compress_1(in.data(), in.size(),
                           reinterpret_cast<uint8_t*>(out.data()), &len,
                           wrk.data()) != LZO_E_OK)
        return false;
      out.resize(len);
      return true;
    }
    case kDumpSnappy: {
      const SnappyLib& snappy = Snappy();
      size_t len = snappy.max_compressed_length(in.size());
      out.resize(len);
      if (snappy.compress(reinterpret_cast<const char*>(in.data()), in.size(),
                          out.data(), &len) != SNAPPY_OK)
        return false;
      out.resize(len);
      return true;
    }
    case kDumpZstd: {
      const ZstdLib& zstd = Zstd();
      out.resize(zstd.compress_bound(in.size()));
      size_t r = zstd.compress(out.data(), out.size(), in.data(), in.size(), 1);
      if (zstd.is_error(r)) return false;
      out.resize(r);
      return true;
    }
  }
  return false;
}

}  // namespace nmimgr::vmcore
