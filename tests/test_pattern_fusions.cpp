// The pattern fusions that turn ops written out one by one into fused ops (fuse-layer-norm, fuse-gelu,
// fuse-attention), in the style of tests/test_passes.cpp: YAML in, exactly one pass, the exact IR out, the
// remarks with the YAML line of the node they name, the cases that must not fire (or that match partly and
// decline, saying why), and the graph run with and without the pass on the same random inputs (<= 1e-5).
// Then the in-place memory planning of runtime/plan.cpp on small -O0 chains.

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "graph/graph.hpp"
#include "passes/pass.hpp"
#include "runtime/model_impl.hpp"
#include "runtime/plan.hpp"
#include "tests/ops/op_test_util.hpp"
#include "tests/pass_test_util.hpp"
#include "tests/test_util.hpp"

namespace {

using namespace kiln;
using namespace kiln::test;

// Weight-name prefixes in the classifier_d64_l2 fixture (string-literal concatenation keeps the IR readable).
#define L0 "transformer_encoder.layers.0."
#define L1 "transformer_encoder.layers.1."

std::string decomposed_dir() { return source_path("tests/fixtures/decomposed_d64"); }

/// `text` with the one occurrence of `from` replaced by `to` (a variant of a model, differing where shown).
std::string replace_once(std::string text, const std::string& from, const std::string& to) {
  auto at = text.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, "'" << from << "' not in the model text");
  REQUIRE_MESSAGE(text.find(from, at + 1) == std::string::npos, "'" << from << "' occurs twice");
  return text.replace(at, from.size(), to);
}

}  // namespace

// ================================================================================================
// fuse-layer-norm
// ================================================================================================

namespace {

// The full form, as tests/fixtures/decomposed_d64 writes it: scale and shift by [64] constants. (The
// fixture's norm weights are all ones and zeros, so the scale and shift are the linear2 biases of the two
// layers: a fusion that dropped or swapped them would change the numbers.)
const std::string kLnFull = R"(kiln: 1
name: ln
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 7, 64]}
outputs: [y]
nodes:
  - {op: reduce_mean, in: [x], axes: [-1], keepdims: true, out: mu}
  - {op: sub, in: [x, mu], out: d}
  - {op: pow, in: [d], exponent: 2.0, out: d2}
  - {op: reduce_mean, in: [d2], axes: [-1], keepdims: true, out: var}
  - {op: add, in: [var, 1.0e-5], out: ve}
  - {op: sqrt, in: [ve], out: sd}
  - {op: div, in: [d, sd], out: nrm}
  - {op: mul, in: [nrm, transformer_encoder.layers.0.linear2.bias], out: sc}
  - {op: add, in: [sc, transformer_encoder.layers.1.linear2.bias], out: y}
)";

// Without scale and shift (the div is the last node), eps 1e-3 (so the eps must be carried over: the
// default 1e-5 would differ by far more than 1e-5 on these inputs).
const std::string kLnBare = R"(kiln: 1
name: ln_bare
inputs:
  x: {dtype: f32, shape: [batch, 64]}
outputs: [y]
nodes:
  - {op: reduce_mean, in: [x], axes: [-1], keepdims: true, out: mu}
  - {op: sub, in: [x, mu], out: d}
  - {op: pow, in: [d], exponent: 2.0, out: d2}
  - {op: reduce_mean, in: [d2], axes: [-1], keepdims: true, out: var}
  - {op: add, in: [var, 1.0e-3], out: ve}
  - {op: sqrt, in: [ve], out: sd}
  - {op: div, in: [d, sd], out: y}
)";

// The variance as mul(d, d), eps written on the left, the mean over axis 1 of a rank-2 input (the last
// axis, written positively), and the scale and shift constants on the left of their mul and add.
const std::string kLnVariants = R"(kiln: 1
name: ln_variants
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 64]}
outputs: [y]
nodes:
  - {op: reduce_mean, in: [x], axes: [1], keepdims: true, out: mu}
  - {op: sub, in: [x, mu], out: d}
  - {op: mul, in: [d, d], out: d2}
  - {op: reduce_mean, in: [d2], axes: [-1], keepdims: true, out: var}
  - {op: add, in: [1.0e-5, var], out: ve}
  - {op: sqrt, in: [ve], out: sd}
  - {op: div, in: [d, sd], out: nrm}
  - {op: mul, in: [transformer_encoder.layers.1.linear2.bias, nrm], out: sc}
  - {op: add, in: [transformer_encoder.layers.0.linear2.bias, sc], out: y}
)";

// The scale and shift are taken only along a single-use chain: nrm1 is also read by the relu, so its
// layer_norm has neither (the mul stays); sc2 is a graph output, so the second takes the scale but not the
// shift (the add stays).
const std::string kLnPartial = R"(kiln: 1
name: ln_partial
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 64]}
  z: {dtype: f32, shape: [batch, 64]}
outputs: [y1, sc2, y2]
nodes:
  - {op: reduce_mean, in: [x], axes: [-1], keepdims: true, out: mu1}
  - {op: sub, in: [x, mu1], out: d1}
  - {op: pow, in: [d1], exponent: 2.0, out: p1}
  - {op: reduce_mean, in: [p1], axes: [-1], keepdims: true, out: var1}
  - {op: add, in: [var1, 1.0e-5], out: ve1}
  - {op: sqrt, in: [ve1], out: sd1}
  - {op: div, in: [d1, sd1], out: nrm1}
  - {op: mul, in: [nrm1, transformer_encoder.layers.0.linear2.bias], out: sc1}
  - {op: relu, in: [nrm1], out: r1}
  - {op: add, in: [sc1, r1], out: y1}
  - {op: reduce_mean, in: [z], axes: [-1], keepdims: true, out: mu2}
  - {op: sub, in: [z, mu2], out: d2}
  - {op: pow, in: [d2], exponent: 2.0, out: p2}
  - {op: reduce_mean, in: [p2], axes: [-1], keepdims: true, out: var2}
  - {op: add, in: [var2, 1.0e-5], out: ve2}
  - {op: sqrt, in: [ve2], out: sd2}
  - {op: div, in: [d2, sd2], out: nrm2}
  - {op: mul, in: [nrm2, transformer_encoder.layers.0.linear2.bias], out: sc2}
  - {op: add, in: [sc2, transformer_encoder.layers.1.linear2.bias], out: y2}
)";

// Four layer norms whose intermediates are needed elsewhere: mu_a is a graph output, d_b is also read by
// a relu, var_c is a graph output, and d_d (squared as mul(d_d, d_d)) has a third reader.
const std::string kLnShared = R"(kiln: 1
name: ln_shared
inputs:
  a: {dtype: f32, shape: [batch, 64]}
  b: {dtype: f32, shape: [batch, 64]}
  c: {dtype: f32, shape: [batch, 64]}
  e: {dtype: f32, shape: [batch, 64]}
outputs: [y_a, mu_a, y_b, r_b, y_c, var_c, y_d, r_d]
nodes:
  - {op: reduce_mean, in: [a], axes: [-1], keepdims: true, out: mu_a}
  - {op: sub, in: [a, mu_a], out: d_a}
  - {op: pow, in: [d_a], exponent: 2.0, out: p_a}
  - {op: reduce_mean, in: [p_a], axes: [-1], keepdims: true, out: var_a}
  - {op: add, in: [var_a, 1.0e-5], out: ve_a}
  - {op: sqrt, in: [ve_a], out: sd_a}
  - {op: div, in: [d_a, sd_a], out: y_a}
  - {op: reduce_mean, in: [b], axes: [-1], keepdims: true, out: mu_b}
  - {op: sub, in: [b, mu_b], out: d_b}
  - {op: pow, in: [d_b], exponent: 2.0, out: p_b}
  - {op: reduce_mean, in: [p_b], axes: [-1], keepdims: true, out: var_b}
  - {op: add, in: [var_b, 1.0e-5], out: ve_b}
  - {op: sqrt, in: [ve_b], out: sd_b}
  - {op: div, in: [d_b, sd_b], out: y_b}
  - {op: relu, in: [d_b], out: r_b}
  - {op: reduce_mean, in: [c], axes: [-1], keepdims: true, out: mu_c}
  - {op: sub, in: [c, mu_c], out: d_c}
  - {op: pow, in: [d_c], exponent: 2.0, out: p_c}
  - {op: reduce_mean, in: [p_c], axes: [-1], keepdims: true, out: var_c}
  - {op: add, in: [var_c, 1.0e-5], out: ve_c}
  - {op: sqrt, in: [ve_c], out: sd_c}
  - {op: div, in: [d_c, sd_c], out: y_c}
  - {op: reduce_mean, in: [e], axes: [-1], keepdims: true, out: mu_d}
  - {op: sub, in: [e, mu_d], out: d_d}
  - {op: mul, in: [d_d, d_d], out: p_d}
  - {op: reduce_mean, in: [p_d], axes: [-1], keepdims: true, out: var_d}
  - {op: add, in: [var_d, 1.0e-5], out: ve_d}
  - {op: sqrt, in: [ve_d], out: sd_d}
  - {op: div, in: [d_d, sd_d], out: y_d}
  - {op: relu, in: [d_d], out: r_d}
)";

