// The pack-weights pass (passes/pack_weights.cpp): weights become constants in the layout their kernel reads,
// made once at compile time and owned by the graph, so plans of every shape share them.

#include <cstring>
#include <string>
#include <vector>

#include "kiln/kiln.hpp"
#include "ops/gemm.hpp"
#include "runtime/npy.hpp"
#include "passes/pass.hpp"
#include "runtime/model_impl.hpp"
#include "test_util.hpp"
#include "tests/pass_test_util.hpp"

namespace kiln {
std::size_t rnn_weight_packs_made();  // ops/rnn.cpp
}

namespace {

using namespace kiln;
using kiln::test::check_remark;
using kiln::test::line_of;
using kiln::test::parse;
using kiln::test::run_pass;

// Two linear nodes read the same weights (a tied projection); a third reads others.
const std::string kTied = R"(kiln: 1
name: tied
weights: weights.safetensors
inputs:
  x: {dtype: f32, shape: [batch, 64]}
outputs: [y, z, u]
nodes:
  - {op: linear, in: [x], weights: output_layer, out: y}
  - {op: linear, in: [x], weights: output_layer, out: z}
  - {op: linear, in: [x], weights: transformer_encoder.layers.0.linear1, out: u}
)";

TEST_CASE("pack-weights: a weight two nodes read is packed once into the GEMM's panels, and the plain copy goes") {
  auto g = parse(kTied);
  const Value* plain = g->find_value("output_layer.weight");
  REQUIRE(plain != nullptr);
  const Shape plain_shape = plain->type.shape;  // the value goes when nothing reads it any more
  std::vector<float> expected(gemm::packed_floats(4, 64));
  gemm::pack_weights(static_cast<const float*>(plain->constant.data), 4, 64, expected.data());
  const std::size_t before = gemm::packs_made();
  test::PassResult r = run_pass(*g, make_pack_weights_pass);
  if (!gemm::enabled()) {
    // oneDNN runs the products: the weights stay as written, and the pass says why.
    CHECK_FALSE(r.changed);
    REQUIRE(r.remarks.size() == 3);
    for (const auto& remark : r.remarks) {
      CHECK_FALSE(remark.fired);
      CHECK(test::contains(remark.message, "oneDNN runs the products here"));
    }
    return;
  }
  CHECK(r.changed);
  CHECK(gemm::packs_made() == before + 2);  // output_layer once, linear1 once
  const Node* y = g->nodes()[0].get();
  const Node* z = g->nodes()[1].get();
  CHECK(y->inputs[1] == z->inputs[1]);
  const Value* packed = y->inputs[1];
  CHECK(packed->name == "output_layer.weight.panels16");
  CHECK(packed->type.layout == gemm::kPackedLayout);
  CHECK(packed->type.shape == plain_shape);  // the same logical [N,K]; only the bytes are arranged
  REQUIRE(packed->constant.bytes == expected.size() * sizeof(float));
  CHECK(std::memcmp(packed->constant.data, expected.data(), packed->constant.bytes) == 0);
  CHECK(reinterpret_cast<std::uintptr_t>(packed->constant.data) % 64 == 0);
  CHECK(g->find_value("output_layer.weight") == nullptr);  // nothing reads the plain weights any more
  CHECK(g->find_value("output_layer.bias") != nullptr);    // biases stay as they are
  REQUIRE(r.remarks.size() == 3);
  check_remark(r.remarks[0], "pack-weights", true, "linear 'y'", "packed 'output_layer.weight' into panels16",
               line_of(kTied, "out: y}"));
  check_remark(r.remarks[1], "pack-weights", true, "linear 'z'", "shares the packed 'output_layer.weight' into panels16",
               line_of(kTied, "out: z}"));
  // Packed weights are not packed again.
  CHECK_FALSE(run_pass(*g, make_pack_weights_pass).changed);
}

TEST_CASE("pack-weights: the packed graph computes what the graph as written computes") {
  if (!gemm::enabled()) return;  // nothing to pack for oneDNN's matmul: the first case checks that
  test::check_same_results(kTied, make_pack_weights_pass, 91, test::fixture_dir(),
                           {{{"batch", 1}}, {{"batch", 5}}, {{"batch", 17}}});
}

TEST_CASE("pack-weights: a model packs its weights when it is compiled, and plans of other shapes pack nothing") {
  const std::string yaml = test::source_path("tests/fixtures/classifier_d64_l2/model.yaml");
  const std::size_t before = gemm::packs_made();
  Model model = Model::load(yaml);
  // classifier_d64_l2: per layer the fused in_proj, out_proj and both FFN weights, plus the head.
  CHECK(gemm::packs_made() == before + (gemm::enabled() ? 9 : 0));
  Session session(model);
  const std::size_t loaded = gemm::packs_made();
  for (std::int64_t seq : {5, 33, 64}) {
    auto tokens = Tensor::empty(DType::i64, {2, seq});
    for (std::int64_t i = 0; i < tokens.numel(); ++i) tokens.data_as<std::int64_t>()[i] = i % 50;
    session.run({{"tokens", tokens}});
  }
  CHECK(session.plan_count() == 3);
  CHECK(gemm::packs_made() == loaded);
}

