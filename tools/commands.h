// The `strata` command's subcommands. Each add_* registers one subcommand
// with its options and --help text; its callback runs the command and throws
// strata::Error on bad input, which main() prints as one line.
#pragma once

#include <CLI/CLI.hpp>

namespace strata::cli {

void add_generate_command(CLI::App& app);
void add_logits_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_synth_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_map_command(CLI::App& app);
void add_kld_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_template_command(CLI::App& app);

}  // namespace strata::cli
