// The CNN passes, in the style of tests/test_passes.cpp: YAML in (weights of examples/resnet_tiny and
// examples/mobilenet_tiny), exactly one pass, the exact IR out, the remarks, the cases that must not
// fire, and the graph run with and without the pass on the same random inputs (<= 1e-5). Then layout
// propagation over a whole block: blocked from the first convolution to the last, reorders only at the
// ends, each one listed with its reason.

#include <string>

#include "graph/graph.hpp"
#include "ops/op.hpp"
#include "ops/spatial.hpp"  // blocked_channel_layout(): the layout the passes pick on this CPU
#include "passes/pass.hpp"
#include "tests/ops/op_test_util.hpp"
#include "tests/pass_test_util.hpp"
#include "tests/test_util.hpp"

namespace {

using namespace kiln;
using namespace kiln::test;

// fuse-residual and fuse-activation as they run late in the pipeline: for ops that apply their activation
// after the residual (conv2d).
std::unique_ptr<Pass> fuse_residual_late() { return make_fuse_residual_pass(PostOpStage::ResidualFirst); }
std::unique_ptr<Pass> fuse_activation_late() { return make_fuse_activation_pass(PostOpStage::ResidualFirst); }

std::string resnet_dir() { return source_path("examples/resnet_tiny"); }
std::string mobilenet_dir() { return source_path("examples/mobilenet_tiny"); }

// One ResNet BasicBlock, as examples/resnet_tiny writes it.
const std::string kBlock = R"(kiln: 1
name: block
weights: resnet_tiny.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 16, 8, 8]}
outputs: [y]
nodes:
  - {op: conv2d, in: [x], weights: layer1.0.conv1, padding: [1, 1], out: c1}
  - {op: batch_norm, in: [c1], weights: layer1.0.bn1, out: b1}
  - {op: relu, in: [b1], out: r1}
  - {op: conv2d, in: [r1], weights: layer1.0.conv2, padding: [1, 1], out: c2}
  - {op: batch_norm, in: [c2], weights: layer1.0.bn2, out: b2}
  - {op: add, in: [b2, x], out: s}
  - {op: relu, in: [s], out: y}
)";

// c1 has two users; b2 normalizes a non-conv value; c3 is a graph output.
const std::string kBnDeclined = R"(kiln: 1
name: nobn
weights: resnet_tiny.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 16, 8, 8]}
outputs: [y, c3]
nodes:
  - {op: conv2d, in: [x], weights: layer1.0.conv1, padding: [1, 1], out: c1}
  - {op: batch_norm, in: [c1], weights: layer1.0.bn1, out: b1}
  - {op: add, in: [b1, c1], out: s}
  - {op: batch_norm, in: [s], weights: layer1.0.bn2, out: b2}
  - {op: conv2d, in: [b2], weights: layer1.1.conv1, out: c3, padding: [1, 1]}
  - {op: batch_norm, in: [c3], weights: layer1.1.bn1, out: y}
)";

}  // namespace

TEST_CASE("cnn passes: fold-conv-batch-norm folds each batch_norm into the conv before it") {
  auto g = parse(kBlock, resnet_dir());
  PassResult r = run_pass(*g, make_fold_conv_batch_norm_pass);
  CHECK(r.changed);
  CHECK(g->print() ==
        "graph block(%x: f32[batch,16,8,8]) -> (%y) {\n"
        "  %layer1.0.conv1.weight.bn_folded = const : f32[16,16,3,3]\n"
        "  %layer1.0.conv1.weight.bn_folded_bias = const : f32[16]\n"
        "  %layer1.0.conv2.weight.bn_folded = const : f32[16,16,3,3]\n"
        "  %layer1.0.conv2.weight.bn_folded_bias = const : f32[16]\n"
        "  %b1 = conv2d(%x, %layer1.0.conv1.weight.bn_folded, %layer1.0.conv1.weight.bn_folded_bias, _) {activation=\"none\", clip_max=6.0, clip_min=0.0, dilation=[1,1], elu_alpha=1.0, groups=1, layout=\"plain\", leaky_relu_alpha=0.01, padding=[1,1], stride=[1,1]} : (f32[batch,16,8,8], f32[16,16,3,3], f32[16], _) -> f32[batch,16,8,8]  name(\"c1\")\n"
        "  %r1 = relu(%b1) : (f32[batch,16,8,8]) -> f32[batch,16,8,8]\n"
        "  %b2 = conv2d(%r1, %layer1.0.conv2.weight.bn_folded, %layer1.0.conv2.weight.bn_folded_bias, _) {activation=\"none\", clip_max=6.0, clip_min=0.0, dilation=[1,1], elu_alpha=1.0, groups=1, layout=\"plain\", leaky_relu_alpha=0.01, padding=[1,1], stride=[1,1]} : (f32[batch,16,8,8], f32[16,16,3,3], f32[16], _) -> f32[batch,16,8,8]  name(\"c2\")\n"
        "  %s = add(%b2, %x) : (f32[batch,16,8,8], f32[batch,16,8,8]) -> f32[batch,16,8,8]\n"
        "  %y = relu(%s) : (f32[batch,16,8,8]) -> f32[batch,16,8,8]\n"
        "  return %y\n"
        "}\n");
  REQUIRE(r.remarks.size() == 2);
  check_remark(r.remarks[0], "fold-conv-batch-norm", true, "conv2d 'c1'", "folded batch_norm 'b1' into its weights and bias",
               line_of(kBlock, "out: c1}"));
  check_remark(r.remarks[1], "fold-conv-batch-norm", true, "conv2d 'c2'", "folded batch_norm 'b2' into its weights and bias",
               line_of(kBlock, "out: c2}"));
}