// Normalizing over axis 0 (the batch) is not a layer norm over the last axis: no match, no remark. The
// second normalizes its mean over the last axis but takes the variance over axis 0: declined.
const std::string kLnAxes = R"(kiln: 1
name: ln_axes
inputs:
  x: {dtype: f32, shape: [batch, 64]}
  z: {dtype: f32, shape: [batch, 64]}
outputs: [y, w]
nodes:
  - {op: reduce_mean, in: [x], axes: [0], keepdims: true, out: mu}
  - {op: sub, in: [x, mu], out: d}
  - {op: pow, in: [d], exponent: 2.0, out: d2}
  - {op: reduce_mean, in: [d2], axes: [0], keepdims: true, out: var}
  - {op: add, in: [var, 1.0e-5], out: ve}
  - {op: sqrt, in: [ve], out: sd}
  - {op: div, in: [d, sd], out: y}
  - {op: reduce_mean, in: [z], axes: [-1], keepdims: true, out: mu2}
  - {op: sub, in: [z, mu2], out: e}
  - {op: pow, in: [e], exponent: 2.0, out: e2}
  - {op: reduce_mean, in: [e2], axes: [0], keepdims: true, out: var2}
  - {op: add, in: [var2, 1.0e-5], out: ve2}
  - {op: sqrt, in: [ve2], out: sd2}
  - {op: div, in: [e, sd2], out: w}
)";

// keepdims false: mu is [8], so sub(x, mu) subtracts the mean of row j from *column* j (broadcasting
// aligns the trailing axis). That is not a layer norm, and must not become one. The second takes its mean
// with keepdims but its variance without: declined at the variance.
const std::string kLnNoKeepdims = R"(kiln: 1
name: ln_nokeep
inputs:
  x: {dtype: f32, shape: [8, 8]}
  z: {dtype: f32, shape: [8, 8]}
outputs: [y, w]
nodes:
  - {op: reduce_mean, in: [x], axes: [-1], out: mu}
  - {op: sub, in: [x, mu], out: d}
  - {op: pow, in: [d], exponent: 2.0, out: d2}
  - {op: reduce_mean, in: [d2], axes: [-1], out: var}
  - {op: add, in: [var, 1.0e-5], out: ve}
  - {op: sqrt, in: [ve], out: sd}
  - {op: div, in: [d, sd], out: y}
  - {op: reduce_mean, in: [z], axes: [-1], keepdims: true, out: mu2}
  - {op: sub, in: [z, mu2], out: e}
  - {op: pow, in: [e], exponent: 2.0, out: e2}
  - {op: reduce_mean, in: [e2], axes: [-1], keepdims: false, out: var2}
  - {op: add, in: [var2, 1.0e-5], out: ve2}
  - {op: sqrt, in: [ve2], out: sd2}
  - {op: div, in: [e, sd2], out: w}
)";

}  // namespace

TEST_CASE("pattern fusions: fuse-layer-norm turns the written-out form with scale and shift into layer_norm") {
  auto g = parse(kLnFull);
  CHECK(g->print() ==
        "graph ln(%x: f32[batch,7,64]) -> (%y) {\n"
        "  %const(1.0e-5) = const : f32[]\n"
        "  %" L0 "linear2.bias = const : f32[64]\n"
        "  %" L1 "linear2.bias = const : f32[64]\n"
        "  %mu = reduce_mean(%x) {axes=[-1], keepdims=true} : (f32[batch,7,64]) -> f32[batch,7,1]\n"
        "  %d = sub(%x, %mu) : (f32[batch,7,64], f32[batch,7,1]) -> f32[batch,7,64]\n"
        "  %d2 = pow(%d) {exponent=2.0} : (f32[batch,7,64]) -> f32[batch,7,64]\n"
        "  %var = reduce_mean(%d2) {axes=[-1], keepdims=true} : (f32[batch,7,64]) -> f32[batch,7,1]\n"
        "  %ve = add(%var, %const(1.0e-5)) : (f32[batch,7,1], f32[]) -> f32[batch,7,1]\n"
        "  %sd = sqrt(%ve) : (f32[batch,7,1]) -> f32[batch,7,1]\n"
        "  %nrm = div(%d, %sd) : (f32[batch,7,64], f32[batch,7,1]) -> f32[batch,7,64]\n"
        "  %sc = mul(%nrm, %" L0 "linear2.bias) : (f32[batch,7,64], f32[64]) -> f32[batch,7,64]\n"
        "  %y = add(%sc, %" L1 "linear2.bias) : (f32[batch,7,64], f32[64]) -> f32[batch,7,64]\n"
        "  return %y\n"
        "}\n");
  PassResult r = run_pass(*g, make_fuse_layer_norm_pass);
  CHECK(r.changed);
  // The node takes the name of the last node it absorbed (the add), so y keeps its name and needs no
  // name(...) annotation; the eps constant is gone with the add that read it.
  CHECK(g->print() ==
        "graph ln(%x: f32[batch,7,64]) -> (%y) {\n"
        "  %" L0 "linear2.bias = const : f32[64]\n"
        "  %" L1 "linear2.bias = const : f32[64]\n"
        "  %y = layer_norm(%x, %" L0 "linear2.bias, %" L1 "linear2.bias) {eps=1e-05} : (f32[batch,7,64], f32[64], f32[64]) -> f32[batch,7,64]\n"
        "  return %y\n"
        "}\n");
  REQUIRE(r.remarks.size() == 1);
  check_remark(r.remarks[0], "fuse-layer-norm", true, "add 'y'",
               "became layer_norm (eps 1e-05, scale, shift), absorbing 9 nodes from reduce_mean 'mu'", line_of(kLnFull, "out: y}"));
  for (const char* gone : {"mu", "d", "d2", "var", "ve", "sd", "nrm", "sc"}) CHECK(g->find_value(gone) == nullptr);
  check_same_results(kLnFull, make_fuse_layer_norm_pass, 101);
}

TEST_CASE("pattern fusions: fuse-layer-norm without scale and shift keeps the eps") {
  auto g = parse(kLnBare);
  PassResult r = run_pass(*g, make_fuse_layer_norm_pass);
  CHECK(r.changed);
  CHECK(g->print() ==
        "graph ln_bare(%x: f32[batch,64]) -> (%y) {\n"
        "  %y = layer_norm(%x, _, _) {eps=0.001} : (f32[batch,64], _, _) -> f32[batch,64]\n"
        "  return %y\n"
        "}\n");
  REQUIRE(r.remarks.size() == 1);
  check_remark(r.remarks[0], "fuse-layer-norm", true, "div 'y'",
               "became layer_norm (eps 0.001), absorbing 7 nodes from reduce_mean 'mu'", line_of(kLnBare, "out: y}"));
  check_same_results(kLnBare, make_fuse_layer_norm_pass, 102);
}

TEST_CASE("pattern fusions: fuse-layer-norm with the variance as mul(d, d), eps on the left, constants on the left") {
  auto g = parse(kLnVariants);
  CHECK(g->print() ==
        "graph ln_variants(%x: f32[batch,64]) -> (%y) {\n"
        "  %const(1.0e-5) = const : f32[]\n"
        "  %" L1 "linear2.bias = const : f32[64]\n"
        "  %" L0 "linear2.bias = const : f32[64]\n"
        "  %mu = reduce_mean(%x) {axes=[1], keepdims=true} : (f32[batch,64]) -> f32[batch,1]\n"
        "  %d = sub(%x, %mu) : (f32[batch,64], f32[batch,1]) -> f32[batch,64]\n"
        "  %d2 = mul(%d, %d) : (f32[batch,64], f32[batch,64]) -> f32[batch,64]\n"
        "  %var = reduce_mean(%d2) {axes=[-1], keepdims=true} : (f32[batch,64]) -> f32[batch,1]\n"
        "  %ve = add(%const(1.0e-5), %var) : (f32[], f32[batch,1]) -> f32[batch,1]\n"
        "  %sd = sqrt(%ve) : (f32[batch,1]) -> f32[batch,1]\n"
        "  %nrm = div(%d, %sd) : (f32[batch,64], f32[batch,1]) -> f32[batch,64]\n"
        "  %sc = mul(%" L1 "linear2.bias, %nrm) : (f32[64], f32[batch,64]) -> f32[batch,64]\n"
        "  %y = add(%" L0 "linear2.bias, %sc) : (f32[64], f32[batch,64]) -> f32[batch,64]\n"
        "  return %y\n"
        "}\n");
  PassResult r = run_pass(*g, make_fuse_layer_norm_pass);
  CHECK(r.changed);
  CHECK(g->print() ==
        "graph ln_variants(%x: f32[batch,64]) -> (%y) {\n"
        "  %" L1 "linear2.bias = const : f32[64]\n"
        "  %" L0 "linear2.bias = const : f32[64]\n"
        "  %y = layer_norm(%x, %" L1 "linear2.bias, %" L0 "linear2.bias) {eps=1e-05} : (f32[batch,64], f32[64], f32[64]) -> f32[batch,64]\n"
        "  return %y\n"
        "}\n");
  REQUIRE(r.remarks.size() == 1);
  check_remark(r.remarks[0], "fuse-layer-norm", true, "add 'y'",
               "became layer_norm (eps 1e-05, scale, shift), absorbing 9 nodes from reduce_mean 'mu'", line_of(kLnVariants, "out: y}"));
  check_same_results(kLnVariants, make_fuse_layer_norm_pass, 103);
}

