#include "serve_http.h"

#include <httplib.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <thread>

#include "serve_api.h"
#include "serve_engine.h"
#include "serve_response.h"
#include "strata/error.h"

namespace strata::cli::serve {

using json = nlohmann::json;

namespace {

constexpr auto kPoll = std::chrono::milliseconds(200);  // how often a quiet stream checks its client

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump(body), "application/json");
}

void send_error(httplib::Response& res, const ApiError& error) { send_json(res, error.status(), error_body(error)); }

// Counts a request being answered for as long as the object lives.
class InFlight {
 public:
  explicit InFlight(std::atomic<int>& count) : count_(count) { ++count_; }
  ~InFlight() { --count_; }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  std::atomic<int>& count_;
};

// One streamed completion: the HTTP thread's side of the request's channel.
struct Stream {
  Engine* engine = nullptr;
  Started started;
  Endpoint endpoint = Endpoint::chat;
  bool include_usage = false;
  bool with_logprobs = false;
  bool sent_role = false;
  bool done = false;
  size_t text_offset = 0;  // completions' logprobs text_offset
  std::shared_ptr<InFlight> in_flight;

  bool chat() const { return endpoint == Endpoint::chat; }

  void client_left() {
    started.channel->set_client_gone();
    engine->cancel(started.sequence);
  }

  // One call of the chunked content provider: waits a little for text and
  // writes what came. Returns false when the client has gone.
  bool provide(httplib::DataSink& sink) {
    auto write = [&](const std::string& event) { return sink.write(event.data(), event.size()); };
    if (chat() && !sent_role) {
      sent_role = true;
      return write(sse_event(chat_chunk(started.meta, {{"role", "assistant"}, {"content", ""}}, nullptr, nullptr)));
    }
    RequestChannel::News news = started.channel->take(kPoll);
    if (!news.text.empty() || !news.logprobs.empty()) {
      json logprobs = nullptr;
      if (with_logprobs)
        logprobs = chat() ? chat_logprobs_json(news.logprobs) : completion_logprobs_json(news.logprobs, text_offset);
      text_offset += news.text.size();
      const json chunk = chat() ? chat_chunk(started.meta, {{"content", news.text}}, std::move(logprobs), nullptr)
                                : completion_chunk(started.meta, news.text, std::move(logprobs), nullptr);
      if (!write(sse_event(chunk))) return false;
    }
    if (!news.finished) return sink.is_writable();

    // The end: an error event if the step failed, the tool calls, the
    // finish reason with the strata field, usage if asked, and [DONE].
    if (const std::string error = started.channel->error(); !error.empty())
      if (!write(sse_event(error_body(ApiError(500, "Generation failed: " + error, "", "generation_failed")))))
        return false;
    Outcome outcome = started.channel->outcome();
    outcome.strata = engine->strata_json(started.channel->summary());
    if (chat() && !outcome.tool_calls.empty())
      if (!write(sse_event(chat_chunk(started.meta, {{"tool_calls", tool_calls_json(outcome.tool_calls, true)}},
                                      nullptr, nullptr))))
        return false;
    json last = chat() ? chat_chunk(started.meta, json::object(), nullptr, outcome.finish_reason)
                       : completion_chunk(started.meta, "", nullptr, outcome.finish_reason);
    last["strata"] = outcome.strata;
    if (!write(sse_event(last))) return false;
    if (include_usage && !write(sse_event(usage_chunk(started.meta, endpoint, outcome)))) return false;
    if (!write(std::string(kSseDone))) return false;
    done = true;
    sink.done();
    return true;
  }
};

}  // namespace

struct HttpServer::Impl {
  HttpOptions options;
  httplib::Server server;
  std::thread thread;
  int port = 0;
  std::atomic<Engine*> engine{nullptr};
  std::atomic<bool> draining{false};
  std::atomic<int> in_flight{0};
  std::atomic<bool> listen_returned{false};

  explicit Impl(const HttpOptions& o) : options(o) {}

