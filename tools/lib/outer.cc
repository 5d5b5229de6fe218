// SPDX-License-Identifier: GPL-2.0-or-later
#include "outer.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "checked.h"
#include "codec_libs.h"
#include "dump_open.h"

namespace nmimgr::vmcore {
namespace {

constexpr size_t kInChunk = 1 << 16;
// Blocks always kept whatever the budget: the most recently used ones.
constexpr size_t kRecentBlocks = 16;

// Decoded bytes held by all streams of the process, and what all of them
// decoded (ProcessOuterStats).
std::atomic<uint64_t> g_cached_bytes{0};
std::atomic<uint64_t> g_peak_cached_bytes{0};
std::atomic<uint64_t> g_decoded_bytes{0};
std::atomic<uint64_t> g_restarts{0};

// How the data of a decoder ended.
enum class End { kNo, kComplete, kTruncated };

// One decompressor over all streams (members, frames) of a file.  Decode()
// consumes from `in` (dropping what it used) and fills `out`; `last` says no
// input follows `in`.  It returns the bytes produced and sets end() once the
// data is over: complete, or truncated (the input ended inside a stream).
// Corrupt input throws CorruptError.
class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual size_t Decode(std::span<const uint8_t>& in, std::span<uint8_t> out,
                        bool last) = 0;
  End end() const { return end_; }
  // Where the bytes that follow the last stream begin, when they are
  // neither a stream nor NUL padding (the tool ignores them, warning).
  std::optional<uint64_t> trailing_at() const { return trailing_at_; }

 protected:
  void Consume(std::span<const uint8_t>& in, size_t n) {
    in = in.subspan(n);
    pos_ += n;
  }
  // After the last stream: NUL bytes to the end of the input are padding;
  // anything else makes all bytes from gap_at_ on trailing data.  Returns
  // true once decided.
  bool SkipZeros(std::span<const uint8_t>& in, bool last) {
    auto nz = std::find_if(in.begin(), in.end(), [](uint8_t b) { return b; });
    if (nz != in.end()) {
      trailing_at_ = gap_at_;
      end_ = End::kComplete;
      return true;
    }
    Consume(in, in.size());
    if (last) end_ = End::kComplete;
    return last;
  }