TEST_CASE("pattern fusions: fuse-layer-norm takes the scale and shift only along a single-use chain") {
  auto g = parse(kLnPartial);
  PassResult r = run_pass(*g, make_fuse_layer_norm_pass);
  CHECK(r.changed);
  CHECK(g->print() ==
        "graph ln_partial(%x: f32[batch,64], %z: f32[batch,64]) -> (%y1, %sc2, %y2) {\n"
        "  %" L0 "linear2.bias = const : f32[64]\n"
        "  %" L1 "linear2.bias = const : f32[64]\n"
        "  %nrm1 = layer_norm(%x, _, _) {eps=1e-05} : (f32[batch,64], _, _) -> f32[batch,64]\n"
        "  %sc1 = mul(%nrm1, %" L0 "linear2.bias) : (f32[batch,64], f32[64]) -> f32[batch,64]\n"
        "  %r1 = relu(%nrm1) : (f32[batch,64]) -> f32[batch,64]\n"
        "  %y1 = add(%sc1, %r1) : (f32[batch,64], f32[batch,64]) -> f32[batch,64]\n"
        "  %sc2 = layer_norm(%z, %" L0 "linear2.bias, _) {eps=1e-05} : (f32[batch,64], f32[64], _) -> f32[batch,64]\n"
        "  %y2 = add(%sc2, %" L1 "linear2.bias) : (f32[batch,64], f32[64]) -> f32[batch,64]\n"
        "  return %y1, %sc2, %y2\n"
        "}\n");
  REQUIRE(r.remarks.size() == 2);
  check_remark(r.remarks[0], "fuse-layer-norm", true, "div 'nrm1'", "became layer_norm (eps 1e-05), absorbing 7 nodes from reduce_mean 'mu1'",
               line_of(kLnPartial, "out: nrm1}"));
  check_remark(r.remarks[1], "fuse-layer-norm", true, "mul 'sc2'",
               "became layer_norm (eps 1e-05, scale), absorbing 8 nodes from reduce_mean 'mu2'", line_of(kLnPartial, "out: sc2}"));
  check_same_results(kLnPartial, make_fuse_layer_norm_pass, 104);
}

TEST_CASE("pattern fusions: fuse-layer-norm declines when an intermediate is used elsewhere or is a graph output") {
  PassResult r = check_unchanged(kLnShared, make_fuse_layer_norm_pass);
  REQUIRE(r.remarks.size() == 4);
  const char* pass = "fuse-layer-norm";
  check_remark(r.remarks[0], pass, false, "div 'y_a'", "'mu_a' is used outside the layer norm pattern", line_of(kLnShared, "out: y_a}"));
  check_remark(r.remarks[1], pass, false, "div 'y_b'", "'d_b' is used outside the layer norm pattern", line_of(kLnShared, "out: y_b}"));
  check_remark(r.remarks[2], pass, false, "div 'y_c'", "'var_c' is used outside the layer norm pattern", line_of(kLnShared, "out: y_c}"));
  check_remark(r.remarks[3], pass, false, "div 'y_d'", "'d_d' is used outside the layer norm pattern", line_of(kLnShared, "out: y_d}"));
}

TEST_CASE("pattern fusions: fuse-layer-norm must not fire on a reduction over a non-last axis") {
  PassResult r = check_unchanged(kLnAxes, make_fuse_layer_norm_pass);
  REQUIRE(r.remarks.size() == 1);  // nothing at all about the normalization over the batch
  check_remark(r.remarks[0], "fuse-layer-norm", false, "div 'w'",
               "no variance: expected add(reduce_mean(pow(d, 2), [-1]), eps) under the sqrt", line_of(kLnAxes, "out: w}"));
}

TEST_CASE("pattern fusions: fuse-layer-norm must not fire when a mean drops its axis (keepdims false)") {
  auto g = parse(kLnNoKeepdims);
  CHECK(g->find_value("mu")->type.str() == "f32[8]");
  CHECK(g->find_value("var2")->type.str() == "f32[8]");
  PassResult r = check_unchanged(kLnNoKeepdims, make_fuse_layer_norm_pass);
  REQUIRE(r.remarks.size() == 1);
  check_remark(r.remarks[0], "fuse-layer-norm", false, "div 'w'",
               "no variance: expected add(reduce_mean(pow(d, 2), [-1]), eps) under the sqrt", line_of(kLnNoKeepdims, "out: w}"));
}

// ================================================================================================
// fuse-gelu
// ================================================================================================

namespace {

// The erf form in each association of the outer product, and with x · (1/√2) instead of x / √2:
//   g1 = (x1·t1)·0.5, g2 = x2·(t2·0.5), g3 = (0.5·x3)·t3 (x3·(1/√2) with the constant on the left),
//   g4 = 0.5·(t4·x4) with x4·0.7071067811865476.
const std::string kGeluErf = R"(kiln: 1
name: gelu_erf
inputs:
  x1: {dtype: f32, shape: [batch, 64]}
  x2: {dtype: f32, shape: [batch, 64]}
  x3: {dtype: f32, shape: [batch, 64]}
  x4: {dtype: f32, shape: [batch, 64]}
outputs: [g1, g2, g3, g4]
nodes:
  - {op: div, in: [x1, 1.4142135623730951], out: u1}
  - {op: erf, in: [u1], out: e1}
  - {op: add, in: [e1, 1.0], out: t1}
  - {op: mul, in: [x1, t1], out: m1}
  - {op: mul, in: [m1, 0.5], out: g1}
  - {op: div, in: [x2, 1.4142135623730951], out: u2}
  - {op: erf, in: [u2], out: e2}
  - {op: add, in: [1.0, e2], out: t2}
  - {op: mul, in: [t2, 0.5], out: h2}
  - {op: mul, in: [x2, h2], out: g2}
  - {op: mul, in: [0.7071067811865476, x3], out: u3}
  - {op: erf, in: [u3], out: e3}
  - {op: add, in: [e3, 1.0], out: t3}
  - {op: mul, in: [0.5, x3], out: h3}
  - {op: mul, in: [h3, t3], out: g3}
  - {op: mul, in: [x4, 0.7071067811865476], out: u4}
  - {op: erf, in: [u4], out: e4}
  - {op: add, in: [e4, 1.0], out: t4}
  - {op: mul, in: [t4, x4], out: m4}
  - {op: mul, in: [0.5, m4], out: g4}
)";

// PyTorch's tanh approximation, 0.5*x*(1+tanh(0.7978845608028654*(x+0.044715*pow(x,3)))).
const std::string kGeluTanh = R"(kiln: 1
name: gelu_tanh
inputs:
  x: {dtype: f32, shape: [batch, 64]}
outputs: [y]
nodes:
  - {op: pow, in: [x], exponent: 3.0, out: x3}
  - {op: mul, in: [0.044715, x3], out: c}
  - {op: add, in: [x, c], out: i}
  - {op: mul, in: [0.7978845608028654, i], out: u}
  - {op: tanh, in: [u], out: th}
  - {op: add, in: [1.0, th], out: t}
  - {op: mul, in: [0.5, x], out: h}
  - {op: mul, in: [h, t], out: y}
)";

// Complete GELUs whose pieces are needed elsewhere: 1 + erf(...) also added to the result (t1), erf(...)
// also a graph output (e2), x / √2 also read by a relu (u3). Then near misses: the factor 0.49 instead of
// 0.5 (y4), the outer factor a different value than the erf's argument (y5, x·(t·0.5) with z for x).
const std::string kGeluDeclined = R"(kiln: 1
name: gelu_declined
inputs:
  x1: {dtype: f32, shape: [batch, 64]}
  x2: {dtype: f32, shape: [batch, 64]}
  x3: {dtype: f32, shape: [batch, 64]}
  x4: {dtype: f32, shape: [batch, 64]}
  x5: {dtype: f32, shape: [batch, 64]}
  z: {dtype: f32, shape: [batch, 64]}
outputs: [y1, y2, e2, y3, r3, y4, y5]
nodes:
  - {op: div, in: [x1, 1.4142135623730951], out: u1}
  - {op: erf, in: [u1], out: e1}
  - {op: add, in: [e1, 1.0], out: t1}
  - {op: mul, in: [x1, t1], out: m1}
  - {op: mul, in: [m1, 0.5], out: g1}
  - {op: add, in: [g1, t1], out: y1}
  - {op: div, in: [x2, 1.4142135623730951], out: u2}
  - {op: erf, in: [u2], out: e2}
  - {op: add, in: [e2, 1.0], out: t2}
  - {op: mul, in: [x2, t2], out: m2}
  - {op: mul, in: [m2, 0.5], out: y2}
  - {op: div, in: [x3, 1.4142135623730951], out: u3}
  - {op: erf, in: [u3], out: e3}
  - {op: add, in: [e3, 1.0], out: t3}
  - {op: mul, in: [x3, t3], out: m3}
  - {op: mul, in: [m3, 0.5], out: y3}
  - {op: relu, in: [u3], out: r3}
  - {op: div, in: [x4, 1.4142135623730951], out: u4}
  - {op: erf, in: [u4], out: e4}
  - {op: add, in: [e4, 1.0], out: t4}
  - {op: mul, in: [x4, t4], out: m4}
  - {op: mul, in: [m4, 0.49], out: y4}
  - {op: div, in: [x5, 1.4142135623730951], out: u5}
  - {op: erf, in: [u5], out: e5}
  - {op: add, in: [e5, 1.0], out: t5}
  - {op: mul, in: [t5, 0.5], out: h5}
  - {op: mul, in: [z, h5], out: y5}
)";

