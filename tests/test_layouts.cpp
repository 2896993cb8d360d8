// Layouts: the assign-layouts pass inserts reorders only where a producer's layout differs from what a
// consumer needs, shares them, cancels inverse pairs, removes no-op reorders, and hands the caller plain
// outputs; layout-preserving ops (elementwise) run in the layout they are given. Results must not
// change (reorders only move bytes), so every case compares with a naive computation.

#include <cmath>
#include <sstream>

#include "frontends/yaml/yaml_frontend.hpp"
#include "passes/pass.hpp"
#include "runtime/model_impl.hpp"
#include "runtime/plan.hpp"
#include "test_util.hpp"

namespace {

using namespace kiln;

std::unique_ptr<Graph> compile(const std::string& yaml, int level) {
  auto g = parse_yaml_model(yaml, "model.yaml", ".");
  PipelineOptions options;
  options.opt_level = level;
  run_pipeline(*g, options);
  return g;
}

int count_op(const Graph& g, const std::string& op) {
  int n = 0;
  for (const auto& node : g.nodes()) n += node->op == op;
  return n;
}

// Runs a graph with inputs x and y of shape [2,12,5,3] (values i*0.01 - 1 and 0.5 - i*0.002).
std::vector<float> run(const Graph& g) {
  const std::vector<std::int64_t> dims = {2, 12, 5, 3};
  const std::size_t n = 2 * 12 * 5 * 3;
  std::vector<float> x(n), y(n), out(n);
  for (std::size_t i = 0; i < n; ++i) {
    x[i] = static_cast<float>(i) * 0.01f - 1.0f;
    y[i] = 0.5f - static_cast<float>(i) * 0.002f;
  }
  std::vector<std::vector<std::int64_t>> in_dims(g.inputs.size(), dims);
  Plan plan(g, in_dims, detail::cpu_engine());
  std::vector<const void*> ins = {x.data(), y.data()};
  ins.resize(g.inputs.size());
  void* outs[] = {out.data()};
  dnnl::stream stream(detail::cpu_engine());
  plan.run(stream, ins.data(), outs);
  return out;
}

std::vector<float> expected_relu_add() {
  const std::size_t n = 2 * 12 * 5 * 3;
  std::vector<float> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    float x = static_cast<float>(i) * 0.01f - 1.0f, y = 0.5f - static_cast<float>(i) * 0.002f;
    out[i] = 1.0f / (1.0f + std::exp(-std::max(x, 0.0f))) + y;
  }
  return out;
}

const char* kBlocked = R"(kiln: 1
name: blocked
inputs:
  x: {dtype: f32, shape: [batch, 12, 5, 3]}
  y: {dtype: f32, shape: [batch, 12, 5, 3]}
outputs: [z]
nodes:
  - {op: reorder, in: [x], to: nChw8c, out: xb}
  - {op: relu, in: [xb], out: r}
  - {op: sigmoid, in: [r], out: s}
  - {op: add, in: [s, y], out: z}
)";

}  // namespace

TEST_CASE("layouts: elementwise ops stay blocked, reorders only at the disagreements") {
  auto g = compile(kBlocked, 1);
  // relu and sigmoid run in nChw8c; add needs y in s's layout (one reorder in); z goes back to plain.
  CHECK(g->find_value("r")->type.str() == "f32[batch,12,5,3]{nChw8c}");
  CHECK(g->find_value("s")->type.str() == "f32[batch,12,5,3]{nChw8c}");
  CHECK(count_op(*g, "reorder") == 3);
  CHECK(g->find_value("y.nChw8c") != nullptr);
  CHECK(g->outputs[0]->name == "z");
  CHECK(g->outputs[0]->type.str() == "f32[batch,12,5,3]");
  auto out = run(*g);
  auto want = expected_relu_add();
  double err = 0;
  for (std::size_t i = 0; i < out.size(); ++i) err = std::max(err, static_cast<double>(std::fabs(out[i] - want[i])));
  CHECK(err <= 1e-6);
  // The plan reports its reorders.
  Plan plan(*g, {{2, 12, 5, 3}, {2, 12, 5, 3}}, detail::cpu_engine());
  CHECK(plan.describe().find("reorders: 3") != std::string::npos);
}

TEST_CASE("layouts: -O0 runs the graph as written and rejects a layout mismatch clearly") {
  auto g = compile(kBlocked, 0);
  CHECK(count_op(*g, "reorder") == 1);
  std::string msg = test::error_of([&] { Plan plan(*g, {{2, 12, 5, 3}, {2, 12, 5, 3}}, detail::cpu_engine()); });
  CHECK(msg == "model.yaml:11:5: error: add 'z': needs its inputs in layout nChw8c, but 'y' is f32[2,12,5,3] "
               "(the assign-layouts pass inserts reorders)");
}

TEST_CASE("layouts: a reorder and its inverse cancel, a reorder to the same layout is removed") {
  const char* yaml = R"(kiln: 1
name: cancel
inputs:
  x: {dtype: f32, shape: [batch, 12, 5, 3]}
outputs: [z]
nodes:
  - {op: reorder, in: [x], to: nhwc, out: a}
  - {op: reorder, in: [a], to: nhwc, out: b}
  - {op: reorder, in: [b], to: plain, out: c}
  - {op: relu, in: [c], out: r}
  - {op: softmax, in: [a], axis: 1, out: p}
  - {op: add, in: [r, p], out: z}
)";
  auto g = compile(yaml, 1);
  // b (nhwc -> nhwc) is removed; c (back to plain) cancels: relu reads x; softmax needs plain, and a is
  // a reorder of x, so it reads x too. Nothing is left to reorder.
  CHECK(count_op(*g, "reorder") == 0);
  CHECK(g->print().find("relu(%x)") != std::string::npos);
  CHECK(g->print().find("softmax(%x)") != std::string::npos);
}

TEST_CASE("layouts: reorder rejects unknown layouts with the known ones listed") {
  const char* yaml = R"(kiln: 1
inputs:
  x: {dtype: f32, shape: [2, 3]}
outputs: [y]
nodes:
  - {op: reorder, in: [x], to: nChw8c, out: y}
)";
  std::string msg = test::error_of([&] { parse_yaml_model(yaml, "model.yaml", "."); });
  CHECK(msg == "model.yaml:6:5: error: reorder 'y': unknown layout \"nChw8c\" for a rank-2 tensor (expected plain or one of: ba)");
}

TEST_CASE("layouts: the transformer models need no reorders") {
  auto model = kiln::Model::load(test::source_path("examples/transformer_classifier/transformer_classifier.yaml"));
  CHECK(model.ir().find("reorder") == std::string::npos);
}
