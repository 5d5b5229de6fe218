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
// The stream is decoded forward in 1 MiB blocks kept in a small LRU cache; a
// read before the oldest cached block restarts the decoder from the start.
// Readers read mostly forward, so this stays close to one pass.  A stream
// that ends before its end marker is not an error here: the data simply ends
// there, and Truncated() says so (the verdict reports it as incomplete).
#ifndef NMIMGR_TOOLS_LIB_OUTER_H_
#define NMIMGR_TOOLS_LIB_OUTER_H_

#include <memory>
#include <optional>
#include <string>

#include "source.h"

namespace nmimgr::vmcore {

enum class OuterKind { kNone, kXz, kGzip, kBzip2, kLz4 };

const char* OuterName(OuterKind kind);
// Looks at the first bytes of `raw`.
OuterKind DetectOuter(Source& raw);

class StreamSource : public Source {
 public:
  virtual bool Truncated() = 0;  // Decodes to the end if needed.
  virtual std::string TruncationMessage() = 0;
};

// Wraps `raw` in a decoding stream of `kind` (not kNone).
std::unique_ptr<StreamSource> OpenOuter(std::unique_ptr<Source> raw,
                                        OuterKind kind);

}  // namespace nmimgr::vmcore

#endif  // NMIMGR_TOOLS_LIB_OUTER_H_
