// SPDX-License-Identifier: GPL-2.0-or-later
#include "scan.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "checked.h"
#include "codec.h"

namespace nmimgr::vmcore {
namespace {

class Engine {
 public:
  Engine(uint32_t page_size, PageVisitor& visitor, bool deep)
      : page_size_(page_size), visitor_(visitor), deep_(deep) {}

  // Decodes one job into `out`; returns an error text or "".
  std::string Decode(const PageJob& j, std::vector<uint8_t>& in,
                     std::span<uint8_t> out) {
    in.resize(j.size);
    try {
      ReadExact(*j.src, j.offset, in, "page data");
    } catch (const TruncatedError& e) {
      return e.what();
    }
    if (j.flags == 0 && j.size < page_size_) {  // ELF tail piece
      std::copy(in.begin(), in.end(), out.begin());
      std::fill(out.begin() + j.size, out.end(), 0);
      return {};
    }
    return DecodePage(j.flags, in, out);
  }

  void RunBatch(const std::vector<PageJob>& batch) {
    std::vector<uint8_t> in, page(page_size_), next(page_size_);
    for (size_t i = 0; i < batch.size(); ++i) {
      const PageJob& j = batch[i];
      if (j.lookahead) continue;
      if (!deep_ && visitor_.Done()) return;
      if (j.zero_page) {
        // makedumpfile's shared zero page: check it once (deep), never scan.
        if (deep_ && !zero_checked_.exchange(true)) {
          std::string err = Decode(j, in, page);
          if (err.empty() && std::any_of(page.begin(), page.end(),
                                         [](uint8_t b) { return b; }))
            err = "the shared zero page is not zero";
          if (!err.empty()) Bad(j, err);
        }
        done_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      std::string err = Decode(j, in, page);
      if (!err.empty()) {
        Bad(j, err);
        done_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      std::span<const uint8_t> nx;
      if (i + 1 < batch.size() && batch[i + 1].pfn == j.pfn + 1) {
        const PageJob& n = batch[i + 1];
        if (n.zero_page) {
          std::fill(next.begin(), next.end(), 0);
          nx = std::span<const uint8_t>(next).first(
              std::min<size_t>(kNextPrefix, page_size_));
        } else if (Decode(n, in, next).empty()) {
          nx = std::span<const uint8_t>(next).first(
              std::min<size_t>(kNextPrefix, page_size_));
        }
      }
      visitor_.Visit(j.pfn, page, nx);
      decoded_.fetch_add(1, std::memory_order_relaxed);
      done_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void Bad(const PageJob& j, const std::string& err) {
    std::lock_guard lock(mu_);
    if (bad_++ == 0)
      first_bad_ = fmt::format(
          "page at pfn {} (descriptor {}, data at offset "
          "{}): {}",
          j.pfn, j.index, j.offset, err);
  }

  uint32_t page_size_;
  PageVisitor& visitor_;
  bool deep_;
  std::atomic<bool> zero_checked_{false};
  std::atomic<uint64_t> done_{0}, decoded_{0};
  std::mutex mu_;
  uint64_t bad_ = 0;
  std::string first_bad_;
};

}  // namespace

ScanStats ScanPages(DumpReader& reader, uint32_t page_size,
                    PageVisitor& visitor, const ScanOptions& opts,
                    Findings& findings) {
  Engine eng(page_size, visitor, opts.deep);
  const uint64_t total = reader.PageCount();
  unsigned threads = std::max(1u, opts.threads);
  ScanStats stats;

  std::mutex mu;
  std::condition_variable cv_work, cv_space;
  std::deque<std::vector<PageJob>> queue;
  bool closed = false;
  const size_t max_queue = threads * 4;
  std::exception_ptr failure;

  auto worker = [&] {
    for (;;) {
      std::vector<PageJob> batch;
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
  if (threads > 1)
    for (unsigned i = 0; i < threads; ++i) pool.emplace_back(worker);

  try {
    std::vector<PageJob> batch;
    while (reader.NextBatch(batch)) {
      if (!opts.deep && visitor.Done()) {
        stats.stopped_early = true;
        break;
      }
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

  stats.pages_decoded = eng.decoded_.load();
  stats.pages_bad = eng.bad_;
  if (!opts.deep && visitor.Done() && eng.done_.load() < total)
    stats.stopped_early = true;
  if (eng.bad_)
    findings.Add(Severity::kCorrupt, "bad-page",
                 fmt::format("{}; {} pages do not decode to a page",
                             eng.first_bad_, eng.bad_));
  return stats;
}

}  // namespace nmimgr::vmcore
