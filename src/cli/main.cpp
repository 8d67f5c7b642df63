// recap's command line: the global flags and error handling. The subcommands live in the
// cmd_*.cpp files next to this one; each calls one function from src/stages/ or src/core/.
#include <unistd.h>

#include <cstdlib>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/cli.h"
#include "core/error.h"

namespace {

// libtorch's OpenMP workers spin while idle by default. On a small machine where loader threads
// or other processes share the cores, a spinning worker holds a core the others need and every
// parallel region waits for a preempted one: captioner steps at --threads 2 on 2 busy cores
// ran 6x slower than with OMP_WAIT_POLICY=PASSIVE. libgomp reads the policy while the
// libraries load, before main, and setting it from a .preinit_array function did not take (it
// reported PASSIVE and still spun), so the process re-executes itself once with the policy in
// its environment. A policy or spin count the user set is kept.
void exec_with_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  ::execv("/proc/self/exe", argv);  // returns only on failure: run on with spinning workers
}

}  // namespace

int main(int argc, char** argv) {
  exec_with_passive_openmp(argv);
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
  } catch (const std::exception& e) {
    // recap::Error, and also what is not ours (e.g. a full stdout under the final table):
    // a message and a status, not an abort.
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  }
  return 0;
}
