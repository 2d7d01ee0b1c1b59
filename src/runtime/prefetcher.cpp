#include "runtime/prefetcher.h"

#include "core/clock.h"

namespace strata {

Prefetcher::Prefetcher(std::vector<std::vector<Read>> reads, std::vector<size_t> slot_of, size_t slots)
    : reads_(std::move(reads)), slot_of_(std::move(slot_of)), slots_(slots), slot_busy_(slots, false) {
  if (!reads_.empty()) start_reader(0);
}

Prefetcher::~Prefetcher() { stop_reader(); }

void Prefetcher::start_reader(uint64_t first_sequence) {
  next_read_ = filled_ = next_use_ = first_sequence;
  slot_busy_.assign(slots_, false);
  error_ = nullptr;
  stop_ = false;
  reader_ = std::thread([this] { reader_loop(); });
}

void Prefetcher::stop_reader() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  if (reader_.joinable()) reader_.join();
}

void Prefetcher::reader_loop() {
  const size_t n = reads_.size();
  for (;;) {
    uint64_t sequence;
    {
      std::unique_lock lock(mutex_);
      // The slot must be free; after an error the reader waits to be stopped.
      changed_.wait(lock, [&] { return stop_ || (!error_ && !slot_busy_[slot_of_[next_read_ % n]]); });
      if (stop_) return;
      sequence = next_read_;
      slot_busy_[slot_of_[sequence % n]] = true;
    }
    const auto started = std::chrono::steady_clock::now();
    uint64_t bytes = 0;
    try {
      for (const Read& r : reads_[sequence % n]) {
        r.file->read(r.offset, r.size, r.dst);
        bytes += r.size;
      }
    } catch (...) {
      std::lock_guard lock(mutex_);
      error_ = std::current_exception();
      changed_.notify_all();
      continue;
    }
    {
      std::lock_guard lock(mutex_);
      filled_ = ++next_read_;
      totals_.bytes += bytes;
      totals_.read_seconds += seconds_since(started);
    }
    changed_.notify_all();
  }
}

void Prefetcher::wait(size_t block) {
  const size_t n = reads_.size();
  std::unique_lock lock(mutex_);
  if (next_use_ % n != block) {
    // A pass was cut short: start the stream over at this block.
    lock.unlock();
    stop_reader();
    const uint64_t restart = (next_use_ / n + 1) * n + block;
    start_reader(restart);
    lock.lock();
  }
  changed_.wait(lock, [&] { return filled_ > next_use_ || error_; });
  if (filled_ <= next_use_ && error_) {
    const std::exception_ptr error = error_;
    lock.unlock();
    // Start over on the next call, so a caller that handles the error can go on.
    stop_reader();
    start_reader((next_use_ / n + 1) * n);
    std::rethrow_exception(error);
  }
}

void Prefetcher::release(size_t block) {
  const size_t n = reads_.size();
  {
    std::lock_guard lock(mutex_);
    if (next_use_ % n != block) return;  // not the block in use: nothing to free
    slot_busy_[slot_of_[block]] = false;
    ++next_use_;
  }
  changed_.notify_all();
}

Prefetcher::Totals Prefetcher::totals() const {
  std::lock_guard lock(mutex_);
  return totals_;
}

}  // namespace strata
