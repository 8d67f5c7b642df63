// run and status: the whole experiment in one command, and where a run stands.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "core/error.h"
#include "stages/run_experiment.h"
#include "stages/run_own_data.h"

namespace recap::cli {

namespace {

// NAME means runs/NAME; anything with a slash is taken as the run folder itself.
fs::path run_folder(const std::string& runs_dir, const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  return fs::path(runs_dir) / name;
}

}  // namespace

void add_run_commands(Cli& cli) {
  struct RunArgs {
    std::string name, runs_dir = "runs";
    std::vector<std::string> arms;
  };
  auto args = std::make_shared<RunArgs>();
  auto* run = cli.app.add_subcommand(
      "run", "The whole RECAP experiment: corpus, tokenizer, evaluator, captioner, recaption, "
             "caption quality, one text-to-image model per arm, samples, evaluation, report. "
             "Rerun the same command to resume a killed run");
  cli.add_config_options(run);
  run->add_option("--name", args->name, "run name: the run folder is RUNS_DIR/NAME (default: "
                                        "the preset's name)");
  run->add_option("--runs-dir", args->runs_dir, "where runs live")->capture_default_str();
  run->add_option("--arms", args->arms, "arms to train and compare (default: run.arms)")
      ->delimiter(',');
  cli.on_run(run, [&cli, args] {
    auto rt = init_runtime(cli.runtime, true);
    // --arms is shorthand for --set run.arms=[...], applied to a resumed run's config too.
    auto with_arms = [&](Config config) {
      if (!args->arms.empty())
        config.set("run.arms", nlohmann::json(args->arms).dump(), "--arms");
      return config;
    };
    Config config = with_arms(cli.load_config());
    const std::string name = args->name.empty() ? fs::path(config.origin()).stem().string()
                                                : args->name;
    const fs::path dir = run_folder(args->runs_dir, name);
    // A run keeps the config it started with; --set still applies on top.
    if (fs::exists(dir / "manifest.json")) {
      Config existing = with_arms(cli.load_config_file((dir / "config.toml").string()));
      if (cli.preset_given() && existing.to_json() != config.to_json())
        throw Error(fmt::format("{} already holds a run with another configuration; resume it "
                                "without --preset, or choose another --name",
                                dir.string()));
      config = existing;
      fmt::print("resuming {}\n", dir.string());
    }
    stages::RunOptions options;
    options.threads = rt.threads;
    // own.images: the user's own data; the stages that need the world's truth are skipped.
    auto result = stages::is_own_data_run(config) ? stages::run_own_data(config, dir, options)
                                                  : stages::run_experiment(config, dir, options);
    fmt::print("\n{}\n", result.main_table);
    if (!result.competence_table.empty())
      fmt::print("dev competence (SOA-C >= 80%, colour binding >= 60%):\n{}\n",
                 result.competence_table);
    fmt::print("report: {}\n        {}\n", result.report_index.string(),
               result.report_md.string());
  });

  auto status_args = std::make_shared<RunArgs>();
  auto* status = cli.app.add_subcommand("status", "Each stage of a run: state, wall time");
  status->add_option("name", status_args->name, "run name (under --runs-dir) or folder")
      ->required();
  status->add_option("--runs-dir", status_args->runs_dir, "where runs live")
      ->capture_default_str();
  cli.on_run(status, [&cli, status_args] {
    init_runtime(cli.runtime, false);
    fmt::print("{}", stages::format_status(run_folder(status_args->runs_dir, status_args->name)));
  });
}

}  // namespace recap::cli
