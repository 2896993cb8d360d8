// The optimization passes, one at a time, in the style "IR in, expected IR out": each case parses a small
// YAML model (f32 inputs with symbolic dims, weights from the classifier_d64_l2 fixture), runs exactly one
// pass the way run_pipeline does (run, toposort, verify, infer_shapes), and checks
//   - the full Graph::print text before and after (written out by hand),
//   - the remarks: fired or declined, node label, message, and the YAML line of the node,
//   - where the pass fired, that the graph computes the same outputs before and after (max abs diff <= 1e-5).
// Then the whole pipeline on the fixture models (-O0 vs -O2), --disable-pass and --print-after.

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "frontends/yaml/yaml_frontend.hpp"
#include "graph/graph.hpp"
#include "ops/op.hpp"
#include "passes/pass.hpp"
#include "runtime/model_impl.hpp"
#include "runtime/npy.hpp"
#include "test_util.hpp"
#include "tests/ops/op_test_util.hpp"
#include "tests/pass_test_util.hpp"

namespace {

using namespace kiln;
using kiln::test::error_of;
using kiln::test::max_abs_diff;
using kiln::test::source_path;

// Weight-name prefix of the first encoder layer in the fixture's weights file (string-literal concatenation
// keeps the expected IR below readable).
#define L0 "transformer_encoder.layers.0."

// The shared helpers (parse, run_pass, line_of, check_remark, random_inputs, check_same_results,
// check_unchanged, f32_data) live in tests/pass_test_util.hpp.
using kiln::test::check_remark;
using kiln::test::check_same_results;
using kiln::test::check_unchanged;
using kiln::test::f32_data;
using kiln::test::line_of;
using kiln::test::parse;
using kiln::test::PassResult;
using kiln::test::run_pass;

// fuse-activation and fuse-residual as they run first in the pipeline: for ops that apply their
// activation before the residual (linear).
std::unique_ptr<Pass> fuse_activation_early() { return make_fuse_activation_pass(PostOpStage::ActivationFirst); }
std::unique_ptr<Pass> fuse_residual_early() { return make_fuse_residual_pass(PostOpStage::ActivationFirst); }

// ================================================================================================
// remove-noops
// ================================================================================================

const std::string kNoops = R"(kiln: 1
name: noops
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 64]}
outputs: [y]
nodes:
  - {op: dropout, in: [x], p: 0.1, out: d}
  - {op: reshape, in: [d], shape: [0, 8, 8], out: r1}
  - {op: reshape, in: [r1], shape: [0, 64], out: r2}
  - {op: transpose, in: [r2], perm: [0, 1], out: t}
  - {op: linear, in: [t], weights: output_layer, out: y}
)";

// The identity reshape is a graph output, so its name must stay; the transpose really permutes.
const std::string kNoopsKept = R"(kiln: 1
name: keep
inputs:
  x: {dtype: f32, shape: [batch, 64]}
outputs: [y, t]
nodes:
  - {op: reshape, in: [x], shape: [0, 64], out: y}
  - {op: transpose, in: [x], perm: [1, 0], out: t}
)";

// reshape(reshape(x)) where the outer reshape's `0` copies a dim of the *inner* reshape's output.
const std::string kNoopsChainCopy = R"(kiln: 1
name: chain
inputs:
  x: {dtype: f32, shape: [batch, 4, 6]}
outputs: [y]
nodes:
  - {op: reshape, in: [x], shape: [0, 6, 4], out: r1}
  - {op: reshape, in: [r1], shape: [0, 0, -1], out: r2}
  - {op: reduce_sum, in: [r2], axes: [1], out: y}
)";

// Same defect, loud form: r1 = reshape(x:[batch,64], [-1,8]) is [8*batch,8] and r2 = reshape(r1, [0,2,4]) is
// [8*batch,2,4]; reading through r1 gives reshape(x, [0,2,4]), whose element count differs.
const std::string kNoopsChainCount = R"(kiln: 1
name: chain2
inputs:
  x: {dtype: f32, shape: [batch, 64]}
outputs: [y]
nodes:
  - {op: reshape, in: [x], shape: [-1, 8], out: r1}
  - {op: reshape, in: [r1], shape: [0, 2, 4], out: r2}
  - {op: relu, in: [r2], out: y}
)";

}  // namespace

TEST_CASE("passes: remove-noops drops dropout, identity reshape/transpose and reads through chained reshapes") {
  auto g = parse(kNoops);
  CHECK(g->print() ==
        "graph noops(%x: f32[batch,64]) -> (%y) {\n"
        "  %output_layer.weight = const : f32[4,64]\n"
        "  %output_layer.bias = const : f32[4]\n"
        "  %d = dropout(%x) {p=0.1} : (f32[batch,64]) -> f32[batch,64]\n"
        "  %r1 = reshape(%d) {shape=[0,8,8]} : (f32[batch,64]) -> f32[batch,8,8]\n"
        "  %r2 = reshape(%r1) {shape=[0,64]} : (f32[batch,8,8]) -> f32[batch,64]\n"
        "  %t = transpose(%r2) {perm=[0,1]} : (f32[batch,64]) -> f32[batch,64]\n"
        "  %y = linear(%t, %output_layer.weight, %output_layer.bias, _) {activation=\"none\"} : (f32[batch,64], f32[4,64], f32[4], _) -> f32[batch,4]\n"
        "  return %y\n"
        "}\n");
  PassResult r = run_pass(*g, make_remove_noops_pass);
  CHECK(r.changed);
  // dropout, r2 (after reading through r1 it reshapes [batch,64] to [batch,64]) and the identity transpose
  // are gone; r1 no longer has users but stays (dead code is dead-code's job).
  CHECK(g->print() ==
        "graph noops(%x: f32[batch,64]) -> (%y) {\n"
        "  %output_layer.weight = const : f32[4,64]\n"
        "  %output_layer.bias = const : f32[4]\n"
        "  %r1 = reshape(%x) {shape=[0,8,8]} : (f32[batch,64]) -> f32[batch,8,8]\n"
        "  %y = linear(%x, %output_layer.weight, %output_layer.bias, _) {activation=\"none\"} : (f32[batch,64], f32[4,64], f32[4], _) -> f32[batch,4]\n"
        "  return %y\n"
        "}\n");
  CHECK(g->find_value("d") == nullptr);
  CHECK(g->find_value("r2") == nullptr);
  CHECK(g->find_value("t") == nullptr);
  CHECK(g->find_value("r1")->users.empty());
  REQUIRE(r.remarks.size() == 4);
  check_remark(r.remarks[0], "remove-noops", true, "dropout 'd'", "removed: its uses now read 'x'", line_of(kNoops, "out: d}"));
  check_remark(r.remarks[1], "remove-noops", true, "reshape 'r2'", "reads through reshape 'r1'", line_of(kNoops, "out: r2}"));
  check_remark(r.remarks[2], "remove-noops", true, "reshape 'r2'", "removed: its uses now read 'x'", line_of(kNoops, "out: r2}"));
  check_remark(r.remarks[3], "remove-noops", true, "transpose 't'", "removed: its uses now read 'x'", line_of(kNoops, "out: t}"));
  CHECK(r.remarks[0].str() == "model.yaml:8:5: remove-noops: fired on dropout 'd': removed: its uses now read 'x'");
  // Nothing left to do.
  const std::string after = g->print();
  CHECK_FALSE(run_pass(*g, make_remove_noops_pass).changed);
  CHECK(g->print() == after);
}

TEST_CASE("passes: remove-noops keeps an identity reshape whose output is a graph output") {
  auto g = parse(kNoopsKept);
  CHECK(g->print() ==
        "graph keep(%x: f32[batch,64]) -> (%y, %t) {\n"
        "  %y = reshape(%x) {shape=[0,64]} : (f32[batch,64]) -> f32[batch,64]\n"
        "  %t = transpose(%x) {perm=[1,0]} : (f32[batch,64]) -> f32[64,batch]\n"
        "  return %y, %t\n"
        "}\n");
  PassResult r = check_unchanged(kNoopsKept, make_remove_noops_pass);
  REQUIRE(r.remarks.size() == 1);  // nothing at all about the real transpose
  check_remark(r.remarks[0], "remove-noops", false, "reshape 'y'", "its output 'y' is a graph output, whose name must stay",
               line_of(kNoopsKept, "out: y}"));
}

TEST_CASE("passes: remove-noops gives the same results") { check_same_results(kNoops, make_remove_noops_pass, 1); }

