#pragma once
// The compile driver: every way Kiln builds a model — Model::load, Model::load_from_memory, a seq2seq
// model's encoder and decoder, kilnc's subcommands and `kilnc compile` with bound dims — goes through
// `compile`: the frontend, the --shape bindings, the pass pipeline and the model's assembly, once.

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "graph/graph.hpp"
#include "kiln/model.hpp"
#include "passes/pass.hpp"
#include "runtime/dims.hpp"
#include "runtime/kplan.hpp"

namespace kiln::detail {

struct ModelImpl;

/// What to compile, and how. The model comes from exactly one of `graph`, `yaml_text` or the file `path`.
struct CompileRequest {
  /// The model file: .yaml or .yml (read by the YAML frontend with the weights it names) or .kplan
  /// (loaded as compiled: the passes ran when it was written). With `yaml_text` or `graph`, the name
  /// messages and the model use.
  std::string path;
  /// A YAML model's text in memory (Model::load_from_memory) instead of the file at `path`, with its
  /// `.safetensors` weights image (copied once, aligned; null for a model without weights).
  const std::string* yaml_text = nullptr;
  const void* weights = nullptr;
  std::size_t weights_size = 0;
  /// A graph a frontend already built (a seq2seq model's encoder or decoder).
  std::unique_ptr<Graph> graph;
  /// The passes to run (pipeline_options(options) unless a tool asks for more, e.g. --print-after).
  PipelineOptions pipeline;
  /// Kept in the model as Model::options: its session settings are what Session(model) uses.
  LoadOptions options;
  /// Symbolic input dims to bind before the passes (kilnc compile --shape): fixed ones become concrete,
  /// ranged ones are kept in the model (sessions reject dims outside them). Not for .kplan files.
  DimRanges dims;
  /// When set, told as each phase starts (kilnc's progress line).
  void (*stage)(const char*) = nullptr;
};

/// The pass pipeline `options` ask for (opt level and disabled passes).
PipelineOptions pipeline_options(const LoadOptions& options);

/// The weight quantization to compile `g` with: the pipeline's override, else the model file's, else none.
/// Fails naming the option (or the file's `quantize:` key) and the CPU feature when this CPU, under the
/// instruction-set cap, cannot run it (docs/quantization.md).
Quantize resolve_quantize(const Graph& g, const PipelineOptions& pipeline);

/// Builds the model `request` describes. Throws kiln::Error naming the file (and line) on any problem.
std::shared_ptr<ModelImpl> compile(CompileRequest request);

/// Compiles plans at compile time for the fixed dims and both ends of each range (when every input dim
/// is then known), checking that kernels can be built, and returns their memory-plan summaries.
std::vector<PlanSummary> summarize_plans(const ModelImpl& model);

}  // namespace kiln::detail