  void check_auth(const httplib::Request& req) const {
    if (options.api_key.empty()) return;
    if (!req.has_header("Authorization"))
      throw ApiError(401, "You didn't provide an API key. Provide it in an Authorization header using Bearer auth "
                          "(Authorization: Bearer YOUR_KEY).",
                     "", "invalid_api_key");
    if (!bearer_matches(req.get_header_value("Authorization"), options.api_key))
      throw ApiError(401, "Incorrect API key provided.", "", "invalid_api_key");
  }

  Engine& ready_engine() const {
    Engine* e = engine.load();
    if (!e) throw ApiError(503, "The model is still loading; try again shortly (GET /health says when it is ready).",
                           "", "model_loading");
    return *e;
  }

  // Runs a handler, turning what it throws into OpenAI's error object.
  static void guarded(httplib::Response& res, const std::function<void()>& handler) {
    try {
      handler();
    } catch (const ApiError& e) {
      send_error(res, e);
    } catch (const Error& e) {
      send_error(res, ApiError(400, e.what()));
    } catch (const std::exception& e) {
      send_error(res, ApiError(500, std::string("Internal error: ") + e.what()));
    }
  }

  // Reads the body, at most max_body bytes (a Content-Length above it is
  // refused by the library before reading; a chunked body is cut here).
  std::string read_body(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) const {
    std::string body;
    bool too_big = false;
    const bool ok = reader([&](const char* data, size_t size) {
      if (body.size() + size > options.max_body) {
        too_big = true;
        return false;
      }
      body.append(data, size);
      return true;
    });
    if (too_big || res.status == 413) {
      // The rest of a cut chunked body is still on the connection.
      if (too_big) res.set_header("Connection", "close");
      throw ApiError(413, "The request body is larger than this server takes (" + std::to_string(options.max_body) +
                              " bytes, --max-body).",
                     "", "request_too_large");
    }
    if (!ok) throw ApiError(400, "Could not read the request body.", "", "invalid_body");
    return body;
  }

  void post(const std::string& path,
            std::function<void(const httplib::Request&, httplib::Response&, const std::string&)> handler) {
    server.Post(path, [this, handler](const httplib::Request& req, httplib::Response& res,
                                      const httplib::ContentReader& reader) {
      guarded(res, [&] {
        const std::string body = read_body(req, res, reader);
        check_auth(req);
        handler(req, res, body);
      });
    });
  }

