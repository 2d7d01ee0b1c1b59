// strata serve: an OpenAI-compatible HTTP server over the continuous-batching
// scheduler. The flags, the start (listen first, then load, so /health says
// 503 while loading), and the stop on SIGINT/SIGTERM (refuse new requests,
// let the running ones finish for a grace period, cancel the rest, exit 0).
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "commands.h"
#include "core/byte_size.h"
#include "device_map_options.h"
#include "serve_engine.h"
#include "serve_http.h"
#include "serve_plan.h"
#include "strata/error.h"
#include "strata/model.h"
#include "strata/model_config.h"
#include "strata/scheduler.h"
#include "strata/tokenizer.h"

namespace strata::cli {
namespace {

struct ServeArgs {
  std::string model_dir;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;
  int64_t parallel = 4;
  std::string max_body = "8MiB";
  std::string chat_template;
  std::string alias;
  int threads = 0;
  int http_threads = 0;
  double log_interval = 5;
  double grace = 10;
  DeviceMapArgs map;
};

// Catches SIGINT and SIGTERM on a thread of its own (blocked everywhere
// else, so no handler runs in the middle of anything): the first asks the
// server to stop — or exits at once while the model is still loading, when
// there is nothing to finish — and a second exits at once.
// Thread-safety: all members may be called from any thread.
class SignalWatcher {
 public:
  SignalWatcher() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    // Before any other thread exists, so that they all inherit the mask.
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    thread_ = std::thread([this] { loop(); });
  }
  ~SignalWatcher() {
    quit_ = true;
    thread_.join();
  }
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

  // From now on a signal stops the server gracefully instead of exiting.
  void set_serving() { serving_ = true; }
  // Blocks until a signal arrives; returns its name.
  const char* wait() {
    std::unique_lock lock(mutex_);
    signalled_.wait(lock, [&] { return signal_ != 0; });
    return signal_ == SIGINT ? "SIGINT" : "SIGTERM";
  }

 private:
  void loop() {
    while (!quit_) {
      const timespec poll{0, 200'000'000};
      const int sig = sigtimedwait(&set_, nullptr, &poll);
      if (sig <= 0) continue;
      std::unique_lock lock(mutex_);
      if (signal_ != 0) {
        // One signal can arrive twice at once (timeout(1) signals the
        // process and then its group): only a later one means "now".
        if (std::chrono::steady_clock::now() - first_ < std::chrono::seconds(1)) continue;
        std::fprintf(stderr, "strata serve: a second signal: exiting now\n");
        std::_Exit(1);
      }
      if (!serving_) {
        std::fprintf(stderr, "strata serve: interrupted while loading: exiting\n");
        std::_Exit(0);
      }
      signal_ = sig;
      first_ = std::chrono::steady_clock::now();
      signalled_.notify_all();
    }
  }