// Reading through reshape(reshape(x)) must not re-apply a 0 of the outer shape to x: it copied a dim of
// the inner reshape's output. Here r2 = reshape(reshape(x:[batch,4,6], [0,6,4]), [0,0,-1]) is [batch,6,4];
// the pass must keep that (the 0 at position 1 becomes 6), so y stays f32[batch,4].
TEST_CASE("passes: remove-noops keeps the shape of reshape(reshape(x)) when the outer shape copies dims with 0") {
  auto g = parse(kNoopsChainCopy);
  CHECK(g->find_value("r2")->type.str() == "f32[batch,6,4]");
  CHECK(g->find_value("y")->type.str() == "f32[batch,4]");
  run_pass(*g, make_remove_noops_pass);
  CHECK(g->outputs[0]->type.str() == "f32[batch,4]");
  check_same_results(kNoopsChainCopy, make_remove_noops_pass, 2);
}

// Here the outer 0 copies the derived symbolic dim 8*batch, which x does not have: the pass must decline.
TEST_CASE("passes: remove-noops must not break reshape(reshape(x)) whose outer shape copies a derived dim") {
  auto g = parse(kNoopsChainCount);
  CHECK(g->find_value("y")->type.str() == "f32[8*batch,2,4]");
  CHECK_NOTHROW(run_pass(*g, make_remove_noops_pass));
  CHECK(g->outputs[0]->type.str() == "f32[8*batch,2,4]");
}

// ================================================================================================
// constant-fold
// ================================================================================================

namespace {

const std::string kFold = R"(kiln: 1
name: fold
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 4, 64]}
outputs: [y]
nodes:
  - {op: reshape, in: [transformer_encoder.layers.0.linear1.bias], shape: [4, 64], out: b4}
  - {op: mul, in: [b4, transformer_encoder.layers.0.linear2.bias], out: s}
  - {op: reshape, in: [s], shape: [1, 4, 64], out: t}
  - {op: add, in: [x, t], out: y}
)";

// Every node reads the runtime input x (directly or not): nothing to fold.
const std::string kFoldRuntime = R"(kiln: 1
name: runtime
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 64]}
outputs: [y]
nodes:
  - {op: mul, in: [x, transformer_encoder.layers.0.norm1.weight], out: m}
  - {op: add, in: [m, transformer_encoder.layers.0.norm1.bias], out: a}
  - {op: relu, in: [a], out: y}
)";

// The two reshapes of weights fold (views: no bytes computed); their broadcast product would take 4 GB.
const std::string kFoldHuge = R"(kiln: 1
name: huge
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 64]}
outputs: [y]
nodes:
  - {op: relu, in: [x], out: y}
  - {op: reshape, in: [embedding.weight], shape: [1000, 1, 64, 1], out: e4}
  - {op: reshape, in: [transformer_encoder.layers.0.linear1.weight], shape: [1, 256, 1, 64], out: w4}
  - {op: mul, in: [e4, w4], out: big}
)";

// Outputs computed from weights alone: c by a kernel, v as a view of c.
const std::string kFoldOutputs = R"(kiln: 1
name: constout
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 64]}
outputs: [y, c, v]
nodes:
  - {op: mul, in: [transformer_encoder.layers.0.linear2.bias, transformer_encoder.layers.0.linear2.bias], out: c}
  - {op: reshape, in: [c], shape: [8, 8], out: v}
  - {op: add, in: [x, c], out: y}
)";

}  // namespace

TEST_CASE("passes: constant-fold computes nodes on weights only at compile time") {
  // (The fixture's LayerNorm parameters are all ones and zeros, so the biases of the two linears are used:
  // their product is not trivially 0 or one of the factors.)
  auto g = parse(kFold);
  CHECK(g->print() ==
        "graph fold(%x: f32[batch,4,64]) -> (%y) {\n"
        "  %" L0 "linear1.bias = const : f32[256]\n"
        "  %" L0 "linear2.bias = const : f32[64]\n"
        "  %b4 = reshape(%" L0 "linear1.bias) {shape=[4,64]} : (f32[256]) -> f32[4,64]\n"
        "  %s = mul(%b4, %" L0 "linear2.bias) : (f32[4,64], f32[64]) -> f32[4,64]\n"
        "  %t = reshape(%s) {shape=[1,4,64]} : (f32[4,64]) -> f32[1,4,64]\n"
        "  %y = add(%x, %t) : (f32[batch,4,64], f32[1,4,64]) -> f32[batch,4,64]\n"
        "  return %y\n"
        "}\n");
  PassResult r = run_pass(*g, make_constant_fold_pass);
  CHECK(r.changed);
  CHECK(g->print() ==
        "graph fold(%x: f32[batch,4,64]) -> (%y) {\n"
        "  %t = const : f32[1,4,64]\n"
        "  %y = add(%x, %t) : (f32[batch,4,64], f32[1,4,64]) -> f32[batch,4,64]\n"
        "  return %y\n"
        "}\n");
  REQUIRE(r.remarks.size() == 3);
  check_remark(r.remarks[0], "constant-fold", true, "reshape 'b4'", "computed at compile time", line_of(kFold, "out: b4}"));
  check_remark(r.remarks[1], "constant-fold", true, "mul 's'", "computed at compile time", line_of(kFold, "out: s}"));
  check_remark(r.remarks[2], "constant-fold", true, "reshape 't'", "computed at compile time", line_of(kFold, "out: t}"));

  // The weights and the intermediates are gone from the graph; t is a constant holding the product.
  CHECK(g->nodes().size() == 1);
  for (const char* gone : {"b4", "s", L0 "linear1.bias", L0 "linear2.bias"}) CHECK(g->find_value(gone) == nullptr);
  const Value* t = g->find_value("t");
  REQUIRE(t != nullptr);
  CHECK(t->is_constant());
  CHECK(t->producer == nullptr);
  CHECK(t->type.str() == "f32[1,4,64]");
  CHECK(t->constant.bytes == 256 * sizeof(float));
  auto ref = parse(kFold);  // an untouched copy to read the weights from
  const float* b1 = f32_data(ref->find_value(L0 "linear1.bias"));
  const float* b2 = f32_data(ref->find_value(L0 "linear2.bias"));
  const float* folded = f32_data(t);
  int mismatches = 0, nonzero = 0;
  for (int row = 0; row < 4; ++row)
    for (int i = 0; i < 64; ++i) {
      const float want = b1[row * 64 + i] * b2[i];
      mismatches += folded[row * 64 + i] != want;
      nonzero += want != 0.f;
    }
  CHECK(mismatches == 0);
  CHECK(nonzero > 200);  // a meaningful comparison, not zeros against zeros
}

TEST_CASE("passes: constant-fold must not touch nodes with runtime inputs") {
  PassResult r = check_unchanged(kFoldRuntime, make_constant_fold_pass);
  CHECK(r.remarks.empty());
  CHECK(parse(kFoldRuntime)->print() ==
        "graph runtime(%x: f32[batch,64]) -> (%y) {\n"
        "  %" L0 "norm1.weight = const : f32[64]\n"
        "  %" L0 "norm1.bias = const : f32[64]\n"
        "  %m = mul(%x, %" L0 "norm1.weight) : (f32[batch,64], f32[64]) -> f32[batch,64]\n"
        "  %a = add(%m, %" L0 "norm1.bias) : (f32[batch,64], f32[64]) -> f32[batch,64]\n"
        "  %y = relu(%a) : (f32[batch,64]) -> f32[batch,64]\n"
        "  return %y\n"
        "}\n");
}

TEST_CASE("passes: constant-fold declines a result too large to materialize") {
  auto g = parse(kFoldHuge);
  PassResult r = run_pass(*g, make_constant_fold_pass);
  CHECK(r.changed);
  // The reshapes became constants (views of the weights); the product stayed a node.
  CHECK(g->print() ==
        "graph huge(%x: f32[batch,64]) -> (%y) {\n"
        "  %e4 = const : f32[1000,1,64,1]\n"
        "  %w4 = const : f32[1,256,1,64]\n"
        "  %y = relu(%x) : (f32[batch,64]) -> f32[batch,64]\n"
        "  %big = mul(%e4, %w4) : (f32[1000,1,64,1], f32[1,256,1,64]) -> f32[1000,256,64,64]\n"
        "  return %y\n"
        "}\n");
  REQUIRE(r.remarks.size() == 3);
  check_remark(r.remarks[0], "constant-fold", true, "reshape 'e4'", "computed at compile time", line_of(kFoldHuge, "out: e4}"));
  check_remark(r.remarks[1], "constant-fold", true, "reshape 'w4'", "computed at compile time", line_of(kFoldHuge, "out: w4}"));
  // 1000 * 256 * 64 * 64 floats.
  check_remark(r.remarks[2], "constant-fold", false, "mul 'big'", "its result would take 4194304000 bytes",
               line_of(kFoldHuge, "out: big}"));
  CHECK_FALSE(g->find_value("big")->is_constant());
}

