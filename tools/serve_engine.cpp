#include "serve_engine.h"

#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <random>
#include <set>

#include "cli_util.h"
#include "core/files.h"
#include "serve_stop.h"
#include "strata/error.h"

namespace strata::cli::serve {

using ordered_json = nlohmann::ordered_json;
using json = nlohmann::json;

// ---------------------------------------------------------------- RequestChannel

RequestChannel::News RequestChannel::take(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return finished_ || !news_.text.empty() || !news_.logprobs.empty(); });
  News out = std::move(news_);
  news_ = News();
  out.finished = finished_;
  return out;
}

Outcome RequestChannel::outcome() const {
  std::lock_guard lock(mutex_);
  return outcome_;
}

std::string RequestChannel::error() const {
  std::lock_guard lock(mutex_);
  return summary_.reason == FinishReason::error ? (summary_.error.empty() ? "the step failed" : summary_.error)
                                                 : std::string();
}

SequenceSummary RequestChannel::summary() const {
  std::lock_guard lock(mutex_);
  return summary_;
}

void RequestChannel::put(const std::string& text, std::optional<TokenLogprob> logprob) {
  if (text.empty() && !logprob) return;
  {
    std::lock_guard lock(mutex_);
    news_.text += text;
    if (logprob) news_.logprobs.push_back(std::move(*logprob));
  }
  changed_.notify_all();
}

void RequestChannel::finish(Outcome outcome, const SequenceSummary& summary) {
  {
    std::lock_guard lock(mutex_);
    outcome_ = std::move(outcome);
    summary_ = summary;
    finished_ = true;
  }
  changed_.notify_all();
}

