// SPDX-License-Identifier: GPL-2.0-or-later
#include "outer.h"

#include <bzlib.h>
#include <fmt/format.h>
#include <lz4frame.h>
#include <lzma.h>
#include <spdlog/spdlog.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <list>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "checked.h"

namespace nmimgr::vmcore {
namespace {

constexpr size_t kBlock = 1 << 20;
constexpr size_t kCachedBlocks = 16;
constexpr size_t kInChunk = 1 << 16;

// One decompressor.  Decode() consumes from `in` and fills `out`; it returns
// bytes produced and sets *ended when the current stream or member ended.
class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void Reset() = 0;
  virtual size_t Decode(std::span<const uint8_t>& in, std::span<uint8_t> out,
                        bool* ended) = 0;
};

class XzDecoder : public Decoder {
 public:
  XzDecoder() { Reset(); }
  ~XzDecoder() override { lzma_end(&s_); }
  void Reset() override {
    lzma_end(&s_);
    s_ = LZMA_STREAM_INIT;
    if (lzma_stream_decoder(&s_, UINT64_MAX, 0) != LZMA_OK)
      throw IoError("xz: cannot initialise the decoder");
  }
  size_t Decode(std::span<const uint8_t>& in, std::span<uint8_t> out,
                bool* ended) override {
    s_.next_in = in.data();
    s_.avail_in = in.size();
    s_.next_out = out.data();
    s_.avail_out = out.size();
    lzma_ret r = lzma_code(&s_, LZMA_RUN);
    in = in.subspan(in.size() - s_.avail_in);
    *ended = r == LZMA_STREAM_END;
    if (r != LZMA_OK && r != LZMA_STREAM_END && r != LZMA_BUF_ERROR)
      throw CorruptError(
          fmt::format("xz stream: decoder error {}", static_cast<int>(r)));
    return out.size() - s_.avail_out;
  }

 private:
  lzma_stream s_ = LZMA_STREAM_INIT;
};

class GzipDecoder : public Decoder {
 public:
  GzipDecoder() { Reset(); }
  ~GzipDecoder() override {
    if (init_) inflateEnd(&s_);
  }
  void Reset() override {
    if (init_) inflateEnd(&s_);
    std::memset(&s_, 0, sizeof(s_));
    if (inflateInit2(&s_, 16 + MAX_WBITS) != Z_OK)
      throw IoError("gzip: cannot initialise the decoder");
    init_ = true;
  }
  size_t Decode(std::span<const uint8_t>& in, std::span<uint8_t> out,
                bool* ended) override {
    s_.next_in = const_cast<Bytef*>(in.data());
    s_.avail_in = static_cast<uInt>(in.size());
    s_.next_out = out.data();
    s_.avail_out = static_cast<uInt>(out.size());
    int r = inflate(&s_, Z_NO_FLUSH);
    in = in.subspan(in.size() - s_.avail_in);
    *ended = r == Z_STREAM_END;
    if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR)
      throw CorruptError(
          fmt::format("gzip stream: {}", s_.msg ? s_.msg : "data error"));
    return out.size() - s_.avail_out;
  }

 private:
  z_stream s_{};
  bool init_ = false;
};

class Bzip2Decoder : public Decoder {
 public:
  Bzip2Decoder() { Reset(); }
  ~Bzip2Decoder() override {
    if (init_) BZ2_bzDecompressEnd(&s_);
  }
  void Reset() override {
    if (init_) BZ2_bzDecompressEnd(&s_);
    std::memset(&s_, 0, sizeof(s_));
    if (BZ2_bzDecompressInit(&s_, 0, 0) != BZ_OK)
      throw IoError("bzip2: cannot initialise the decoder");
    init_ = true;
  }
  size_t Decode(std::span<const uint8_t>& in, std::span<uint8_t> out,
                bool* ended) override {
    s_.next_in = reinterpret_cast<char*>(const_cast<uint8_t*>(in.data()));
    s_.avail_in = static_cast<unsigned>(in.size());
    s_.next_out = reinterpret_cast<char*>(out.data());
    s_.avail_out = static_cast<unsigned>(out.size());
    int r = BZ2_bzDecompress(&s_);
    in = in.subspan(in.size() - s_.avail_in);
    *ended = r == BZ_STREAM_END;
    if (r != BZ_OK && r != BZ_STREAM_END)
      throw CorruptError(fmt::format("bzip2 stream: decoder error {}", r));
    return out.size() - s_.avail_out;
  }