TEST_CASE("cnn passes: fold-conv-batch-norm must not fire on shared outputs, non-conv inputs, graph outputs") {
  PassResult r = check_unchanged(kBnDeclined, make_fold_conv_batch_norm_pass, resnet_dir());
  REQUIRE(r.remarks.size() == 2);
  check_remark(r.remarks[0], "fold-conv-batch-norm", false, "conv2d 'c1'",
               "its output 'c1' has 2 uses, so batch_norm 'b1' cannot be folded in", line_of(kBnDeclined, "out: c1}"));
  check_remark(r.remarks[1], "fold-conv-batch-norm", false, "conv2d 'c3'",
               "its output 'c3' is a graph output, so batch_norm 'y' cannot be folded in", line_of(kBnDeclined, "out: c3,"));
}

TEST_CASE("cnn passes: fold-conv-batch-norm gives the same results") {
  check_same_results(kBlock, make_fold_conv_batch_norm_pass, 71, resnet_dir());
}

namespace {

// The block after fold-conv-batch-norm, as written (bias-carrying convs): add + relu at the end.
const std::string kFolded = R"(kiln: 1
name: folded
weights: resnet_tiny.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 16, 8, 8]}
outputs: [y]
nodes:
  - {op: conv2d, in: [x], weights: layer1.0.conv1, padding: [1, 1], out: c1}
  - {op: relu, in: [c1], out: r1}
  - {op: conv2d, in: [r1], weights: layer1.0.conv2, padding: [1, 1], out: c2}
  - {op: add, in: [x, c2], out: s}
  - {op: relu, in: [s], out: y}
)";

// c1 is activated before the add; c2's output is also read by t; u adds a broadcast [16,1,1].
const std::string kResDeclined = R"(kiln: 1
name: nores
weights: resnet_tiny.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 16, 8, 8]}
  v: {dtype: f32, shape: [16, 1, 1]}
outputs: [s, t, u]
nodes:
  - {op: conv2d, in: [x], weights: layer1.0.conv1, padding: [1, 1], activation: relu, out: c1}
  - {op: add, in: [x, c1], out: s}
  - {op: conv2d, in: [x], weights: layer1.0.conv2, padding: [1, 1], out: c2}
  - {op: add, in: [x, c2], out: t2}
  - {op: mul, in: [t2, c2], out: t}
  - {op: conv2d, in: [x], weights: layer1.1.conv1, padding: [1, 1], out: c3}
  - {op: add, in: [c3, v], out: u}
)";

// MobileNet's ReLU6 (clip) and a silu after depthwise and pointwise convs.
const std::string kMobile = R"(kiln: 1
name: mobile
weights: mobilenet_tiny.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 16, 9, 9]}
outputs: [y]
nodes:
  - {op: conv2d, in: [x], weights: blocks.0.conv.0, padding: [1, 1], groups: 16, out: d}
  - {op: clip, in: [d], min: 0.5, max: 3.0, out: dr}
  - {op: conv2d, in: [dr], weights: blocks.0.conv.3, out: p}
  - {op: silu, in: [p], out: y}
)";

// a is already activated; b is shared.
const std::string kActDeclined = R"(kiln: 1
name: noact
weights: mobilenet_tiny.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 16, 9, 9]}
outputs: [y, z]
nodes:
  - {op: conv2d, in: [x], weights: blocks.0.conv.0, padding: [1, 1], groups: 16, activation: relu, out: a}
  - {op: sigmoid, in: [a], out: y}
  - {op: conv2d, in: [x], weights: blocks.0.conv.3, out: b}
  - {op: tanh, in: [b], out: bt}
  - {op: add, in: [bt, b], out: z}
)";

}  // namespace

