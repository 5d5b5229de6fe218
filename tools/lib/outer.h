// SPDX-License-Identifier: GPL-2.0-or-later
//
// Whole-file compression around a dump (kdump-tools' dump.<stamp>.xz, .gz,
// .bz2, .lz4), read as a stream through liblzma, zlib, libbz2 and liblz4
// without unpacking it to disk.
//
// Recognised by magic, not by name:
//   xz     FD 37 7A 58 5A 00       (liblzma, concatenated streams allowed)
//   gzip   1F 8B                   (zlib inflate, concatenated members allowed)
//   bzip2  42 5A 68 ('BZh')        (libbz2, concatenated streams allowed)
//   lz4    04 22 4D 18             (LZ4 frame format, liblz4 lz4frame)
//
// What follows the last stream is judged as the format's own tool judges it
// (xz 5.4, gzip 1.12, bzip2 1.0.8, lz4 1.9 with -t):
//   xz     stream padding (NUL bytes in multiples of four) between and after
//          streams, as `xz -t` accepts; any other padding is corrupt, a
//          stream header cut by the end of the file is truncation.
//   gzip   NUL bytes to the end of the file are ignored (`gzip -t` exit 0);
//          other bytes after a member that are not a gzip member ("trailing
//          garbage ignored", exit 2) end the data there and are reported by
//          TrailingData(); a single byte after a member is truncation
//          (gzip: "unexpected end of file").
//   bzip2  NUL bytes to the end are ignored; other bytes that are not a
//          bzip2 stream header end the data and are TrailingData() (bzip2:
//          "trailing garbage after EOF ignored"); a header cut short is
//          truncation.
//   lz4    frames and skippable frames; anything else after a frame is
//          corrupt (`lz4 -t` rejects it).
//
// Decoding is forward, in blocks (1 MiB) kept in a cache.  A read before the
// decoder's position that the cache cannot serve restarts the decoder from
// the start of the file.  Readers read the structure at the start, the size
// (the end), the kernel log's pages and then every page in order, so the
// cache keeps every decoded block while all streams of the process together
// hold at most CacheBudget() bytes (256 MiB, at most an eighth of physical
// memory, at least 16 MiB): a dump whose decoded size fits is decoded exactly
// once.  Over the budget, the blocks nearest the start of the data (headers,
// bitmaps, descriptors, notes) and the 16 most recently used are kept and
// blocks further on are dropped first.
//
// A dump stream starts with a dump's signature.  When the first decoded
// block carries none (ELF, KDUMP, makedumpfile: see reader.h and
// flattened.h), decoding stops there: NotADump() says why, and the data is
// only that block.  A compression bomb is never decoded past its first
// block.
//
// A stream that ends before its end marker is not an error here: the data
// simply ends there, and Truncated() says so (the verdict reports it as
// incomplete).
#ifndef NMIMGR_TOOLS_LIB_OUTER_H_
#define NMIMGR_TOOLS_LIB_OUTER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "source.h"

namespace nmimgr::vmcore {

enum class OuterKind { kNone, kXz, kGzip, kBzip2, kLz4 };

const char* OuterName(OuterKind kind);
// Looks at the first bytes of `raw`.
OuterKind DetectOuter(Source& raw);

// What decoding has cost so far.
struct OuterStats {
  uint64_t decoded_bytes = 0;  // produced by the decoder, restarts included
  uint64_t restarts = 0;       // decoder restarts from the start of the file
  uint64_t cached_bytes = 0;   // decoded bytes held now
  uint64_t peak_cached_bytes = 0;
};

class StreamSource : public Source {
 public:
  virtual bool Truncated() = 0;  // Decodes to the end if needed.
  virtual std::string TruncationMessage() = 0;
  // Bytes after the last stream that the format's tool ignores with a
  // warning (not NUL padding): a message naming them, after decoding to the
  // end.  The data ends before them.
  virtual std::optional<std::string> TrailingData() = 0;
  // Set when the first decoded block carries no dump signature: why.
  // Decodes only that block.
  virtual std::optional<std::string> NotADump() = 0;
  virtual OuterStats Stats() = 0;
};

struct OuterOptions {
  size_t block_size = 1 << 20;
  // Decoded bytes all streams may cache together; 0: CacheBudget().
  uint64_t cache_budget = 0;
};

// 256 MiB, at most an eighth of physical memory, at least 16 MiB.
uint64_t CacheBudget();

// decoded_bytes and restarts of every stream this process opened, and the
// bytes all of them cache now (cached_bytes, peak_cached_bytes).
OuterStats ProcessOuterStats();

// Wraps `raw` in a decoding stream of `kind` (not kNone).
std::unique_ptr<StreamSource> OpenOuter(std::unique_ptr<Source> raw,
                                        OuterKind kind,
                                        const OuterOptions& opts = {});

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_OUTER_H_
