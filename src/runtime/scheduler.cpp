#include "strata/scheduler.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "core/clock.h"
#include "strata/error.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;

struct Sequence {
  uint64_t id = 0;
  std::vector<int32_t> prompt;
  GenerateOptions options;
  SequenceEvents events;
  Sampler sampler;
  Clock::time_point submitted;
  int64_t fed = 0;  // prompt tokens in the cache
  int64_t new_tokens = 0;
  int32_t last = 0;  // the newest token, fed at the next step
  double first_token_seconds = 0;

  Sequence(uint64_t sequence_id, std::vector<int32_t> ids, const GenerateOptions& o, SequenceEvents e)
      : id(sequence_id), prompt(std::move(ids)), options(o), events(std::move(e)), sampler(o.sampling),
        submitted(Clock::now()) {}
  bool reading_prompt() const { return fed < static_cast<int64_t>(prompt.size()); }
};

}  // namespace

struct Scheduler::Impl {
  SchedulerOptions options;
  // A row of the session per slot: each sequence has its own cache row and
  // length, and one pass over the weights serves every slot of a step.
  std::unique_ptr<Session> session;
  std::vector<std::unique_ptr<Sequence>> running;  // by slot; null: free
  // The step being built (reused: no allocation per step once grown).
  std::vector<StepSegment> segments;
  std::vector<int32_t> ids;
  std::vector<size_t> segment_slots;

  mutable std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::unique_ptr<Sequence>> waiting;  // under mutex
  std::unordered_set<uint64_t> live;              // under mutex: waiting or running
  std::unordered_set<uint64_t> cancelled;         // under mutex: live ones to end
  uint64_t next_id = 1;                           // under mutex
  bool stopping = false;                          // under mutex: no new sequences
  bool finish_running = true;                     // under mutex: else stopping cancels them
  SchedulerStats stats;                           // under mutex
  // New tokens per step over the last few seconds, for the batch's rate.
  std::deque<std::pair<Clock::time_point, int64_t>> recent;  // under mutex
  std::thread thread;

  explicit Impl(const SchedulerOptions& o) : options(o) {}

  void loop();
  bool admit();
  void step();
  void finish(size_t slot, FinishReason reason, std::string error = {});
  // Samples a sequence's next token from its logits and reports it; false
  // when the sequence ended.
  bool take_token(size_t slot, std::span<const float> logits);
  void record_step(double seconds, int64_t rows, int64_t new_tokens);
};

Scheduler::Scheduler(Model& model, const SchedulerOptions& options) : impl_(std::make_unique<Impl>(options)) {
  if (options.slots <= 0 || options.context <= 0 || options.prefill_chunk <= 0)
    throw Error("the scheduler needs at least one slot, one token of context and one prompt token per step");
  impl_->session = std::make_unique<Session>(model, options.slots, options.context);
  impl_->running.resize(static_cast<size_t>(options.slots));
  impl_->stats.slots = options.slots;
  impl_->thread = std::thread([this] { impl_->loop(); });
}

Scheduler::~Scheduler() { stop(false); }

uint64_t Scheduler::submit(std::vector<int32_t> prompt, const GenerateOptions& options, SequenceEvents events) {
  if (prompt.empty()) throw Error("the prompt is empty", "", "", "give at least one token, e.g. BOS");
  if (options.max_new_tokens < 0) throw Error("the number of new tokens must be >= 0");
  const int64_t needed = static_cast<int64_t>(prompt.size()) + options.max_new_tokens;
  if (needed > impl_->options.context)
    throw Error("the prompt (" + std::to_string(prompt.size()) + " tokens) and up to " +
                std::to_string(options.max_new_tokens) + " new tokens exceed the context of " +
                std::to_string(impl_->options.context) + " tokens by " +
                std::to_string(needed - impl_->options.context) + " tokens");
  std::lock_guard lock(impl_->mutex);
  if (impl_->stopping) throw Error("the scheduler is stopping and takes no new sequences");
  const uint64_t id = impl_->next_id++;
  impl_->live.insert(id);
  impl_->waiting.push_back(std::make_unique<Sequence>(id, std::move(prompt), options, std::move(events)));
  ++impl_->stats.waiting;
  impl_->wake.notify_one();
  return id;
}

void Scheduler::cancel(uint64_t id) {
  std::lock_guard lock(impl_->mutex);
  if (!impl_->live.count(id)) return;
  impl_->cancelled.insert(id);
  impl_->wake.notify_one();
}

void Scheduler::stop(bool finish_running) {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
    if (!finish_running) impl_->finish_running = false;
    impl_->wake.notify_one();
  }
  if (impl_->thread.joinable()) impl_->thread.join();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->stats;
}

const SchedulerOptions& Scheduler::options() const { return impl_->options; }

void Scheduler::Impl::loop() {
  for (;;) {
    if (!admit()) return;
    step();
  }
}