TEST_CASE("passes: constant-fold turns graph outputs computed from weights alone into constant outputs") {
  auto g = parse(kFoldOutputs);
  PassResult r = run_pass(*g, make_constant_fold_pass);
  CHECK(r.changed);
  REQUIRE(r.remarks.size() == 2);
  check_remark(r.remarks[0], "constant-fold", true, "mul 'c'", "computed at compile time", line_of(kFoldOutputs, "out: c}"));
  check_remark(r.remarks[1], "constant-fold", true, "reshape 'v'", "computed at compile time", line_of(kFoldOutputs, "out: v}"));
  REQUIRE(g->nodes().size() == 1);
  CHECK(g->nodes()[0]->label() == "add 'y'");
  REQUIRE(g->outputs.size() == 3);
  CHECK(g->outputs[1]->name == "c");
  CHECK(g->outputs[2]->name == "v");
  CHECK(g->outputs[1]->is_constant());
  CHECK(g->outputs[2]->is_constant());
  CHECK(g->outputs[2]->type.str() == "f32[8,8]");
  CHECK(g->outputs[2]->constant.data == g->outputs[1]->constant.data);  // the view shares c's bytes
  // Constant graph outputs are listed even when no node uses them.
  CHECK(g->print() ==
        "graph constout(%x: f32[batch,64]) -> (%y, %c, %v) {\n"
        "  %c = const : f32[64]\n"
        "  %v = const : f32[8,8]\n"
        "  %y = add(%x, %c) : (f32[batch,64], f32[64]) -> f32[batch,64]\n"
        "  return %y, %c, %v\n"
        "}\n");
  check_same_results(kFoldOutputs, make_constant_fold_pass, 10);
}

TEST_CASE("passes: constant-fold gives the same results") { check_same_results(kFold, make_constant_fold_pass, 3); }

// ================================================================================================
// cse
// ================================================================================================

namespace {

// r2 duplicates r1; once r2's uses read r1, b duplicates a.
const std::string kCse = R"(kiln: 1
name: cse
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 64]}
outputs: [y]
nodes:
  - {op: relu, in: [x], out: r1}
  - {op: relu, in: [x], out: r2}
  - {op: linear, in: [r1], weights: output_layer, out: a}
  - {op: linear, in: [r2], weights: output_layer, out: b}
  - {op: add, in: [a, b], out: y}
)";

// Same op, same inputs, different attributes: never merged.
const std::string kCseAttrs = R"(kiln: 1
name: attrs
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 64]}
outputs: [y]
nodes:
  - {op: gelu, in: [x], out: g1}
  - {op: gelu, in: [x], approximate: tanh, out: g2}
  - {op: layer_norm, in: [x], weights: transformer_encoder.layers.0.norm1, eps: 1.0e-5, out: n1}
  - {op: layer_norm, in: [x], weights: transformer_encoder.layers.0.norm1, eps: 1.0e-3, out: n2}
  - {op: softmax, in: [x], axis: 0, out: s1}
  - {op: softmax, in: [x], axis: -1, out: s2}
  - {op: add, in: [g1, g2], out: a1}
  - {op: add, in: [n1, n2], out: a2}
  - {op: add, in: [s1, s2], out: a3}
  - {op: add, in: [a1, a2], out: a4}
  - {op: add, in: [a4, a3], out: y}
)";

// Duplicates, but both are graph outputs.
const std::string kCseOutputs = R"(kiln: 1
name: outs
inputs:
  x: {dtype: f32, shape: [batch, 64]}
outputs: [y, z]
nodes:
  - {op: relu, in: [x], out: y}
  - {op: relu, in: [x], out: z}
)";

}  // namespace

TEST_CASE("passes: cse merges nodes with the same op, inputs and attributes") {
  auto g = parse(kCse);
  CHECK(g->print() ==
        "graph cse(%x: f32[batch,64]) -> (%y) {\n"
        "  %output_layer.weight = const : f32[4,64]\n"
        "  %output_layer.bias = const : f32[4]\n"
        "  %r1 = relu(%x) : (f32[batch,64]) -> f32[batch,64]\n"
        "  %r2 = relu(%x) : (f32[batch,64]) -> f32[batch,64]\n"
        "  %a = linear(%r1, %output_layer.weight, %output_layer.bias, _) {activation=\"none\"} : (f32[batch,64], f32[4,64], f32[4], _) -> f32[batch,4]\n"
        "  %b = linear(%r2, %output_layer.weight, %output_layer.bias, _) {activation=\"none\"} : (f32[batch,64], f32[4,64], f32[4], _) -> f32[batch,4]\n"
        "  %y = add(%a, %b) : (f32[batch,4], f32[batch,4]) -> f32[batch,4]\n"
        "  return %y\n"
        "}\n");
  PassResult r = run_pass(*g, make_cse_pass);
  CHECK(r.changed);
  CHECK(g->print() ==
        "graph cse(%x: f32[batch,64]) -> (%y) {\n"
        "  %output_layer.weight = const : f32[4,64]\n"
        "  %output_layer.bias = const : f32[4]\n"
        "  %r1 = relu(%x) : (f32[batch,64]) -> f32[batch,64]\n"
        "  %a = linear(%r1, %output_layer.weight, %output_layer.bias, _) {activation=\"none\"} : (f32[batch,64], f32[4,64], f32[4], _) -> f32[batch,4]\n"
        "  %y = add(%a, %a) : (f32[batch,4], f32[batch,4]) -> f32[batch,4]\n"
        "  return %y\n"
        "}\n");
  REQUIRE(r.remarks.size() == 2);
  check_remark(r.remarks[0], "cse", true, "relu 'r2'", "same as relu 'r1'; removed", line_of(kCse, "out: r2}"));
  check_remark(r.remarks[1], "cse", true, "linear 'b'", "same as linear 'a'; removed", line_of(kCse, "out: b}"));
  CHECK(g->find_value("a")->users.size() == 2);  // add uses it twice
  CHECK(g->find_value("b") == nullptr);
  CHECK(g->find_value("r2") == nullptr);
}

TEST_CASE("passes: cse must not merge nodes with different attributes") {
  PassResult r = check_unchanged(kCseAttrs, make_cse_pass);
  CHECK(r.remarks.empty());
  const std::string ir = parse(kCseAttrs)->print();
  CHECK(ir.find("  %g1 = gelu(%x) {approximate=\"none\"} : (f32[batch,64]) -> f32[batch,64]\n") != std::string::npos);
  CHECK(ir.find("  %g2 = gelu(%x) {approximate=\"tanh\"} : (f32[batch,64]) -> f32[batch,64]\n") != std::string::npos);
  CHECK(ir.find("{eps=1e-05}") != std::string::npos);
  CHECK(ir.find("{eps=0.001}") != std::string::npos);
  CHECK(ir.find("  %s1 = softmax(%x) {axis=0} : (f32[batch,64]) -> f32[batch,64]\n") != std::string::npos);
  CHECK(ir.find("  %s2 = softmax(%x) {axis=-1} : (f32[batch,64]) -> f32[batch,64]\n") != std::string::npos);
}

TEST_CASE("passes: cse keeps a duplicate whose output is a graph output") {
  CHECK(parse(kCseOutputs)->print() ==
        "graph outs(%x: f32[batch,64]) -> (%y, %z) {\n"
        "  %y = relu(%x) : (f32[batch,64]) -> f32[batch,64]\n"
        "  %z = relu(%x) : (f32[batch,64]) -> f32[batch,64]\n"
        "  return %y, %z\n"
        "}\n");
  PassResult r = check_unchanged(kCseOutputs, make_cse_pass);
  REQUIRE(r.remarks.size() == 1);
  check_remark(r.remarks[0], "cse", false, "relu 'z'", "same as relu 'y', but its outputs are graph outputs, whose names must stay",
               line_of(kCseOutputs, "out: z}"));
}

TEST_CASE("passes: cse gives the same results") { check_same_results(kCse, make_cse_pass, 4); }

// ================================================================================================
// fuse-activation on linear
// ================================================================================================

namespace {

const std::string kAct = R"(kiln: 1
name: act
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 64]}
outputs: [y]
nodes:
  - {op: linear, in: [x], weights: transformer_encoder.layers.0.linear1, out: h}
  - {op: relu, in: [h], out: h1}
  - {op: linear, in: [h1], weights: transformer_encoder.layers.0.linear2, out: f}
  - {op: gelu, in: [f], approximate: tanh, out: g}
  - {op: linear, in: [g], weights: output_layer, out: o}
  - {op: sigmoid, in: [o], out: y}
)";

// h has two users; o already adds a residual; q already applies relu; p is a graph output.
const std::string kActDeclined = R"(kiln: 1
name: noact
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 64]}
  r: {dtype: f32, shape: [batch, 4]}
outputs: [s, y, p]
nodes:
  - {op: linear, in: [x], weights: transformer_encoder.layers.0.linear1, out: h}
  - {op: relu, in: [h], out: h1}
  - {op: add, in: [h, h1], out: s}
  - {op: linear, in: [x, r], weights: output_layer, out: o}
  - {op: relu, in: [o], out: o1}
  - {op: linear, in: [x], weights: output_layer, activation: relu, out: q}
  - {op: tanh, in: [q], out: q1}
  - {op: linear, in: [x], weights: output_layer, out: p}
  - {op: sigmoid, in: [p], out: p1}
  - {op: add, in: [o1, q1], out: t}
  - {op: add, in: [t, p1], out: y}
)";

}  // namespace