// Not GELU at all, so no remark: erf(x / 2), erf(x · 0.5); the tanh form with 0.8 for √(2/π), with x²
// instead of x³, and with the cube of another value.
const std::string kGeluNotGelu = R"(kiln: 1
name: not_gelu
inputs:
  x: {dtype: f32, shape: [batch, 64]}
  z: {dtype: f32, shape: [batch, 64]}
outputs: [y1, y2, y3, y4, y5]
nodes:
  - {op: div, in: [x, 2.0], out: u1}
  - {op: erf, in: [u1], out: e1}
  - {op: add, in: [e1, 1.0], out: t1}
  - {op: mul, in: [x, t1], out: m1}
  - {op: mul, in: [m1, 0.5], out: y1}
  - {op: mul, in: [x, 0.5], out: u2}
  - {op: erf, in: [u2], out: e2}
  - {op: add, in: [e2, 1.0], out: t2}
  - {op: mul, in: [x, t2], out: m2}
  - {op: mul, in: [m2, 0.5], out: y2}
  - {op: pow, in: [x], exponent: 3.0, out: c3}
  - {op: mul, in: [0.044715, c3], out: k3}
  - {op: add, in: [x, k3], out: i3}
  - {op: mul, in: [0.8, i3], out: v3}
  - {op: tanh, in: [v3], out: th3}
  - {op: add, in: [1.0, th3], out: t3}
  - {op: mul, in: [x, t3], out: m3}
  - {op: mul, in: [m3, 0.5], out: y3}
  - {op: pow, in: [x], exponent: 2.0, out: c4}
  - {op: mul, in: [0.044715, c4], out: k4}
  - {op: add, in: [x, k4], out: i4}
  - {op: mul, in: [0.7978845608028654, i4], out: v4}
  - {op: tanh, in: [v4], out: th4}
  - {op: add, in: [1.0, th4], out: t4}
  - {op: mul, in: [x, t4], out: m4}
  - {op: mul, in: [m4, 0.5], out: y4}
  - {op: pow, in: [z], exponent: 3.0, out: c5}
  - {op: mul, in: [0.044715, c5], out: k5}
  - {op: add, in: [x, k5], out: i5}
  - {op: mul, in: [0.7978845608028654, i5], out: v5}
  - {op: tanh, in: [v5], out: th5}
  - {op: add, in: [1.0, th5], out: t5}
  - {op: mul, in: [x, t5], out: m5}
  - {op: mul, in: [m5, 0.5], out: y5}
)";

}  // namespace

TEST_CASE("pattern fusions: fuse-gelu fuses the erf form in every association of the outer product") {
  auto g = parse(kGeluErf);
  PassResult r = run_pass(*g, make_fuse_gelu_pass);
  CHECK(r.changed);
  CHECK(g->print() ==
        "graph gelu_erf(%x1: f32[batch,64], %x2: f32[batch,64], %x3: f32[batch,64], %x4: f32[batch,64]) -> (%g1, %g2, %g3, %g4) {\n"
        "  %g1 = gelu(%x1) {approximate=\"none\"} : (f32[batch,64]) -> f32[batch,64]\n"
        "  %g2 = gelu(%x2) {approximate=\"none\"} : (f32[batch,64]) -> f32[batch,64]\n"
        "  %g3 = gelu(%x3) {approximate=\"none\"} : (f32[batch,64]) -> f32[batch,64]\n"
        "  %g4 = gelu(%x4) {approximate=\"none\"} : (f32[batch,64]) -> f32[batch,64]\n"
        "  return %g1, %g2, %g3, %g4\n"
        "}\n");
  REQUIRE(r.remarks.size() == 4);
  const char* outs[4] = {"g1", "g2", "g3", "g4"};
  for (int i = 0; i < 4; ++i) {
    // (Built with append: GCC 12 warns, a false positive of -Wrestrict, on "literal" + std::string here.)
    std::string node = "mul '", needle = "out: ";
    node.append(outs[i]).append("'");
    needle.append(outs[i]).append("}");
    check_remark(r.remarks[i], "fuse-gelu", true, node, "became gelu {approximate=\"none\"}, absorbing 5 nodes", line_of(kGeluErf, needle));
  }
  CHECK(g->nodes().size() == 4);
  CHECK(g->num_values() == 8);  // the inputs and outputs: the scalar constants went with their nodes
  check_same_results(kGeluErf, make_fuse_gelu_pass, 201);
}

TEST_CASE("pattern fusions: fuse-gelu fuses the tanh form into gelu {approximate=\"tanh\"}") {
  auto g = parse(kGeluTanh);
  CHECK(g->print() ==
        "graph gelu_tanh(%x: f32[batch,64]) -> (%y) {\n"
        "  %const(0.044715) = const : f32[]\n"
        "  %const(0.7978845608028654) = const : f32[]\n"
        "  %const(1.0) = const : f32[]\n"
        "  %const(0.5) = const : f32[]\n"
        "  %x3 = pow(%x) {exponent=3.0} : (f32[batch,64]) -> f32[batch,64]\n"
        "  %c = mul(%const(0.044715), %x3) : (f32[], f32[batch,64]) -> f32[batch,64]\n"
        "  %i = add(%x, %c) : (f32[batch,64], f32[batch,64]) -> f32[batch,64]\n"
        "  %u = mul(%const(0.7978845608028654), %i) : (f32[], f32[batch,64]) -> f32[batch,64]\n"
        "  %th = tanh(%u) : (f32[batch,64]) -> f32[batch,64]\n"
        "  %t = add(%const(1.0), %th) : (f32[], f32[batch,64]) -> f32[batch,64]\n"
        "  %h = mul(%const(0.5), %x) : (f32[], f32[batch,64]) -> f32[batch,64]\n"
        "  %y = mul(%h, %t) : (f32[batch,64], f32[batch,64]) -> f32[batch,64]\n"
        "  return %y\n"
        "}\n");
  PassResult r = run_pass(*g, make_fuse_gelu_pass);
  CHECK(r.changed);
  CHECK(g->print() ==
        "graph gelu_tanh(%x: f32[batch,64]) -> (%y) {\n"
        "  %y = gelu(%x) {approximate=\"tanh\"} : (f32[batch,64]) -> f32[batch,64]\n"
        "  return %y\n"
        "}\n");
  REQUIRE(r.remarks.size() == 1);
  check_remark(r.remarks[0], "fuse-gelu", true, "mul 'y'", "became gelu {approximate=\"tanh\"}, absorbing 8 nodes",
               line_of(kGeluTanh, "out: y}"));
  check_same_results(kGeluTanh, make_fuse_gelu_pass, 202);
}

TEST_CASE("pattern fusions: fuse-gelu declines shared pieces and near misses") {
  PassResult r = check_unchanged(kGeluDeclined, make_fuse_gelu_pass);
  REQUIRE(r.remarks.size() == 5);
  const char* pass = "fuse-gelu";
  // t1 has two readers, and e2 is a graph output: each decline names the shared value.
  check_remark(r.remarks[0], pass, false, "erf 'e1'", "1 + erf(...): its output 't1' has 2 uses", line_of(kGeluDeclined, "out: e1}"));
  check_remark(r.remarks[1], pass, false, "erf 'e2'", "its output 'e2' is a graph output", line_of(kGeluDeclined, "out: e2}"));
  check_remark(r.remarks[2], pass, false, "erf 'e3'", "div 'u3': its output 'u3' has 2 uses", line_of(kGeluDeclined, "out: e3}"));
  check_remark(r.remarks[3], pass, false, "erf 'e4'", "1 + erf(...) is not multiplied by x and 0.5", line_of(kGeluDeclined, "out: e4}"));
  check_remark(r.remarks[4], pass, false, "erf 'e5'", "1 + erf(...) is not multiplied by x and 0.5", line_of(kGeluDeclined, "out: e5}"));
}

TEST_CASE("pattern fusions: fuse-gelu must not fire on a wrong argument or constant inside erf or tanh") {
  PassResult r = check_unchanged(kGeluNotGelu, make_fuse_gelu_pass);
  CHECK(r.remarks.empty());
}

// ================================================================================================
// fuse-attention (weights from the decomposed_d64 fixture: layers.0.{q,k,v,out}_proj, [64,64] and [64])
// ================================================================================================