 private:
  bz_stream s_{};
  bool init_ = false;
};

class Lz4Decoder : public Decoder {
 public:
  Lz4Decoder() { Reset(); }
  ~Lz4Decoder() override {
    if (ctx_) LZ4F_freeDecompressionContext(ctx_);
  }
  void Reset() override {
    if (ctx_) LZ4F_freeDecompressionContext(ctx_);
    ctx_ = nullptr;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&ctx_, LZ4F_VERSION)))
      throw IoError("lz4: cannot initialise the decoder");
  }
  size_t Decode(std::span<const uint8_t>& in, std::span<uint8_t> out,
                bool* ended) override {
    size_t out_size = out.size();
    size_t in_size = in.size();
    size_t hint = LZ4F_decompress(ctx_, out.data(), &out_size, in.data(),
                                  &in_size, nullptr);
    if (LZ4F_isError(hint))
      throw CorruptError(
          fmt::format("lz4 stream: {}", LZ4F_getErrorName(hint)));
    in = in.subspan(in_size);
    *ended = hint == 0;
    return out_size;
  }

 private:
  LZ4F_dctx* ctx_ = nullptr;
};

std::unique_ptr<Decoder> MakeDecoder(OuterKind kind) {
  switch (kind) {
    case OuterKind::kXz:
      return std::make_unique<XzDecoder>();
    case OuterKind::kGzip:
      return std::make_unique<GzipDecoder>();
    case OuterKind::kBzip2:
      return std::make_unique<Bzip2Decoder>();
    case OuterKind::kLz4:
      return std::make_unique<Lz4Decoder>();
    case OuterKind::kNone:
      break;
  }
  throw std::logic_error("no decoder for an uncompressed file");
}

class DecodingSource : public StreamSource {
 public:
  DecodingSource(std::unique_ptr<Source> raw, OuterKind kind)
      : raw_(std::move(raw)), kind_(kind), dec_(MakeDecoder(kind)) {}

  uint64_t Size() override {
    std::lock_guard lock(mu_);
    DecodeToEnd();
    return *size_;
  }

  size_t ReadAt(uint64_t offset, std::span<uint8_t> out) override {
    std::lock_guard lock(mu_);
    size_t done = 0;
    while (done < out.size()) {
      uint64_t pos = offset + done;
      const std::vector<uint8_t>* block = GetBlock(pos / kBlock);
      if (block == nullptr) break;
      size_t in_block = pos % kBlock;
      if (in_block >= block->size()) break;
      size_t n = std::min(out.size() - done, block->size() - in_block);
      std::memcpy(out.data() + done, block->data() + in_block, n);
      done += n;
      if (block->size() < kBlock) break;  // Last block.
    }
    return done;
  }

  bool ThreadSafe() const override { return true; }
  std::string Name() const override { return raw_->Name(); }

  bool Truncated() override {
    std::lock_guard lock(mu_);
    DecodeToEnd();
    return truncated_;
  }
  std::string TruncationMessage() override {
    return fmt::format(
        "{} stream ends after {} compressed bytes without its end marker",
        OuterName(kind_), raw_pos_);
  }

 private:
  void Restart() {
    ++restarts_;
    spdlog::debug("{}: restarting the {} stream (restart {})", raw_->Name(),
                  OuterName(kind_), restarts_);
    dec_->Reset();
    raw_pos_ = 0;
    in_.clear();
    in_pos_ = 0;
    next_block_ = 0;
    ended_ = false;
    stream_done_ = false;
  }

