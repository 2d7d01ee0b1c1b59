// The prefetcher: a reader thread that keeps the next disk-tier blocks'
// weights in flight while the current block computes (DESIGN.md, "Execution:
// hooks and streaming"). Blocks streamed from disk are numbered in execution
// order; block i reads into its host staging slot (slot_of[i]) with large
// aligned reads that bypass the page cache (format/direct_reader.h). A slot
// is refilled only after the block using it was released, so at most `slots`
// blocks are in memory at once, and nothing is allocated per token.
// Thread-safety: wait/release/restart from the thread running the model; the
// reader thread is internal.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "format/direct_reader.h"

namespace strata {

class Prefetcher {
 public:
  struct Read {
    const DirectReader* file;
    uint64_t offset;
    uint64_t size;
    uint8_t* dst;  // kAlign-aligned, span_bytes(offset, size) of room
  };
  // reads[i]: what block i of the disk stream needs, read into slot slot_of[i].
  Prefetcher(std::vector<std::vector<Read>> reads, std::vector<size_t> slot_of, size_t slots);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // Blocks until block i's weights are in its slot. Blocks are used in order,
  // 0..n-1 then 0 again (the next pass); a call out of that order (a pass cut
  // short by an error) starts the stream over at i. Rethrows a read error.
  void wait(size_t block);
  // Block i is done with its slot: the reader may refill it.
  void release(size_t block);

  // Bytes read so far, and the seconds the reader spent in reads (its busy
  // time: the rest it waited for a free slot).
  struct Totals {
    uint64_t bytes = 0;
    double read_seconds = 0;
  };
  Totals totals() const;

 private:
  void reader_loop();
  void stop_reader();
  void start_reader(uint64_t first_sequence);

  std::vector<std::vector<Read>> reads_;
  std::vector<size_t> slot_of_;
  size_t slots_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  // Sequence numbers count blocks over all passes: block = sequence % n.
  uint64_t next_read_ = 0;      // the next sequence the reader will fill
  uint64_t filled_ = 0;         // sequences below this are in their slots
  uint64_t next_use_ = 0;       // the sequence the model runs next
  std::vector<bool> slot_busy_; // filled and not yet released
  std::exception_ptr error_;
  Totals totals_;
  bool stop_ = false;
  std::thread reader_;
};

}  // namespace strata