namespace {

double seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

uint64_t splitmix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::string plural(int64_t n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

// Everything one sequence needs on the scheduler's thread to turn tokens
// into the client's text: decoder, stop strings, tool calls, logprobs.
struct Pipeline {
  std::shared_ptr<RequestChannel> channel;
  const Engine* engine = nullptr;
  const std::map<int32_t, std::string>* markers = nullptr;
  std::optional<Tokenizer::StreamDecoder> decoder;
  size_t skip = 0;  // bytes of prompt text the decoder has still to give before the completion's
  std::optional<StopMatcher> stop;
  std::optional<ToolCallStream> tools;
  ordered_json tool_schemas;
  ToolSyntax syntax = ToolSyntax::none;
  std::set<int32_t> eos;
  bool logprobs = false;
  int top_logprobs = 0;
  std::string name;  // the response id, for the log
  uint64_t id_rng = 0;

  // Decoded text on its way out: the prompt's tail dropped, stop strings
  // and tool calls held back.
  std::string pass(std::string text) {
    if (skip > 0) {
      const size_t n = std::min(skip, text.size());
      text.erase(0, n);
      skip -= n;
    }
    text = stop->push(text);
    if (tools) text = tools->push(text);
    return text;
  }

  bool on_token(int32_t token, std::span<const float> logits) {
    if (channel->client_gone()) return false;
    std::optional<TokenLogprob> lp;
    if (logprobs)
      lp = token_logprob(logits, token, top_logprobs, [this](int32_t id) { return engine->token_piece(id); });
    std::string text;
    if (!eos.contains(token)) {
      text = decoder->push(token);
      if (const auto m = markers->find(token); m != markers->end()) text += m->second;
    }
    channel->put(pass(std::move(text)), std::move(lp));
    return !stop->stopped();
  }

  void on_finish(const SequenceSummary& summary) {
    std::string text;
    if (!stop->stopped()) {
      text = pass(decoder->flush());
      std::string rest = stop->flush();
      text += tools ? tools->push(rest) : rest;
    }
    Outcome outcome;
    if (tools) {
      ToolParse parsed = tools->finish(tool_schemas);
      text += parsed.content;
      if (!parsed.problem.empty())
        std::fprintf(stderr, "strata serve: %s: a %s tool call did not parse (%s); it is returned as text\n",
                     name.c_str(), tool_syntax_name(syntax), parsed.problem.c_str());
      for (ToolCall& call : parsed.calls) {
        if (call.id.empty()) call.id = make_tool_call_id(syntax, id_rng);
        outcome.tool_calls.push_back(std::move(call));
      }
    }
    channel->put(text, std::nullopt);
    switch (summary.reason) {
      case FinishReason::length: outcome.finish_reason = "length"; break;
      case FinishReason::eos:
      case FinishReason::stopped: outcome.finish_reason = "stop"; break;
      case FinishReason::cancelled: outcome.finish_reason = "abort"; break;
      case FinishReason::error: outcome.finish_reason = "error"; break;
    }
    if (!outcome.tool_calls.empty() && outcome.finish_reason == "stop") outcome.finish_reason = "tool_calls";
    outcome.with_logprobs = logprobs;
    outcome.prompt_tokens = summary.prompt_tokens;
    outcome.completion_tokens = summary.new_tokens;
    const double decode_seconds = summary.seconds - summary.first_token_seconds;
    std::fprintf(stderr,
                 "strata serve: %s: %s, prompt %" PRId64 " tok, %" PRId64 " new tok, first token %.3f s, %.1f tok/s%s%s\n",
                 name.c_str(), outcome.finish_reason.c_str(), summary.prompt_tokens, summary.new_tokens,
                 summary.first_token_seconds,
                 summary.new_tokens > 1 && decode_seconds > 0 ? static_cast<double>(summary.new_tokens - 1) / decode_seconds
                                                              : 0.0,
                 channel->client_gone() ? ", client left" : "",
                 summary.reason == FinishReason::error ? (" | error: " + summary.error).c_str() : "");
    channel->finish(std::move(outcome), summary);
  }
};

}  // namespace

// ---------------------------------------------------------------- Engine

Engine::Engine(std::unique_ptr<Model> model, std::unique_ptr<Tokenizer> tokenizer, json plan,
               const EngineOptions& options, const SchedulerOptions& scheduler_options)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)), plan_(std::move(plan)), options_(options),
      scheduler_options_(scheduler_options) {
  const std::filesystem::path dir = model_->dir();
  // The special tokens every template sees (bos_token, eos_token, ...).
  if (const auto config_path = dir / "tokenizer_config.json"; std::filesystem::exists(config_path)) {
    const ordered_json config = ordered_json::parse(read_file(config_path, "tokenizer_config.json"), nullptr, false);
    if (config.is_discarded()) throw Error("tokenizer_config.json is not valid JSON", config_path.string());
    special_tokens_ = chat_template_special_tokens(config);
  }
  auto parse = [](Template& t, std::string source) {
    t.parsed = ChatTemplate::parse(source);
    t.syntax = detect_tool_syntax(source);
    t.source = std::move(source);
  };
  if (!options_.chat_template_file.empty()) {
    // Given by the user: a template that does not parse stops the start.
    parse(plain_template_, read_file(options_.chat_template_file, "chat template"));
    tools_template_ = plain_template_;
  } else {
    try {
      parse(plain_template_, load_chat_template(dir, false).source);
      parse(tools_template_, load_chat_template(dir, true).source);
    } catch (const Error& e) {
      plain_template_ = tools_template_ = Template();
      template_problem_ = e.what();
      std::fprintf(stderr, "strata serve: warning: no chat template, /v1/chat/completions is off: %s\n", e.what());
    }
  }
  if (tools_template_.parsed) {
    std::fprintf(stderr, "strata serve: tool calls: %s\n",
                 tools_template_.syntax == ToolSyntax::none
                     ? "the chat template's syntax is none strata parses; replies with tools come back as text"
                     : tool_syntax_name(tools_template_.syntax));
    for (const std::string& marker : tool_syntax_special_tokens(tools_template_.syntax))
      if (const auto id = tokenizer_->token_to_id(marker); id && tokenizer_->is_special(*id)) marker_tokens_[*id] = marker;
  }

  anchor_ids_ = tokenizer_->encode("a", false);
  anchor_text_ = tokenizer_->decode(anchor_ids_, false);
  eos_ids_ = eos_ids_of(*model_, tokenizer_.get());

  bytes_per_step_ = {{"weights", model_->weight_bytes_per_token()},
                     {"host_computed", model_->host_computed_bytes_per_token()},
                     {"disk", model_->disk_bytes_per_pass()},
                     {"copied", model_->copied_bytes_per_pass()}};
  rng_state_ = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count()) ^
               (static_cast<uint64_t>(std::random_device{}()) << 32);

  scheduler_ = std::make_unique<Scheduler>(*model_, scheduler_options_);
  if (options_.log_interval_seconds > 0) log_thread_ = std::thread([this] { log_loop(); });
}