// Between steps: ends cancelled sequences, moves waiting ones into free
// slots, and sleeps while there is nothing to run. False when the loop ends.
bool Scheduler::Impl::admit() {
  std::unique_lock lock(mutex);
  for (;;) {
    const bool cancel_all = stopping && !finish_running;
    for (size_t s = 0; s < running.size(); ++s)
      if (running[s] && (cancel_all || cancelled.count(running[s]->id))) {
        lock.unlock();
        finish(s, FinishReason::cancelled);
        lock.lock();
      }
    for (auto it = waiting.begin(); it != waiting.end();) {
      if (!cancel_all && !cancelled.count((*it)->id)) {
        ++it;
        continue;
      }
      live.erase((*it)->id);
      cancelled.erase((*it)->id);
      std::unique_ptr<Sequence> gone = std::move(*it);
      it = waiting.erase(it);
      --stats.waiting;
      lock.unlock();
      SequenceSummary summary;
      summary.reason = FinishReason::cancelled;
      summary.prompt_tokens = static_cast<int64_t>(gone->prompt.size());
      summary.seconds = seconds_since(gone->submitted);
      if (gone->events.finish) gone->events.finish(summary);
      lock.lock();
      it = waiting.begin();  // the queue may have grown meanwhile
    }
    for (size_t s = 0; s < running.size() && !waiting.empty(); ++s) {
      if (running[s]) continue;
      running[s] = std::move(waiting.front());
      waiting.pop_front();
      --stats.waiting;
      ++stats.running;
    }
    // A sequence asked for no new tokens ends before computing anything, as generate() does.
    for (size_t s = 0; s < running.size(); ++s)
      if (running[s] && running[s]->options.max_new_tokens == 0) {
        lock.unlock();
        finish(s, FinishReason::length);
        lock.lock();
      }
    const bool any_running = std::any_of(running.begin(), running.end(), [](const auto& r) { return r != nullptr; });
    if (any_running) return true;
    if (stopping && waiting.empty()) return false;
    if (!waiting.empty()) continue;
    wake.wait(lock);
  }
}

// One ragged step: the next token of every decoding sequence, then as many
// prompt tokens as the step has room for, in slot order.
void Scheduler::Impl::step() {
  const auto start = Clock::now();
  segments.clear();
  ids.clear();
  segment_slots.clear();
  int64_t decoding = 0;
  for (const auto& seq : running) decoding += seq && !seq->reading_prompt() ? 1 : 0;
  int64_t budget = std::min(options.prefill_chunk, session->max_step_tokens() - decoding);  // prompt tokens
  for (size_t s = 0; s < running.size(); ++s) {
    Sequence* seq = running[s].get();
    if (!seq) continue;
    int64_t count = 1;
    if (seq->reading_prompt()) {
      count = std::min(budget, static_cast<int64_t>(seq->prompt.size()) - seq->fed);
      if (count <= 0) continue;
      ids.insert(ids.end(), seq->prompt.begin() + seq->fed, seq->prompt.begin() + seq->fed + count);
      budget -= count;
    } else {
      ids.push_back(seq->last);
    }
    segments.push_back({static_cast<int64_t>(s), count});
    segment_slots.push_back(s);
  }
  std::span<const float> logits;
  try {
    logits = session->feed_segments(ids, segments);
  } catch (const std::exception& e) {
    for (const size_t s : segment_slots) finish(s, FinishReason::error, e.what());
    return;
  }
  const size_t vocab = logits.size() / segments.size();
  int64_t produced = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    Sequence& seq = *running[segment_slots[i]];
    if (seq.reading_prompt()) {
      seq.fed += segments[i].tokens;
      if (seq.reading_prompt()) continue;  // more of the prompt at the next step
    }
    ++produced;
    take_token(segment_slots[i], logits.subspan(i * vocab, vocab));
  }
  record_step(seconds_since(start), static_cast<int64_t>(segments.size()), produced);
}

bool Scheduler::Impl::take_token(size_t slot, std::span<const float> logits) {
  Sequence& seq = *running[slot];
  const int32_t token = seq.sampler.pick(logits);
  seq.last = token;
  if (++seq.new_tokens == 1) seq.first_token_seconds = seconds_since(seq.submitted);
  const bool go_on = !seq.events.token || seq.events.token(token, logits);
  const auto& eos = seq.options.eos_ids;
  if (std::find(eos.begin(), eos.end(), token) != eos.end())
    finish(slot, FinishReason::eos);
  else if (!go_on)
    finish(slot, FinishReason::stopped);
  else if (seq.new_tokens >= seq.options.max_new_tokens)
    finish(slot, FinishReason::length);
  else
    return true;
  return false;
}

void Scheduler::Impl::finish(size_t slot, FinishReason reason, std::string error) {
  std::unique_ptr<Sequence> seq = std::move(running[slot]);
  session->reset_row(static_cast<int64_t>(slot));
  {
    std::lock_guard lock(mutex);
    live.erase(seq->id);
    cancelled.erase(seq->id);
    --stats.running;
  }
  SequenceSummary summary;
  summary.reason = reason;
  summary.prompt_tokens = static_cast<int64_t>(seq->prompt.size());
  summary.new_tokens = seq->new_tokens;
  summary.first_token_seconds = seq->first_token_seconds;
  summary.seconds = seconds_since(seq->submitted);
  summary.error = std::move(error);
  if (seq->events.finish) seq->events.finish(summary);
}

void Scheduler::Impl::record_step(double seconds, int64_t rows, int64_t new_tokens) {
  constexpr double kWindowSeconds = 5.0;
  const auto now = Clock::now();
  std::lock_guard lock(mutex);
  ++stats.steps;
  stats.new_tokens += static_cast<uint64_t>(new_tokens);
  stats.last_step_rows = rows;
  stats.last_step_seconds = seconds;
  recent.emplace_back(now, new_tokens);
  while (!recent.empty() && std::chrono::duration<double>(now - recent.front().first).count() > kWindowSeconds)
    recent.pop_front();
  int64_t tokens = 0;
  for (const auto& [when, count] : recent) tokens += count;
  const double span = std::chrono::duration<double>(now - recent.front().first).count() + seconds;
  stats.tokens_per_second = span > 0 ? static_cast<double>(tokens) / span : 0.0;
}

}  // namespace strata
