#include "generate_batch.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "strata/error.h"

namespace strata::cli {

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

void run_prompt_batches(Model& model, const Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                        bool add_special, int64_t batch, const GenerateOptions& options, bool json) {
  double prompt_seconds = 0, generate_seconds = 0;
  int64_t prompt_tokens = 0, decode_tokens = 0;
  for (size_t first = 0; first < prompts.size(); first += static_cast<size_t>(batch)) {
    const size_t count = std::min(static_cast<size_t>(batch), prompts.size() - first);
    std::vector<std::vector<int32_t>> ids;
    for (size_t i = 0; i < count; ++i) {
      ids.push_back(tokenizer.encode(prompts[first + i], add_special));
      if (ids.back().empty())
        throw Error("prompt " + std::to_string(first + i + 1) + " encodes to no token", "", "", "add --special");
      prompt_tokens += static_cast<int64_t>(ids.back().size());
    }
    const BatchGenerateResult result = generate_batch(model, ids, options);
    prompt_seconds += result.prompt_seconds;
    generate_seconds += result.generate_seconds;
    decode_tokens += result.decode_tokens;
    for (size_t i = 0; i < count; ++i) {
      std::vector<int32_t> all(ids[i]);
      all.insert(all.end(), result.rows[i].new_ids.begin(), result.rows[i].new_ids.end());
      if (json) {
        const nlohmann::json out{{"index", first + i},
                                 {"prompt_ids", ids[i]},
                                 {"new_ids", result.rows[i].new_ids},
                                 {"stopped_on_eos", result.rows[i].stopped_on_eos},
                                 {"text", tokenizer.decode(all, true)},
                                 {"new_text", tokenizer.decode(result.rows[i].new_ids, true)}};
        std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      } else {
        std::printf("[%zu] ", first + i + 1);
        write_text(tokenizer.decode(all, true));
        write_text("\n\n");
      }
    }
    std::fflush(stdout);
  }
  std::fprintf(stderr,
               "strata: %zu prompts, batch %lld | prompt %lld tok, %.1f tok/s | generation %lld tok after the first "
               "of each row, %.2f tok/s for the whole batch\n",
               prompts.size(), static_cast<long long>(batch), static_cast<long long>(prompt_tokens),
               prompt_seconds > 0 ? static_cast<double>(prompt_tokens) / prompt_seconds : 0.0,
               static_cast<long long>(decode_tokens),
               generate_seconds > 0 ? static_cast<double>(decode_tokens) / generate_seconds : 0.0);
}

}  // namespace strata::cli