Engine::~Engine() { stop(std::chrono::milliseconds(0)); }

std::string Engine::token_piece(int32_t id) const {
  // Alone, a token loses the space a sentencepiece decoder strips at the
  // start of a text ("▁there" -> "there"); after an anchor it keeps it.
  std::vector<int32_t> ids = anchor_ids_;
  ids.push_back(id);
  const std::string text = tokenizer_->decode(ids, false);
  if (!anchor_ids_.empty() && text.compare(0, anchor_text_.size(), anchor_text_) == 0) return text.substr(anchor_text_.size());
  return tokenizer_->decode(std::span<const int32_t>(&id, 1), false);
}

const Engine::Template& Engine::chat_template(bool has_tools) const {
  return has_tools ? tools_template_ : plain_template_;
}

std::string Engine::apply_template(const ordered_json& messages, const ordered_json& tools, bool add_generation_prompt,
                                   const ordered_json& kwargs) const {
  const Template& t = chat_template(!tools.is_null());
  if (!t.parsed)
    throw ApiError(400, "This server has no chat template (" + template_problem_ +
                            "); use /v1/completions, or restart it with --chat-template FILE.",
                   "messages", "no_chat_template");
  ordered_json extra = special_tokens_;
  for (const auto& [key, value] : kwargs.items()) extra[key] = value;
  try {
    return t.parsed->apply(messages, tools, add_generation_prompt, extra);
  } catch (const Error& e) {
    throw ApiError(400, std::string("The chat template could not render these messages: ") + e.what(), "messages",
                   "template_error");
  }
}

std::string Engine::render(const TemplateRequest& request) const {
  return apply_template(request.messages, request.tools, request.add_generation_prompt, request.template_kwargs);
}

std::vector<int32_t> Engine::prompt_ids(const CompletionRequest& request) const {
  if (request.endpoint == Endpoint::chat) {
    // As transformers' apply_chat_template(tokenize=True): the template
    // writes the special tokens, so none are added.
    const std::string text = apply_template(request.messages, request.tools, true, request.template_kwargs);
    return tokenizer_->encode(text, false);
  }
  if (request.prompt_is_ids) {
    const int64_t vocab = model_->config().vocab_size;
    for (size_t i = 0; i < request.prompt_ids.size(); ++i)
      if (request.prompt_ids[i] >= vocab)
        throw ApiError(400, "Invalid value for 'prompt': token id " + std::to_string(request.prompt_ids[i]) +
                                " is outside the vocabulary (" + std::to_string(vocab) + " tokens).",
                       "prompt", "invalid_value");
    return request.prompt_ids;
  }
  return tokenizer_->encode(request.prompt, true);
}

GenerateOptions Engine::generate_options(const CompletionRequest& request, int64_t max_new) {
  // What the request leaves out: the model's generation_config.json when it
  // samples, else OpenAI's defaults (temperature 1, top_p 1).
  const GenerationConfig& gen = model_->generation_config();
  GenerateOptions o;
  o.max_new_tokens = max_new;
  o.sampling.temperature = request.temperature.value_or(gen.do_sample ? gen.temperature : 1.0);
  o.sampling.top_p = request.top_p.value_or(gen.do_sample ? gen.top_p : 1.0);
  o.sampling.top_k = request.top_k.value_or(gen.do_sample ? gen.top_k : 0);
  {
    std::lock_guard lock(mutex_);
    o.sampling.seed = request.seed.value_or(splitmix(rng_state_));
  }
  o.eos_ids = eos_ids_;
  return o;
}

