// SPDX-License-Identifier: GPL-2.0-or-later
//
// An initramfs image read as the kernel unpacks it (init/initramfs.c
// unpack_to_rootfs), so that doctor can say what the capture kernel will
// really get, as lsinitrd and lsinitramfs show it:
//
//   image   := segment (zero padding segment)*
//   segment := cpio archive             (uncompressed: early microcode,
//                                        dracut's early cpio)
//            | compressed stream        (gzip 1F 8B, zstd 28 B5 2F FD,
//                                        xz FD 37 7A 58 5A 00, lz4 legacy
//                                        02 21 4C 18, bzip2 'BZh')
//                                        whose data is one or more cpio
//                                        archives
//   archive := entry* "TRAILER!!!" entry
//   entry   := newc header (110 bytes: "070701" or "070702" and 13 fields
//              of 8 hex digits: ino mode uid gid nlink mtime filesize
//              devmajor devminor rdevmajor rdevminor namesize check),
//              name (namesize bytes with its NUL), padding to 4 bytes,
//              data (filesize bytes), padding to 4 bytes
//
// Names are given without a leading "./" or "/".  An image that dracut
// built with its squash or erofs module keeps its root in an inner image
// (squash-root.img, erofs-root.img) that is not read here: Read() says so
// in `inner_image` rather than listing what it cannot see.
#ifndef NMIMGR_TOOLS_CTL_INITRAMFS_H_
#define NMIMGR_TOOLS_CTL_INITRAMFS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace nmimgr::ctl {

// The image is cut short or not an initramfs: a finding, not an I/O error.
class InitramfsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct InitramfsListing {
  std::vector<std::string> names;     // every entry, in archive order
  std::vector<std::string> segments;  // "cpio", "zstd", ... in image order
  // Contents of the regular files asked for (at most 1 MiB each).
  std::map<std::string, std::string> contents;
  std::optional<std::string> inner_image;  // squash-root.img, erofs-root.img
};

// Reads the image at PATH.  WANT: names whose contents to keep.  Throws
// InitramfsError for a cut or malformed image, and for a compression it
// cannot decode (lzo, lzma); std::system_error when the file cannot be
// read.
InitramfsListing ReadInitramfs(const std::string& path,
                               const std::set<std::string>& want = {});

}  // namespace nmimgr::ctl

#endif  // NMIMGR_TOOLS_CTL_INITRAMFS_H_