  void get(const std::string& path, std::function<void(httplib::Response&)> handler) {
    server.Get(path, [this, handler](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        check_auth(req);
        handler(res);
      });
    });
  }

  void complete(httplib::Response& res, const std::string& body, Endpoint endpoint) {
    const CompletionRequest request = parse_completion_request(body, endpoint);
    Engine& e = ready_engine();
    if (draining) throw ApiError(503, "The server is shutting down.", "", "shutting_down");
    auto in = std::make_shared<InFlight>(in_flight);
    Started started = e.start(request);
    if (request.stream) {
      auto stream = std::make_shared<Stream>();
      stream->engine = &e;
      stream->started = std::move(started);
      stream->endpoint = endpoint;
      stream->include_usage = request.include_usage;
      stream->with_logprobs = request.logprobs;
      stream->in_flight = std::move(in);
      res.set_header("Cache-Control", "no-cache");
      res.set_chunked_content_provider(
          "text/event-stream",
          [stream](size_t, httplib::DataSink& sink) {
            if (stream->done) return false;
            if (stream->provide(sink)) return true;
            stream->client_left();
            return false;
          },
          [stream](bool success) {
            // A stream cut short (the client left, the server stopped) frees its slot.
            if (!success && !stream->done) stream->client_left();
          });
      return;
    }
    // Not streamed: wait for the end. (A client that leaves is noticed only
    // by streams; this sequence runs to its max_tokens.)
    std::string text;
    std::vector<TokenLogprob> logprobs;
    for (;;) {
      RequestChannel::News news = started.channel->take(std::chrono::seconds(1));
      text += news.text;
      for (auto& lp : news.logprobs) logprobs.push_back(std::move(lp));
      if (news.finished) break;
    }
    if (const std::string error = started.channel->error(); !error.empty())
      throw ApiError(500, "Generation failed: " + error, "", "generation_failed");
    Outcome outcome = started.channel->outcome();
    outcome.text = std::move(text);
    outcome.logprobs = std::move(logprobs);
    outcome.strata = e.strata_json(started.channel->summary());
    send_json(res, 200,
              endpoint == Endpoint::chat ? chat_response(started.meta, outcome)
                                         : completion_response(started.meta, outcome));
  }

  void add_routes() {
    server.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      if (draining)
        send_json(res, 503, {{"status", "stopping"},
                             {"error", error_body(ApiError(503, "The server is shutting down.", "", "shutting_down"))["error"]}});
      else if (engine.load())
        send_json(res, 200, {{"status", "ok"}});
      else
        send_json(res, 503, {{"status", "loading"},
                             {"error", error_body(ApiError(503, "The model is loading.", "", "model_loading"))["error"]}});
    });
    get("/v1/models", [this](httplib::Response& res) { send_json(res, 200, ready_engine().models_json()); });
    get("/v1/strata/plan", [this](httplib::Response& res) { send_json(res, 200, ready_engine().plan_json()); });
    post("/v1/completions", [this](const httplib::Request&, httplib::Response& res, const std::string& body) {
      complete(res, body, Endpoint::completions);
    });
    post("/v1/chat/completions", [this](const httplib::Request&, httplib::Response& res, const std::string& body) {
      complete(res, body, Endpoint::chat);
    });
    post("/tokenize", [this](const httplib::Request&, httplib::Response& res, const std::string& body) {
      const TokenizeRequest r = parse_tokenize_request(body);
      Engine& e = ready_engine();
      const std::vector<int32_t> ids = e.tokenizer().encode(r.text, r.add_special);
      send_json(res, 200, {{"tokens", ids}, {"count", ids.size()}, {"max_model_len", e.context()}});
    });
    post("/detokenize", [this](const httplib::Request&, httplib::Response& res, const std::string& body) {
      Engine& e = ready_engine();
      const std::vector<int32_t> ids = parse_detokenize_request(body, e.tokenizer().vocab_size());
      const std::string text = e.tokenizer().decode(ids, false);
      send_json(res, 200, {{"prompt", text}, {"content", text}});
    });
    post("/apply-template", [this](const httplib::Request&, httplib::Response& res, const std::string& body) {
      const TemplateRequest r = parse_template_request(body);
      send_json(res, 200, {{"prompt", ready_engine().render(r)}});
    });
    // Anything else, and errors the library answers itself (a bad request
    // line, a body over the limit before any handler ran): OpenAI's error object.
    server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      const int status = res.status;
      const std::string message = status == 404   ? "Unknown endpoint: " + req.method + " " + req.path + "."
                                  : status == 413 ? std::string("The request body is too large.")
                                                  : "HTTP error " + std::to_string(status) + ".";
      send_json(res, status, error_body(ApiError(status, message, "", status == 404 ? "unknown_url" : "")));
    });
  }
};

HttpServer::HttpServer(const HttpOptions& options) : impl_(std::make_unique<Impl>(options)) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::start() {
  Impl& m = *impl_;
  m.add_routes();
  m.server.set_payload_max_length(m.options.max_body);
  const size_t threads = static_cast<size_t>(std::max(m.options.threads, 2));
  m.server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  if (m.options.port == 0) {
    m.port = m.server.bind_to_any_port(m.options.host);
  } else {
    m.port = m.server.bind_to_port(m.options.host, m.options.port) ? m.options.port : -1;
  }
  if (m.port < 0)
    throw Error("cannot listen on " + m.options.host + ":" + std::to_string(m.options.port), "", "",
                "is another server using the port? choose another with --port");
  m.thread = std::thread([&m] {
    m.server.listen_after_bind();
    m.listen_returned = true;
  });
}

int HttpServer::port() const { return impl_->port; }

void HttpServer::set_engine(Engine* engine) { impl_->engine = engine; }

void HttpServer::set_draining() { impl_->draining = true; }

bool HttpServer::wait_idle(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (impl_->in_flight > 0) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

void HttpServer::stop() {
  Impl& m = *impl_;
  if (!m.thread.joinable()) return;
  // listen_after_bind may not have set the server running yet.
  while (!m.server.is_running() && !m.listen_returned) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  m.server.stop();
  m.thread.join();
}

}  // namespace strata::cli::serve