TEST_CASE("passes: fuse-activation on linear folds relu, gelu(tanh) and sigmoid into the linear before them") {
  auto g = parse(kAct);
  CHECK(g->print() ==
        "graph act(%x: f32[batch,64]) -> (%y) {\n"
        "  %" L0 "linear1.weight = const : f32[256,64]\n"
        "  %" L0 "linear1.bias = const : f32[256]\n"
        "  %" L0 "linear2.weight = const : f32[64,256]\n"
        "  %" L0 "linear2.bias = const : f32[64]\n"
        "  %output_layer.weight = const : f32[4,64]\n"
        "  %output_layer.bias = const : f32[4]\n"
        "  %h = linear(%x, %" L0 "linear1.weight, %" L0 "linear1.bias, _) {activation=\"none\"} : (f32[batch,64], f32[256,64], f32[256], _) -> f32[batch,256]\n"
        "  %h1 = relu(%h) : (f32[batch,256]) -> f32[batch,256]\n"
        "  %f = linear(%h1, %" L0 "linear2.weight, %" L0 "linear2.bias, _) {activation=\"none\"} : (f32[batch,256], f32[64,256], f32[64], _) -> f32[batch,64]\n"
        "  %g = gelu(%f) {approximate=\"tanh\"} : (f32[batch,64]) -> f32[batch,64]\n"
        "  %o = linear(%g, %output_layer.weight, %output_layer.bias, _) {activation=\"none\"} : (f32[batch,64], f32[4,64], f32[4], _) -> f32[batch,4]\n"
        "  %y = sigmoid(%o) : (f32[batch,4]) -> f32[batch,4]\n"
        "  return %y\n"
        "}\n");
  PassResult r = run_pass(*g, fuse_activation_early);
  CHECK(r.changed);
  // Each linear now defines its activation's output value, keeps its own node name, and applies the
  // activation as a post-op; gelu with approximate=tanh becomes "gelu_tanh".
  CHECK(g->print() ==
        "graph act(%x: f32[batch,64]) -> (%y) {\n"
        "  %" L0 "linear1.weight = const : f32[256,64]\n"
        "  %" L0 "linear1.bias = const : f32[256]\n"
        "  %" L0 "linear2.weight = const : f32[64,256]\n"
        "  %" L0 "linear2.bias = const : f32[64]\n"
        "  %output_layer.weight = const : f32[4,64]\n"
        "  %output_layer.bias = const : f32[4]\n"
        "  %h1 = linear(%x, %" L0 "linear1.weight, %" L0 "linear1.bias, _) {activation=\"relu\"} : (f32[batch,64], f32[256,64], f32[256], _) -> f32[batch,256]  name(\"h\")\n"
        "  %g = linear(%h1, %" L0 "linear2.weight, %" L0 "linear2.bias, _) {activation=\"gelu_tanh\"} : (f32[batch,256], f32[64,256], f32[64], _) -> f32[batch,64]  name(\"f\")\n"
        "  %y = linear(%g, %output_layer.weight, %output_layer.bias, _) {activation=\"sigmoid\"} : (f32[batch,64], f32[4,64], f32[4], _) -> f32[batch,4]  name(\"o\")\n"
        "  return %y\n"
        "}\n");
  REQUIRE(r.remarks.size() == 3);
  check_remark(r.remarks[0], "fuse-activation", true, "linear 'h'", "absorbed relu 'h1'", line_of(kAct, "out: h}"));
  check_remark(r.remarks[1], "fuse-activation", true, "linear 'f'", "absorbed gelu 'g'", line_of(kAct, "out: f}"));
  check_remark(r.remarks[2], "fuse-activation", true, "linear 'o'", "absorbed sigmoid 'y'", line_of(kAct, "out: o}"));
  CHECK(r.remarks[0].str() ==
        "model.yaml:8:5: fuse-activation: fired on linear 'h': absorbed relu 'h1'");
  for (const char* gone : {"h", "f", "o"}) CHECK(g->find_value(gone) == nullptr);
}

TEST_CASE("passes: fuse-activation on linear declines shared outputs, residuals, activated linears, graph outputs") {
  auto g = parse(kActDeclined);
  CHECK(g->print() ==
        "graph noact(%x: f32[batch,64], %r: f32[batch,4]) -> (%s, %y, %p) {\n"
        "  %" L0 "linear1.weight = const : f32[256,64]\n"
        "  %" L0 "linear1.bias = const : f32[256]\n"
        "  %output_layer.weight = const : f32[4,64]\n"
        "  %output_layer.bias = const : f32[4]\n"
        "  %h = linear(%x, %" L0 "linear1.weight, %" L0 "linear1.bias, _) {activation=\"none\"} : (f32[batch,64], f32[256,64], f32[256], _) -> f32[batch,256]\n"
        "  %h1 = relu(%h) : (f32[batch,256]) -> f32[batch,256]\n"
        "  %s = add(%h, %h1) : (f32[batch,256], f32[batch,256]) -> f32[batch,256]\n"
        "  %o = linear(%x, %output_layer.weight, %output_layer.bias, %r) {activation=\"none\"} : (f32[batch,64], f32[4,64], f32[4], f32[batch,4]) -> f32[batch,4]\n"
        "  %o1 = relu(%o) : (f32[batch,4]) -> f32[batch,4]\n"
        "  %q = linear(%x, %output_layer.weight, %output_layer.bias, _) {activation=\"relu\"} : (f32[batch,64], f32[4,64], f32[4], _) -> f32[batch,4]\n"
        "  %q1 = tanh(%q) : (f32[batch,4]) -> f32[batch,4]\n"
        "  %p = linear(%x, %output_layer.weight, %output_layer.bias, _) {activation=\"none\"} : (f32[batch,64], f32[4,64], f32[4], _) -> f32[batch,4]\n"
        "  %p1 = sigmoid(%p) : (f32[batch,4]) -> f32[batch,4]\n"
        "  %t = add(%o1, %q1) : (f32[batch,4], f32[batch,4]) -> f32[batch,4]\n"
        "  %y = add(%t, %p1) : (f32[batch,4], f32[batch,4]) -> f32[batch,4]\n"
        "  return %s, %y, %p\n"
        "}\n");
  PassResult r = check_unchanged(kActDeclined, fuse_activation_early);
  REQUIRE(r.remarks.size() == 4);
  const char* pass = "fuse-activation";
  check_remark(r.remarks[0], pass, false, "linear 'h'", "its output 'h' has 2 uses, so relu 'h1' cannot be folded in",
               line_of(kActDeclined, "out: h}"));
  check_remark(r.remarks[1], pass, false, "linear 'o'", "it already adds a residual, which must come after the activation",
               line_of(kActDeclined, "out: o}"));
  check_remark(r.remarks[2], pass, false, "linear 'q'", "it already applies relu; tanh 'q1' stays", line_of(kActDeclined, "out: q}"));
  check_remark(r.remarks[3], pass, false, "linear 'p'", "its output 'p' is a graph output, so sigmoid 'p1' cannot be folded in",
               line_of(kActDeclined, "out: p}"));
}

TEST_CASE("passes: fuse-activation folds every activation linear's schema accepts") {
  // linear -> one unary activation, for each row of the table linear's post_ops accept (those Kiln's
  // GEMM epilogue applies).
  const std::string lin = R"(kiln: 1
name: one
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 64]}
outputs: [y]
nodes:
  - {op: linear, in: [x], weights: output_layer, out: o}
)";
  const PostOps& post_ops = find_op("linear")->post_ops;
  std::vector<std::string> folded;
  for (const ActivationDef* a : activations()) {
    CHECK(post_ops.accepts(*a) == (a->post_op && a->gemm_epilogue));
    if (!post_ops.accepts(*a)) continue;
    CAPTURE(a->name);
    std::string node = std::string("  - {op: ") + a->op + ", in: [o], ";
    if (a->variant_attr) node += std::string(a->variant_attr) + ": " + a->variant + ", ";
    const std::string yaml = lin + node + "out: y}\n";
    auto g = parse(yaml);
    PassResult r = run_pass(*g, fuse_activation_early);
    REQUIRE(r.remarks.size() == 1);
    check_remark(r.remarks[0], "fuse-activation", true, "linear 'o'", std::string("absorbed ") + a->op + " 'y'", line_of(yaml, "out: o}"));
    CHECK(g->print().find(std::string("activation=\"") + a->name + "\"") != std::string::npos);
    check_same_results(yaml, fuse_activation_early, 8);
    folded.push_back(a->name);
  }
  CHECK(folded == std::vector<std::string>{"relu", "gelu", "gelu_tanh", "sigmoid", "tanh"});
}

