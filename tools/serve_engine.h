// strata serve: from a validated request to tokens and back. The engine
// renders the chat template, tokenizes, checks the prompt against the
// context, and submits the sequence to the continuous-batching scheduler;
// the scheduler's callbacks decode the new tokens into text (stop strings,
// tool calls, logprobs) and hand it to the request's channel, which the HTTP
// thread drains.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "serve_api.h"
#include "serve_response.h"
#include "serve_tools.h"
#include "strata/chat_template.h"
#include "strata/model.h"
#include "strata/scheduler.h"
#include "strata/tokenizer.h"

namespace strata::cli::serve {

// The channel between one request's scheduler callbacks (the writer) and
// the HTTP thread that answers it (the reader).
// Thread-safety: every member may be called from any thread; one mutex.
class RequestChannel {
 public:
  struct News {
    std::string text;
    std::vector<TokenLogprob> logprobs;
    bool finished = false;
  };
  // Waits up to `timeout` for text or the end, and takes what came.
  News take(std::chrono::milliseconds timeout);
  // Once take() reported finished: how it ended (its text and logprobs came through take()).
  Outcome outcome() const;
  // Why the sequence failed ("" unless it did), and its counts and times.
  std::string error() const;
  SequenceSummary summary() const;

  // The client left: the next token ends the sequence.
  void set_client_gone() { client_gone_ = true; }
  bool client_gone() const { return client_gone_; }

  void put(const std::string& text, std::optional<TokenLogprob> logprob);
  void finish(Outcome outcome, const SequenceSummary& summary);

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  News news_;
  bool finished_ = false;
  Outcome outcome_;
  SequenceSummary summary_;
  std::atomic<bool> client_gone_{false};
};

struct EngineOptions {
  std::string model_name;          // the id /v1/models lists
  std::string chat_template_file;  // empty: the model's own
  double log_interval_seconds = 5;  // the batch's tokens/s to stderr while sequences run
};

struct Started {
  uint64_t sequence = 0;
  std::shared_ptr<RequestChannel> channel;
  ResponseMeta meta;
  int64_t prompt_tokens = 0;
};

// Thread-safety: all public members may be called from any thread at once
// (the HTTP server's); the model runs only on the scheduler's thread.
class Engine {
 public:
  // Takes the loaded model, measures what the plan endpoint reports, and
  // starts the scheduler. Throws strata::Error (one line) when the KV cache
  // for the slots does not fit or the chat template does not parse.
  Engine(std::unique_ptr<Model> model, std::unique_ptr<Tokenizer> tokenizer, nlohmann::json plan,
         const EngineOptions& options, const SchedulerOptions& scheduler_options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Renders, tokenizes, checks and submits. Throws ApiError: 400 for a
  // prompt that does not fit the context (saying by how many tokens) or a
  // template that refuses the messages, 503 when the engine is stopping.
  Started start(const CompletionRequest& request);
  // Ends a sequence at the next step.
  void cancel(uint64_t sequence);

  // POST /apply-template's prompt text.
  std::string render(const TemplateRequest& request) const;
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  int64_t context() const { return scheduler_options_.context; }
  const std::string& model_name() const { return options_.model_name; }
  nlohmann::json models_json() const;
  nlohmann::json plan_json() const;
  // The `strata` field of a response: this sequence's step time, the
  // batch's latest step, and the bytes each tier moves per step.
  nlohmann::json strata_json(const SequenceSummary& summary) const;
  // A token's text as it reads inside a text (with its leading space), for logprobs.
  std::string token_piece(int32_t id) const;

  // Takes no new requests and lets running ones finish for up to `grace`,
  // then cancels the rest. Returns when the scheduler has stopped.
  void stop(std::chrono::milliseconds grace);

 private:
  struct Template {
    std::optional<ChatTemplate> parsed;
    std::string source;
    ToolSyntax syntax = ToolSyntax::none;
  };
  const Template& chat_template(bool has_tools) const;
  std::string apply_template(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                             bool add_generation_prompt, const nlohmann::ordered_json& kwargs) const;
  std::vector<int32_t> prompt_ids(const CompletionRequest& request) const;
  GenerateOptions generate_options(const CompletionRequest& request, int64_t max_new);
  void log_loop();

  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  nlohmann::json plan_;
  EngineOptions options_;
  SchedulerOptions scheduler_options_;
  Template plain_template_, tools_template_;
  std::string template_problem_;  // why there is no chat template
  nlohmann::ordered_json special_tokens_ = nlohmann::ordered_json::object();
  std::vector<int32_t> eos_ids_;
  std::vector<int32_t> anchor_ids_;  // a plain text token that token_piece decodes each token after
  std::string anchor_text_;
  std::map<int32_t, std::string> marker_tokens_;  // special tokens of the tool syntax, re-inserted as text
  nlohmann::json bytes_per_step_;  // the model's per-step traffic, read once before the scheduler runs

  std::mutex mutex_;  // guards the members below
  std::map<uint64_t, std::weak_ptr<RequestChannel>> active_;
  uint64_t rng_state_ = 0;
  uint64_t next_response_ = 0;
  bool stopping_ = false;  // no new requests
  bool stopped_ = false;   // stop() ran

  std::unique_ptr<Scheduler> scheduler_;
  std::atomic<bool> log_stop_{false};
  std::mutex log_mutex_;
  std::condition_variable log_wake_;
  std::thread log_thread_;
};

}  // namespace strata::cli::serve