Started Engine::start(const CompletionRequest& request) {
  const bool chat = request.endpoint == Endpoint::chat;
  std::vector<int32_t> prompt = prompt_ids(request);
  const auto prompt_tokens = static_cast<int64_t>(prompt.size());
  const int64_t context = scheduler_options_.context;
  const char* param = chat ? "messages" : "prompt";
  if (prompt.empty())
    throw ApiError(400, "The prompt is empty: it encodes to no tokens.", param, "empty_prompt");
  int64_t max_new = context - prompt_tokens;
  if (request.max_tokens) {
    if (prompt_tokens + *request.max_tokens > context)
      throw ApiError(400, "This server's context is " + plural(context, "token") + " per sequence (--ctx). However, "
                              "you requested " + std::to_string(prompt_tokens + *request.max_tokens) + " tokens (" +
                              std::to_string(prompt_tokens) + " in the " + (chat ? "messages" : "prompt") + ", " +
                              std::to_string(*request.max_tokens) + " in the completion), which exceeds it by " +
                              plural(prompt_tokens + *request.max_tokens - context, "token") +
                              ". Please reduce the length of the " + (chat ? "messages" : "prompt") +
                              " or of the completion (max_tokens).",
                     param, "context_length_exceeded");
    max_new = *request.max_tokens;
  } else if (max_new < 1) {
    throw ApiError(400, "This server's context is " + plural(context, "token") + " per sequence (--ctx). However, " +
                            (chat ? "your messages are " : "your prompt is ") + plural(prompt_tokens, "token") +
                            ", which leaves no room for the completion: it exceeds the context by " +
                            plural(prompt_tokens - context + 1, "token") + ". Please shorten it.",
                   param, "context_length_exceeded");
  }

  Started started;
  started.prompt_tokens = prompt_tokens;
  started.channel = std::make_shared<RequestChannel>();
  const GenerateOptions options = generate_options(request, max_new);
  {
    std::lock_guard lock(mutex_);
    char id[32];
    std::snprintf(id, sizeof id, "%016" PRIx64 "%04" PRIx64, splitmix(rng_state_), ++next_response_ & 0xffff);
    started.meta.id = std::string(chat ? "chatcmpl-" : "cmpl-") + id;
  }
  started.meta.model = options_.model_name;
  started.meta.created = static_cast<int64_t>(std::time(nullptr));

  auto pipe = std::make_shared<Pipeline>();
  pipe->channel = started.channel;
  pipe->engine = this;
  pipe->markers = &marker_tokens_;
  pipe->name = started.meta.id;
  pipe->eos.insert(options.eos_ids.begin(), options.eos_ids.end());
  pipe->logprobs = request.logprobs;
  pipe->top_logprobs = request.top_logprobs;
  pipe->stop.emplace(request.stop);
  pipe->id_rng = options.sampling.seed ^ 0x5DEECE66Dull;
  // The decoder starts with the prompt so that the completion's first
  // token decodes as it does after the prompt (a leading space kept), and
  // the completion is exactly decode(prompt + new) minus decode(prompt).
  pipe->decoder.emplace(*tokenizer_, true);
  size_t released = 0;
  for (const int32_t id : prompt) released += pipe->decoder->push(id).size();
  std::string prompt_text = tokenizer_->decode(prompt, true);
  // A prompt ending inside a UTF-8 sequence decodes to U+FFFD there, text the completion replaces.
  while (prompt_text.size() >= 3 && prompt_text.compare(prompt_text.size() - 3, 3, "\xEF\xBF\xBD") == 0)
    prompt_text.resize(prompt_text.size() - 3);
  pipe->skip = prompt_text.size() > released ? prompt_text.size() - released : 0;
  if (chat && !request.tools.is_null() && request.parse_tool_calls) {
    pipe->syntax = tools_template_.syntax;
    if (pipe->syntax == ToolSyntax::none) {
      std::fprintf(stderr, "strata serve: %s: the request offers tools but the chat template's tool-call syntax is "
                           "not one strata parses; any call comes back as text in the content\n",
                   started.meta.id.c_str());
    } else {
      pipe->tools.emplace(pipe->syntax);
      pipe->tool_schemas = request.tools;
    }
  }

  SequenceEvents events;
  events.token = [pipe](int32_t token, std::span<const float> logits) { return pipe->on_token(token, logits); };
  events.finish = [pipe](const SequenceSummary& summary) { pipe->on_finish(summary); };
  {
    std::lock_guard lock(mutex_);
    if (stopping_) throw ApiError(503, "The server is shutting down.", "", "shutting_down");
    for (auto it = active_.begin(); it != active_.end();) it = it->second.expired() ? active_.erase(it) : std::next(it);
  }
  try {
    started.sequence = scheduler_->submit(std::move(prompt), options, std::move(events));
  } catch (const Error& e) {
    std::lock_guard lock(mutex_);
    if (stopping_) throw ApiError(503, "The server is shutting down.", "", "shutting_down");
    throw ApiError(400, e.what(), param, "invalid_request");
  }
  std::lock_guard lock(mutex_);
  active_[started.sequence] = started.channel;
  return started;
}