  End end_ = End::kNo;
  std::optional<uint64_t> trailing_at_;
  uint64_t pos_ = 0;     // compressed bytes consumed
  uint64_t gap_at_ = 0;  // where the last complete stream ended
};

const char* LzmaMessage(lzma_ret r) {
  switch (r) {
    case LZMA_DATA_ERROR:
      return "compressed data is corrupt";
    case LZMA_FORMAT_ERROR:
      return "file format not recognized";
    case LZMA_OPTIONS_ERROR:
      return "unsupported options";
    case LZMA_MEMLIMIT_ERROR:
      return "memory usage limit reached";
    default:
      return "decoder error";
  }
}

// liblzma with LZMA_CONCATENATED: streams and stream padding as `xz -t`
// reads them (the same library decides).  LZMA_FINISH at the end of the
// input makes it check that the padding is whole.
class XzDecoder : public Decoder {
 public:
  XzDecoder() {
    if (lib_.stream_decoder(&s_, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK)
      throw IoError("xz: cannot initialise the decoder");
  }
  ~XzDecoder() override { lib_.end(&s_); }
  size_t Decode(std::span<const uint8_t>& in, std::span<uint8_t> out,
                bool last) override {
    s_.next_out = out.data();
    s_.avail_out = out.size();
    lzma_ret r = LZMA_OK;
    // liblzma reports LZMA_BUF_ERROR on the second call that cannot make
    // progress: at the end of the input, call twice.
    for (int i = 0; i < 2; ++i) {
      s_.next_in = in.data();
      s_.avail_in = in.size();
      size_t out_before = s_.avail_out;
      r = lib_.code(&s_, last ? LZMA_FINISH : LZMA_RUN);
      Consume(in, in.size() - s_.avail_in);
      if (r != LZMA_OK || !last || !in.empty() || s_.avail_out != out_before ||
          s_.avail_out == 0)
        break;
    }
    if (r == LZMA_STREAM_END) {
      end_ = End::kComplete;
    } else if (r == LZMA_BUF_ERROR) {
      // No progress possible: the input ended inside a stream.
      if (last && in.empty()) end_ = End::kTruncated;
    } else if (r == LZMA_MEM_ERROR) {
      throw IoError("xz stream: cannot allocate memory");
    } else if (r != LZMA_OK) {
      throw CorruptError(fmt::format("xz stream: {} (at compressed offset {})",
                                     LzmaMessage(r), pos_));
    }
    return out.size() - s_.avail_out;
  }

 private:
  const LzmaLib& lib_ = Lzma();
  lzma_stream s_ = LZMA_STREAM_INIT;
};

// zlib inflate, one gzip member at a time; between members as gzip 1.12
// reads them (get_method in gzip.c): a member, NUL bytes to the end of the
// file, or trailing garbage.
class GzipDecoder : public Decoder {
 public:
  GzipDecoder() {
    if (lib_.InflateInit2(&s_, 16 + MAX_WBITS) != Z_OK)
      throw IoError("gzip: cannot initialise the decoder");
  }
  ~GzipDecoder() override { lib_.inflate_end(&s_); }
  size_t Decode(std::span<const uint8_t>& in, std::span<uint8_t> out,
                bool last) override {
    size_t done = 0;
    while (end_ == End::kNo) {
      if (state_ == kBetween) {
        if (!Between(in, last)) break;
        continue;
      }
      if (state_ == kZeros) {
        SkipZeros(in, last);
        break;
      }
      if (done == out.size()) break;
      // A member's first magic byte was consumed while looking ahead.
      uint8_t magic0 = 0x1f;
      bool replay = held_;
      std::span<const uint8_t> src = replay ? std::span(&magic0, 1) : in;
      s_.next_in = const_cast<Bytef*>(src.data());
      s_.avail_in = static_cast<uInt>(std::min<size_t>(src.size(), 1u << 30));
      s_.next_out = out.data() + done;
      s_.avail_out =
          static_cast<uInt>(std::min<size_t>(out.size() - done, 1u << 30));
      size_t in_before = s_.avail_in, out_before = s_.avail_out;
      int r = lib_.inflate_some(&s_, Z_NO_FLUSH);
      size_t used = in_before - s_.avail_in;
      if (replay) {
        held_ = used == 0;
      } else {
        Consume(in, used);
      }
      done += out_before - s_.avail_out;
      if (r == Z_STREAM_END) {
        state_ = kBetween;
        gap_at_ = pos_;
        continue;
      }
      if (r == Z_MEM_ERROR) throw IoError("gzip stream: cannot allocate memory");
      if (r != Z_OK && r != Z_BUF_ERROR)
        throw CorruptError(fmt::format(
            "gzip stream: {} (at compressed offset {})",
            s_.msg ? s_.msg : "data error", pos_));
      bool progress = used || out_before != s_.avail_out;
      if (!progress) {
        if (last && in.empty() && !held_ && s_.avail_out)
          end_ = End::kTruncated;
        break;
      }
      if (!replay && in.empty()) break;
    }
    return done;
  }

 private:
  // What follows a member.  Returns true once the state moved on.
  bool Between(std::span<const uint8_t>& in, bool last) {
    if (!held_) {
      if (in.empty()) {
        if (last) end_ = End::kComplete;
        return last;
      }
      if (in[0] == 0) {
        state_ = kZeros;
        return true;
      }
      // gzip reads a second magic byte after any byte but NUL, so one
      // byte after a member is "unexpected end of file" whatever it is.
      // Look at the second byte, perhaps in the next input chunk.
      first_ = in[0];
      Consume(in, 1);
      held_ = true;
    }
    if (in.empty()) {
      if (last) end_ = End::kTruncated;
      return last;
    }
    if (first_ != 0x1f || in[0] != 0x8b) {
      held_ = false;
      trailing_at_ = gap_at_;
      end_ = End::kComplete;
      return true;
    }
    if (lib_.inflate_reset(&s_) != Z_OK)
      throw IoError("gzip: cannot reset the decoder");
    state_ = kMember;  // held_ stays: the 0x1f goes in first
    return true;
  }

