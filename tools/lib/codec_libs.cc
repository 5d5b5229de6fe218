// SPDX-License-Identifier: GPL-2.0-or-later
#include "codec_libs.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include "checked.h"

namespace nmimgr::vmcore {
namespace {

// A library opened for good: the handle is never closed, so the functions
// taken from it stay valid for the life of the process.
class Library {
 public:
  // `use` says what needs it, for the message.
  Library(const char* soname, const char* use) : soname_(soname), use_(use) {
    handle_ = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!handle_)  // dlerror() names the library and says why
      throw IoError(fmt::format("{}: {}", use, ::dlerror()));
  }
  template <class Fn>
  void Get(Fn& fn, const char* name) {
    fn = reinterpret_cast<Fn>(::dlsym(handle_, name));
    if (!fn)
      throw IoError(fmt::format("{}: {} has no {}", use_, soname_, name));
  }

 private:
  const char* soname_;
  const char* use_;
  void* handle_ = nullptr;
};

}  // namespace

// Each table is a function-local static: initialised once, under the
// compiler's guard, by the first thread that asks; a failed load throws
// and the next call tries again.

const DeflateLib& Deflate() {
  static const DeflateLib lib = [] {
    Library l(NMIMGR_SONAME_DEFLATE, "zlib pages");
    DeflateLib t;
    l.Get(t.alloc_decompressor, "libdeflate_alloc_decompressor");
    l.Get(t.free_decompressor, "libdeflate_free_decompressor");
    l.Get(t.zlib_decompress, "libdeflate_zlib_decompress");
    return t;
  }();
  return lib;
}

const ZlibLib& Zlib() {
  static const ZlibLib lib = [] {
    Library l(NMIMGR_SONAME_Z, "gzip file");
    ZlibLib t;
    l.Get(t.inflate_init2_, "inflateInit2_");
    l.Get(t.inflate_some, "inflate");
    l.Get(t.inflate_reset, "inflateReset");
    l.Get(t.inflate_end, "inflateEnd");
    l.Get(t.compress_bound, "compressBound");
    l.Get(t.compress_level, "compress2");
    return t;
  }();
  return lib;
}

const LzoLib& Lzo() {
  static const LzoLib lib = [] {
    Library l(NMIMGR_SONAME_LZO2, "lzo pages");
    LzoLib t;
    l.Get(t.decompress_safe, "lzo1x_decompress_safe");
    l.Get(t.compress_1, "lzo1x_1_compress");
    // lzo_init() is a macro: a call of __lzo_init_v2 with the sizes of the
    // types this program was compiled with, which the library checks.  It
    // is expanded here onto the function just loaded.
    decltype(&__lzo_init_v2) init_v2;
    l.Get(init_v2, "__lzo_init_v2");
#define __lzo_init_v2 init_v2
    const int r = lzo_init();
#undef __lzo_init_v2
    if (r != LZO_E_OK)
      throw IoError(fmt::format("lzo pages: {} refuses lzo_init() ({})",
                                NMIMGR_SONAME_LZO2, r));
    return t;
  }();
  return lib;
}

const SnappyLib& Snappy() {
  static const SnappyLib lib = [] {
    Library l(NMIMGR_SONAME_SNAPPY, "snappy pages");
    SnappyLib t;
    l.Get(t.uncompressed_length, "snappy_uncompressed_length");
    l.Get(t.uncompress, "snappy_uncompress");
    l.Get(t.max_compressed_length, "snappy_max_compressed_length");
    l.Get(t.compress, "snappy_compress");
    return t;
  }();
  return lib;
}

const ZstdLib& Zstd() {
  static const ZstdLib lib = [] {
    Library l(NMIMGR_SONAME_ZSTD, "zstd pages");
    ZstdLib t;
    l.Get(t.decompress, "ZSTD_decompress");
    l.Get(t.is_error, "ZSTD_isError");
    l.Get(t.error_name, "ZSTD_getErrorName");
    l.Get(t.compress_bound, "ZSTD_compressBound");
    l.Get(t.compress, "ZSTD_compress");
    return t;
  }();
  return lib;
}

const LzmaLib& Lzma() {
  static const LzmaLib lib = [] {
    Library l(NMIMGR_SONAME_LZMA, "xz file");
    LzmaLib t;
    l.Get(t.stream_decoder, "lzma_stream_decoder");
    l.Get(t.code, "lzma_code");
    l.Get(t.end, "lzma_end");
    return t;
  }();
  return lib;
}

const Lz4Lib& Lz4() {
  static const Lz4Lib lib = [] {
    Library l(NMIMGR_SONAME_LZ4, "lz4 file");
    Lz4Lib t;
    l.Get(t.create_dctx, "LZ4F_createDecompressionContext");
    l.Get(t.free_dctx, "LZ4F_freeDecompressionContext");
    l.Get(t.decompress, "LZ4F_decompress");
    l.Get(t.is_error, "LZ4F_isError");
    l.Get(t.error_name, "LZ4F_getErrorName");
    return t;
  }();
  return lib;
}

const Bzip2Lib& Bzip2() {
  static const Bzip2Lib lib = [] {
    Library l(NMIMGR_SONAME_BZ2, "bzip2 file");
    Bzip2Lib t;
    l.Get(t.decompress_init, "BZ2_bzDecompressInit");
    l.Get(t.decompress, "BZ2_bzDecompress");
    l.Get(t.decompress_end, "BZ2_bzDecompressEnd");
    return t;
  }();
  return lib;
}

}  // namespace nmimgr::vmcore