void Engine::cancel(uint64_t sequence) { scheduler_->cancel(sequence); }

json Engine::models_json() const {
  return {{"object", "list"},
          {"data", json::array({{{"id", options_.model_name},
                                 {"object", "model"},
                                 {"created", 0},
                                 {"owned_by", "strata"},
                                 {"max_model_len", scheduler_options_.context}}})}};
}

json Engine::plan_json() const { return plan_; }

json Engine::strata_json(const SequenceSummary& summary) const {
  const SchedulerStats stats = scheduler_->stats();
  const double decode_seconds = summary.seconds - summary.first_token_seconds;
  return {{"step_seconds", summary.new_tokens > 1 ? decode_seconds / static_cast<double>(summary.new_tokens - 1) : 0.0},
          {"first_token_seconds", summary.first_token_seconds},
          {"seconds", summary.seconds},
          {"batch", {{"rows", stats.last_step_rows},
                     {"step_seconds", stats.last_step_seconds},
                     {"tokens_per_second", stats.tokens_per_second}}},
          {"bytes_per_step", bytes_per_step_}};
}

void Engine::stop(std::chrono::milliseconds grace) {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    stopping_ = stopped_ = true;
  }
  {
    // stop(true) lets the running sequences finish; past the grace period
    // they are ended at their next token.
    std::mutex done_mutex;
    std::condition_variable done_cv;
    bool done = false;
    std::thread stopper([&] {
      scheduler_->stop(true);
      std::lock_guard lock(done_mutex);
      done = true;
      done_cv.notify_all();
    });
    {
      std::unique_lock lock(done_mutex);
      if (!done_cv.wait_for(lock, grace, [&] { return done; })) {
        lock.unlock();
        std::lock_guard active_lock(mutex_);
        for (const auto& [sequence, weak] : active_) {
          if (const auto channel = weak.lock()) channel->set_client_gone();
          scheduler_->cancel(sequence);
        }
      }
    }
    stopper.join();
  }
  {
    std::lock_guard lock(log_mutex_);
    log_stop_ = true;
  }
  log_wake_.notify_all();
  if (log_thread_.joinable()) log_thread_.join();
}

void Engine::log_loop() {
  const auto interval = std::chrono::duration<double>(options_.log_interval_seconds);
  uint64_t last_tokens = 0;
  double last_time = seconds_now();
  std::unique_lock lock(log_mutex_);
  while (!log_wake_.wait_for(lock, interval, [&] { return log_stop_.load(); })) {
    const SchedulerStats s = scheduler_->stats();
    const double now = seconds_now();
    if (s.running > 0 || s.waiting > 0 || s.new_tokens != last_tokens)
      std::fprintf(stderr,
                   "strata serve: batch %" PRId64 " running, %" PRId64 " waiting | %.1f tok/s (%.1f since the last "
                   "line) | last step %" PRId64 " rows, %.1f ms\n",
                   s.running, s.waiting, s.tokens_per_second,
                   now > last_time ? static_cast<double>(s.new_tokens - last_tokens) / (now - last_time) : 0.0,
                   s.last_step_rows, 1000.0 * s.last_step_seconds);
    last_tokens = s.new_tokens;
    last_time = now;
  }
}

}  // namespace strata::cli::serve
