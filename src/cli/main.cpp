// recap's command line: the global flags and error handling. The subcommands live in the
// cmd_*.cpp files next to this one; each calls one function from src/stages/ or src/core/.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/cli.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"recap: relabel a text-to-image corpus with a fine-tuned captioner, train on the "
               "recaptions, and measure prompt following (RECAP)."};
  app.require_subcommand(1);
  app.fallthrough();
  app.get_formatter()->column_width(34);

  recap::cli::Cli cli(app);
  auto& opts = cli.runtime;
  app.add_option("--threads", opts.threads, "libtorch threads (0: usable cores)")
      ->capture_default_str();
  app.add_option("--device", opts.device, "cpu, cuda or cuda:N")->capture_default_str();
  app.add_option("--seed", opts.seed, "override the preset's run.seed");
  app.add_option("--log-level", opts.log_level, "trace, debug, info, warn, error, off")
      ->capture_default_str();

  recap::cli::add_basic_commands(cli);
  recap::cli::add_corpus_commands(cli);
  recap::cli::add_training_commands(cli);
  recap::cli::add_sample_eval_commands(cli);
  recap::cli::add_recaption_commands(cli);
  recap::cli::add_run_commands(cli);

  CLI11_PARSE(app, argc, argv);
  try {
    cli.run_parsed();
  } catch (const recap::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  }
  return 0;
}
