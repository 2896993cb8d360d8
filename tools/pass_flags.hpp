#pragma once
// kilnc's pass-pipeline flags (-O, --disable-pass, --print-after), shared by its subcommands, and their
// conversion into the pipeline options the compile driver runs with (runtime/compile.hpp), or into the load
// options of the public API for subcommands that load through it.

#include <ostream>
#include <string>
#include <vector>

#include "kiln/model.hpp"
#include "passes/pass.hpp"

namespace kiln {

struct PassFlags {
  int opt_level = 2;
  std::vector<std::string> disabled;     // --disable-pass
  std::vector<std::string> print_after;  // --print-after (only where the subcommand offers it)
};

/// The pipeline options `flags` ask for; the IR --print-after asks for is written to `print_to`.
inline PipelineOptions pass_pipeline(const PassFlags& flags, std::ostream* print_to = nullptr) {
  PipelineOptions options;
  options.opt_level = flags.opt_level;
  options.disabled.insert(flags.disabled.begin(), flags.disabled.end());
  options.print_after.insert(flags.print_after.begin(), flags.print_after.end());
  options.print_to = print_to;
  return options;
}

/// The load options `flags` ask for (Model::load, Seq2SeqModel::load); --print-after does not apply.
inline LoadOptions load_options(const PassFlags& flags) {
  LoadOptions options;
  options.opt_level = flags.opt_level;
  options.disabled_passes = flags.disabled;
  return options;
}

}  // namespace kiln