TEST_CASE("pack-weights: a bidirectional lstm's weights are packed per layer into one gate-major buffer") {
  const std::string dir = test::source_path("tests/fixtures/rnn/lstm_l2_bi_s5_state/");
  const std::size_t private_before = rnn_weight_packs_made();
  Model model = Model::load(dir + "model.yaml");
  const Graph& g = *model.impl()->graph;
  const Node* lstm = nullptr;
  for (const auto& n : g.nodes())
    if (n->op == "lstm") lstm = n.get();
  REQUIRE(lstm != nullptr);
  // Inputs after src, h0, c0: per layer and direction weight_ih, weight_hh, bias_ih, bias_hh.
  for (int layer = 0; layer < 2; ++layer)
    for (int which = 0; which < 2; ++which) {
      const Value* fwd = lstm->inputs[static_cast<std::size_t>(3 + layer * 8 + which)];
      const Value* rev = lstm->inputs[static_cast<std::size_t>(3 + layer * 8 + 4 + which)];
      CHECK_FALSE(fwd->type.layout.empty());  // oneDNN's layout for this CPU, by name (ldigo, ldgOi32o)
      CHECK(rev->type.layout == fwd->type.layout);
      CHECK(fwd->type.shape == rev->type.shape);
      // The forward constant spans both directions; the reverse one is its second half.
      CHECK(rev->constant.data == static_cast<const char*>(fwd->constant.data) + fwd->constant.bytes / 2);
      CHECK(rev->constant.bytes == fwd->constant.bytes / 2);
      CHECK(fwd->constant.bytes >= 2 * static_cast<std::size_t>(numel_of(fwd->type.shape)) * sizeof(float));
      CHECK(rev->constant.owner == fwd->constant.owner);
    }
  Session session(model);
  auto x = Tensor::empty(DType::f32, {1, 4, 6});
  auto h = Tensor::empty(DType::f32, {4, 1, 7});
  for (auto* t : {&x, &h})
    for (std::int64_t i = 0; i < t->numel(); ++i) t->data_as<float>()[i] = static_cast<float>(i % 5) * 0.1f;
  session.run({{"x", x}, {"h0", h}, {"c0", h}});
  CHECK(rnn_weight_packs_made() == private_before);  // the primitive reads the packed constants in place
}

}  // namespace

namespace {

TEST_CASE("pack-weights: packed weights also run where oneDNN runs the products (a plan file from another CPU)") {
  if (!kiln::gemm::enabled()) return;  // nothing is packed for Kiln's GEMM here
  const std::string dir = kiln::test::source_path("tests/fixtures/classifier_d64_l2/");
  kiln::Model model = kiln::Model::load(dir + "model.yaml");  // packed for Kiln's GEMM
  kiln::gemm::override_enabled(false);                         // as on a CPU without AVX2/FMA
  kiln::Session session(model);
  const auto tokens = kiln::read_npy(dir + "tokens_b4_s33.npy");
  const std::string explained = session.explain({{"tokens", tokens}});
  const auto out = session.run({{"tokens", tokens}});
  kiln::gemm::override_enabled(std::nullopt);
  CHECK_FALSE(kiln::test::contains(explained, "kiln:gemm"));  // every product ran on oneDNN
  CHECK(kiln::test::max_abs_diff(out.at("probs"), kiln::read_npy(dir + "probs_b4_s33.npy")) <= 1e-4);
}

}  // namespace

namespace {

TEST_CASE("pack-weights: conv2d weights are packed at compile time, and plans of two shapes bind them in place") {
  const std::string dir = kiln::test::source_path("examples/resnet_tiny/");
  kiln::Model model = kiln::Model::load(dir + "resnet_tiny.yaml");
  int convs = 0;
  for (const auto& n : model.impl()->graph->nodes()) {
    if (n->op != "conv2d") continue;
    ++convs;
    const std::string& layout = n->inputs[1]->type.layout;  // plain, or the oneDNN format it is packed in
    CHECK_MESSAGE((layout.empty() || layout.rfind("dnnl:", 0) == 0), n->label() << ": " << layout);
  }
  CHECK(convs > 0);
  kiln::Session session(model);
  for (const char* image : {"image_b1_odd", "image_b2"}) {
    const auto x = kiln::read_npy(dir + image + ".npy");
    // No kernel holds a private copy of its weights (describe() would list their bytes).
    CHECK_FALSE(kiln::test::contains(session.explain({{"image", x}}), "packed weights:"));
  }
  CHECK(session.plan_count() == 2);
}

}  // namespace
