// strata::ChatTemplate: the public face of the Jinja engine (jinja_*.cpp),
// and choosing a model's template as transformers 4.51 does
// (tokenization_utils_base.py: get_chat_template, special_tokens_map).
#include "strata/chat_template.h"

#include <optional>

#include "core/files.h"
#include "strata/error.h"
#include "tokenizer/jinja_json.h"
#include "tokenizer/jinja_parser.h"
#include "tokenizer/jinja_render.h"

namespace strata {

using jinja::cat;

ChatTemplate ChatTemplate::parse(std::string_view source) {
  ChatTemplate t;
  try {
    t.template_ = jinja::parse_template(source);
  } catch (const jinja::RenderError& e) {
    throw Error(e.cls() + ": " + e.message());
  }
  return t;
}

std::string ChatTemplate::render(const nlohmann::ordered_json& context, const RenderOptions& options) const {
  if (!template_) throw Error("TemplateError: rendering a chat template that was never parsed");
  jinja::RenderConfig config;
  config.max_output_bytes = options.limits.max_output_bytes;
  config.max_work = options.limits.max_work;
  config.max_call_depth = options.limits.max_call_depth;
  config.now = options.now;
  jinja::Renderer renderer(*template_, std::move(config));
  try {
    if (!context.is_object()) throw jinja::RenderError("TypeError", "the template context must be a JSON object");
    return renderer.render(jinja::from_json(context));
  } catch (const jinja::RenderError& e) {
    const std::string where = renderer.line() > 0 ? cat("template line ", std::to_string(renderer.line())) : "";
    throw Error(e.cls() + ": " + e.message(), "", "", where);
  }
}

std::string ChatTemplate::apply(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                                bool add_generation_prompt, const nlohmann::ordered_json& extra,
                                const RenderOptions& options) const {
  // PreTrainedTokenizerBase.apply_chat_template: render(messages=..., tools=...,
  // documents=..., add_generation_prompt=..., **template_kwargs).
  nlohmann::ordered_json context = nlohmann::ordered_json::object();
  context["messages"] = messages;
  context["tools"] = tools;
  context["documents"] = nullptr;
  context["add_generation_prompt"] = add_generation_prompt;
  if (extra.is_object())
    for (const auto& [k, v] : extra.items())
      if (!context.contains(k)) context[k] = v;
  return render(context, options);
}

std::string select_chat_template(const nlohmann::ordered_json& field, bool has_tools, std::string_view name) {
  if (field.is_string()) {
    if (!name.empty())
      throw Error(cat("the model has a single chat template, not one named '", std::string(name), "'"));
    return field.get<std::string>();
  }
  if (!field.is_array()) throw Error("the model has no chat template (tokenizer_config.json has no \"chat_template\")");
  auto find = [&](std::string_view wanted) -> const nlohmann::ordered_json* {
    for (const auto& entry : field)
      if (entry.is_object() && entry.contains("name") && entry["name"] == wanted && entry.contains("template") &&
          entry["template"].is_string())
        return &entry["template"];
    return nullptr;
  };
  if (!name.empty()) {
    if (const auto* t = find(name)) return t->get<std::string>();
    throw Error(cat("the model has no chat template named '", std::string(name), "'"));
  }
  if (has_tools)
    if (const auto* t = find("tool_use")) return t->get<std::string>();
  if (const auto* t = find("default")) return t->get<std::string>();
  std::string names;
  for (const auto& entry : field)
    if (entry.is_object() && entry.contains("name") && entry["name"].is_string())
      names += (names.empty() ? "" : ", ") + entry["name"].get<std::string>();
  throw Error(cat("the model has several chat templates and none is named 'default' (available: ", names,
                  "); pick one by name"));
}

nlohmann::ordered_json chat_template_special_tokens(const nlohmann::ordered_json& tokenizer_config) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  if (!tokenizer_config.is_object()) return out;
  // AddedToken objects print as their content.
  auto token_text = [](const nlohmann::ordered_json& v) -> std::optional<std::string> {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
    return std::nullopt;
  };
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
    if (!tokenizer_config.contains(key)) continue;
    if (auto text = token_text(tokenizer_config[key])) out[key] = *text;
  }
  if (tokenizer_config.contains("additional_special_tokens") &&
      tokenizer_config["additional_special_tokens"].is_array()) {
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const auto& v : tokenizer_config["additional_special_tokens"])
      if (auto text = token_text(v)) list.push_back(*text);
    if (!list.empty()) out["additional_special_tokens"] = list;
  }
  return out;
}

ModelChatTemplate load_chat_template(const std::filesystem::path& model_dir, bool has_tools, std::string_view name,
                                     const std::filesystem::path& override_file) {
  ModelChatTemplate out;
  const auto config_path = model_dir / "tokenizer_config.json";
  nlohmann::ordered_json config;
  if (std::filesystem::exists(config_path)) {
    const std::string text = read_file(config_path, "tokenizer_config.json");
    try {
      config = nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw Error(std::string("tokenizer_config.json is not valid JSON: ") + e.what(), config_path.string());
    }
    out.special_tokens = chat_template_special_tokens(config);
  }
  if (!override_file.empty()) {
    out.source = read_file(override_file, "the chat template file");
    return out;
  }
  const auto jinja_path = model_dir / "chat_template.jinja";
  if (std::filesystem::exists(jinja_path) && name.empty()) {
    out.source = read_file(jinja_path, "chat_template.jinja");
    return out;
  }
  if (!config.is_object() || !config.contains("chat_template")) {
    throw Error("no chat template: neither chat_template.jinja nor a \"chat_template\" in tokenizer_config.json",
                model_dir.string(), "", "give one with --chat-template FILE");
  }
  try {
    out.source = select_chat_template(config["chat_template"], has_tools, name);
  } catch (const Error& e) {
    throw Error(e.message(), config_path.string());
  }
  return out;
}

}  // namespace strata