  sigset_t set_{};
  std::thread thread_;
  std::atomic<bool> quit_{false};
  std::atomic<bool> serving_{false};
  std::mutex mutex_;
  std::condition_variable signalled_;
  int signal_ = 0;
  std::chrono::steady_clock::time_point first_;
};

// The name /v1/models lists: --alias, else the model folder's name.
std::string model_name(const ServeArgs& args) {
  if (!args.alias.empty()) return args.alias;
  std::filesystem::path dir = std::filesystem::absolute(args.model_dir).lexically_normal();
  if (dir.filename().empty()) dir = dir.parent_path();
  return dir.filename().string();
}

void run_serve(const ServeArgs& args) {
  SignalWatcher signals;

  serve::HttpOptions http_options;
  http_options.host = args.host;
  http_options.port = args.port;
  http_options.api_key = args.api_key;
  if (http_options.api_key.empty())
    if (const char* key = std::getenv("STRATA_API_KEY"); key && *key) http_options.api_key = key;
  http_options.max_body = static_cast<size_t>(parse_byte_size(args.max_body));
  // A stream holds a connection thread while it runs, and a client's idle
  // keep-alive connection holds one for a few seconds.
  http_options.threads = args.http_threads > 0 ? args.http_threads : static_cast<int>(std::max<int64_t>(32, 4 * args.parallel));

  // Fail on a missing tokenizer or a bad config before anything else.
  const std::filesystem::path dir(args.model_dir);
  if (!std::filesystem::exists(dir / "tokenizer.json"))
    throw Error("strata serve needs the model's tokenizer.json", args.model_dir, "", "this folder has none");
  auto tokenizer = std::make_unique<Tokenizer>(Tokenizer::from_dir(dir));
  const ModelConfig config = ModelConfig::from_file(dir / "config.json");
  const int64_t max_positions = config.max_position_embeddings;
  int64_t ctx = args.map.ctx;
  if (ctx == 0) ctx = max_positions > 0 ? std::min<int64_t>(4096, max_positions) : 4096;
  if (max_positions > 0 && ctx > max_positions)
    std::fprintf(stderr, "strata serve: warning: --ctx %lld exceeds the model's max_position_embeddings (%lld); "
                         "quality may degrade past it\n",
                 static_cast<long long>(ctx), static_cast<long long>(max_positions));

  serve::HttpServer http(http_options);
  http.start();
  std::fprintf(stderr, "strata serve: listening on http://%s:%d (loading the model; /health says 503 until ready)\n",
               args.host.c_str(), http.port());

  auto model = Model::load(dir, model_options(args.model_dir, args.map, args.threads, ctx, args.parallel));
  print_device_map(*model, args.map);
  SchedulerOptions scheduler_options;
  scheduler_options.slots = args.parallel;
  scheduler_options.context = ctx;
  nlohmann::json plan = serve::measure_plan(*model, scheduler_options);
  std::fprintf(stderr, "strata serve: plan: %.1f tok/s per sequence, %.1f with all %lld slots busy (bound by %s)\n",
               plan["expected"]["tokens_per_second_one_sequence"].get<double>(),
               plan["expected"]["tokens_per_second_all_slots"].get<double>(), static_cast<long long>(args.parallel),
               plan["expected"]["bound_by"].get<std::string>().c_str());

  serve::EngineOptions engine_options;
  engine_options.model_name = model_name(args);
  engine_options.chat_template_file = args.chat_template;
  engine_options.log_interval_seconds = args.log_interval;
  serve::Engine engine(std::move(model), std::move(tokenizer), std::move(plan), engine_options, scheduler_options);
  http.set_engine(&engine);
  signals.set_serving();
  std::fprintf(stderr, "strata serve: ready: %s, %lld slots of %lld tokens, on http://%s:%d%s\n",
               engine_options.model_name.c_str(), static_cast<long long>(args.parallel), static_cast<long long>(ctx),
               args.host.c_str(), http.port(), http_options.api_key.empty() ? "" : " (bearer key required)");

  const char* signal_name = signals.wait();
  const auto grace = std::chrono::milliseconds(static_cast<int64_t>(args.grace * 1000));
  std::fprintf(stderr, "strata serve: %s: refusing new requests, finishing the running ones (up to %.1f s)\n",
               signal_name, args.grace);
  http.set_draining();
  engine.stop(grace);
  // The streams write their last events once their sequences have ended.
  if (!http.wait_idle(std::chrono::seconds(5)))
    std::fprintf(stderr, "strata serve: some responses were still being written; closing them\n");
  http.stop();
  http.set_engine(nullptr);
  std::fprintf(stderr, "strata serve: stopped\n");
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "serve",
      "Serve the model over HTTP with OpenAI's API (/v1/chat/completions, /v1/completions, /v1/models; streaming "
      "with server-sent events), plus /tokenize, /detokenize, /apply-template, /health and /v1/strata/plan. "
      "Requests decode together (continuous batching) in --parallel slots of --ctx tokens each, whose KV cache the "
      "plan budgets (--ctx: tokens per sequence, prompt and completion; default 4096, or the model's "
      "max_position_embeddings when smaller); the server refuses to start when they do not fit");
  cmd->add_option("-m,--model", args->model_dir, "Model folder (config.json, *.safetensors, tokenizer.json)")
      ->required();
  cmd->add_option("--host", args->host,
                  "Address to listen on; the default takes connections from this machine only (0.0.0.0: from anywhere)")
      ->capture_default_str();
  cmd->add_option("--port", args->port, "TCP port (0: any free port, printed at start)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", args->api_key,
                  "Require 'Authorization: Bearer KEY' on every request but /health (default: $STRATA_API_KEY; "
                  "none when both are empty)");
  cmd->add_option("--parallel", args->parallel,
                  "Sequences decoded together (KV cache slots); more requests wait in a queue")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--max-body", args->max_body, "Largest request body accepted (413 above it), e.g. 8MiB or 500KB")
      ->capture_default_str();
  cmd->add_option("--chat-template", args->chat_template,
                  "Jinja chat template file to use instead of the model's (chat_template.jinja or "
                  "tokenizer_config.json's \"chat_template\")")
      ->check(CLI::ExistingFile);
  cmd->add_option("--alias", args->alias, "Model name /v1/models lists and responses carry (default: the folder's name)");
  cmd->add_option("-t,--threads", args->threads, "Worker threads of the model (0 = all cores)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--http-threads", args->http_threads,
                  "Connections served at once; a streamed response holds one (0 = the larger of 32 and 4 x --parallel)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--log-interval", args->log_interval,
                  "Seconds between the log lines with the batch's tokens/s while sequences run (0 = none)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--grace", args->grace,
                  "On SIGINT/SIGTERM: seconds the running requests may take to finish before they are cancelled")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  add_device_map_options(cmd, args->map);
  cmd->callback([args] { run_serve(*args); });
}

}  // namespace strata::cli