TEST_CASE("cnn passes: fuse-residual on conv2d folds add(r, conv2d(x)) into the conv as a sum post-op") {
  auto g = parse(kFolded, resnet_dir());
  PassResult r = run_pass(*g, fuse_residual_late);
  CHECK(r.changed);
  CHECK(g->print() ==
        "graph folded(%x: f32[batch,16,8,8]) -> (%y) {\n"
        "  %layer1.0.conv1.weight = const : f32[16,16,3,3]\n"
        "  %layer1.0.conv2.weight = const : f32[16,16,3,3]\n"
        "  %c1 = conv2d(%x, %layer1.0.conv1.weight, _, _) {activation=\"none\", clip_max=6.0, clip_min=0.0, dilation=[1,1], elu_alpha=1.0, groups=1, layout=\"plain\", leaky_relu_alpha=0.01, padding=[1,1], stride=[1,1]} : (f32[batch,16,8,8], f32[16,16,3,3], _, _) -> f32[batch,16,8,8]\n"
        "  %r1 = relu(%c1) : (f32[batch,16,8,8]) -> f32[batch,16,8,8]\n"
        "  %s = conv2d(%r1, %layer1.0.conv2.weight, _, %x) {activation=\"none\", clip_max=6.0, clip_min=0.0, dilation=[1,1], elu_alpha=1.0, groups=1, layout=\"plain\", leaky_relu_alpha=0.01, padding=[1,1], stride=[1,1]} : (f32[batch,16,8,8], f32[16,16,3,3], _, f32[batch,16,8,8]) -> f32[batch,16,8,8]  name(\"c2\")\n"
        "  %y = relu(%s) : (f32[batch,16,8,8]) -> f32[batch,16,8,8]\n"
        "  return %y\n"
        "}\n");
  REQUIRE(r.remarks.size() == 1);
  check_remark(r.remarks[0], "fuse-residual", true, "conv2d 'c2'", "absorbed add 's' (residual 'x')", line_of(kFolded, "out: c2}"));
}

TEST_CASE("cnn passes: fuse-residual on conv2d must not fire on activated convs, shared outputs, broadcasts") {
  PassResult r = check_unchanged(kResDeclined, fuse_residual_late, resnet_dir());
  REQUIRE(r.remarks.size() == 3);
  check_remark(r.remarks[0], "fuse-residual", false, "conv2d 'c1'", "it applies relu before add 's'", line_of(kResDeclined, "out: c1}"));
  check_remark(r.remarks[1], "fuse-residual", false, "conv2d 'c2'", "its output 'c2' has 2 uses, so add 't2' cannot be folded in",
               line_of(kResDeclined, "out: c2}"));
  check_remark(r.remarks[2], "fuse-residual", false, "conv2d 'c3'", "add 'u' adds f32[16,1,1] to f32[batch,16,8,8]",
               line_of(kResDeclined, "out: c3}"));
}

TEST_CASE("cnn passes: fuse-residual on conv2d gives the same results") {
  check_same_results(kFolded, fuse_residual_late, 72, resnet_dir());
}

