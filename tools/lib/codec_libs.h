// SPDX-License-Identifier: GPL-2.0-or-later
//
// The codec libraries, opened when the first dump that needs one is read
// rather than by the dynamic loader at every start: libdeflate, liblzo2,
// libsnappy and libzstd for kdump-compressed pages of those codecs (zlib
// pages decode with libdeflate), zlib, liblzma, liblz4 and libbz2 for .gz,
// .xz, .lz4 and .bz2 files.  A default check (the next-boot annotation)
// maps only the one its dump's pages need, and an ELF dump's none.
//
// Each table is filled once (thread-safe) by dlopen() of the library's
// SONAME, which the build reads from the library it compiles against
// (tools/lib/CMakeLists.txt), and dlsym() of each function, typed by the
// library's own header.  A library or function that cannot be loaded
// throws IoError, the tool failing rather than the dump:
// "lzo pages: liblzo2.so.2: cannot open shared object file: No such file or
// directory".
//
// The packages must still depend on these libraries: dh_shlibdeps and
// rpm's dependency generator see only DT_NEEDED, so debian/control and
// packaging/rpm/nmimgr.spec name them.
#ifndef NMIMGR_TOOLS_LIB_CODEC_LIBS_H_
#define NMIMGR_TOOLS_LIB_CODEC_LIBS_H_

#include <bzlib.h>
#include <libdeflate.h>
#include <lz4frame.h>
#include <lzma.h>
#include <lzo/lzo1x.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

namespace nmimgr::vmcore {

struct DeflateLib {
  decltype(&libdeflate_alloc_decompressor) alloc_decompressor;
  decltype(&libdeflate_free_decompressor) free_decompressor;
  decltype(&libdeflate_zlib_decompress) zlib_decompress;
};
const DeflateLib& Deflate();

struct ZlibLib {
  decltype(&::inflateInit2_) inflate_init2_;
  decltype(&::inflate) inflate_some;
  decltype(&::inflateReset) inflate_reset;
  decltype(&::inflateEnd) inflate_end;
  decltype(&::compressBound) compress_bound;
  decltype(&::compress2) compress_level;
  // inflateInit2(), which <zlib.h> defines as this call of inflateInit2_:
  // the library checks the version and the z_stream size compiled with.
  int InflateInit2(z_stream* s, int window_bits) const {
    return inflate_init2_(s, window_bits, ZLIB_VERSION,
                          static_cast<int>(sizeof(z_stream)));
  }
};
const ZlibLib& Zlib();

struct LzoLib {
  decltype(&lzo1x_decompress_safe) decompress_safe;
  decltype(&lzo1x_1_compress) compress_1;
};
// lzo_init() has been called.
const LzoLib& Lzo();

struct SnappyLib {
  decltype(&snappy_uncompressed_length) uncompressed_length;
  decltype(&snappy_uncompress) uncompress;
  decltype(&snappy_max_compressed_length) max_compressed_length;
  decltype(&snappy_compress) compress;
};
const SnappyLib& Snappy();

struct ZstdLib {
  decltype(&ZSTD_decompress) decompress;
  decltype(&ZSTD_isError) is_error;
  decltype(&ZSTD_getErrorName) error_name;
  decltype(&ZSTD_compressBound) compress_bound;
  decltype(&ZSTD_compress) compress;
};
const ZstdLib& Zstd();

struct LzmaLib {
  decltype(&lzma_stream_decoder) stream_decoder;
  decltype(&lzma_code) code;
  decltype(&lzma_end) end;
};
const LzmaLib& Lzma();

struct Lz4Lib {
  decltype(&LZ4F_createDecompressionContext) create_dctx;
  decltype(&LZ4F_freeDecompressionContext) free_dctx;
  decltype(&LZ4F_decompress) decompress;
  decltype(&LZ4F_isError) is_error;
  decltype(&LZ4F_getErrorName) error_name;
};
const Lz4Lib& Lz4();

struct Bzip2Lib {
  decltype(&BZ2_bzDecompressInit) decompress_init;
  decltype(&BZ2_bzDecompress) decompress;
  decltype(&BZ2_bzDecompressEnd) decompress_end;
};
const Bzip2Lib& Bzip2();

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_CODEC_LIBS_H_