  enum State { kMember, kBetween, kZeros };
  const ZlibLib& lib_ = Zlib();
  z_stream s_{};
  State state_ = kMember;
  bool held_ = false;  // first_ consumed, not yet given to inflate
  uint8_t first_ = 0;  // the first byte after a member
};

// libbz2, one stream at a time; after the first, a stream header that is
// not "BZh1".."BZh9" is trailing garbage, as bzip2 1.0.8 reads it.
class Bzip2Decoder : public Decoder {
 public:
  Bzip2Decoder() { Init(); }
  ~Bzip2Decoder() override { lib_.decompress_end(&s_); }
  size_t Decode(std::span<const uint8_t>& in, std::span<uint8_t> out,
                bool last) override {
    size_t done = 0;
    while (end_ == End::kNo) {
      if (state_ == kBetween) {
        if (in.empty()) {
          if (last) end_ = End::kComplete;
          break;
        }
        if (in[0] == 0) {
          state_ = kZeros;
          continue;
        }
        lib_.decompress_end(&s_);
        Init();
        state_ = kMember;
        fresh_ = true;
        continue;
      }
      if (state_ == kZeros) {
        SkipZeros(in, last);
        break;
      }
      if (done == out.size()) break;
      s_.next_in = reinterpret_cast<char*>(const_cast<uint8_t*>(in.data()));
      s_.avail_in = static_cast<unsigned>(std::min<size_t>(in.size(), 1u << 30));
      s_.next_out = reinterpret_cast<char*>(out.data() + done);
      s_.avail_out =
          static_cast<unsigned>(std::min<size_t>(out.size() - done, 1u << 30));
      size_t in_before = s_.avail_in, out_before = s_.avail_out;
      int r = lib_.decompress(&s_);
      size_t used = in_before - s_.avail_in;
      Consume(in, used);
      done += out_before - s_.avail_out;
      if (r == BZ_DATA_ERROR_MAGIC && fresh_ && stream_ > 0) {
        trailing_at_ = gap_at_;
        end_ = End::kComplete;
        break;
      }
      if (r == BZ_MEM_ERROR) throw IoError("bzip2 stream: cannot allocate memory");
      if (r != BZ_OK && r != BZ_STREAM_END)
        throw CorruptError(fmt::format(
            "bzip2 stream: {} (at compressed offset {})",
            r == BZ_DATA_ERROR_MAGIC ? "bad stream header" : "data error",
            pos_));
      if (used >= 4) fresh_ = false;
      if (r == BZ_STREAM_END) {
        ++stream_;
        state_ = kBetween;
        gap_at_ = pos_;
        continue;
      }
      if (!used && out_before == s_.avail_out) {
        if (last && in.empty() && s_.avail_out) end_ = End::kTruncated;
        break;
      }
      if (in.empty()) break;
    }
    return done;
  }

 private:
  void Init() {
    std::memset(&s_, 0, sizeof(s_));
    if (lib_.decompress_init(&s_, 0, 0) != BZ_OK)
      throw IoError("bzip2: cannot initialise the decoder");
  }

  enum State { kMember, kBetween, kZeros };
  const Bzip2Lib& lib_ = Bzip2();
  bz_stream s_{};
  State state_ = kMember;
  bool fresh_ = true;  // the stream header is not yet past
  uint64_t stream_ = 0;
};

// liblz4's frame decoder: frames and skippable frames, back to back.
class Lz4Decoder : public Decoder {
 public:
  Lz4Decoder() {
    if (lib_.is_error(lib_.create_dctx(&ctx_, LZ4F_VERSION)))
      throw IoError("lz4: cannot initialise the decoder");
  }
  ~Lz4Decoder() override { lib_.free_dctx(ctx_); }
  size_t Decode(std::span<const uint8_t>& in, std::span<uint8_t> out,
                bool last) override {
    size_t done = 0;
    while (end_ == End::kNo) {
      if (between_ && in.empty()) {
        if (last) end_ = End::kComplete;
        break;
      }
      size_t out_size = out.size() - done;
      size_t in_size = in.size();
      size_t hint = lib_.decompress(ctx_, out.data() + done, &out_size,
                                    in.data(), &in_size, nullptr);
      if (lib_.is_error(hint))
        throw CorruptError(fmt::format("lz4 stream: {} (at compressed offset {})",
                                       lib_.error_name(hint), pos_));
      Consume(in, in_size);
      done += out_size;
      between_ = hint == 0;
      if (between_) continue;
      if (!in_size && !out_size) {
        if (last && in.empty() && done < out.size()) end_ = End::kTruncated;
        break;
      }
      if (in.empty() || done == out.size()) break;
    }
    return done;
  }