TEST_CASE("cnn passes: fuse-activation on conv2d folds relu after the residual, clip and silu") {
  // After fuse-residual the block ends conv2d(+residual) -> relu: the relu folds in after the sum.
  auto g = parse(kFolded, resnet_dir());
  run_pass(*g, fuse_residual_late);
  PassResult r = run_pass(*g, fuse_activation_late);
  CHECK(g->print() ==
        "graph folded(%x: f32[batch,16,8,8]) -> (%y) {\n"
        "  %layer1.0.conv1.weight = const : f32[16,16,3,3]\n"
        "  %layer1.0.conv2.weight = const : f32[16,16,3,3]\n"
        "  %r1 = conv2d(%x, %layer1.0.conv1.weight, _, _) {activation=\"relu\", clip_max=6.0, clip_min=0.0, dilation=[1,1], elu_alpha=1.0, groups=1, layout=\"plain\", leaky_relu_alpha=0.01, padding=[1,1], stride=[1,1]} : (f32[batch,16,8,8], f32[16,16,3,3], _, _) -> f32[batch,16,8,8]  name(\"c1\")\n"
        "  %y = conv2d(%r1, %layer1.0.conv2.weight, _, %x) {activation=\"relu\", clip_max=6.0, clip_min=0.0, dilation=[1,1], elu_alpha=1.0, groups=1, layout=\"plain\", leaky_relu_alpha=0.01, padding=[1,1], stride=[1,1]} : (f32[batch,16,8,8], f32[16,16,3,3], _, f32[batch,16,8,8]) -> f32[batch,16,8,8]  name(\"c2\")\n"
        "  return %y\n"
        "}\n");
  REQUIRE(r.remarks.size() == 2);
  check_remark(r.remarks[0], "fuse-activation", true, "conv2d 'c1'", "absorbed relu 'r1'", line_of(kFolded, "out: c1}"));
  check_remark(r.remarks[1], "fuse-activation", true, "conv2d 'c2'", "absorbed relu 'y'", line_of(kFolded, "out: c2}"));

  auto m = parse(kMobile, mobilenet_dir());
  r = run_pass(*m, fuse_activation_late);
  CHECK(m->print() ==
        "graph mobile(%x: f32[batch,16,9,9]) -> (%y) {\n"
        "  %blocks.0.conv.0.weight = const : f32[16,1,3,3]\n"
        "  %blocks.0.conv.3.weight = const : f32[16,16,1,1]\n"
        "  %dr = conv2d(%x, %blocks.0.conv.0.weight, _, _) {activation=\"clip\", clip_max=3.0, clip_min=0.5, dilation=[1,1], elu_alpha=1.0, groups=16, layout=\"plain\", leaky_relu_alpha=0.01, padding=[1,1], stride=[1,1]} : (f32[batch,16,9,9], f32[16,1,3,3], _, _) -> f32[batch,16,9,9]  name(\"d\")\n"
        "  %y = conv2d(%dr, %blocks.0.conv.3.weight, _, _) {activation=\"silu\", clip_max=6.0, clip_min=0.0, dilation=[1,1], elu_alpha=1.0, groups=1, layout=\"plain\", leaky_relu_alpha=0.01, padding=[0,0], stride=[1,1]} : (f32[batch,16,9,9], f32[16,16,1,1], _, _) -> f32[batch,16,9,9]  name(\"p\")\n"
        "  return %y\n"
        "}\n");
  REQUIRE(r.remarks.size() == 2);
}

TEST_CASE("cnn passes: fuse-activation on conv2d must not fire on activated or shared convs") {
  PassResult r = check_unchanged(kActDeclined, fuse_activation_late, mobilenet_dir());
  REQUIRE(r.remarks.size() == 2);
  check_remark(r.remarks[0], "fuse-activation", false, "conv2d 'a'", "it already applies relu; sigmoid 'y' stays", line_of(kActDeclined, "out: a}"));
  check_remark(r.remarks[1], "fuse-activation", false, "conv2d 'b'", "its output 'b' has 2 uses, so tanh 'bt' cannot be folded in",
               line_of(kActDeclined, "out: b}"));
}

TEST_CASE("cnn passes: fuse-activation folds every activation conv2d's schema accepts") {
  // conv2d -> one unary activation, for each row of the table conv2d's post_ops accept.
  const std::string conv = R"(kiln: 1
name: one
weights: resnet_tiny.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 16, 8, 8]}
outputs: [y]
nodes:
  - {op: conv2d, in: [x], weights: layer1.0.conv1, padding: [1, 1], out: c}
)";
  const PostOps& post_ops = find_op("conv2d")->post_ops;
  std::vector<std::string> folded;
  for (const ActivationDef* a : activations()) {
    if (!post_ops.accepts(*a)) continue;
    CAPTURE(a->name);
    std::string node = std::string("  - {op: ") + a->op + ", in: [c], ";
    if (a->variant_attr) node += std::string(a->variant_attr) + ": " + a->variant + ", ";
    const std::string yaml = conv + node + "out: y}\n";
    auto g = parse(yaml, resnet_dir());
    PassResult r = run_pass(*g, fuse_activation_late);
    REQUIRE(r.remarks.size() == 1);
    check_remark(r.remarks[0], "fuse-activation", true, "conv2d 'c'", std::string("absorbed ") + a->op + " 'y'", line_of(yaml, "out: c}"));
    CHECK(g->print().find(std::string("activation=\"") + a->name + "\"") != std::string::npos);
    check_same_results(yaml, fuse_activation_late, 75, resnet_dir());
    folded.push_back(a->name);
  }
  CHECK(folded == std::vector<std::string>{"relu", "clip", "silu", "sigmoid", "tanh", "leaky_relu", "elu", "hard_swish", "softplus"});
}