namespace {

// One self-attention layer as tests/fixtures/decomposed_d64/model.yaml writes it: 8 heads of 8, kᵀ by
// one transpose [0,2,3,1], scores times 1/sqrt(8).
const std::string kAtt = R"(kiln: 1
name: att
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, seq, 64]}
outputs: [a]
nodes:
  - {op: linear, in: [x], weights: layers.0.q_proj, out: q}
  - {op: linear, in: [x], weights: layers.0.k_proj, out: k}
  - {op: linear, in: [x], weights: layers.0.v_proj, out: v}
  - {op: reshape, in: [q], shape: [0, 0, 8, -1], out: q4}
  - {op: transpose, in: [q4], perm: [0, 2, 1, 3], out: qh}
  - {op: reshape, in: [k], shape: [0, 0, 8, -1], out: k4}
  - {op: transpose, in: [k4], perm: [0, 2, 3, 1], out: kt}
  - {op: reshape, in: [v], shape: [0, 0, 8, -1], out: v4}
  - {op: transpose, in: [v4], perm: [0, 2, 1, 3], out: vh}
  - {op: matmul, in: [qh, kt], out: s}
  - {op: mul, in: [s, 0.35355339059327373], out: ss}
  - {op: softmax, in: [ss], axis: -1, out: pr}
  - {op: matmul, in: [pr, vh], out: c}
  - {op: transpose, in: [c], perm: [0, 2, 1, 3], out: ct}
  - {op: reshape, in: [ct], shape: [0, 0, 64], out: cm}
  - {op: linear, in: [cm], weights: layers.0.out_proj, out: a}
)";

// Variants of kAtt, each differing from it where shown.

// kᵀ in two steps, heads first ([0,2,1,3]) then the last two axes swapped ([0,1,3,2]); the scale
// constant on the left of the mul.
std::string att_kt_two_steps() {
  std::string y = replace_once(kAtt, "  - {op: transpose, in: [k4], perm: [0, 2, 3, 1], out: kt}\n",
                               "  - {op: transpose, in: [k4], perm: [0, 2, 1, 3], out: kh}\n"
                               "  - {op: transpose, in: [kh], perm: [0, 1, 3, 2], out: kt}\n");
  return replace_once(y, "in: [s, 0.35355339059327373]", "in: [0.35355339059327373, s]");
}

// Scores divided by sqrt(8).
std::string att_div() {
  return replace_once(kAtt, "{op: mul, in: [s, 0.35355339059327373], out: ss}", "{op: div, in: [s, 2.8284271247461903], out: ss}");
}

// No biases anywhere: without `weights`, `in` names the weight alone.
std::string att_no_bias() {
  std::string y = kAtt;
  for (const char* p : {"q", "k", "v"})
    y = replace_once(y, std::string("in: [x], weights: layers.0.") + p + "_proj", std::string("in: [x, layers.0.") + p + "_proj.weight]");
  return replace_once(y, "in: [cm], weights: layers.0.out_proj", "in: [cm, layers.0.out_proj.weight]");
}

// v has no bias while q and k have theirs.
std::string att_mixed_bias() { return replace_once(kAtt, "in: [x], weights: layers.0.v_proj", "in: [x, layers.0.v_proj.weight]"); }

// A mask added to the scaled scores.
std::string att_masked() {
  std::string y = replace_once(kAtt, "  x: {dtype: f32, shape: [batch, seq, 64]}\n",
                               "  x: {dtype: f32, shape: [batch, seq, 64]}\n"
                               "  mask: {dtype: f32, shape: [batch, 8, seq, seq]}\n");
  return replace_once(y, "  - {op: softmax, in: [ss], axis: -1, out: pr}\n",
                      "  - {op: add, in: [ss, mask], out: sm}\n"
                      "  - {op: softmax, in: [sm], axis: -1, out: pr}\n");
}

// 0.3 is not 1/sqrt(8).
std::string att_wrong_scale() { return replace_once(kAtt, "in: [s, 0.35355339059327373]", "in: [s, 0.3]"); }

// The attention probabilities are also a graph output.
std::string att_shared_probs() { return replace_once(kAtt, "outputs: [a]", "outputs: [a, pr]"); }

// The q projection is also read by a relu.
std::string att_shared_q() {
  std::string y = replace_once(kAtt, "outputs: [a]", "outputs: [a, qr]");
  return y + "  - {op: relu, in: [q], out: qr}\n";
}

// Cross-attention: queries from x (seq long), keys and values from m (mem long).
const std::string kAttCross = R"(kiln: 1
name: cross
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, seq, 64]}
  m: {dtype: f32, shape: [batch, mem, 64]}
outputs: [a]
nodes:
  - {op: linear, in: [x], weights: layers.0.q_proj, out: q}
  - {op: linear, in: [m], weights: layers.0.k_proj, out: k}
  - {op: linear, in: [m], weights: layers.0.v_proj, out: v}
  - {op: reshape, in: [q], shape: [0, 0, 8, -1], out: q4}
  - {op: transpose, in: [q4], perm: [0, 2, 1, 3], out: qh}
  - {op: reshape, in: [k], shape: [0, 0, 8, -1], out: k4}
  - {op: transpose, in: [k4], perm: [0, 2, 3, 1], out: kt}
  - {op: reshape, in: [v], shape: [0, 0, 8, -1], out: v4}
  - {op: transpose, in: [v4], perm: [0, 2, 1, 3], out: vh}
  - {op: matmul, in: [qh, kt], out: s}
  - {op: mul, in: [s, 0.35355339059327373], out: ss}
  - {op: softmax, in: [ss], axis: -1, out: pr}
  - {op: matmul, in: [pr, vh], out: c}
  - {op: transpose, in: [c], perm: [0, 2, 1, 3], out: ct}
  - {op: reshape, in: [ct], shape: [0, 0, 64], out: cm}
  - {op: linear, in: [cm], weights: layers.0.out_proj, out: a}
)";

// The output projection maps to another width: head.weight is [4,64], so y is [batch,seq,4]. The attention
// op's out_proj.weight must be [E,E] = [64,64]: this one cannot become an attention node.
std::string att_narrow_out_proj() { return replace_once(kAtt, "weights: layers.0.out_proj, out: a}", "weights: head, out: a}"); }

// The self-attention IR every variant of kAtt fuses to.
const std::string kAttFused =
    "graph att(%x: f32[batch,seq,64]) -> (%a) {\n"
    "  %layers.0.out_proj.weight = const : f32[64,64]\n"
    "  %layers.0.out_proj.bias = const : f32[64]\n"
    "  %a.in_proj_weight = const : f32[192,64]\n"
    "  %a.in_proj_bias = const : f32[192]\n"
    "  %a = attention(%x, %x, %x, %a.in_proj_weight, %a.in_proj_bias, %layers.0.out_proj.weight, %layers.0.out_proj.bias) {heads=8} : "
    "(f32[batch,seq,64], f32[batch,seq,64], f32[batch,seq,64], f32[192,64], f32[192], f32[64,64], f32[64]) -> f32[batch,seq,64]\n"
    "  return %a\n"
    "}\n";

std::unique_ptr<Graph> parse_att(const std::string& yaml) { return parse(yaml, decomposed_dir()); }

// Two shapes per model: batch 1 and 3, different sequence lengths (and memory lengths, when used).
const std::vector<Bindings> kAttRuns = {{{"batch", 1}, {"seq", 5}, {"mem", 9}}, {{"batch", 3}, {"seq", 11}, {"mem", 4}}};

void check_att_results(const std::string& yaml, std::uint32_t salt) {
  check_same_results(yaml, make_fuse_attention_pass, salt, decomposed_dir(), kAttRuns);
}

/// The packed in_proj_weight is [Wq; Wk; Wv] and in_proj_bias [bq; bk; bv], row block by row block.
void check_packed(const Graph& fused, const std::string& name, bool biases) {
  auto ref = parse_att(kAtt);  // an untouched copy to read the three projections from
  const float* packed_w = f32_data(fused.find_value(name + ".in_proj_weight"));
  const char* proj[3] = {"layers.0.q_proj", "layers.0.k_proj", "layers.0.v_proj"};
  for (int p = 0; p < 3; ++p) {
    CAPTURE(proj[p]);
    const float* w = f32_data(ref->find_value(std::string(proj[p]) + ".weight"));
    int mismatches = 0;
    for (int i = 0; i < 64 * 64; ++i) mismatches += packed_w[p * 64 * 64 + i] != w[i];
    CHECK(mismatches == 0);
    if (!biases) continue;
    const float* packed_b = f32_data(fused.find_value(name + ".in_proj_bias"));
    const float* b = f32_data(ref->find_value(std::string(proj[p]) + ".bias"));
    mismatches = 0;
    for (int i = 0; i < 64; ++i) mismatches += packed_b[p * 64 + i] != b[i];
    CHECK(mismatches == 0);
  }
  // The three blocks really differ (the comparison above is not of equal blocks).
  CHECK(packed_w[0] != packed_w[64 * 64]);
  CHECK(packed_w[64 * 64] != packed_w[2 * 64 * 64]);
}

}  // namespace

