#pragma once
// What the public kiln::Model and kiln::Session hold.

#include <list>
#include <memory>

#include <oneapi/dnnl/dnnl.hpp>

#include "graph/graph.hpp"
#include "kiln/model.hpp"
#include "passes/pass.hpp"
#include "runtime/kplan.hpp"
#include "runtime/plan.hpp"

namespace kiln::detail {

struct ModelImpl {
  std::unique_ptr<Graph> graph;
  std::string path;
  std::vector<Remark> remarks;  // what the passes did, for --explain
  DimRanges dim_ranges;         // symbolic dims bounded at compile time (kilnc compile --shape NAME=MIN..MAX)
};

/// Loads a model file and runs the pass pipeline on it.
std::shared_ptr<ModelImpl> compile_model(const std::string& path, const PipelineOptions& options);

/// The CPU engine shared by all sessions.
const dnnl::engine& cpu_engine();

struct SessionImpl {
  static constexpr std::size_t kMaxPlans = 16;  // plans kept per session (least recently used dropped)

  std::shared_ptr<const ModelImpl> model;
  dnnl::stream stream;
  struct Entry {
    std::vector<std::vector<std::int64_t>> dims;
    std::unique_ptr<Plan> plan;
  };
  std::list<Entry> plans;  // most recently used first
  std::size_t compiled = 0;

  // Reused between runs so that a warm run allocates nothing.
  std::vector<const Tensor*> bound;
  struct Binding {
    const std::string* symbol;
    std::int64_t value;
    const std::string* input;  // the input that bound it
  };
  std::vector<Binding> symbols;
  std::vector<const void*> in_ptrs;
  std::vector<void*> out_ptrs;

  /// Checks inputs against the model's declared inputs (names, dtypes, ranks, dims, symbol bindings) and
  /// fills `bound` in graph-input order. Allocates nothing unless it fails.
  void bind(const std::map<std::string, Tensor>& inputs);
  /// The plan for the shapes in `bound`, compiled on first use.
  Plan& plan_for_bound();
};

}  // namespace kiln::detail
