// version, config show|keys, weights inspect.
#include <fmt/format.h>

#include "cli/cli.h"
#include "core/build_info.h"
#include "stages/inspect.h"

namespace recap::cli {

namespace {

void print_version(const Runtime& rt) {
  auto info = build_info();
  const auto& blas = *rt.blas;
  fmt::print("recap {}\nlibtorch {}\ncompiler {}\nBLAS {}{} ({}), {:.1f} GFLOP/s on a 512x512 "
             "matmul\nthreads {} (usable cores {})\ndevice {}{}\n",
             info["recap"].get<std::string>(), info["libtorch"].get<std::string>(),
             info["compiler"].get<std::string>(), blas.library,
             blas.core.empty() ? "" : ", " + blas.core + " kernels",
             blas.path.empty() ? "no shared library found" : blas.path, blas.gflops, rt.threads,
             usable_cores(), rt.device.str(),
             info["cuda_available"].get<bool>() ? " (CUDA available)" : " (no CUDA)");
}

}  // namespace

void add_basic_commands(Cli& cli) {
  auto* version =
      cli.app.add_subcommand("version", "Versions, BLAS backend, threads and device");
  cli.on_run(version, [&cli] { print_version(init_runtime(cli.runtime, /*check_blas=*/true)); });

  auto* weights = cli.group("weights", "Safetensors weight files");
  auto file = std::make_shared<std::string>();
  auto* inspect = weights->add_subcommand(
      "inspect", "List tensors (name, dtype, shape, bytes) and metadata; exit 2 if malformed");
  inspect->add_option("file", *file, "a .safetensors file")->required();
  cli.on_run(inspect, [&cli, file] {
    init_runtime(cli.runtime, false);
    fmt::print("{}", describe_weights(*file));
  });

  auto* config = cli.group("config", "Presets and configuration keys");
  auto* show = config->add_subcommand("show", "Print the effective configuration as TOML");
  cli.add_config_options(show);
  cli.on_run(show, [&cli] {
    init_runtime(cli.runtime, false);
    fmt::print("{}", cli.load_config().to_toml());
  });
  auto* keys = config->add_subcommand("keys", "List every configuration key with its default");
  cli.on_run(keys, [] { fmt::print("{}", describe_config_schema()); });
}

}  // namespace recap::cli
