// recap's command line: CLI11 wiring only. Each subcommand parses its flags and calls one
// function from src/stages/ or src/core/; no logic lives here.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/build_info.h"
#include "core/config.h"
#include "core/error.h"
#include "core/runtime.h"
#include "core/threads.h"
#include "stages/inspect.h"

namespace {

using recap::Config;

void print_version(const recap::Runtime& rt) {
  auto info = recap::build_info();
  const auto& blas = *rt.blas;
  fmt::print("recap {}\nlibtorch {}\ncompiler {}\nBLAS {} ({}), {:.1f} GFLOP/s on a 512x512 "
             "matmul\nthreads {} (usable cores {})\ndevice {}{}\n",
             info["recap"].get<std::string>(), info["libtorch"].get<std::string>(),
             info["compiler"].get<std::string>(), blas.library,
             blas.path.empty() ? "no shared library found" : blas.path, blas.gflops, rt.threads,
             recap::usable_cores(), rt.device.str(),
             info["cuda_available"].get<bool>() ? " (CUDA available)" : " (no CUDA)");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"recap: relabel a text-to-image corpus with a fine-tuned captioner, train on the "
               "recaptions, and measure prompt following (RECAP)."};
  app.require_subcommand(1);
  app.fallthrough();
  app.get_formatter()->column_width(34);

  recap::RuntimeOptions opts;
  app.add_option("--threads", opts.threads, "libtorch threads (0: usable cores)")
      ->capture_default_str();
  app.add_option("--device", opts.device, "cpu, cuda or cuda:N")->capture_default_str();
  app.add_option("--seed", opts.seed, "override the preset's run.seed");
  app.add_option("--log-level", opts.log_level, "trace, debug, info, warn, error, off")
      ->capture_default_str();

  auto* version = app.add_subcommand("version", "Versions, BLAS backend, threads and device");

  auto* weights = app.add_subcommand("weights", "Safetensors weight files");
  weights->require_subcommand(1);
  std::string weights_file;
  auto* inspect = weights->add_subcommand(
      "inspect", "List tensors (name, dtype, shape, bytes) and metadata; exit 2 if malformed");
  inspect->add_option("file", weights_file, "a .safetensors file")->required();

  auto* config = app.add_subcommand("config", "Presets and configuration keys");
  config->require_subcommand(1);
  std::string preset = "quick";
  std::vector<std::string> overrides;
  auto* show = config->add_subcommand("show", "Print the effective configuration as TOML");
  show->add_option("--preset", preset, "preset name (" +
                                           fmt::format("{}", fmt::join(Config::preset_names(), ", ")) +
                                           ") or a .toml file")
      ->capture_default_str();
  show->add_option("--set", overrides, "override one key: section.key=value (repeatable)");
  auto* keys = config->add_subcommand("keys", "List every configuration key with its default");

  CLI11_PARSE(app, argc, argv);

  try {
    if (version->parsed()) {
      print_version(recap::init_runtime(opts, /*check_blas=*/true));
    } else if (inspect->parsed()) {
      recap::init_runtime(opts, false);
      fmt::print("{}", recap::describe_weights(weights_file));
    } else if (show->parsed()) {
      recap::init_runtime(opts, false);
      if (opts.seed) overrides.push_back(fmt::format("run.seed={}", *opts.seed));
      fmt::print("{}", Config::load(preset, overrides).to_toml());
    } else if (keys->parsed()) {
      fmt::print("{}", recap::describe_config_schema());
    }
  } catch (const recap::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  }
  return 0;
}
