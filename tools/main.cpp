// strata: run language models bigger than your hardware.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>

#include "backend/cpu/kernels.h"
#include "commands.h"
#include "strata/error.h"

int main(int argc, char** argv) {
  CLI::App app{"strata: run Hugging Face checkpoints (Llama, Mistral, Qwen2/3, Gemma 1/2, Phi-3, GPT-2) bigger than your hardware, over accelerators, RAM and disk"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  strata::cli::add_generate_command(app);
  strata::cli::add_logits_command(app);
  strata::cli::add_inspect_command(app);
  strata::cli::add_tokenize_command(app);
  strata::cli::add_synth_command(app);
  strata::cli::add_bench_command(app);
  strata::cli::add_map_command(app);
  strata::cli::add_kld_command(app);
  strata::cli::add_serve_command(app);
  strata::cli::add_template_command(app);
  try {
    // For benchmarks and tests: STRATA_KERNELS=generic|avx2|avx512 picks the CPU kernels.
    if (const char* kernels = std::getenv("STRATA_KERNELS"); kernels && *kernels) strata::cpu::force_kernels(kernels);
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const strata::Error& e) {
    std::fflush(stdout);
    std::cerr << "strata: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::cerr << "strata: error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
