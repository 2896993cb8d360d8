#pragma once
// kilnc's pass-pipeline flags (-O, --disable-pass, --print-after, --quantize), shared by its subcommands, and their
// conversion into the pipeline options the compile driver runs with (runtime/compile.hpp), or into the load
// options of the public API for subcommands that load through it.

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "kiln/error.hpp"
#include "kiln/model.hpp"
#include "passes/pass.hpp"

namespace kiln {

struct PassFlags {
  int opt_level = 2;
  std::vector<std::string> disabled;     // --disable-pass
  std::vector<std::string> print_after;  // --print-after (only where the subcommand offers it)
  std::string quantize;                  // --quantize none|int8|bf16 (empty: the model file's choice)
};

/// --quantize's help text, the same on every subcommand that loads a model.
inline constexpr const char* kQuantizeHelp =
    "quantize weights: none, int8 or bf16 (overrides the model file's quantize:; docs/quantization.md)";

/// --quantize's value, checked: unset when not given.
inline std::optional<Quantize> quantize_flag(const PassFlags& flags) {
  if (flags.quantize.empty()) return std::nullopt;
  Quantize q;
  if (!parse_quantize(flags.quantize, &q))
    throw Error("error: --quantize expects none, int8 or bf16, got '" + flags.quantize + "'");
  return q;
}

/// The pipeline options `flags` ask for; the IR --print-after asks for is written to `print_to`.
inline PipelineOptions pass_pipeline(const PassFlags& flags, std::ostream* print_to = nullptr) {
  PipelineOptions options;
  options.opt_level = flags.opt_level;
  options.disabled.insert(flags.disabled.begin(), flags.disabled.end());
  options.print_after.insert(flags.print_after.begin(), flags.print_after.end());
  options.print_to = print_to;
  options.quantize_override = quantize_flag(flags);
  return options;
}

/// The load options `flags` ask for (Model::load, Seq2SeqModel::load); --print-after does not apply.
inline LoadOptions load_options(const PassFlags& flags) {
  LoadOptions options;
  options.opt_level = flags.opt_level;
  options.disabled_passes = flags.disabled;
  options.quantize = quantize_flag(flags);
  return options;
}

}  // namespace kiln
