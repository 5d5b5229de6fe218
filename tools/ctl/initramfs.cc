// SPDX-License-Identifier: GPL-2.0-or-later
#include "initramfs.h"

#include <bzlib.h>
#include <fcntl.h>
#include <lz4.h>
#include <lzma.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <system_error>

namespace nmimgr::ctl {

namespace {

constexpr size_t kChunk = 256 << 10;
constexpr size_t kContentLimit = 1 << 20;

// The image file, read with pread at any offset.
class File {
 public:
  explicit File(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0)
      throw std::system_error(errno, std::generic_category(),
                              "opening " + path);
    struct stat st;
    if (::fstat(fd_, &st) != 0) {
      int e = errno;
      ::close(fd_);
      throw std::system_error(e, std::generic_category(), "stat " + path);
    }
    size_ = static_cast<uint64_t>(st.st_size);
  }
  ~File() { ::close(fd_); }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  uint64_t size() const { return size_; }
  // Up to N bytes at OFF; fewer only at the end of the file.
  size_t Read(uint64_t off, uint8_t* out, size_t n) const {
    size_t done = 0;
    while (done < n) {
      ssize_t r =
          ::pread(fd_, out + done, n - done, static_cast<off_t>(off + done));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0)
        throw std::system_error(errno, std::generic_category(),
                                "reading " + path_);
      if (r == 0) break;
      done += static_cast<size_t>(r);
    }
    return done;
  }

 private:
  std::string path_;
  int fd_;
  uint64_t size_;
};

std::string Offset(uint64_t off) { return "offset " + std::to_string(off); }

// A stream of decoded bytes that starts at a file offset.
class Decoder {
 public:
  Decoder(const File& file, uint64_t start) : file_(file), next_(start) {}
  virtual ~Decoder() = default;
  // Up to N decoded bytes; 0 at the end of the stream.
  virtual size_t Read(uint8_t* out, size_t n) = 0;
  // The file offset after the stream (after Read() returned 0).
  uint64_t End() const { return next_ - avail_; }

 protected:
  // Refills the input buffer when it is empty; false at the end of the file.
  bool Fill() {
    if (avail_ > 0) return true;
    in_.resize(kChunk);
    avail_ = file_.Read(next_, in_.data(), kChunk);
    next_ += avail_;
    pos_ = 0;
    return avail_ > 0;
  }
  const uint8_t* In() const { return in_.data() + pos_; }
  void Consume(size_t n) {
    pos_ += n;
    avail_ -= n;
  }
  // The next 4 input bytes without consuming them (fewer at the end).
  std::string Peek4() {
    std::string s;
    if (avail_ >= 4) return std::string(reinterpret_cast<const char*>(In()), 4);
    uint8_t b[4];
    size_t n = file_.Read(End(), b, 4);
    return std::string(reinterpret_cast<const char*>(b), n);
  }

  const File& file_;
  uint64_t next_;  // file offset of the next byte to read into in_
  std::vector<uint8_t> in_;
  size_t pos_ = 0, avail_ = 0;
};

// An uncompressed segment: the file itself from the start offset on.
class RawDecoder : public Decoder {
 public:
  using Decoder::Decoder;
  size_t Read(uint8_t* out, size_t n) override {
    if (!Fill()) return 0;
    size_t k = std::min(n, avail_);
    std::memcpy(out, In(), k);
    Consume(k);
    return k;
  }
};

class GzipDecoder : public Decoder {
 public:
  GzipDecoder(const File& f, uint64_t start) : Decoder(f, start) {
    std::memset(&z_, 0, sizeof(z_));
    if (inflateInit2(&z_, 15 + 16) != Z_OK) throw std::bad_alloc();
  }
  ~GzipDecoder() override { inflateEnd(&z_); }
  size_t Read(uint8_t* out, size_t n) override {
    if (done_) return 0;
    z_.next_out = out;
    z_.avail_out = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    while (z_.avail_out == static_cast<uInt>(std::min<size_t>(n, 1u << 30))) {
      if (!Fill())
        throw InitramfsError("gzip stream cut short at " + Offset(End()));
      z_.next_in = const_cast<Bytef*>(In());
      z_.avail_in = static_cast<uInt>(avail_);
      int rc = inflate(&z_, Z_NO_FLUSH);
      Consume(avail_ - z_.avail_in);
      if (rc == Z_STREAM_END) {
        done_ = true;
        break;
      }
      if (rc != Z_OK && rc != Z_BUF_ERROR)
        throw InitramfsError("gzip stream corrupt before " + Offset(End()));
    }
    return n - z_.avail_out;
  }