TEST_CASE("passes: fuse-activation on linear gives the same results") {
  check_same_results(kAct, fuse_activation_early, 5);
}

// ================================================================================================
// fuse-residual on linear
// ================================================================================================

namespace {

// x + f(x) with the linear second (the usual form), then o + r with the linear first.
const std::string kRes = R"(kiln: 1
name: res
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 64]}
  r: {dtype: f32, shape: [batch, 4]}
outputs: [z]
nodes:
  - {op: linear, in: [x], weights: transformer_encoder.layers.0.linear1, out: h}
  - {op: relu, in: [h], out: h1}
  - {op: linear, in: [h1], weights: transformer_encoder.layers.0.linear2, out: f}
  - {op: add, in: [x, f], out: y}
  - {op: linear, in: [y], weights: output_layer, out: o}
  - {op: add, in: [o, r], out: z}
)";

// The fused linear p (tanh) takes as residual o, which is computed after it: the graph is re-sorted.
const std::string kResLater = R"(kiln: 1
name: later
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 64]}
outputs: [y]
nodes:
  - {op: linear, in: [x], weights: output_layer, activation: tanh, out: p}
  - {op: linear, in: [x], weights: output_layer, activation: relu, out: o}
  - {op: add, in: [o, p], out: y}
)";

// a + bias broadcasts; b already adds a residual; c has two uses; d is a graph output.
const std::string kResDeclined = R"(kiln: 1
name: nores
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 64]}
  r: {dtype: f32, shape: [batch, 4]}
outputs: [a1, b1, c2, d, d1]
nodes:
  - {op: linear, in: [x], weights: output_layer, out: a}
  - {op: add, in: [a, output_layer.bias], out: a1}
  - {op: linear, in: [x, r], weights: output_layer, out: b}
  - {op: add, in: [r, b], out: b1}
  - {op: linear, in: [x], weights: output_layer, out: c}
  - {op: add, in: [r, c], out: c1}
  - {op: add, in: [c1, c], out: c2}
  - {op: linear, in: [x], weights: output_layer, out: d}
  - {op: add, in: [d, r], out: d1}
)";

}  // namespace

TEST_CASE("passes: fuse-residual on linear folds add(linear(x), r) into the linear, on either side") {
  auto g = parse(kRes);
  CHECK(g->print() ==
        "graph res(%x: f32[batch,64], %r: f32[batch,4]) -> (%z) {\n"
        "  %" L0 "linear1.weight = const : f32[256,64]\n"
        "  %" L0 "linear1.bias = const : f32[256]\n"
        "  %" L0 "linear2.weight = const : f32[64,256]\n"
        "  %" L0 "linear2.bias = const : f32[64]\n"
        "  %output_layer.weight = const : f32[4,64]\n"
        "  %output_layer.bias = const : f32[4]\n"
        "  %h = linear(%x, %" L0 "linear1.weight, %" L0 "linear1.bias, _) {activation=\"none\"} : (f32[batch,64], f32[256,64], f32[256], _) -> f32[batch,256]\n"
        "  %h1 = relu(%h) : (f32[batch,256]) -> f32[batch,256]\n"
        "  %f = linear(%h1, %" L0 "linear2.weight, %" L0 "linear2.bias, _) {activation=\"none\"} : (f32[batch,256], f32[64,256], f32[64], _) -> f32[batch,64]\n"
        "  %y = add(%x, %f) : (f32[batch,64], f32[batch,64]) -> f32[batch,64]\n"
        "  %o = linear(%y, %output_layer.weight, %output_layer.bias, _) {activation=\"none\"} : (f32[batch,64], f32[4,64], f32[4], _) -> f32[batch,4]\n"
        "  %z = add(%o, %r) : (f32[batch,4], f32[batch,4]) -> f32[batch,4]\n"
        "  return %z\n"
        "}\n");
  PassResult r = run_pass(*g, fuse_residual_early);
  CHECK(r.changed);
  CHECK(g->print() ==
        "graph res(%x: f32[batch,64], %r: f32[batch,4]) -> (%z) {\n"
        "  %" L0 "linear1.weight = const : f32[256,64]\n"
        "  %" L0 "linear1.bias = const : f32[256]\n"
        "  %" L0 "linear2.weight = const : f32[64,256]\n"
        "  %" L0 "linear2.bias = const : f32[64]\n"
        "  %output_layer.weight = const : f32[4,64]\n"
        "  %output_layer.bias = const : f32[4]\n"
        "  %h = linear(%x, %" L0 "linear1.weight, %" L0 "linear1.bias, _) {activation=\"none\"} : (f32[batch,64], f32[256,64], f32[256], _) -> f32[batch,256]\n"
        "  %h1 = relu(%h) : (f32[batch,256]) -> f32[batch,256]\n"
        "  %y = linear(%h1, %" L0 "linear2.weight, %" L0 "linear2.bias, %x) {activation=\"none\"} : (f32[batch,256], f32[64,256], f32[64], f32[batch,64]) -> f32[batch,64]  name(\"f\")\n"
        "  %z = linear(%y, %output_layer.weight, %output_layer.bias, %r) {activation=\"none\"} : (f32[batch,64], f32[4,64], f32[4], f32[batch,4]) -> f32[batch,4]  name(\"o\")\n"
        "  return %z\n"
        "}\n");
  REQUIRE(r.remarks.size() == 2);
  check_remark(r.remarks[0], "fuse-residual", true, "linear 'f'", "absorbed add 'y' (residual 'x')", line_of(kRes, "out: f}"));
  check_remark(r.remarks[1], "fuse-residual", true, "linear 'o'", "absorbed add 'z' (residual 'r')", line_of(kRes, "out: o}"));
}

TEST_CASE("passes: fuse-residual on linear on an activated linear whose residual is computed after it") {
  auto g = parse(kResLater);
  PassResult r = run_pass(*g, fuse_residual_early);
  CHECK(r.changed);
  // y = tanh(x·Wᵀ + b) + o: the activation comes before the residual, as the post-ops apply them.
  CHECK(g->print() ==
        "graph later(%x: f32[batch,64]) -> (%y) {\n"
        "  %output_layer.weight = const : f32[4,64]\n"
        "  %output_layer.bias = const : f32[4]\n"
        "  %o = linear(%x, %output_layer.weight, %output_layer.bias, _) {activation=\"relu\"} : (f32[batch,64], f32[4,64], f32[4], _) -> f32[batch,4]\n"
        "  %y = linear(%x, %output_layer.weight, %output_layer.bias, %o) {activation=\"tanh\"} : (f32[batch,64], f32[4,64], f32[4], f32[batch,4]) -> f32[batch,4]  name(\"p\")\n"
        "  return %y\n"
        "}\n");
  REQUIRE(r.remarks.size() == 1);
  check_remark(r.remarks[0], "fuse-residual", true, "linear 'p'", "absorbed add 'y' (residual 'o')",
               line_of(kResLater, "out: p}"));
  check_same_results(kResLater, fuse_residual_early, 6);
}

TEST_CASE("passes: fuse-residual on linear declines broadcasts, existing residuals, shared outputs, graph outputs") {
  auto g = parse(kResDeclined);
  CHECK(g->print() ==
        "graph nores(%x: f32[batch,64], %r: f32[batch,4]) -> (%a1, %b1, %c2, %d, %d1) {\n"
        "  %output_layer.weight = const : f32[4,64]\n"
        "  %output_layer.bias = const : f32[4]\n"
        "  %a = linear(%x, %output_layer.weight, %output_layer.bias, _) {activation=\"none\"} : (f32[batch,64], f32[4,64], f32[4], _) -> f32[batch,4]\n"
        "  %a1 = add(%a, %output_layer.bias) : (f32[batch,4], f32[4]) -> f32[batch,4]\n"
        "  %b = linear(%x, %output_layer.weight, %output_layer.bias, %r) {activation=\"none\"} : (f32[batch,64], f32[4,64], f32[4], f32[batch,4]) -> f32[batch,4]\n"
        "  %b1 = add(%r, %b) : (f32[batch,4], f32[batch,4]) -> f32[batch,4]\n"
        "  %c = linear(%x, %output_layer.weight, %output_layer.bias, _) {activation=\"none\"} : (f32[batch,64], f32[4,64], f32[4], _) -> f32[batch,4]\n"
        "  %c1 = add(%r, %c) : (f32[batch,4], f32[batch,4]) -> f32[batch,4]\n"
        "  %c2 = add(%c1, %c) : (f32[batch,4], f32[batch,4]) -> f32[batch,4]\n"
        "  %d = linear(%x, %output_layer.weight, %output_layer.bias, _) {activation=\"none\"} : (f32[batch,64], f32[4,64], f32[4], _) -> f32[batch,4]\n"
        "  %d1 = add(%d, %r) : (f32[batch,4], f32[batch,4]) -> f32[batch,4]\n"
        "  return %a1, %b1, %c2, %d, %d1\n"
        "}\n");
  PassResult r = check_unchanged(kResDeclined, fuse_residual_early);
  REQUIRE(r.remarks.size() == 5);
  const char* pass = "fuse-residual";
  check_remark(r.remarks[0], pass, false, "linear 'a'", "add 'a1' broadcasts f32[4] onto f32[batch,4]", line_of(kResDeclined, "out: a}"));
  check_remark(r.remarks[1], pass, false, "linear 'b'", "it already adds a residual", line_of(kResDeclined, "out: b}"));
  check_remark(r.remarks[2], pass, false, "linear 'c'", "its output 'c' has 2 uses, so add 'c1' cannot be folded in",
               line_of(kResDeclined, "out: c}"));
  check_remark(r.remarks[3], pass, false, "linear 'c'", "its output 'c' has 2 uses, so add 'c2' cannot be folded in",
               line_of(kResDeclined, "out: c}"));
  check_remark(r.remarks[4], pass, false, "linear 'd'", "its output 'd' is a graph output, so add 'd1' cannot be folded in",
               line_of(kResDeclined, "out: d}"));
}

