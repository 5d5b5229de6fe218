// SPDX-License-Identifier: GPL-2.0-or-later
#include "scan.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "checked.h"
#include "codec.h"

namespace nmimgr::vmcore {
namespace {

struct Batch {
  uint64_t seq = 0;
  std::vector<PageJob> jobs;
};

// What one batch came to.
struct BatchResult {
  uint64_t decoded = 0;
  uint64_t bad = 0;
  std::string first_bad;
  uint64_t zeroed = 0;  // compressed data that is all zero bytes
  std::string first_zeroed;
};

bool AllZero(std::span<const uint8_t> b) {
  return std::all_of(b.begin(), b.end(), [](uint8_t c) { return c == 0; });
}

class Engine {
 public:
  Engine(uint32_t page_size, PageVisitor& visitor, bool deep)
      : page_size_(page_size), visitor_(visitor), deep_(deep) {}

  // The page data of a batch, read with one call when it lies close
  // together in one source (makedumpfile writes it in pfn order): one read
  // per batch instead of one per page.
  struct Span {
    Source* src = nullptr;
    uint64_t offset = 0;
    // Reused from batch to batch and never zeroed: only bytes that were
    // read are handed out (a vector's resize zeroed them all first).
    std::unique_ptr<uint8_t[]> buf;
    size_t cap = 0;
    std::span<const uint8_t> bytes;  // what was read, in buf

    bool Covers(const PageJob& j) const {
      return j.src == src && j.offset >= offset &&
             j.offset - offset <= bytes.size() &&
             j.size <= bytes.size() - (j.offset - offset);
    }
  };

  static void ReadSpan(const std::vector<PageJob>& jobs, Span& span) {
    constexpr uint64_t kMaxSpan = 16 << 20;
    span.src = nullptr;
    span.bytes = {};
    uint64_t lo = UINT64_MAX, hi = 0, stored = 0;
    Source* src = nullptr;
    for (const PageJob& j : jobs) {
      if (j.zero_page || j.size == 0) continue;
      if (src && j.src != src) return;
      src = j.src;
      lo = std::min(lo, j.offset);
      hi = std::max(hi, j.offset + j.size);
      stored += j.size;
    }
    // Only where little between the pages would be read for nothing.
    if (!src || hi - lo > kMaxSpan || hi - lo > 2 * stored) return;
    if (span.cap < hi - lo) {
      span.buf = std::make_unique_for_overwrite<uint8_t[]>(hi - lo);
      span.cap = hi - lo;
    }
    span.bytes = {span.buf.get(),
                  src->ReadAt(lo, std::span<uint8_t>(span.buf.get(), hi - lo))};
    span.src = src;
    span.offset = lo;
  }

  // Decodes one job into `out`; returns an error text or "".  `stored` is
  // left on the job's stored bytes: a slice of the span when it covers the
  // job (no copy), else `in`, read on its own (short reads, other sources).
  std::string Decode(const PageJob& j, const Span& span,
                     std::vector<uint8_t>& in, std::span<const uint8_t>& stored,
                     std::span<uint8_t> out) {
    if (span.Covers(j)) {
      stored = span.bytes.subspan(j.offset - span.offset, j.size);
    } else {
      in.resize(j.size);
      stored = in;
      try {
        ReadExact(*j.src, j.offset, in, "page data");
      } catch (const TruncatedError& e) {
        return e.what();
      }
    }
    if (j.flags == 0 && j.size < page_size_) {  // ELF tail piece
      std::copy(stored.begin(), stored.end(), out.begin());
      std::fill(out.begin() + j.size, out.end(), 0);
      return {};
    }
    return DecodePage(j.flags, stored, out);
  }

  // Where the page's first byte lies in physical memory; all ones for a
  // pfn too large to have an address (no record can claim that).
  uint64_t PhysicalAddress(const PageJob& j) const {
    if (j.pfn > (UINT64_MAX - j.pfn_skew) / page_size_) return UINT64_MAX;
    return j.pfn * page_size_ + j.pfn_skew;
  }

  void RunBatch(const Batch& batch) {
    BatchResult res;
    auto bad = [&](const PageJob& j, const std::string& err) {
      if (res.bad++ == 0)
        res.first_bad =
            fmt::format("page at pfn {} (descriptor {}, data at offset {}): {}",
                        j.pfn, j.index, j.offset, err);
    };
    std::vector<uint8_t> in, page(page_size_), next(page_size_);
    std::span<const uint8_t> stored;
    const auto& jobs = batch.jobs;
    thread_local Span span;
    ReadSpan(jobs, span);
    // A page decoded as its predecessor's lookahead is kept for its own
    // turn, so each page is decoded once (twice only when it fails).
    bool page_ready = false;
    for (size_t i = 0; i < jobs.size(); ++i) {
      const PageJob& j = jobs[i];
      const bool ready = std::exchange(page_ready, false);
      if (j.lookahead) continue;
      done_.fetch_add(1, std::memory_order_relaxed);
      if (j.zero_page) {
        // makedumpfile's shared zero page: check it once (deep), never scan.
        if (deep_ && !zero_checked_.exchange(true)) {
          std::string err = Decode(j, span, in, stored, page);
          if (err.empty() && std::any_of(page.begin(), page.end(),
                                         [](uint8_t b) { return b; }))
            err = "the shared zero page is not zero";
          if (!err.empty()) bad(j, err);
        }
        continue;
      }
      std::string err =
          ready ? std::string() : Decode(j, span, in, stored, page);
      if (!err.empty()) {
        // No codec writes a stream of zero bytes: such data never reached
        // the disk (a reset before the page cache was written back).
        if (j.flags != 0 && stored.size() == j.size && AllZero(stored)) {
          if (res.zeroed++ == 0)
            res.first_zeroed =
                fmt::format("page at pfn {} (descriptor {}, data at offset {})",
                            j.pfn, j.index, j.offset);
        } else {
          bad(j, err);
        }
        continue;
      }
      std::span<const uint8_t> nx;
      bool next_ready = false;
      if (i + 1 < jobs.size() && jobs[i + 1].pfn == j.pfn + 1) {
        const PageJob& n = jobs[i + 1];
        bool ok = true;
        if (n.zero_page)
          std::fill(next.begin(), next.end(), 0);
        else
          ok = Decode(n, span, in, stored, next).empty();
        if (ok)
          nx = std::span<const uint8_t>(next).first(
              std::min<size_t>(kNextPrefix, page_size_));
        next_ready = ok && !n.zero_page && !n.lookahead;
      }
      visitor_.Visit(batch.seq, j.pfn, PhysicalAddress(j), page, nx);
      ++res.decoded;
      if (next_ready) {
        std::swap(page, next);
        page_ready = true;
      }
    }
    std::lock_guard lock(mu_);
    results_[batch.seq] = std::move(res);
  }