 private:
  z_stream z_;
  bool done_ = false;
};

class ZstdDecoder : public Decoder {
 public:
  ZstdDecoder(const File& f, uint64_t start)
      : Decoder(f, start), d_(ZSTD_createDStream()) {
    if (!d_) throw std::bad_alloc();
  }
  ~ZstdDecoder() override { ZSTD_freeDStream(d_); }
  size_t Read(uint8_t* out, size_t n) override {
    ZSTD_outBuffer ob = {out, n, 0};
    while (!done_ && ob.pos == 0) {
      if (!Fill())
        throw InitramfsError("zstd stream cut short at " + Offset(End()));
      ZSTD_inBuffer ib = {In(), avail_, 0};
      size_t rc = ZSTD_decompressStream(d_, &ob, &ib);
      Consume(ib.pos);
      if (ZSTD_isError(rc))
        throw InitramfsError(std::string("zstd stream corrupt before ") +
                             Offset(End()) + ": " + ZSTD_getErrorName(rc));
      // a frame ended: another one may follow (zstd -T writes several)
      if (rc == 0 && Peek4() != "\x28\xb5\x2f\xfd") done_ = true;
    }
    return ob.pos;
  }

 private:
  ZSTD_DStream* d_;
  bool done_ = false;
};

class XzDecoder : public Decoder {
 public:
  XzDecoder(const File& f, uint64_t start) : Decoder(f, start) {
    if (lzma_stream_decoder(&s_, UINT64_MAX, 0) != LZMA_OK)
      throw std::bad_alloc();
  }
  ~XzDecoder() override { lzma_end(&s_); }
  size_t Read(uint8_t* out, size_t n) override {
    if (done_) return 0;
    s_.next_out = out;
    s_.avail_out = n;
    while (s_.avail_out == n) {
      if (!Fill())
        throw InitramfsError("xz stream cut short at " + Offset(End()));
      s_.next_in = In();
      s_.avail_in = avail_;
      lzma_ret rc = lzma_code(&s_, LZMA_RUN);
      Consume(avail_ - s_.avail_in);
      if (rc == LZMA_STREAM_END) {
        done_ = true;
        break;
      }
      if (rc != LZMA_OK)
        throw InitramfsError("xz stream corrupt before " + Offset(End()));
    }
    return n - s_.avail_out;
  }

 private:
  lzma_stream s_ = LZMA_STREAM_INIT;
  bool done_ = false;
};

class Bzip2Decoder : public Decoder {
 public:
  Bzip2Decoder(const File& f, uint64_t start) : Decoder(f, start) {
    std::memset(&s_, 0, sizeof(s_));
    if (BZ2_bzDecompressInit(&s_, 0, 0) != BZ_OK) throw std::bad_alloc();
  }
  ~Bzip2Decoder() override { BZ2_bzDecompressEnd(&s_); }
  size_t Read(uint8_t* out, size_t n) override {
    if (done_) return 0;
    unsigned cap = static_cast<unsigned>(std::min<size_t>(n, 1u << 30));
    s_.next_out = reinterpret_cast<char*>(out);
    s_.avail_out = cap;
    while (s_.avail_out == cap) {
      if (!Fill())
        throw InitramfsError("bzip2 stream cut short at " + Offset(End()));
      s_.next_in = const_cast<char*>(reinterpret_cast<const char*>(In()));
      s_.avail_in = static_cast<unsigned>(avail_);
      int rc = BZ2_bzDecompress(&s_);
      Consume(avail_ - s_.avail_in);
      if (rc == BZ_STREAM_END) {
        done_ = true;
        break;
      }
      if (rc != BZ_OK)
        throw InitramfsError("bzip2 stream corrupt before " + Offset(End()));
    }
    return cap - s_.avail_out;
  }

 private:
  bz_stream s_;
  bool done_ = false;
};