TEST_CASE("pattern fusions: fuse-attention turns a written-out self-attention layer into attention {heads=8}") {
  auto g = parse_att(kAtt);
  CHECK(g->print() ==
        "graph att(%x: f32[batch,seq,64]) -> (%a) {\n"
        "  %layers.0.q_proj.weight = const : f32[64,64]\n"
        "  %layers.0.q_proj.bias = const : f32[64]\n"
        "  %layers.0.k_proj.weight = const : f32[64,64]\n"
        "  %layers.0.k_proj.bias = const : f32[64]\n"
        "  %layers.0.v_proj.weight = const : f32[64,64]\n"
        "  %layers.0.v_proj.bias = const : f32[64]\n"
        "  %const(0.35355339059327373) = const : f32[]\n"
        "  %layers.0.out_proj.weight = const : f32[64,64]\n"
        "  %layers.0.out_proj.bias = const : f32[64]\n"
        "  %q = linear(%x, %layers.0.q_proj.weight, %layers.0.q_proj.bias, _) {activation=\"none\"} : (f32[batch,seq,64], f32[64,64], f32[64], _) -> f32[batch,seq,64]\n"
        "  %k = linear(%x, %layers.0.k_proj.weight, %layers.0.k_proj.bias, _) {activation=\"none\"} : (f32[batch,seq,64], f32[64,64], f32[64], _) -> f32[batch,seq,64]\n"
        "  %v = linear(%x, %layers.0.v_proj.weight, %layers.0.v_proj.bias, _) {activation=\"none\"} : (f32[batch,seq,64], f32[64,64], f32[64], _) -> f32[batch,seq,64]\n"
        "  %q4 = reshape(%q) {shape=[0,0,8,-1]} : (f32[batch,seq,64]) -> f32[batch,seq,8,8]\n"
        "  %qh = transpose(%q4) {perm=[0,2,1,3]} : (f32[batch,seq,8,8]) -> f32[batch,8,seq,8]\n"
        "  %k4 = reshape(%k) {shape=[0,0,8,-1]} : (f32[batch,seq,64]) -> f32[batch,seq,8,8]\n"
        "  %kt = transpose(%k4) {perm=[0,2,3,1]} : (f32[batch,seq,8,8]) -> f32[batch,8,8,seq]\n"
        "  %v4 = reshape(%v) {shape=[0,0,8,-1]} : (f32[batch,seq,64]) -> f32[batch,seq,8,8]\n"
        "  %vh = transpose(%v4) {perm=[0,2,1,3]} : (f32[batch,seq,8,8]) -> f32[batch,8,seq,8]\n"
        "  %s = matmul(%qh, %kt) : (f32[batch,8,seq,8], f32[batch,8,8,seq]) -> f32[batch,8,seq,seq]\n"
        "  %ss = mul(%s, %const(0.35355339059327373)) : (f32[batch,8,seq,seq], f32[]) -> f32[batch,8,seq,seq]\n"
        "  %pr = softmax(%ss) {axis=-1} : (f32[batch,8,seq,seq]) -> f32[batch,8,seq,seq]\n"
        "  %c = matmul(%pr, %vh) : (f32[batch,8,seq,seq], f32[batch,8,seq,8]) -> f32[batch,8,seq,8]\n"
        "  %ct = transpose(%c) {perm=[0,2,1,3]} : (f32[batch,8,seq,8]) -> f32[batch,seq,8,8]\n"
        "  %cm = reshape(%ct) {shape=[0,0,64]} : (f32[batch,seq,8,8]) -> f32[batch,seq,64]\n"
        "  %a = linear(%cm, %layers.0.out_proj.weight, %layers.0.out_proj.bias, _) {activation=\"none\"} : (f32[batch,seq,64], f32[64,64], f32[64], _) -> f32[batch,seq,64]\n"
        "  return %a\n"
        "}\n");
  PassResult r = run_pass(*g, make_fuse_attention_pass);
  CHECK(r.changed);
  CHECK(g->print() == kAttFused);
  REQUIRE(r.remarks.size() == 1);  // the q, k and v linears, also candidates, are not remarked on
  check_remark(r.remarks[0], "fuse-attention", true, "linear 'a'", "became attention {heads=8}, absorbing 15 nodes from linear 'q'",
               line_of(kAtt, "out: a}"));
  check_packed(*g, "a", true);
  check_att_results(kAtt, 301);
}

TEST_CASE("pattern fusions: fuse-attention with kᵀ by two transposes, [0,2,1,3] then [0,1,3,2]") {
  const std::string yaml = att_kt_two_steps();
  auto g = parse_att(yaml);
  CHECK(g->find_value("kt")->type.str() == "f32[batch,8,8,seq]");
  PassResult r = run_pass(*g, make_fuse_attention_pass);
  CHECK(r.changed);
  CHECK(g->print() == kAttFused);
  REQUIRE(r.remarks.size() == 1);
  check_remark(r.remarks[0], "fuse-attention", true, "linear 'a'", "became attention {heads=8}, absorbing 16 nodes from linear 'q'",
               line_of(yaml, "out: a}"));
  check_packed(*g, "a", true);
  check_att_results(yaml, 302);
}

TEST_CASE("pattern fusions: fuse-attention with the scores divided by sqrt(head_dim)") {
  const std::string yaml = att_div();
  auto g = parse_att(yaml);
  PassResult r = run_pass(*g, make_fuse_attention_pass);
  CHECK(r.changed);
  CHECK(g->print() == kAttFused);
  REQUIRE(r.remarks.size() == 1);
  check_remark(r.remarks[0], "fuse-attention", true, "linear 'a'", "became attention {heads=8}, absorbing 15 nodes from linear 'q'",
               line_of(yaml, "out: a}"));
  check_att_results(yaml, 303);
}

TEST_CASE("pattern fusions: fuse-attention without biases packs the weights alone") {
  const std::string yaml = att_no_bias();
  auto g = parse_att(yaml);
  PassResult r = run_pass(*g, make_fuse_attention_pass);
  CHECK(r.changed);
  CHECK(g->print() ==
        "graph att(%x: f32[batch,seq,64]) -> (%a) {\n"
        "  %layers.0.out_proj.weight = const : f32[64,64]\n"
        "  %a.in_proj_weight = const : f32[192,64]\n"
        "  %a = attention(%x, %x, %x, %a.in_proj_weight, _, %layers.0.out_proj.weight, _) {heads=8} : "
        "(f32[batch,seq,64], f32[batch,seq,64], f32[batch,seq,64], f32[192,64], _, f32[64,64], _) -> f32[batch,seq,64]\n"
        "  return %a\n"
        "}\n");
  REQUIRE(r.remarks.size() == 1);
  check_remark(r.remarks[0], "fuse-attention", true, "linear 'a'", "became attention {heads=8}", line_of(yaml, "out: a}"));
  CHECK(g->find_value("a.in_proj_bias") == nullptr);
  check_packed(*g, "a", false);
  check_att_results(yaml, 304);
}

TEST_CASE("pattern fusions: fuse-attention fuses cross-attention (query and key/value of different lengths)") {
  auto g = parse_att(kAttCross);
  CHECK(g->find_value("s")->type.str() == "f32[batch,8,seq,mem]");
  PassResult r = run_pass(*g, make_fuse_attention_pass);
  CHECK(r.changed);
  CHECK(g->print() ==
        "graph cross(%x: f32[batch,seq,64], %m: f32[batch,mem,64]) -> (%a) {\n"
        "  %layers.0.out_proj.weight = const : f32[64,64]\n"
        "  %layers.0.out_proj.bias = const : f32[64]\n"
        "  %a.in_proj_weight = const : f32[192,64]\n"
        "  %a.in_proj_bias = const : f32[192]\n"
        "  %a = attention(%x, %m, %m, %a.in_proj_weight, %a.in_proj_bias, %layers.0.out_proj.weight, %layers.0.out_proj.bias) {heads=8} : "
        "(f32[batch,seq,64], f32[batch,mem,64], f32[batch,mem,64], f32[192,64], f32[192], f32[64,64], f32[64]) -> f32[batch,seq,64]\n"
        "  return %a\n"
        "}\n");
  REQUIRE(r.remarks.size() == 1);
  check_remark(r.remarks[0], "fuse-attention", true, "linear 'a'", "became attention {heads=8}, absorbing 15 nodes from linear 'q'",
               line_of(kAttCross, "out: a}"));
  check_packed(*g, "a", true);
  check_att_results(kAttCross, 305);
}

TEST_CASE("pattern fusions: fuse-attention declines masked scores") {
  const std::string yaml = att_masked();
  auto g = parse_att(yaml);
  CHECK(g->find_value("sm")->type.str() == "f32[batch,8,seq,seq]");
  PassResult r = check_unchanged(yaml, make_fuse_attention_pass, decomposed_dir());
  REQUIRE(r.remarks.size() == 1);
  check_remark(r.remarks[0], "fuse-attention", false, "linear 'a'",
               "attention pattern: masked scores (an add before the softmax) are not fused yet", line_of(yaml, "out: a}"));
}