TEST_CASE("passes: fuse-residual on linear gives the same results") {
  check_same_results(kRes, fuse_residual_early, 7);
}

// ================================================================================================
// fuse-add-layer-norm
// ================================================================================================

namespace {

// With weights (y), and without weights or bias (z).
const std::string kAddLn = R"(kiln: 1
name: addln
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 64]}
  a: {dtype: f32, shape: [batch, 64]}
outputs: [z]
nodes:
  - {op: add, in: [x, a], out: r1}
  - {op: layer_norm, in: [r1], weights: transformer_encoder.layers.0.norm1, eps: 1.0e-5, out: y}
  - {op: add, in: [y, x], out: r2}
  - {op: layer_norm, in: [r2], eps: 1.0e-3, out: z}
)";

// r1 is used twice; r2 broadcasts; r3 is a graph output; y4 already adds a residual.
const std::string kAddLnDeclined = R"(kiln: 1
name: noaddln
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 64]}
  a: {dtype: f32, shape: [batch, 64]}
outputs: [y1, y2, r3, y3, y4]
nodes:
  - {op: add, in: [x, a], out: r1}
  - {op: layer_norm, in: [r1], weights: transformer_encoder.layers.0.norm1, out: n1}
  - {op: add, in: [n1, r1], out: y1}
  - {op: add, in: [x, transformer_encoder.layers.0.norm1.bias], out: r2}
  - {op: layer_norm, in: [r2], out: y2}
  - {op: add, in: [a, x], out: r3}
  - {op: layer_norm, in: [r3], out: y3}
  - {op: add, in: [a, a], out: r4}
  - {op: layer_norm, in: [r4, transformer_encoder.layers.0.norm1.weight, transformer_encoder.layers.0.norm1.bias, x], out: y4}
)";

}  // namespace

TEST_CASE("passes: fuse-add-layer-norm folds layer_norm(a + b) into one layer_norm with a residual input") {
  auto g = parse(kAddLn);
  CHECK(g->print() ==
        "graph addln(%x: f32[batch,64], %a: f32[batch,64]) -> (%z) {\n"
        "  %" L0 "norm1.weight = const : f32[64]\n"
        "  %" L0 "norm1.bias = const : f32[64]\n"
        "  %r1 = add(%x, %a) : (f32[batch,64], f32[batch,64]) -> f32[batch,64]\n"
        "  %y = layer_norm(%r1, %" L0 "norm1.weight, %" L0 "norm1.bias, _) {eps=1e-05} : (f32[batch,64], f32[64], f32[64], _) -> f32[batch,64]\n"
        "  %r2 = add(%y, %x) : (f32[batch,64], f32[batch,64]) -> f32[batch,64]\n"
        "  %z = layer_norm(%r2, _, _, _) {eps=0.001} : (f32[batch,64], _, _, _) -> f32[batch,64]\n"
        "  return %z\n"
        "}\n");
  PassResult r = run_pass(*g, make_fuse_add_layer_norm_pass);
  CHECK(r.changed);
  CHECK(g->print() ==
        "graph addln(%x: f32[batch,64], %a: f32[batch,64]) -> (%z) {\n"
        "  %" L0 "norm1.weight = const : f32[64]\n"
        "  %" L0 "norm1.bias = const : f32[64]\n"
        "  %y = layer_norm(%x, %" L0 "norm1.weight, %" L0 "norm1.bias, %a) {eps=1e-05} : (f32[batch,64], f32[64], f32[64], f32[batch,64]) -> f32[batch,64]\n"
        "  %z = layer_norm(%y, _, _, %x) {eps=0.001} : (f32[batch,64], _, _, f32[batch,64]) -> f32[batch,64]\n"
        "  return %z\n"
        "}\n");
  REQUIRE(r.remarks.size() == 2);
  check_remark(r.remarks[0], "fuse-add-layer-norm", true, "layer_norm 'y'", "absorbed add 'r1'", line_of(kAddLn, "out: y}"));
  check_remark(r.remarks[1], "fuse-add-layer-norm", true, "layer_norm 'z'", "absorbed add 'r2'", line_of(kAddLn, "out: z}"));
  CHECK(g->find_value("r1") == nullptr);
  CHECK(g->find_value("r2") == nullptr);
}

TEST_CASE("passes: fuse-add-layer-norm declines shared sums, broadcasts, graph outputs, existing residuals") {
  auto g = parse(kAddLnDeclined);
  CHECK(g->print() ==
        "graph noaddln(%x: f32[batch,64], %a: f32[batch,64]) -> (%y1, %y2, %r3, %y3, %y4) {\n"
        "  %" L0 "norm1.weight = const : f32[64]\n"
        "  %" L0 "norm1.bias = const : f32[64]\n"
        "  %r1 = add(%x, %a) : (f32[batch,64], f32[batch,64]) -> f32[batch,64]\n"
        "  %n1 = layer_norm(%r1, %" L0 "norm1.weight, %" L0 "norm1.bias, _) {eps=1e-05} : (f32[batch,64], f32[64], f32[64], _) -> f32[batch,64]\n"
        "  %y1 = add(%n1, %r1) : (f32[batch,64], f32[batch,64]) -> f32[batch,64]\n"
        "  %r2 = add(%x, %" L0 "norm1.bias) : (f32[batch,64], f32[64]) -> f32[batch,64]\n"
        "  %y2 = layer_norm(%r2, _, _, _) {eps=1e-05} : (f32[batch,64], _, _, _) -> f32[batch,64]\n"
        "  %r3 = add(%a, %x) : (f32[batch,64], f32[batch,64]) -> f32[batch,64]\n"
        "  %y3 = layer_norm(%r3, _, _, _) {eps=1e-05} : (f32[batch,64], _, _, _) -> f32[batch,64]\n"
        "  %r4 = add(%a, %a) : (f32[batch,64], f32[batch,64]) -> f32[batch,64]\n"
        "  %y4 = layer_norm(%r4, %" L0 "norm1.weight, %" L0 "norm1.bias, %x) {eps=1e-05} : (f32[batch,64], f32[64], f32[64], f32[batch,64]) -> f32[batch,64]\n"
        "  return %y1, %y2, %r3, %y3, %y4\n"
        "}\n");
  PassResult r = check_unchanged(kAddLnDeclined, make_fuse_add_layer_norm_pass);
  REQUIRE(r.remarks.size() == 4);
  const char* pass = "fuse-add-layer-norm";
  check_remark(r.remarks[0], pass, false, "layer_norm 'n1'", "add 'r1': its output 'r1' has 2 uses", line_of(kAddLnDeclined, "out: n1}"));
  check_remark(r.remarks[1], pass, false, "layer_norm 'y2'", "add 'r2' broadcasts f32[batch,64] and f32[64]",
               line_of(kAddLnDeclined, "out: y2}"));
  check_remark(r.remarks[2], pass, false, "layer_norm 'y3'", "add 'r3': its output 'r3' is a graph output",
               line_of(kAddLnDeclined, "out: y3}"));
  check_remark(r.remarks[3], pass, false, "layer_norm 'y4'", "it already adds a residual", line_of(kAddLnDeclined, "out: y4}"));
}

TEST_CASE("passes: fuse-add-layer-norm gives the same results") {
  check_same_results(kAddLn, make_fuse_add_layer_norm_pass, 8);
}

// ================================================================================================
// dead-code
// ================================================================================================

namespace {

// d, d2 and p reach no output; linear1's weights are read only by d2.
const std::string kDead = R"(kiln: 1
name: dce
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 64]}
outputs: [y]
nodes:
  - {op: relu, in: [x], out: d}
  - {op: linear, in: [d], weights: transformer_encoder.layers.0.linear1, out: d2}
  - {op: linear, in: [x], weights: output_layer, out: y}
  - {op: softmax, in: [y], out: p}
)";

