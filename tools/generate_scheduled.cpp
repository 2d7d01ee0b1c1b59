#include "generate_scheduled.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <optional>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "strata/error.h"
#include "strata/scheduler.h"

namespace strata::cli {

GenerateResult generate_scheduled(Model& model, std::vector<int32_t> prompt, const GenerateOptions& options,
                                  const std::function<void(int32_t)>& on_token) {
  GenerateResult result;
  result.prompt_tokens = static_cast<int64_t>(prompt.size());
  const int64_t context = result.prompt_tokens + options.max_new_tokens;
  Scheduler scheduler(model, {.slots = 1, .context = context, .prefill_chunk = std::max<int64_t>(result.prompt_tokens, 1)});
  std::mutex mutex;
  std::condition_variable finished;
  std::optional<SequenceSummary> summary;
  SequenceEvents events;
  events.token = [&](int32_t token, std::span<const float>) {
    result.new_ids.push_back(token);
    if (on_token) on_token(token);
    return true;
  };
  events.finish = [&](const SequenceSummary& s) {
    std::lock_guard lock(mutex);
    summary = s;
    finished.notify_all();
  };
  scheduler.submit(std::move(prompt), options, std::move(events));
  {
    std::unique_lock lock(mutex);
    finished.wait(lock, [&] { return summary.has_value(); });
  }
  if (summary->reason == FinishReason::error) throw Error(summary->error);
  result.stopped_on_eos = summary->reason == FinishReason::eos;
  result.prompt_seconds = summary->first_token_seconds;
  result.generate_seconds = summary->new_tokens > 0 ? summary->seconds - summary->first_token_seconds : 0.0;
  return result;
}

std::vector<std::string> read_prompt_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot read the prompts file", path, "", "one prompt per line");
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") != std::string::npos) out.push_back(line);
  }
  if (out.empty()) throw Error("the prompts file holds no prompt", path, "", "one prompt per line");
  return out;
}

namespace {

// One prompt's run through the scheduler, filled on its thread.
struct Row {
  std::vector<int32_t> prompt;
  std::vector<int32_t> new_ids;
  SequenceSummary summary;
  bool done = false;
};

void print_row(const Tokenizer& tokenizer, size_t index, const Row& row, bool json) {
  std::vector<int32_t> all(row.prompt);
  all.insert(all.end(), row.new_ids.begin(), row.new_ids.end());
  if (json) {
    const nlohmann::json out{{"index", index},
                             {"prompt_ids", row.prompt},
                             {"new_ids", row.new_ids},
                             {"stopped_on_eos", row.summary.reason == FinishReason::eos},
                             {"text", tokenizer.decode(all, true)},
                             {"new_text", tokenizer.decode(row.new_ids, true)}};
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("[%zu] ", index + 1);
    write_text(tokenizer.decode(all, true));
    write_text("\n\n");
  }
  std::fflush(stdout);
}

}  // namespace

void run_prompt_batches(Model& model, const Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                        bool add_special, int64_t batch, const GenerateOptions& options, bool json) {
  std::vector<Row> rows(prompts.size());
  int64_t prompt_tokens = 0, longest = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    rows[i].prompt = tokenizer.encode(prompts[i], add_special);
    if (rows[i].prompt.empty())
      throw Error("prompt " + std::to_string(i + 1) + " encodes to no token", "", "", "add --special");
    prompt_tokens += static_cast<int64_t>(rows[i].prompt.size());
    longest = std::max(longest, static_cast<int64_t>(rows[i].prompt.size()));
  }
  // Continuous batching: `batch` slots, a prompt takes the first free one,
  // so a short answer never holds the others back. Results print in order.
  std::mutex mutex;
  std::condition_variable changed;
  const auto start = std::chrono::steady_clock::now();
  Scheduler scheduler(model, {.slots = batch, .context = longest + options.max_new_tokens});
  for (size_t i = 0; i < rows.size(); ++i) {
    GenerateOptions row_options = options;
    row_options.sampling.seed += i;  // as generate_batch seeds its rows
    SequenceEvents events;
    events.token = [&rows, i](int32_t token, std::span<const float>) {
      rows[i].new_ids.push_back(token);
      return true;
    };
    events.finish = [&, i](const SequenceSummary& summary) {
      std::lock_guard lock(mutex);
      rows[i].summary = summary;
      rows[i].done = true;
      changed.notify_all();
    };
    scheduler.submit(rows[i].prompt, row_options, std::move(events));
  }
  int64_t new_tokens = 0;
  double first_token_seconds = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    {
      std::unique_lock lock(mutex);
      changed.wait(lock, [&] { return rows[i].done; });
    }
    if (rows[i].summary.reason == FinishReason::error) throw Error(rows[i].summary.error);
    new_tokens += rows[i].summary.new_tokens;
    first_token_seconds += rows[i].summary.first_token_seconds;
    print_row(tokenizer, i, rows[i], json);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const SchedulerStats stats = scheduler.stats();
  std::fprintf(stderr,
               "strata: %zu prompts, batch %lld | prompt %lld tok, %lld tok generated in %.2f s: %.2f tok/s for the "
               "whole batch (%llu steps) | first token after %.2f s on average\n",
               prompts.size(), static_cast<long long>(batch), static_cast<long long>(prompt_tokens),
               static_cast<long long>(new_tokens), seconds,
               seconds > 0 ? static_cast<double>(new_tokens) / seconds : 0.0,
               static_cast<unsigned long long>(stats.steps),
               first_token_seconds / static_cast<double>(rows.size()));
}

}  // namespace strata::cli