TEST_CASE("pattern fusions: fuse-attention declines a scale other than 1/sqrt(head_dim), naming it") {
  const std::string yaml = att_wrong_scale();
  PassResult r = check_unchanged(yaml, make_fuse_attention_pass, decomposed_dir());
  REQUIRE(r.remarks.size() == 1);
  check_remark(r.remarks[0], "fuse-attention", false, "linear 'a'",
               "attention pattern: mul 'ss' scales by 0.300000, not the standard 0.353553", line_of(yaml, "out: a}"));
}

TEST_CASE("pattern fusions: fuse-attention declines intermediates used outside the pattern, and mixed biases") {
  {
    const std::string yaml = att_shared_probs();
    PassResult r = check_unchanged(yaml, make_fuse_attention_pass, decomposed_dir());
    REQUIRE(r.remarks.size() == 1);
    check_remark(r.remarks[0], "fuse-attention", false, "linear 'a'",
                 "attention pattern: softmax 'pr': its output 'pr' is a graph output", line_of(yaml, "out: a}"));
  }
  {
    const std::string yaml = att_shared_q();
    PassResult r = check_unchanged(yaml, make_fuse_attention_pass, decomposed_dir());
    REQUIRE(r.remarks.size() == 1);
    check_remark(r.remarks[0], "fuse-attention", false, "linear 'a'", "attention pattern: linear 'q': its output 'q' has 2 uses",
                 line_of(yaml, "out: a}"));
  }
  {
    const std::string yaml = att_mixed_bias();
    PassResult r = check_unchanged(yaml, make_fuse_attention_pass, decomposed_dir());
    REQUIRE(r.remarks.size() == 1);
    check_remark(r.remarks[0], "fuse-attention", false, "linear 'a'",
                 "attention pattern: the q, k and v projections do not all have constant biases, or all none",
                 line_of(yaml, "out: a}"));
  }
}

namespace {

// torch.nn.MultiheadAttention as torch.onnx.export writes it (sequence-first, one packed in-projection
// sliced into q, k, v; q scaled before q·kᵀ), with the classifier fixture's layer-0 attention weights.
const std::string kAttSeqFirst = R"(kiln: 1
name: att_seq_first
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, seq, 64]}
outputs: [y]
nodes:
  - {op: transpose, in: [x], perm: [1, 0, 2], out: xt}
  - {op: linear, in: [xt, )" L0 R"(self_attn.in_proj_weight, )" L0 R"(self_attn.in_proj_bias], out: qkv}
  - {op: slice, in: [qkv], axes: [-1], starts: [0], ends: [64], out: q}
  - {op: slice, in: [qkv], axes: [-1], starts: [64], ends: [128], out: k}
  - {op: slice, in: [qkv], axes: [-1], starts: [128], ends: [192], out: v}
  - {op: reshape, in: [q], shape: [0, -1, 8], out: q3}
  - {op: transpose, in: [q3], perm: [1, 0, 2], out: qh}
  - {op: div, in: [qh, 2.8284271247461903], out: qs}
  - {op: reshape, in: [k], shape: [0, -1, 8], out: k3}
  - {op: transpose, in: [k3], perm: [1, 2, 0], out: kt}
  - {op: reshape, in: [v], shape: [0, -1, 8], out: v3}
  - {op: transpose, in: [v3], perm: [1, 0, 2], out: vh}
  - {op: matmul, in: [qs, kt], out: s}
  - {op: softmax, in: [s], axis: -1, out: pr}
  - {op: matmul, in: [pr, vh], out: c}
  - {op: transpose, in: [c], perm: [1, 0, 2], out: ct}
  - {op: reshape, in: [ct], shape: [-1, 64], out: cm}
  - {op: linear, in: [cm, )" L0 R"(self_attn.out_proj.weight, )" L0 R"(self_attn.out_proj.bias], out: o}
  - {op: reshape_dims, in: [o, x], shape: [0, -1, 64], dims: [0, 1, 1], out: o3}
  - {op: transpose, in: [o3], perm: [1, 0, 2], out: y}
)";

const std::vector<Bindings> kSeqFirstRuns = {{{"batch", 1}, {"seq", 5}}, {{"batch", 3}, {"seq", 11}}};

}  // namespace

TEST_CASE("pattern fusions: fuse-attention fuses torch's exported sequence-first form into attention") {
  auto g = parse(kAttSeqFirst);
  CHECK(g->find_value("o3")->type.str() == "f32[seq,batch,64]");
  PassResult r = run_pass(*g, make_fuse_attention_pass);
  CHECK(r.changed);
  const std::string ir = g->print();
  INFO(ir);
  CHECK(contains(ir, "  %y = attention(%x, %x, %x, %" L0 "self_attn.in_proj_weight, %" L0 "self_attn.in_proj_bias, %" L0
                     "self_attn.out_proj.weight, %" L0 "self_attn.out_proj.bias) {heads=8}"));
  for (const char* gone : {"transpose(", "slice(", "reshape", "matmul(", "softmax(", "linear(", "div("})
    CHECK_FALSE(contains(ir, gone));
  REQUIRE(r.remarks.size() == 1);
  check_remark(r.remarks[0], "fuse-attention", true, "linear 'o'",
               "became attention {heads=8}, absorbing 20 nodes of the sequence-first form from linear 'qkv'",
               line_of(kAttSeqFirst, "out: o}"));
  check_same_results(kAttSeqFirst, make_fuse_attention_pass, 311, fixture_dir(), kSeqFirstRuns);
}

TEST_CASE("pattern fusions: fuse-attention declines the sequence-first form with masked scores or a shared slice") {
  {
    std::string yaml = replace_once(kAttSeqFirst, "  x: {dtype: f32, shape: [batch, seq, 64]}\n",
                                    "  x: {dtype: f32, shape: [batch, seq, 64]}\n"
                                    "  mask: {dtype: f32, shape: [seq, seq]}\n");
    yaml = replace_once(yaml, "  - {op: softmax, in: [s], axis: -1, out: pr}\n",
                        "  - {op: add, in: [s, mask], out: sm}\n"
                        "  - {op: softmax, in: [sm], axis: -1, out: pr}\n");
    PassResult r = check_unchanged(yaml, make_fuse_attention_pass, fixture_dir());
    REQUIRE(r.remarks.size() == 1);
    check_remark(r.remarks[0], "fuse-attention", false, "linear 'o'",
                 "attention pattern (sequence-first): masked scores (an add before the softmax) are not fused yet",
                 line_of(yaml, "out: o}"));
  }
  {
    const std::string yaml = replace_once(kAttSeqFirst, "outputs: [y]", "outputs: [y, k]");
    PassResult r = check_unchanged(yaml, make_fuse_attention_pass, fixture_dir());
    REQUIRE(r.remarks.size() == 1);
    check_remark(r.remarks[0], "fuse-attention", false, "linear 'o'",
                 "attention pattern (sequence-first): slice 'k': its output 'k' is a graph output", line_of(yaml, "out: o}"));
  }
}

// An output linear of weight [4,64] is a valid graph (y is f32[batch,seq,4]) but not attention's output
// projection: the pass must decline, not build an attention node that fails shape inference.
TEST_CASE("pattern fusions: fuse-attention declines an output projection that is not [E,E]") {
  const std::string yaml = att_narrow_out_proj();
  CHECK(parse_att(yaml)->find_value("a")->type.str() == "f32[batch,seq,4]");
  PassResult r;
  CHECK_NOTHROW(r = check_unchanged(yaml, make_fuse_attention_pass, decomposed_dir()));
  REQUIRE(r.remarks.size() == 1);
  check_remark(r.remarks[0], "fuse-attention", false, "linear 'a'", "attention pattern: ", line_of(yaml, "out: a}"));
}

// ================================================================================================
// In-place memory planning (runtime/plan.cpp), on graphs run as written (-O0)
// ================================================================================================