  // Decodes the next block (or the last, short one).  Returns false at the
  // end of the data.
  bool DecodeNext(std::vector<uint8_t>& block) {
    block.resize(kBlock);
    size_t filled = 0;
    while (filled < kBlock && !ended_) {
      if (in_pos_ == in_.size()) {
        in_.resize(kInChunk);
        size_t n = raw_->ReadAt(raw_pos_, in_);
        in_.resize(n);
        in_pos_ = 0;
        raw_pos_ += n;
        if (n == 0) {
          // Input exhausted: fine only right after a complete stream.
          if (!stream_done_) truncated_ = true;
          ended_ = true;
          break;
        }
      }
      std::span<const uint8_t> in(in_.data() + in_pos_, in_.size() - in_pos_);
      size_t before = in.size();
      bool stream_end = false;
      std::span<uint8_t> out(block.data() + filled, kBlock - filled);
      size_t produced = dec_->Decode(in, out, &stream_end);
      in_pos_ += before - in.size();
      filled += produced;
      stream_done_ = stream_end;
      if (stream_end) {
        dec_->Reset();  // Concatenated streams or members may follow.
      } else if (produced == 0 && before == in.size()) {
        // No progress with input available: the decoder wants more input.
        if (in_pos_ != in_.size()) {
          throw CorruptError(
              fmt::format("{} stream: decoder stalled at "
                          "compressed offset {}",
                          OuterName(kind_), raw_pos_ - (in_.size() - in_pos_)));
        }
      }
    }
    block.resize(filled);
    if (filled < kBlock && !size_) size_ = next_block_ * kBlock + filled;
    return filled > 0;
  }

  const std::vector<uint8_t>* GetBlock(uint64_t index) {
    if (auto it = cache_.find(index); it != cache_.end()) {
      lru_.remove(index);
      lru_.push_front(index);
      return &it->second;
    }
    if (size_ && index * kBlock >= *size_) return nullptr;
    if (index < next_block_) Restart();
    while (next_block_ <= index) {
      if (ended_) return nullptr;
      std::vector<uint8_t> block;
      bool any = DecodeNext(block);
      uint64_t this_index = next_block_++;
      if (!any) return nullptr;
      if (cache_.count(this_index) == 0) {
        if (cache_.size() >= kCachedBlocks) {
          cache_.erase(lru_.back());
          lru_.pop_back();
        }
        cache_[this_index] = std::move(block);
        lru_.push_front(this_index);
      }
    }
    return &cache_.at(index);
  }

  void DecodeToEnd() {
    if (size_) return;
    while (!size_) {
      if (!GetBlock(next_block_)) break;
    }
    if (!size_) size_ = next_block_ * kBlock;
  }

  std::mutex mu_;
  std::unique_ptr<Source> raw_;
  OuterKind kind_;
  std::unique_ptr<Decoder> dec_;
  std::vector<uint8_t> in_;
  size_t in_pos_ = 0;
  uint64_t raw_pos_ = 0;
  uint64_t next_block_ = 0;
  bool ended_ = false;
  bool stream_done_ = false;
  bool truncated_ = false;
  std::optional<uint64_t> size_;
  std::unordered_map<uint64_t, std::vector<uint8_t>> cache_;
  std::list<uint64_t> lru_;
  uint64_t restarts_ = 0;
};

}  // namespace

const char* OuterName(OuterKind kind) {
  switch (kind) {
    case OuterKind::kNone:
      return "none";
    case OuterKind::kXz:
      return "xz";
    case OuterKind::kGzip:
      return "gzip";
    case OuterKind::kBzip2:
      return "bzip2";
    case OuterKind::kLz4:
      return "lz4";
  }
  return "?";
}

OuterKind DetectOuter(Source& raw) {
  uint8_t m[6] = {};
  size_t n = raw.ReadAt(0, m);
  if (n >= 6 && std::memcmp(m,
                            "\xfd"
                            "7zXZ\0",
                            6) == 0)
    return OuterKind::kXz;
  if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b) return OuterKind::kGzip;
  if (n >= 3 && std::memcmp(m, "BZh", 3) == 0) return OuterKind::kBzip2;
  if (n >= 4 && std::memcmp(m, "\x04\x22\x4d\x18", 4) == 0)
    return OuterKind::kLz4;
  return OuterKind::kNone;
}

std::unique_ptr<StreamSource> OpenOuter(std::unique_ptr<Source> raw,
                                        OuterKind kind) {
  return std::make_unique<DecodingSource>(std::move(raw), kind);
}

}  // namespace nmimgr::vmcore