const std::string kLive = R"(kiln: 1
name: live
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 64]}
outputs: [y, p]
nodes:
  - {op: linear, in: [x], weights: output_layer, out: y}
  - {op: softmax, in: [y], out: p}
)";

}  // namespace

TEST_CASE("passes: dead-code removes nodes that reach no output, and the weights only they read") {
  auto g = parse(kDead);
  CHECK(g->print() ==
        "graph dce(%x: f32[batch,64]) -> (%y) {\n"
        "  %" L0 "linear1.weight = const : f32[256,64]\n"
        "  %" L0 "linear1.bias = const : f32[256]\n"
        "  %output_layer.weight = const : f32[4,64]\n"
        "  %output_layer.bias = const : f32[4]\n"
        "  %d = relu(%x) : (f32[batch,64]) -> f32[batch,64]\n"
        "  %d2 = linear(%d, %" L0 "linear1.weight, %" L0 "linear1.bias, _) {activation=\"none\"} : (f32[batch,64], f32[256,64], f32[256], _) -> f32[batch,256]\n"
        "  %y = linear(%x, %output_layer.weight, %output_layer.bias, _) {activation=\"none\"} : (f32[batch,64], f32[4,64], f32[4], _) -> f32[batch,4]\n"
        "  %p = softmax(%y) {axis=-1} : (f32[batch,4]) -> f32[batch,4]\n"
        "  return %y\n"
        "}\n");
  PassResult r = run_pass(*g, make_dead_code_pass);
  CHECK(r.changed);
  CHECK(g->print() ==
        "graph dce(%x: f32[batch,64]) -> (%y) {\n"
        "  %output_layer.weight = const : f32[4,64]\n"
        "  %output_layer.bias = const : f32[4]\n"
        "  %y = linear(%x, %output_layer.weight, %output_layer.bias, _) {activation=\"none\"} : (f32[batch,64], f32[4,64], f32[4], _) -> f32[batch,4]\n"
        "  return %y\n"
        "}\n");
  CHECK(r.remarks.empty());  // dead-code reports nothing (it has no fusion to explain)
  for (const char* gone : {"d", "d2", "p", L0 "linear1.weight", L0 "linear1.bias"}) CHECK(g->find_value(gone) == nullptr);
  CHECK(g->num_values() == 4);  // x, output_layer.weight, output_layer.bias, y
}

TEST_CASE("passes: dead-code must not fire when everything is live") {
  CHECK(parse(kLive)->print() ==
        "graph live(%x: f32[batch,64]) -> (%y, %p) {\n"
        "  %output_layer.weight = const : f32[4,64]\n"
        "  %output_layer.bias = const : f32[4]\n"
        "  %y = linear(%x, %output_layer.weight, %output_layer.bias, _) {activation=\"none\"} : (f32[batch,64], f32[4,64], f32[4], _) -> f32[batch,4]\n"
        "  %p = softmax(%y) {axis=-1} : (f32[batch,4]) -> f32[batch,4]\n"
        "  return %y, %p\n"
        "}\n");
  PassResult r = check_unchanged(kLive, make_dead_code_pass);
  CHECK(r.remarks.empty());
}

TEST_CASE("passes: dead-code gives the same results") { check_same_results(kDead, make_dead_code_pass, 9); }

// ================================================================================================
// The pipeline on whole models
// ================================================================================================

namespace {

struct ModelCase {
  const char* path;
  int layers;
  std::vector<const char*> tokens;  // .npy files next to the model
};

std::vector<ModelCase> model_cases() {
  return {
      {"tests/fixtures/classifier_d64_l2/model.yaml", 2, {"tokens_b1_s8.npy", "tokens_b4_s33.npy"}},
      {"tests/fixtures/classifier_d128_l3/model.yaml", 3, {"tokens_b1_s8.npy", "tokens_b4_s33.npy"}},
      {"examples/transformer_classifier/transformer_classifier.yaml", 2, {"tokens.npy"}},
  };
}

std::string dir_of(const std::string& path) { return path.substr(0, path.find_last_of('/') + 1); }

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

std::size_t node_count(const Model& m) { return m.impl()->graph->nodes().size(); }

/// Max abs diff of every output of `a` and `b` on `tokens`, printed; checked <= 1e-5.
void check_models_agree(const Model& a, const Model& b, const std::string& what, const Tensor& tokens) {
  Session sa(a), sb(b);
  auto out_a = sa.run({{"tokens", tokens}});
  auto out_b = sb.run({{"tokens", tokens}});
  REQUIRE(out_a.size() == out_b.size());
  for (const auto& info : a.outputs()) {
    double diff = max_abs_diff(out_a.at(info.name), out_b.at(info.name));
    std::printf("%s, tokens %s, output '%s': max abs diff %.3g\n", what.c_str(), test::dims_str(tokens.shape()).c_str(),
                info.name.c_str(), diff);
    CHECK_MESSAGE(diff <= 1e-5, what << " output '" << info.name << "': max abs diff " << diff);
  }
}

}  // namespace

TEST_CASE("passes: -O2 computes what -O0 computes on the fixture models, with everything fused") {
  for (const auto& c : model_cases()) {
    CAPTURE(c.path);
    const std::string path = source_path(c.path);
    Model o0 = Model::load(path, LoadOptions{0});
    Model o2 = Model::load(path, LoadOptions{2});
    // -O0: embedding, 8 nodes per layer (attention, add, layer_norm, linear, relu, linear, add, layer_norm),
    // reduce_mean, linear, softmax. -O2: per layer the relu and both adds are fused away.
    CHECK(node_count(o0) == static_cast<std::size_t>(4 + 8 * c.layers));
    CHECK(node_count(o2) == static_cast<std::size_t>(4 + 5 * c.layers));
    const std::string ir0 = o0.ir(), ir2 = o2.ir();
    CHECK(count_of(ir0, " = add(") == static_cast<std::size_t>(2 * c.layers));
    CHECK(count_of(ir0, " = relu(") == static_cast<std::size_t>(c.layers));
    CHECK(count_of(ir2, " = add(") == 0);
    CHECK(count_of(ir2, " = relu(") == 0);
    CHECK(count_of(ir2, "{activation=\"relu\"}") == static_cast<std::size_t>(c.layers));
    for (const char* tokens : c.tokens) {
      Tensor t = read_npy(source_path(dir_of(c.path) + tokens));
      check_models_agree(o0, o2, std::string(c.path) + " -O0 vs -O2", t);
    }
  }
}

TEST_CASE("passes: make_pipeline per level, and --disable-pass with an unknown name") {
  auto names = [](const std::vector<std::unique_ptr<Pass>>& passes) {
    std::vector<std::string> out;
    for (const auto& p : passes) out.push_back(p->name());
    return out;
  };
  PipelineOptions options;
  options.opt_level = 0;
  CHECK(make_pipeline(options).empty());
  options.opt_level = 1;
  CHECK(names(make_pipeline(options)) == std::vector<std::string>{"remove-noops", "constant-fold", "cse", "assign-layouts", "dead-code"});
  options.opt_level = 2;
  auto o2 = names(make_pipeline(options));
  CHECK(o2 == names(all_passes()));
  for (const char* p : {"fuse-activation", "fuse-residual", "fuse-add-layer-norm"})
    CHECK(std::find(o2.begin(), o2.end(), p) != o2.end());
  options.disabled = {"fuse-activation", "cse"};
  auto fewer = names(make_pipeline(options));
  CHECK(fewer.size() == o2.size() - 3);  // fuse-activation runs twice (for linear, then for conv2d)
  CHECK(std::find(fewer.begin(), fewer.end(), "fuse-activation") == fewer.end());
  CHECK(std::find(fewer.begin(), fewer.end(), "cse") == fewer.end());

  // An unknown name is an error that lists every known pass.
  options.disabled = {"fuse-everything"};
  const std::string msg = error_of([&] { make_pipeline(options); });
  CHECK(msg.find("unknown pass 'fuse-everything' in --disable-pass (passes: ") != std::string::npos);
  for (const auto& p : all_passes()) CHECK_MESSAGE(msg.find(p->name()) != std::string::npos, msg);
  // The same through the public API.
  const std::string path = source_path("tests/fixtures/classifier_d64_l2/model.yaml");
  CHECK(error_of([&] { Model::load(path, LoadOptions{2, {"fuse-everything"}}); }) == msg);
  // And for --print-after, where "all" is also allowed.
  PipelineOptions print;
  print.print_after = {"dead-cod"};
  const std::string pmsg = error_of([&] { make_pipeline(print); });
  CHECK(pmsg.find("unknown pass 'dead-cod' in --print-after (passes: ") != std::string::npos);
  CHECK(pmsg.find(", or all)") != std::string::npos);
  print.print_after = {"all"};
  CHECK_NOTHROW(make_pipeline(print));
}

