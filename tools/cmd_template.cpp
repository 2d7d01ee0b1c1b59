// strata template: render a chat template for one request, as transformers'
// apply_chat_template(..., tokenize=False) would.
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "cli_util.h"
#include "commands.h"
#include "core/files.h"
#include "strata/chat_template.h"
#include "strata/error.h"

namespace strata::cli {
namespace {

struct TemplateArgs {
  std::string model_dir;
  std::string template_file;
  std::string input;
  std::string name;
  std::string now;
};

// "YYYY-MM-DD HH:MM:SS" as a naive local time, with the weekday and day of
// the year filled in (strftime's %a, %j read them).
std::tm parse_now(const std::string& text) {
  std::tm tm{};
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  char tail = 0;
  if (std::sscanf(text.c_str(), "%d-%d-%d %d:%d:%d%c", &year, &month, &day, &hour, &minute, &second, &tail) != 6 ||
      month < 1 || month > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 || minute < 0 || minute > 59 ||
      second < 0 || second > 60) {
    throw Error("--now must be \"YYYY-MM-DD HH:MM:SS\", got \"" + text + "\"");
  }
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  std::tm normalized = tm;
  timegm(&normalized);  // fills tm_wday and tm_yday
  tm.tm_wday = normalized.tm_wday;
  tm.tm_yday = normalized.tm_yday;
  return tm;
}

void run_template(const TemplateArgs& args) {
  if (args.model_dir.empty() == args.template_file.empty()) throw Error("give exactly one of -m DIR and -t FILE");
  if (!args.name.empty() && args.model_dir.empty())
    throw Error("--name picks among a model's templates; use it with -m");

  const std::string input_text = read_file(args.input, "the case file");
  nlohmann::ordered_json request;
  try {
    request = nlohmann::ordered_json::parse(input_text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("the case file is not valid JSON: ") + e.what(), args.input);
  }
  if (!request.is_object() || !request.contains("messages") || !request["messages"].is_array())
    throw Error("the case file must be a JSON object with a \"messages\" list", args.input);
  const nlohmann::ordered_json tools = request.value("tools", nlohmann::ordered_json());
  const bool add_generation_prompt = request.value("add_generation_prompt", false);
  nlohmann::ordered_json kwargs = nlohmann::ordered_json::object();

  std::string source;
  if (!args.model_dir.empty()) {
    ModelChatTemplate model = load_chat_template(args.model_dir, !tools.is_null(), args.name);
    source = std::move(model.source);
    kwargs = std::move(model.special_tokens);  // the case's variables win below
  } else {
    source = read_file(args.template_file, "the template file");
  }
  if (request.contains("kwargs")) {
    if (!request["kwargs"].is_object()) throw Error("\"kwargs\" must be a JSON object", args.input);
    for (const auto& [k, v] : request["kwargs"].items()) kwargs[k] = v;
  }

  RenderOptions options;
  if (!args.now.empty()) {
    const std::tm now = parse_now(args.now);
    options.now = [now] { return now; };
  }
  const ChatTemplate chat_template = ChatTemplate::parse(source);
  write_text(chat_template.apply(request["messages"], tools, add_generation_prompt, kwargs, options));
}

}  // namespace

void add_template_command(CLI::App& app) {
  auto args = std::make_shared<TemplateArgs>();
  CLI::App* cmd = app.add_subcommand(
      "template",
      "Render a chat template for one request, as transformers' apply_chat_template(..., tokenize=False) does; "
      "prints the prompt exactly, or the template's error on one line (exit 1)");
  cmd->add_option("-m,--model", args->model_dir,
                  "Model folder: its chat_template.jinja, else tokenizer_config.json's \"chat_template\" (the "
                  "\"tool_use\" template when the request has tools, else \"default\"); its special tokens are passed "
                  "too");
  cmd->add_option("-t,--template", args->template_file, "A template file to render instead of a model's");
  cmd->add_option("--input", args->input,
                  "The request: a JSON object with \"messages\", and optionally \"tools\", \"add_generation_prompt\" "
                  "and \"kwargs\" (other template variables: bos_token, enable_thinking, ...)")
      ->required();
  cmd->add_option("--name", args->name, "With -m: the named template to use (e.g. tool_use)");
  cmd->add_option("--now", args->now,
                  "Pin the clock strftime_now() reads, \"YYYY-MM-DD HH:MM:SS\" (default: the local time)");
  cmd->callback([args] { run_template(*args); });
}

}  // namespace strata::cli