// lz4's legacy format, which the kernel reads (lz4 -l): the magic, then
// blocks of a 32-bit little-endian compressed size and the data, each
// decoding to at most 8 MiB.  The stream ends at the end of the file or at
// the first size that is no block (zero padding, the next segment).
class Lz4LegacyDecoder : public Decoder {
 public:
  Lz4LegacyDecoder(const File& f, uint64_t start) : Decoder(f, start) {
    uint8_t magic[4];
    if (!Take(magic, 4))
      throw InitramfsError("lz4 stream cut short at " + Offset(End()));
  }
  size_t Read(uint8_t* out, size_t n) override {
    while (have_ == 0) {
      if (done_) return 0;
      uint8_t sz[4];
      uint64_t at = End();
      std::string peek = Peek4();
      if (peek.size() < 4) {
        done_ = true;
        return 0;
      }
      uint32_t csize =
          static_cast<uint32_t>(static_cast<uint8_t>(peek[0])) |
          static_cast<uint32_t>(static_cast<uint8_t>(peek[1])) << 8 |
          static_cast<uint32_t>(static_cast<uint8_t>(peek[2])) << 16 |
          static_cast<uint32_t>(static_cast<uint8_t>(peek[3])) << 24;
      if (csize == 0x184C2102) {  // a concatenated stream's magic
        Take(sz, 4);
        continue;
      }
      if (csize == 0 ||
          csize > static_cast<uint32_t>(LZ4_compressBound(kBlock))) {
        done_ = true;
        return 0;
      }
      Take(sz, 4);
      std::vector<uint8_t> comp(csize);
      if (!Take(comp.data(), csize))
        throw InitramfsError("lz4 block cut short at " + Offset(at));
      block_.resize(kBlock);
      int d = LZ4_decompress_safe(reinterpret_cast<const char*>(comp.data()),
                                  reinterpret_cast<char*>(block_.data()),
                                  static_cast<int>(csize), kBlock);
      if (d < 0) throw InitramfsError("lz4 block corrupt at " + Offset(at));
      have_ = static_cast<size_t>(d);
      off_ = 0;
    }
    size_t k = std::min(n, have_);
    std::memcpy(out, block_.data() + off_, k);
    off_ += k;
    have_ -= k;
    return k;
  }

 private:
  static constexpr int kBlock = 8 << 20;
  bool Take(uint8_t* out, size_t n) {
    while (n > 0) {
      if (!Fill()) return false;
      size_t k = std::min(n, avail_);
      std::memcpy(out, In(), k);
      Consume(k);
      out += k;
      n -= k;
    }
    return true;
  }
  std::vector<uint8_t> block_;
  size_t off_ = 0, have_ = 0;
  bool done_ = false;
};

// Reads a decoder's bytes exactly and counts them.
class Stream {
 public:
  explicit Stream(Decoder& d) : d_(d) {}
  uint64_t consumed() const { return consumed_; }
  // N bytes; false when the stream ends before the first, InitramfsError
  // when it ends after it.
  bool Exact(uint8_t* out, size_t n, const char* what) {
    size_t done = 0;
    while (done < n) {
      size_t k = d_.Read(out + done, n - done);
      if (k == 0) {
        if (done == 0) return false;
        throw InitramfsError(std::string("cut short in ") + what);
      }
      done += k;
    }
    consumed_ += n;
    return true;
  }
  void Skip(uint64_t n, const char* what) {
    uint8_t buf[16384];
    while (n > 0) {
      size_t k = static_cast<size_t>(std::min<uint64_t>(n, sizeof(buf)));
      if (!Exact(buf, k, what))
        throw InitramfsError(std::string("cut short in ") + what);
      n -= k;
    }
  }

 private:
  Decoder& d_;
  uint64_t consumed_ = 0;
};

uint32_t Hex8(const uint8_t* p, const std::string& where) {
  uint32_t v = 0;
  for (int i = 0; i < 8; ++i) {
    int c = p[i], d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      throw InitramfsError("cpio header with a non-hex field " + where);
    v = v << 4 | static_cast<uint32_t>(d);
  }
  return v;
}

uint64_t Pad4(uint64_t n) { return (4 - n % 4) % 4; }

std::string Normalize(std::string name) {
  if (name.rfind("./", 0) == 0) name.erase(0, 2);
  while (!name.empty() && name.front() == '/') name.erase(0, 1);
  return name;
}