  uint32_t page_size_;
  PageVisitor& visitor_;
  bool deep_;
  std::atomic<bool> zero_checked_{false};
  std::atomic<uint64_t> done_{0};
  std::mutex mu_;
  std::map<uint64_t, BatchResult> results_;
};

}  // namespace

ScanStats ScanPages(DumpReader& reader, uint32_t page_size,
                    PageVisitor& visitor, const ScanOptions& opts,
                    Findings& findings) {
  Engine eng(page_size, visitor, opts.deep);
  const uint64_t total = reader.PageCount();
  unsigned threads = std::clamp(opts.threads, 1u, kMaxScanThreads);
  ScanStats stats;

  std::mutex mu;
  std::condition_variable cv_work, cv_space;
  std::deque<Batch> queue;
  bool closed = false;
  const size_t max_queue = threads * 4;
  std::exception_ptr failure;

  // Workers drain the queue even once the visitor is done: every batch up to
  // the one the visitor names is then always processed.
  auto worker = [&] {
    for (;;) {
      Batch batch;
      {
        std::unique_lock lock(mu);
        cv_work.wait(lock, [&] { return closed || !queue.empty(); });
        if (queue.empty()) return;
        batch = std::move(queue.front());
        queue.pop_front();
        cv_space.notify_one();
      }
      try {
        eng.RunBatch(batch);
      } catch (...) {
        std::lock_guard lock(mu);
        if (!failure) failure = std::current_exception();
      }
    }
  };

  std::vector<std::thread> pool;
  if (threads > 1) {
    pool.reserve(threads);
    try {
      for (unsigned i = 0; i < threads; ++i) pool.emplace_back(worker);
    } catch (const std::system_error&) {
      // Out of threads (ulimit -u, memory): go on with those that started.
    }
    if (pool.empty()) threads = 1;
  }

  uint64_t batches = 0;
  bool more = false;  // pages were left when the visitor was done
  try {
    Batch batch;
    while (reader.NextBatch(batch.jobs)) {
      if (!opts.deep && visitor.DoneAt()) {
        more = true;
        break;
      }
      batch.seq = batches++;
      if (threads > 1) {
        std::unique_lock lock(mu);
        cv_space.wait(lock, [&] { return queue.size() < max_queue; });
        queue.push_back(std::move(batch));
        batch = {};
        cv_work.notify_one();
        if (failure) break;
      } else {
        eng.RunBatch(batch);
      }
      if (opts.progress) opts.progress(eng.done_.load(), total);
    }
  } catch (...) {
    std::lock_guard lock(mu);
    if (!failure) failure = std::current_exception();
  }
  {
    std::lock_guard lock(mu);
    closed = true;
  }
  cv_work.notify_all();
  for (auto& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
  if (opts.progress) opts.progress(eng.done_.load(), total);

  uint64_t last = batches ? batches - 1 : 0;
  if (!opts.deep) {
    if (std::optional<uint64_t> at = visitor.DoneAt()) {
      last = *at;
      stats.stopped_early = last + 1 < batches || more;
      visitor.Truncate(last);
    }
  }
  std::string first_bad, first_zeroed;
  uint64_t zeroed = 0;
  for (const auto& [seq, res] : eng.results_) {
    if (seq > last) break;
    stats.pages_decoded += res.decoded;
    if (res.bad && stats.pages_bad == 0) first_bad = res.first_bad;
    stats.pages_bad += res.bad;
    if (res.zeroed && zeroed == 0) first_zeroed = res.first_zeroed;
    zeroed += res.zeroed;
  }
  if (zeroed)
    findings.Add(FindingCode::kZeroData,
                 fmt::format("{} pages have compressed data that is all zero "
                             "bytes, data that never reached the disk; the "
                             "first is the {}",
                             zeroed, first_zeroed));
  if (stats.pages_bad)
    findings.Add(FindingCode::kBadPage,
                 fmt::format("{}; {} pages do not decode to a page", first_bad,
                             stats.pages_bad));
  return stats;
}

}  // namespace nmimgr::vmcore
