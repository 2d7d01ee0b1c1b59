// Chat templates: the Jinja template in a model's tokenizer_config.json that
// turns a list of messages into the prompt text, rendered as transformers'
// apply_chat_template(..., tokenize=False) does (transformers 4.51,
// jinja2 3.1 ImmutableSandboxedEnvironment with trim_blocks and
// lstrip_blocks), byte for byte.
//
// The engine is sandboxed: templates see only the data they are given,
// cannot mutate lists or dicts, and a render is bounded in work, output size
// and recursion depth, so a hostile template ends with a one-line error.
//
// A ChatTemplate is immutable after parse() and may be rendered by many
// threads at once; each render is independent.
#pragma once

#include <cstdint>
#include <ctime>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace strata {

namespace jinja {
struct Template;
}

struct ChatTemplateLimits {
  size_t max_output_bytes = 64u << 20;  // the prompt, any captured block, any string built
  uint64_t max_work = 10'000'000;       // loop iterations, macro calls, items processed by filters
  int max_call_depth = 100;             // nested macro calls and recursive loops
};

struct RenderOptions {
  // The clock strftime_now() reads, as a naive local time (datetime.now()).
  // Empty: the machine's local time at the call.
  std::function<std::tm()> now;
  ChatTemplateLimits limits;
};

class ChatTemplate {
 public:
  // Parses template text (UTF-8). Throws strata::Error
  // "TemplateSyntaxError: <what> (line N)" (or TemplateAssertionError for an
  // unknown filter or test).
  static ChatTemplate parse(std::string_view source);

  // Renders with `context`'s keys as the template's variables. Objects keep
  // their key order, so pass JSON parsed as nlohmann::ordered_json. Throws
  // strata::Error whose message() is "<Python exception class>: <message>",
  // as transformers would raise it ("TypeError: 'NoneType' object is not
  // iterable", "TemplateError: <raise_exception's text>"); its hint names the
  // template line.
  std::string render(const nlohmann::ordered_json& context, const RenderOptions& options = {}) const;

  // apply_chat_template's variables: messages, tools (null when none),
  // documents (null), add_generation_prompt, and `extra` (special tokens,
  // enable_thinking, ...) merged in, as transformers passes them.
  std::string apply(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                    bool add_generation_prompt, const nlohmann::ordered_json& extra = nlohmann::ordered_json::object(),
                    const RenderOptions& options = {}) const;

 private:
  std::shared_ptr<const jinja::Template> template_;
};

// What tokenizer_config.json's "chat_template" field (a string, or a list of
// {"name", "template"}) gives for a request, as transformers'
// get_chat_template picks: the named template when `name` is given, else
// "tool_use" when there are tools and the model has one, else "default".
// Throws strata::Error when the field has no template to use.
std::string select_chat_template(const nlohmann::ordered_json& field, bool has_tools, std::string_view name = {});

// The special tokens transformers passes to every template
// (special_tokens_map: bos_token, eos_token, unk_token, ...) as strings,
// from tokenizer_config.json's entries, which may be strings or AddedToken objects.
nlohmann::ordered_json chat_template_special_tokens(const nlohmann::ordered_json& tokenizer_config);

// A model folder's chat template: `override_file` when given (a
// --chat-template FILE), else chat_template.jinja when present (it overrides
// the config, as transformers loads it), else the config's field, chosen by
// select_chat_template. Also the special tokens from tokenizer_config.json
// (empty when the file is absent).
struct ModelChatTemplate {
  std::string source;
  nlohmann::ordered_json special_tokens = nlohmann::ordered_json::object();
};
ModelChatTemplate load_chat_template(const std::filesystem::path& model_dir, bool has_tools, std::string_view name = {},
                                     const std::filesystem::path& override_file = {});

}  // namespace strata