TEST_CASE("cnn passes: fuse-activation on conv2d gives the same results") {
  check_same_results(kMobile, fuse_activation_late, 73, mobilenet_dir());
  check_same_results(kFolded, fuse_activation_late, 74, resnet_dir());
}

namespace {

// Convolutions with layout-agnostic ops between them: batch_norm, relu, max_pool, clip, add, concat,
// avg_pool, resize. At -O1 (no fusion) every one of them runs as its own kernel.
const std::string kMixed = R"(kiln: 1
name: mixed
weights: resnet_tiny.safetensors
inputs:
  image: {dtype: f32, shape: [batch, 3, h, w]}
outputs: [y]
nodes:
  - {op: conv2d, in: [image], weights: conv1, stride: [2, 2], padding: [3, 3], out: c}
  - {op: batch_norm, in: [c], weights: bn1, out: b}
  - {op: relu, in: [b], out: r}
  - {op: max_pool, in: [r], kernel: [3, 3], stride: [2, 2], padding: [1, 1], out: p}
  - {op: conv2d, in: [p], weights: layer1.0.conv1, padding: [1, 1], out: c1}
  - {op: clip, in: [c1], out: r1}
  - {op: add, in: [r1, p], out: s}
  - {op: concat, in: [s, p], out: cat}
  - {op: avg_pool, in: [cat], kernel: [2, 2], out: a}
  - {op: resize, in: [a], scale: [2.0, 2.0], out: u}
  - {op: conv2d, in: [u], weights: layer2.1.conv1, stride: [2, 2], padding: [1, 1], out: c2}
  - {op: global_avg_pool, in: [c2], out: g}
  - {op: flatten, in: [g], out: f}
  - {op: relu, in: [f], out: y}
)";

}  // namespace

TEST_CASE("layouts: a CNN stays blocked from its first convolution to its last, one reorder at the exit") {
  auto g = parse(kMixed, resnet_dir());
  PipelineOptions options;
  options.opt_level = 1;
  auto remarks = run_pipeline(*g, options);
  const std::string ir = g->print();
  INFO(ir);
  // Everything from the stem to the global pool is blocked (nChw8c or nChw16c, as this CPU's convolutions
  // want); the stem reads the plain image itself.
  const std::string& blocked = blocked_channel_layout();
  for (const char* v : {"c", "b", "r", "p", "c1", "r1", "s", "cat", "a", "u", "c2", "g"})
    CHECK_MESSAGE(g->find_value(v)->type.layout == blocked, v << " is " << g->find_value(v)->type.str());
  CHECK(g->find_value("image")->users.at(0)->name == "c");
  int reorders = 0;
  for (const auto& n : g->nodes()) reorders += n->op == "reorder";
  CHECK(reorders == 1);
  // --explain lists it with its reason.
  bool listed = false;
  for (const auto& r : remarks)
    listed = listed || r.str() == "model.yaml:20:5: assign-layouts: fired on flatten 'f': inserted a reorder of 'g' from " + blocked +
                                  " to plain, the layout it needs";
  CHECK(listed);
  // And the numbers do not change.
  auto plain = parse(kMixed, resnet_dir());
  Rng rng = make_rng(75);
  auto inputs = random_inputs(*plain, rng, Bindings{{"batch", 2}, {"h", 37}, {"w", 30}});
  double diff = max_abs_diff(run_graph(*g, inputs).at(0), run_graph(*plain, inputs).at(0));
  MESSAGE("blocked vs plain max abs diff " << diff);
  CHECK(diff <= 1e-5);
}

TEST_CASE("layouts: a grouped conv whose groups do not fill blocks stays plain, and needs no reorder") {
  // conv1 is [16,3,7,7]: over 6 channels in 2 groups, 3 input channels per group.
  const std::string yaml = R"(kiln: 1
name: grouped
weights: resnet_tiny.safetensors
inputs:
  x: {dtype: f32, shape: [1, 6, 12, 12]}
outputs: [y]
nodes:
  - {op: conv2d, in: [x], weights: conv1, groups: 2, padding: [3, 3], out: d}
  - {op: relu, in: [d], out: y}
)";
  auto g = parse(yaml, resnet_dir());
  PipelineOptions options;
  options.opt_level = 1;
  run_pipeline(*g, options);
  CHECK(g->find_value("d")->type.str() == "f32[1,16,12,12]");
  for (const auto& n : g->nodes()) CHECK(n->op != "reorder");
  CHECK(g->nodes().front()->attr_string("layout") == "plain");
}