TEST_CASE("passes: disabling fuse-activation leaves the relu nodes at -O2") {
  const std::string path = source_path("tests/fixtures/classifier_d64_l2/model.yaml");
  Model o0 = Model::load(path, LoadOptions{0});
  Model no_act = Model::load(path, LoadOptions{2, {"fuse-activation"}});
  const std::string ir = no_act.ir();
  CHECK(count_of(ir, " = relu(") == 2);
  CHECK(count_of(ir, "{activation=\"relu\"}") == 0);
  // The other fusions still fire: the second linear of each layer takes its residual add, the first
  // layer_norm its add.
  CHECK(count_of(ir, " = add(") == 0);
  CHECK(node_count(no_act) == 4 + 5 * 2 + 2);
  for (const Remark& r : no_act.impl()->remarks) CHECK(r.pass != "fuse-activation");
  check_models_agree(o0, no_act, "d64 -O0 vs -O2 without fuse-activation",
                     read_npy(source_path("tests/fixtures/classifier_d64_l2/tokens_b4_s33.npy")));
}

TEST_CASE("passes: --print-after writes the IR after a named pass, or after every pass") {
  const std::string path = source_path("tests/fixtures/classifier_d64_l2/model.yaml");
  {
    auto g = load_yaml_model(path);
    std::ostringstream os;
    PipelineOptions options;
    options.print_after = {"fuse-activation"};
    options.print_to = &os;
    run_pipeline(*g, options);
    const std::string out = os.str();
    const std::string header = "// after fuse-activation\n";
    REQUIRE(out.rfind(header, 0) == 0);
    // fuse-activation runs twice: for linear, then (after fold-conv-batch-norm) for conv2d.
    CHECK(count_of(out, "// after ") == 2);
    const std::string second = "// after fuse-activation (unchanged)\n";
    const std::size_t end = out.find(second);
    REQUIRE(end != std::string::npos);
    CHECK(out.substr(end + second.size()) == g->print());  // nothing after it changes this model
    const std::string ir = out.substr(header.size(), end - header.size());
    CHECK(ir.rfind("graph transformer_classifier(%tokens: i64[batch,seq]) -> (%logits, %probs) {\n", 0) == 0);
    CHECK(ir.size() >= 2);
    CHECK(ir.compare(ir.size() - 2, 2, "}\n") == 0);
    // Activations are fused by then, residual adds not yet.
    CHECK(count_of(ir, "{activation=\"relu\"}") == 2);
    CHECK(count_of(ir, " = relu(") == 0);
    CHECK(count_of(ir, " = add(") == 4);
    CHECK(ir != g->print());  // later passes changed the graph further
  }
  {
    auto g = load_yaml_model(path);
    std::ostringstream os;
    PipelineOptions options;
    options.print_after = {"all"};
    options.print_to = &os;
    run_pipeline(*g, options);
    const std::string out = os.str();
    // One block per pass, in pipeline order; the fixture has nothing to clean up, only the three fusions change it.
    std::size_t at = 0;
    std::size_t last_block = 0;
    std::set<std::string> seen;  // fuse-activation and fuse-residual run twice; the second runs (for conv2d) change nothing
    for (const auto& p : all_passes()) {
      const std::string name = p->name();
      const bool first = seen.insert(name).second;
      const bool changes = ((name == "fuse-activation" || name == "fuse-residual") && first) || name == "fuse-add-layer-norm";
      const std::string header = "// after " + name + (changes ? "" : " (unchanged)") + "\n";
      auto found = out.find(header, at);
      CHECK_MESSAGE(found != std::string::npos, "missing, or out of order: " << header);
      if (found == std::string::npos) continue;
      last_block = found + header.size();
      at = last_block;
    }
    CHECK(count_of(out, "// after ") == all_passes().size());
    // The last block is the final graph.
    CHECK(out.substr(last_block) == g->print());
  }
  {
    // -O0 runs no pass, so prints nothing.
    auto g = load_yaml_model(path);
    std::ostringstream os;
    PipelineOptions options;
    options.opt_level = 0;
    options.print_after = {"all"};
    options.print_to = &os;
    CHECK(run_pipeline(*g, options).empty());
    CHECK(os.str().empty());
  }
}

// ================================================================================================
// prepack-matmul-weights
// ================================================================================================

namespace {

const std::string kPrepack = R"(kiln: 1
name: prepack
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 256]}
  z: {dtype: f32, shape: [batch, 64, 4]}
outputs: [y, q]
nodes:
  - {op: matmul, in: [x, transformer_encoder.layers.0.linear1.weight], out: y}
  - {op: reshape, in: [y], shape: [0, 4, 16], out: y3}
  - {op: matmul, in: [z, y3], out: q}
)";

}  // namespace

TEST_CASE("passes: prepack-matmul-weights stores a constant matmul operand as [N,K] for linear") {
  auto g = parse(kPrepack);
  Value* w = g->find_value("transformer_encoder.layers.0.linear1.weight");
  REQUIRE(w != nullptr);
  // Copy: once the pass drops the original weight, nothing keeps the weights file mapped.
  std::vector<float> before(f32_data(w), f32_data(w) + 256 * 64);
  PassResult r = run_pass(*g, make_prepack_matmul_weights_pass);
  CHECK(r.changed);
  CHECK(g->print() ==
        "graph prepack(%x: f32[batch,256], %z: f32[batch,64,4]) -> (%y, %q) {\n"
        "  %transformer_encoder.layers.0.linear1.weight.packed = const : f32[64,256]\n"
        "  %y = linear(%x, %transformer_encoder.layers.0.linear1.weight.packed) {activation=\"none\"} : (f32[batch,256], "
        "f32[64,256]) -> f32[batch,64]\n"
        "  %y3 = reshape(%y) {shape=[0,4,16]} : (f32[batch,64]) -> f32[batch,4,16]\n"
        "  %q = matmul(%z, %y3) : (f32[batch,64,4], f32[batch,4,16]) -> f32[batch,64,16]\n"
        "  return %y, %q\n"
        "}\n");
  REQUIRE(r.remarks.size() == 1);  // the matmul of two activations is not a candidate: no remark
  check_remark(r.remarks[0], "prepack-matmul-weights", true, "matmul 'y'", "stored transposed [64,256]",
               line_of(kPrepack, "out: y}"));
  // The packed constant is the transpose: packed[j][i] == w[i][j] for w [256,64].
  const float* packed = f32_data(g->find_value("transformer_encoder.layers.0.linear1.weight.packed"));
  for (int i = 0; i < 256; i += 37)
    for (int j = 0; j < 64; j += 7) CHECK(packed[j * 256 + i] == before[i * 64 + j]);
}

TEST_CASE("passes: prepack-matmul-weights gives the same results") {
  check_same_results(kPrepack, make_prepack_matmul_weights_pass, 11);
}

namespace {

// torch.onnx.export's nn.Linear on 3-D input: MatMul by the transposed weight, then Add(bias, product).
// y's add takes a [64] constant (absorbed, bias on the left); z's product is also a graph output, so its add
// stays.
const std::string kPrepackBias = R"(kiln: 1
name: prepack_bias
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 3, 256]}
outputs: [y, h2, z]
nodes:
  - {op: matmul, in: [x, transformer_encoder.layers.0.linear1.weight], out: h}
  - {op: add, in: [transformer_encoder.layers.0.linear2.bias, h], out: y}
  - {op: matmul, in: [x, transformer_encoder.layers.1.linear1.weight], out: h2}
  - {op: add, in: [h2, transformer_encoder.layers.1.linear2.bias], out: z}
)";

}  // namespace

TEST_CASE("passes: prepack-matmul-weights takes an add of a constant [N] after the product as linear's bias") {
  auto g = parse(kPrepackBias);
  PassResult r = run_pass(*g, make_prepack_matmul_weights_pass);
  CHECK(r.changed);
  const std::string ir = g->print();
  INFO(ir);
  CHECK(kiln::test::contains(ir, "  %y = linear(%x, %transformer_encoder.layers.0.linear1.weight.packed, "
                     "%transformer_encoder.layers.0.linear2.bias) {activation=\"none\"}"));
  CHECK(kiln::test::contains(ir, "  %z = add(%h2, %transformer_encoder.layers.1.linear2.bias)"));
  CHECK(count_of(ir, " = add(") == 1);
  REQUIRE(r.remarks.size() == 3);
  check_remark(r.remarks[1], "prepack-matmul-weights", true, "linear 'h'",
               "absorbed add 'y' (bias 'transformer_encoder.layers.0.linear2.bias')", line_of(kPrepackBias, "out: h}"));
  check_same_results(kPrepackBias, make_prepack_matmul_weights_pass, 12);
}