 private:
  const Lz4Lib& lib_ = Lz4();
  LZ4F_dctx* ctx_ = nullptr;
  bool between_ = false;
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

// Whether decoded data that starts with `head` can be a dump: a signature
// one of the readers takes, or a proper prefix of one (a stream cut short).
bool StartsLikeDump(const std::vector<uint8_t>& head) {
  MemorySource m(std::vector<uint8_t>(
      head.begin(), head.begin() + std::min<size_t>(head.size(), 64)));
  return ProbeDumpSignature(m) != Probe::kNotMine;
}

class DecodingSource : public StreamSource {
 public:
  DecodingSource(std::unique_ptr<Source> raw, OuterKind kind,
                 const OuterOptions& opts)
      : raw_(std::move(raw)),
        kind_(kind),
        block_(std::max<size_t>(opts.block_size, 4096)),
        budget_(opts.cache_budget ? opts.cache_budget : CacheBudget()),
        dec_(MakeDecoder(kind)) {}
  ~DecodingSource() override { g_cached_bytes -= cached_; }

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
      const std::vector<uint8_t>* block = GetBlock(pos / block_);
      if (block == nullptr) break;
      size_t in_block = pos % block_;
      if (in_block >= block->size()) break;
      size_t n = std::min(out.size() - done, block->size() - in_block);
      std::memcpy(out.data() + done, block->data() + in_block, n);
      done += n;
      if (block->size() < block_) break;  // Last block.
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
    std::lock_guard lock(mu_);
    return fmt::format(
        "{} stream ends after {} compressed bytes without its end marker",
        OuterName(kind_), raw_pos_);
  }
  std::optional<std::string> TrailingData() override {
    std::lock_guard lock(mu_);
    DecodeToEnd();
    if (!trailing_at_) return std::nullopt;
    uint64_t raw_size = raw_->Size();
    return fmt::format(
        "{} stream: the {} bytes from compressed offset {} to the end of the "
        "file are neither a {} stream nor NUL padding ({} ignores them with "
        "a warning); the data ends before them, after {} bytes",
        OuterName(kind_), raw_size - std::min(raw_size, *trailing_at_),
        *trailing_at_, OuterName(kind_), OuterName(kind_), *size_);
  }
  std::optional<std::string> NotADump() override {
    std::lock_guard lock(mu_);
    GetBlock(0);
    return not_a_dump_;
  }
  OuterStats Stats() override {
    std::lock_guard lock(mu_);
    return {decoded_, restarts_, cached_, peak_cached_};
  }

 private:
  void Restart() {
    ++restarts_;
    ++g_restarts;
    spdlog::debug("{}: restarting the {} stream (restart {})", raw_->Name(),
                  OuterName(kind_), restarts_);
    dec_ = MakeDecoder(kind_);
    raw_pos_ = 0;
    in_.clear();
    in_pos_ = 0;
    input_done_ = false;
    next_block_ = 0;
    ended_ = false;
  }

  // Decodes the next block (or the last, short one).  Returns false at the
  // end of the data.
  bool DecodeNext(std::vector<uint8_t>& block) {
    block.resize(block_);
    size_t filled = 0;
    while (filled < block_ && !ended_) {
      if (in_pos_ == in_.size() && !input_done_) {
        in_.resize(kInChunk);
        size_t n = raw_->ReadAt(raw_pos_, in_);
        in_.resize(n);
        in_pos_ = 0;
        raw_pos_ += n;
        input_done_ = n == 0;
      }
      std::span<const uint8_t> in(in_.data() + in_pos_, in_.size() - in_pos_);
      size_t before = in.size();
      std::span<uint8_t> out(block.data() + filled, block_ - filled);
      size_t produced = dec_->Decode(in, out, input_done_);
      in_pos_ += before - in.size();
      filled += produced;
      decoded_ += produced;
      g_decoded_bytes += produced;
      if (dec_->end() != End::kNo) {
        ended_ = true;
        truncated_ = dec_->end() == End::kTruncated;
        trailing_at_ = dec_->trailing_at();
        break;
      }
      if (produced == 0 && before == in.size() &&
          (input_done_ || in_pos_ != in_.size()))
        throw CorruptError(fmt::format(
            "{} stream: decoder stalled at compressed offset {}",
            OuterName(kind_), raw_pos_ - (in_.size() - in_pos_)));
    }
    block.resize(filled);
    if (next_block_ == 0 && !StartsLikeDump(block)) {
      // Not a dump: decode no further, whatever the stream holds.
      not_a_dump_ = fmt::format(
          "{} stream: the first {} decoded bytes carry no dump signature "
          "(ELF, KDUMP, makedumpfile); decoding stopped there",
          OuterName(kind_), filled);
      ended_ = true;
      truncated_ = false;
      trailing_at_.reset();
    }
    if ((filled < block_ || ended_) && !size_)
      size_ = next_block_ * block_ + filled;
    return filled > 0;
  }