namespace {

struct Planned {
  std::string describe;
  std::size_t arena = 0;
  std::vector<Tensor> outputs;
};

/// Compiles `yaml` (no passes) for the shapes of `inputs`, runs it twice (the second run on the same
/// arena must give the same numbers: no state left behind) and returns the plan's description and results.
Planned plan_and_run(const std::string& yaml, const std::vector<Tensor>& inputs) {
  auto g = parse(yaml);
  std::vector<std::vector<std::int64_t>> dims;
  std::vector<const void*> in_ptrs;
  for (const Tensor& t : inputs) {
    dims.push_back(t.shape());
    in_ptrs.push_back(t.data());
  }
  // Inputs are never written: keep copies to compare against after the runs.
  std::vector<Tensor> saved;
  for (const Tensor& t : inputs) saved.push_back(clone(t));
  Plan plan(*g, dims, detail::cpu_engine());
  Planned p;
  p.describe = plan.describe();
  p.arena = plan.arena_bytes();
  dnnl::stream stream(detail::cpu_engine());
  for (int run = 0; run < 2; ++run) {
    std::vector<Tensor> outs;
    std::vector<void*> out_ptrs;
    for (std::size_t j = 0; j < g->outputs.size(); ++j) {
      const TensorType& t = plan.output_type(j);
      std::vector<std::int64_t> shape;
      for (const Dim& d : t.shape) shape.push_back(d.value);
      outs.push_back(Tensor::empty(t.dtype, shape));
      out_ptrs.push_back(outs.back().data());
    }
    plan.run(stream, in_ptrs.data(), out_ptrs.data());
    if (run == 1) {
      REQUIRE(outs.size() == p.outputs.size());
      for (std::size_t j = 0; j < outs.size(); ++j) CHECK_MESSAGE(same_bytes(outs[j], p.outputs[j]), "output " << j << " differs on the second run");
    }
    p.outputs = std::move(outs);
  }
  for (std::size_t i = 0; i < inputs.size(); ++i) CHECK_MESSAGE(same_bytes(inputs[i], saved[i]), "graph input " << i << " was overwritten");
  std::printf("%s", p.describe.c_str());
  return p;
}

std::size_t aligned64(std::size_t bytes) { return (bytes + 63) / 64 * 64; }

void check_close(const Tensor& got, const Tensor& want, const char* what) {
  REQUIRE(got.shape() == want.shape());
  double diff = max_abs_diff(got, want);
  CHECK_MESSAGE(diff <= 1e-5, what << ": max abs diff from the reference " << diff);
}

// relu reads the graph input, which is never overwritten: its result takes a buffer of its own. sigmoid
// reads a for the last time, so it writes over a. softmax writes the graph output, straight into the
// caller's buffer. So one kernel of three writes in place, and the arena holds one [2,5,7] buffer.
const std::string kChain = R"(kiln: 1
name: chain
inputs:
  x: {dtype: f32, shape: [batch, 5, 7]}
outputs: [y]
nodes:
  - {op: relu, in: [x], out: a}
  - {op: sigmoid, in: [a], out: b}
  - {op: softmax, in: [b], axis: -1, out: y}
)";

// A longer chain with a softmax in the middle: softmax over a and sigmoid over b both write in place.
const std::string kChainSoftmaxInside = R"(kiln: 1
name: chain2
inputs:
  x: {dtype: f32, shape: [batch, 5, 7]}
outputs: [y]
nodes:
  - {op: relu, in: [x], out: a}
  - {op: softmax, in: [a], axis: -1, out: b}
  - {op: sigmoid, in: [b], out: c}
  - {op: tanh, in: [c], out: y}
)";

// a is read again after the sigmoid (by the add), so the sigmoid must not write over it. The add reads b
// for the last time and may take its buffer.
const std::string kReadAgain = R"(kiln: 1
name: again
inputs:
  x: {dtype: f32, shape: [batch, 5, 7]}
outputs: [y]
nodes:
  - {op: relu, in: [x], out: a}
  - {op: sigmoid, in: [a], out: b}
  - {op: add, in: [b, a], out: c}
  - {op: tanh, in: [c], out: y}
)";

// The same, with a read again only through a view of it (av), and the add reading b through a view.
const std::string kReadAgainViaView = R"(kiln: 1
name: again_view
inputs:
  x: {dtype: f32, shape: [batch, 5, 7]}
outputs: [y]
nodes:
  - {op: relu, in: [x], out: a}
  - {op: reshape, in: [a], shape: [0, 35], out: av}
  - {op: sigmoid, in: [a], out: b}
  - {op: reshape, in: [b], shape: [0, 35], out: bv}
  - {op: add, in: [bv, av], out: c}
  - {op: tanh, in: [c], out: y}
)";

// a is a graph output (in the caller's buffer) and v, a view of it, too: neither a nor its buffer may be
// written over, so nothing is computed in place.
const std::string kOutputsKept = R"(kiln: 1
name: kept
inputs:
  x: {dtype: f32, shape: [batch, 5, 7]}
  z: {dtype: f32, shape: [batch, 5, 7]}
outputs: [a, y, v, w]
nodes:
  - {op: relu, in: [x], out: a}
  - {op: sigmoid, in: [a], out: y}
  - {op: relu, in: [z], out: p}
  - {op: reshape, in: [p], shape: [0, 35], out: v}
  - {op: tanh, in: [p], out: w}
)";

// layer_norm may write over its residual input (input 3) when that is read for the last time (x, input 0,
// is a graph input). The fixture's norm1 parameters are [64] ones and zeros.
const std::string kLayerNormResidual = R"(kiln: 1
name: ln_res
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 3, 64]}
  z: {dtype: f32, shape: [batch, 3, 64]}
outputs: [y]
nodes:
  - {op: sigmoid, in: [z], out: r}
  - {op: layer_norm, in: [x, r], weights: transformer_encoder.layers.0.norm1, out: n}
  - {op: tanh, in: [n], out: y}
)";

}  // namespace

TEST_CASE("in-place planning: a relu -> sigmoid -> softmax chain needs one buffer, and the input stays intact") {
  Rng rng = make_rng(401);
  Tensor x = random_f32(rng, {2, 5, 7}, -2.f, 2.f);
  Planned p = plan_and_run(kChain, {x});
  CHECK(p.describe.find("kernels: 3 (1 writing in place)") != std::string::npos);
  CHECK(p.arena == aligned64(2 * 5 * 7 * sizeof(float)));  // 280 bytes -> 320, not 640
  CHECK(p.arena == 320);
  check_close(p.outputs.at(0), ref_softmax(ref_unary("sigmoid", ref_unary("relu", x)), -1), "chain");
}

TEST_CASE("in-place planning: softmax in the middle of a chain writes in place too") {
  Rng rng = make_rng(402);
  Tensor x = random_f32(rng, {2, 5, 7}, -2.f, 2.f);
  Planned p = plan_and_run(kChainSoftmaxInside, {x});
  CHECK(p.describe.find("kernels: 4 (2 writing in place)") != std::string::npos);
  CHECK(p.arena == 320);
  check_close(p.outputs.at(0), ref_unary("tanh", ref_unary("sigmoid", ref_softmax(ref_unary("relu", x), -1))), "chain2");
}

TEST_CASE("in-place planning: an input read again later is not written over") {
  Rng rng = make_rng(403);
  Tensor x = random_f32(rng, {3, 5, 7}, -2.f, 2.f);
  const Tensor a = ref_unary("relu", x);
  const Tensor want = ref_unary("tanh", ref_binary('+', ref_unary("sigmoid", a), a));
  {
    Planned p = plan_and_run(kReadAgain, {x});
    CHECK(p.describe.find("kernels: 4 (1 writing in place)") != std::string::npos);  // the add, over b
    CHECK(p.arena == 2 * aligned64(3 * 5 * 7 * sizeof(float)));                     // a and b live together
    check_close(p.outputs.at(0), want, "again");
  }
  {
    Planned p = plan_and_run(kReadAgainViaView, {x});
    CHECK(p.describe.find("kernels: 4 (1 writing in place)") != std::string::npos);
    CHECK(p.arena == 2 * aligned64(3 * 5 * 7 * sizeof(float)));
    REQUIRE(p.outputs.at(0).shape() == std::vector<std::int64_t>{3, 35});
    Tensor want35 = clone(want);
    check_close(p.outputs.at(0), Tensor::view(DType::f32, {3, 35}, want35.data()), "again_view");
  }
}

TEST_CASE("in-place planning: graph outputs, and values viewed by graph outputs, are not written over") {
  Rng rng = make_rng(404);
  Tensor x = random_f32(rng, {2, 5, 7}, -2.f, 2.f);
  Tensor z = random_f32(rng, {2, 5, 7}, -2.f, 2.f);
  Planned p = plan_and_run(kOutputsKept, {x, z});
  CHECK(p.describe.find("kernels: 4 (0 writing in place)") != std::string::npos);
  CHECK(p.arena == 320);  // p alone: a, y and w are the caller's buffers, v a copy of p
  REQUIRE(p.outputs.size() == 4);
  const Tensor a = ref_unary("relu", x);
  const Tensor pz = ref_unary("relu", z);
  check_close(p.outputs[0], a, "a");
  check_close(p.outputs[1], ref_unary("sigmoid", a), "y");
  check_close(p.outputs[2], Tensor::view(DType::f32, {2, 35}, pz.data()), "v");
  check_close(p.outputs[3], ref_unary("tanh", pz), "w");
}

TEST_CASE("in-place planning: layer_norm writes over its residual input") {
  Rng rng = make_rng(405);
  Tensor x = random_f32(rng, {2, 3, 64}, -2.f, 2.f);
  Tensor z = random_f32(rng, {2, 3, 64}, -2.f, 2.f);
  Planned p = plan_and_run(kLayerNormResidual, {x, z});
  CHECK(p.describe.find("kernels: 3 (1 writing in place)") != std::string::npos);
  CHECK(p.arena == aligned64(2 * 3 * 64 * sizeof(float)));  // r alone; n is written over it
  auto g = parse(kLayerNormResidual);
  const float* w = f32_data(g->find_value(L0 "norm1.weight"));
  const float* b = f32_data(g->find_value(L0 "norm1.bias"));
  const Tensor weight = Tensor::from_f32({64}, std::vector<float>(w, w + 64));
  const Tensor bias = Tensor::from_f32({64}, std::vector<float>(b, b + 64));
  const Tensor sum = ref_binary('+', x, ref_unary("sigmoid", z));
  check_close(p.outputs.at(0), ref_unary("tanh", ref_layer_norm(sum, &weight, &bias, 1e-5)), "ln_res");
}