// One cpio archive from S, up to and with its trailer.  FIRST: its first 6
// bytes, already read from S.
void Archive(Stream& s, const uint8_t* first, InitramfsListing& out,
             const std::set<std::string>& want, const std::string& where) {
  uint8_t h[110];
  std::memcpy(h, first, 6);
  bool have_magic = true;
  for (;;) {
    if (!have_magic) {
      if (!s.Exact(h, 6, "a cpio header"))
        throw InitramfsError("cpio archive without trailer " + where);
    }
    have_magic = false;
    if (std::memcmp(h, "070701", 6) != 0 && std::memcmp(h, "070702", 6) != 0)
      throw InitramfsError("no cpio header where one belongs " + where);
    if (!s.Exact(h + 6, 104, "a cpio header"))
      throw InitramfsError("cpio header cut short " + where);
    uint32_t mode = Hex8(h + 14, where);
    uint32_t filesize = Hex8(h + 54, where);
    uint32_t namesize = Hex8(h + 94, where);
    if (namesize == 0 || namesize > 4096)
      throw InitramfsError("cpio name size out of range " + where);
    std::string name(namesize, '\0');
    s.Exact(reinterpret_cast<uint8_t*>(name.data()), namesize, "a cpio name");
    name.resize(std::strlen(name.c_str()));
    s.Skip(Pad4(110 + namesize), "cpio padding");
    if (name == "TRAILER!!!") {
      s.Skip(filesize + Pad4(filesize), "the cpio trailer");
      return;
    }
    name = Normalize(name);
    bool keep = want.count(name) && (mode & 0170000) == 0100000 &&
                filesize <= kContentLimit;
    if (keep) {
      std::string data(filesize, '\0');
      s.Exact(reinterpret_cast<uint8_t*>(data.data()), filesize, "cpio data");
      out.contents[name] = std::move(data);
    } else {
      s.Skip(filesize, "cpio data");
    }
    s.Skip(Pad4(filesize), "cpio padding");
    for (const char* inner :
         {"squash-root.img", "squashfs-root.img", "erofs-root.img"})
      if (name == inner) out.inner_image = name;
    out.names.push_back(std::move(name));
  }
}

std::unique_ptr<Decoder> Compressed(const File& f, uint64_t off,
                                    const uint8_t* m, size_t n,
                                    std::string& kind) {
  auto is = [&](const char* magic, size_t len) {
    return n >= len && std::memcmp(m, magic, len) == 0;
  };
  if (is("\x1f\x8b", 2))
    return kind = "gzip", std::make_unique<GzipDecoder>(f, off);
  if (is("\x28\xb5\x2f\xfd", 4))
    return kind = "zstd", std::make_unique<ZstdDecoder>(f, off);
  if (is("\xfd"
         "7zXZ\0",
         6))
    return kind = "xz", std::make_unique<XzDecoder>(f, off);
  if (is("\x02\x21\x4c\x18", 4))
    return kind = "lz4", std::make_unique<Lz4LegacyDecoder>(f, off);
  if (is("BZh", 3))
    return kind = "bzip2", std::make_unique<Bzip2Decoder>(f, off);
  if (is("\x89LZO", 4))
    throw InitramfsError("lzo-compressed segment at " + Offset(off) +
                         " is not read");
  if (is("\x5d\0\0", 3))
    throw InitramfsError("lzma-compressed segment at " + Offset(off) +
                         " is not read");
  return nullptr;
}

}  // namespace

InitramfsListing ReadInitramfs(const std::string& path,
                               const std::set<std::string>& want) {
  File f(path);
  InitramfsListing out;
  uint64_t off = 0;
  while (off < f.size()) {
    uint8_t m[6] = {};
    size_t n = f.Read(off, m, sizeof(m));
    if (m[0] ==
        0) {  // padding between segments, byte by byte as the kernel skips it
      ++off;
      continue;
    }
    const std::string where = "in the segment at " + Offset(off);
    if (n == 6 && std::memcmp(m, "0707", 4) == 0) {
      RawDecoder raw(f, off);
      Stream s(raw);
      uint8_t first[6];
      s.Exact(first, 6, "a cpio header");
      Archive(s, first, out, want, where);
      out.segments.push_back("cpio");
      off += s.consumed();
      continue;
    }
    std::string kind;
    std::unique_ptr<Decoder> d = Compressed(f, off, m, n, kind);
    if (!d)
      throw InitramfsError("neither cpio nor a known compression at " +
                           Offset(off));
    Stream s(*d);
    // one or more archives, with zero padding between them
    for (;;) {
      uint8_t first[6];
      if (!s.Exact(first, 1, "a cpio header")) break;
      if (first[0] == 0) continue;
      if (!s.Exact(first + 1, 5, "a cpio header"))
        throw InitramfsError("cpio header cut short " + where);
      Archive(s, first, out, want, where);
    }
    out.segments.push_back(kind);
    off = d->End();
  }
  if (out.segments.empty()) throw InitramfsError("empty image");
  return out;
}

}  // namespace nmimgr::ctl