  void Touch(uint64_t index) {
    auto it = std::find(recent_.begin(), recent_.end(), index);
    if (it != recent_.end()) recent_.erase(it);
    recent_.insert(recent_.begin(), index);
    if (recent_.size() > kRecentBlocks) recent_.pop_back();
  }

  // Keeps `block`; over the budget, drops the kept blocks furthest from the
  // start that are not among the most recently used.
  void Keep(uint64_t index, std::vector<uint8_t> block) {
    uint64_t n = block.size();
    cache_[index] = std::move(block);
    cached_ += n;
    g_cached_bytes += n;
    Touch(index);
    for (auto it = cache_.end();
         g_cached_bytes > budget_ && it != cache_.begin();) {
      --it;
      if (std::find(recent_.begin(), recent_.end(), it->first) !=
          recent_.end())
        continue;
      cached_ -= it->second.size();
      g_cached_bytes -= it->second.size();
      it = cache_.erase(it);
    }
    peak_cached_ = std::max(peak_cached_, cached_);
    uint64_t total = g_cached_bytes, peak = g_peak_cached_bytes;
    while (total > peak && !g_peak_cached_bytes.compare_exchange_weak(peak, total)) {
    }
  }

  const std::vector<uint8_t>* GetBlock(uint64_t index) {
    if (auto it = cache_.find(index); it != cache_.end()) {
      Touch(index);
      return &it->second;
    }
    if (size_ && index * block_ >= *size_) return nullptr;
    if (index < next_block_) Restart();
    while (next_block_ <= index) {
      if (ended_) return nullptr;
      std::vector<uint8_t> block;
      bool any = DecodeNext(block);
      uint64_t this_index = next_block_++;
      if (!any) return nullptr;
      if (cache_.count(this_index) == 0) Keep(this_index, std::move(block));
    }
    auto it = cache_.find(index);
    return it != cache_.end() ? &it->second : nullptr;
  }

  void DecodeToEnd() {
    while (!size_) {
      if (!GetBlock(next_block_)) break;
    }
    if (!size_) size_ = next_block_ * block_;
  }

  std::mutex mu_;
  std::unique_ptr<Source> raw_;
  OuterKind kind_;
  size_t block_;
  uint64_t budget_;
  std::unique_ptr<Decoder> dec_;
  std::vector<uint8_t> in_;
  size_t in_pos_ = 0;
  uint64_t raw_pos_ = 0;
  bool input_done_ = false;
  uint64_t next_block_ = 0;
  bool ended_ = false;
  bool truncated_ = false;
  std::optional<uint64_t> trailing_at_;
  std::optional<std::string> not_a_dump_;
  std::optional<uint64_t> size_;
  std::map<uint64_t, std::vector<uint8_t>> cache_;
  std::vector<uint64_t> recent_;
  uint64_t cached_ = 0, peak_cached_ = 0;
  uint64_t decoded_ = 0;
  uint64_t restarts_ = 0;
};

}  // namespace

uint64_t CacheBudget() {
  constexpr uint64_t kMax = 256ull << 20, kMin = 16ull << 20;
  long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return kMax;
  uint64_t eighth = static_cast<uint64_t>(pages) * page / 8;
  return std::clamp(eighth, kMin, kMax);
}

OuterStats ProcessOuterStats() {
  return {g_decoded_bytes, g_restarts, g_cached_bytes, g_peak_cached_bytes};
}

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
                                        OuterKind kind,
                                        const OuterOptions& opts) {
  return std::make_unique<DecodingSource>(std::move(raw), kind, opts);
}

}  // namespace nmimgr::vmcore
