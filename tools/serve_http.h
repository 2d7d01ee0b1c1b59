// strata serve: the HTTP side (cpp-httplib). It listens before the model is
// loaded, so /health can say 503 while it loads; routes requests to the
// engine once it is set; streams completions as server-sent events; checks
// the bearer key and the body size; and drains before it stops.
//
// Routes: GET /health, /v1/models, /v1/strata/plan; POST /v1/completions,
// /v1/chat/completions, /tokenize, /detokenize, /apply-template.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

namespace strata::cli::serve {

class Engine;

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;          // 0: any free port (port() says which)
  std::string api_key;      // empty: no authentication
  size_t max_body = 8u << 20;
  int threads = 16;         // connections served at once (a stream holds one)
};

// Thread-safety: set_engine, set_draining, wait_idle and stop may be called
// from any thread; requests are served on the server's own threads.
class HttpServer {
 public:
  explicit HttpServer(const HttpOptions& options);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds (throws strata::Error when it cannot) and serves on a thread of its own.
  void start();
  int port() const;
  // The engine requests go to; null: still loading (503). It must outlive
  // the server's use of it: call stop() before destroying it.
  void set_engine(Engine* engine);
  // New completions are refused with 503; requests under way go on.
  void set_draining();
  // Waits until no completion is being answered, up to `timeout`; false if some still are.
  bool wait_idle(std::chrono::milliseconds timeout);
  // Stops accepting, ends the connections and joins the server's thread.
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::cli::serve
