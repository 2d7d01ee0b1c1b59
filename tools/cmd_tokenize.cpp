// strata tokenize: encode text to ids, or decode ids to text.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli_util.h"
#include "commands.h"
#include "strata/error.h"
#include "strata/tokenizer.h"

namespace strata::cli {
namespace {

struct TokenizeArgs {
  std::string source;
  std::optional<std::string> prompt;
  std::string decode;
  bool add_special = false;
  bool skip_special = false;
};

void run_tokenize(const TokenizeArgs& args) {
  const std::filesystem::path source(args.source);
  const Tokenizer tokenizer = std::filesystem::is_directory(source) ? Tokenizer::from_dir(source)
                                                                    : Tokenizer::from_file(source);
  if (!args.decode.empty()) {
    if (args.prompt) throw Error("give either -p or --decode, not both");
    const auto ids = parse_id_list(args.decode);
    write_text(tokenizer.decode(ids, args.skip_special));
    write_text("\n");
    return;
  }
  const std::string text = args.prompt ? *args.prompt : read_stdin();
  const auto ids = tokenizer.encode(text, args.add_special);
  std::printf("%s\n", nlohmann::json(ids).dump().c_str());
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto args = std::make_shared<TokenizeArgs>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Encode text to token ids (a JSON list), or decode ids to text");
  cmd->add_option("-m,--model", args->source, "Model folder holding tokenizer.json, or a tokenizer.json file")->required();
  cmd->add_option("-p,--prompt", args->prompt, "Text to encode (default: standard input)");
  cmd->add_flag("--add-special", args->add_special, "Add BOS/EOS as the tokenizer's config says (off by default)");
  cmd->add_option("--decode", args->decode, "Decode these comma-separated ids instead, e.g. 1,403,407");
  cmd->add_flag("--skip-special", args->skip_special, "With --decode: drop special tokens such as BOS");
  cmd->callback([args] { run_tokenize(*args); });
}

}  // namespace strata::cli
