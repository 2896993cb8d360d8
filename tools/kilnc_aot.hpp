#pragma once
// kilnc's ahead-of-time subcommands: compile (plan files and C++), inspect (plan files), bench.

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "tools/pass_flags.hpp"

namespace kiln {

struct AotCli {
  CLI::App* compile = nullptr;
  CLI::App* inspect = nullptr;
  CLI::App* bench = nullptr;

  std::string model, output, emit = "plan", isa, name, class_name, ns = "kiln_models", weights = "embed", depfile;
  std::vector<std::string> shapes, inputs;
  PassFlags passes;  // -O and --disable-pass
  bool quiet = false;
  bool ir = false;
  int warmup = 10, runs = 100, load_runs = 1;
  double seconds = 0;
  bool load_only = false;
};

/// Adds `compile`, `inspect` and `bench` to kilnc's command line.
void add_aot_subcommands(CLI::App& app, AotCli& cli);
/// Runs the one that was given; returns its exit code, or -1 when none of them was.
int run_aot_subcommand(const AotCli& cli);

}  // namespace kiln
