#pragma once
// Helpers for the pass tests (tests/test_passes.cpp, tests/test_pattern_fusions.cpp), in the style
// "IR in, expected IR out": parse a small YAML model, run exactly one pass the way run_pipeline does,
// check the printed IR and the remarks (with the YAML line of each node), and run the graph before and
// after the pass on the same seeded random inputs.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graph/graph.hpp"
#include "passes/pass.hpp"
#include "tests/ops/op_test_util.hpp"

namespace kiln::test {

using PassFactory = std::unique_ptr<Pass> (*)();

/// tests/fixtures/classifier_d64_l2 (absolute): the folder whose weights.safetensors the models read by default.
std::string fixture_dir();

/// Parses YAML text as "model.yaml" in `base_dir` (so `weights: weights.safetensors` reads that folder's file).
std::unique_ptr<Graph> parse(const std::string& yaml, const std::string& base_dir = fixture_dir());

struct PassResult {
  bool changed = false;
  std::vector<Remark> remarks;
};

/// Runs one pass as run_pipeline does: run, then toposort, verify and re-infer shapes.
PassResult run_pass(Graph& g, PassFactory make);

/// The 1-based line of `text` holding `needle` (which must occur exactly once).
int line_of(const std::string& text, const std::string& needle);

/// Checks one remark. Nodes in these models are written `  - {op: ...}`, so the node's column is 5.
void check_remark(const Remark& r, const char* pass, bool fired, const std::string& node, const std::string& message,
                  int line);

/// Values for the symbolic dims of a graph's inputs, e.g. {{"batch", 3}, {"seq", 7}}.
using Bindings = std::map<std::string, std::int64_t>;

/// Seeded random f32 inputs for every graph input; every symbolic dim must be bound in `dims`.
std::vector<Tensor> random_inputs(const Graph& g, Rng& rng, const Bindings& dims);
/// The same with only the symbol `batch` bound.
std::vector<Tensor> random_inputs(const Graph& g, Rng& rng, std::int64_t batch);

/// Runs the model before and after the pass (graph level, through a Plan) on the same random inputs, once
/// per entry of `runs`, and checks every output agrees within 1e-5 (and that the pass changed the IR).
void check_same_results(const std::string& yaml, PassFactory make, std::uint32_t salt,
                        const std::string& base_dir = fixture_dir(),
                        const std::vector<Bindings>& runs = {{{"batch", 1}}, {{"batch", 3}}});

/// A pass that must not fire: returns false, leaves the IR exactly as it was.
PassResult check_unchanged(const std::string& yaml, PassFactory make, const std::string& base_dir = fixture_dir());

/// The data of an f32 constant (checked).
const float* f32_data(const Value* v);

}  // namespace kiln::test
