// batch_norm (eval mode) against a naive reference, plain and blocked, with and without weight and
// bias, ranks 2 to 5. Tolerance 1e-5: one subtraction and one multiply-add per element in f32.

#include "ops/spatial.hpp"  // blocked_channel_layout(): the layout the passes pick on this CPU
#include "passes/pass.hpp"
#include "tests/ops/cnn_ref.hpp"

namespace {

using namespace kiln;
using namespace kiln::test;

double check(Rng& rng, const std::vector<std::int64_t>& shape, bool with_w, bool with_b, int level) {
  const std::int64_t c = shape[1];
  Tensor x = random_f32(rng, shape, -3.f, 3.f);
  Tensor w = random_f32(rng, {c}, 0.5f, 2.f), b = random_f32(rng, {c}), mean = random_f32(rng, {c}), var = random_f32(rng, {c}, 0.1f, 2.f);
  OpResult r = run_op("batch_norm", {in(x), with_w ? weight(w) : none(), with_b ? weight(b) : none(), weight(mean), weight(var)},
                      {{"eps", 1e-3}}, level);
  Tensor want = ref_batch_norm(x, with_w ? &w : nullptr, with_b ? &b : nullptr, mean, var, 1e-3);
  double err = max_abs_error(r.out, want);
  INFO("batch_norm ", dims_str(shape), with_w ? " weight" : "", with_b ? " bias" : "", " -O", level, "\n", r.impl);
  CHECK(err <= 1e-5);
  return err;
}

}  // namespace

TEST_CASE("batch_norm over random shapes") {
  Rng rng = make_rng(711);
  double worst = 0;
  for (int i = 0; i < 12; ++i) {
    auto shape = random_shape(rng, static_cast<int>(random_int(rng, 2, 5)), 1, 9);
    worst = std::max(worst, check(rng, shape, i % 2 == 0, i % 4 < 2, 0));
  }
  MESSAGE("batch_norm worst abs error " << worst);
}

TEST_CASE("batch_norm runs in the blocked layout of its input") {
  // A conv before it makes the input blocked at -O1; batch_norm then runs in that blocked layout (nChw8c or nChw16c: the CPU decides; checked by the plan).
  Rng rng = make_rng(712);
  Graph g;
  Tensor x = random_f32(rng, {2, 16, 5, 6});
  Tensor cw = random_f32(rng, {16, 16, 1, 1}), w = random_f32(rng, {16}), b = random_f32(rng, {16}),
         mean = random_f32(rng, {16}), var = random_f32(rng, {16}, 0.1f, 2.f);
  auto constant = [&](const char* name, const Tensor& t) {
    return g.add_constant(name, TensorType{DType::f32, concrete_shape(t.shape())}, ConstData{t.data(), t.bytes(), std::make_shared<Tensor>(t)});
  };
  Value* xv = g.add_value("x", TensorType{DType::f32, concrete_shape(x.shape())});
  g.inputs.push_back(xv);
  Value* c = g.add_value("c", {});
  Value* y = g.add_value("y", {});
  g.add_node("conv2d", "c", {xv, constant("cw", cw), nullptr}, {c}, {}, {});
  g.add_node("batch_norm", "y", {c, constant("w", w), constant("b", b), constant("m", mean), constant("v", var)}, {y}, {}, {});
  g.outputs.push_back(y);
  g.infer_shapes();
  PipelineOptions options;
  options.opt_level = 1;
  run_pipeline(g, options);
  CHECK(g.find_value("c")->type.layout == blocked_channel_layout());
  std::string describe;
  Tensor got = run_graph(g, {x}, &describe).at(0);
  INFO(describe);
  CHECK(contains(describe, "batch_norm 'y' -> f32[2,16,5,6]{" + blocked_channel_layout() + "}"));
  Tensor want = ref_batch_norm(ref_conv2d(x, cw, nullptr, {}), &w, &b, mean, var, 1e-5);
  CHECK(max_abs_error(got, want) <= 1e-4);
}

TEST_CASE("batch_norm bad inputs") {
  Rng rng = make_rng(713);
  Tensor x = random_f32(rng, {2, 4, 3, 3});
  auto c4 = [&] { return weight(random_f32(rng, {4})); };
  CHECK(error_of([&] { run_op("batch_norm", {in(x), c4(), c4(), weight(random_f32(rng, {5})), c4()}); }) ==
        "error: batch_norm 'out': expected running_mean of shape [4], got [5] ('w3')");
  CHECK(error_of([&] { run_op("batch_norm", {in(random_f32(rng, {4})), none(), none(), c4(), c4()}); }) ==
        "error: batch_norm 'out': expected input 'src' of rank 2 to 5 [N,C,...], got f32[4]");
  CHECK(error_of([&] { run_op("batch_norm", {in(x), none(), none(), c4(), c4()}, {{"eps", -1.0}}); }) ==
        "error: batch_norm 'out': attribute 'eps' must be >= 0");
}
