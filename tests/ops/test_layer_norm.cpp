// layer_norm over the last axis, with and without weight and bias, different eps, and the fused
// residual input, against a double reference using the biased variance (nn.LayerNorm).
// Tolerance 1e-4 absolute: like the matmul-based ops this reduces over up to 17 elements in f32 (mean
// and variance) and the normalized values reach ~sqrt(17) ~= 4 before scaling by |w| <= 2. The worst
// measured error, 1.5e-5, is f32 cancellation in x - mean on a d = 2 row whose values nearly coincide
// (-2.789, -2.811): inherent to f32 (PyTorch's kernel does the same). Wrong statistics or a missing
// scale/shift err by >= 0.1.

#include "tests/ops/op_test_util.hpp"

namespace {

using namespace kiln;
using namespace kiln::test;

constexpr double kTol = 1e-4;

double check(Rng& rng, const std::vector<std::int64_t>& shape, bool with_w, bool with_b, double eps) {
  const std::int64_t d = shape.back();
  // An offset and scale per tensor so that mean subtraction and variance both matter.
  Tensor x = random_f32(rng, shape, -3.f, 5.f);
  Tensor w = random_f32(rng, {d}, -2.f, 2.f), b = random_f32(rng, {d});
  OpResult r = run_op("layer_norm", {in(x), with_w ? weight(w) : none(), with_b ? weight(b) : none()}, {{"eps", eps}});
  Tensor want = ref_layer_norm(x, with_w ? &w : nullptr, with_b ? &b : nullptr, eps);
  double err = max_abs_error(r.out, want);
  INFO("layer_norm ", dims_str(shape), with_w ? " weight" : "", with_b ? " bias" : "", " eps ", eps, "\n", r.impl);
  CHECK(r.out.shape() == shape);
  CHECK(err <= kTol);
  return err;
}

double check_all(std::uint32_t seed, bool with_w, bool with_b) {
  Rng rng = make_rng(seed);
  double worst = 0;
  for (int rank = 1; rank <= 4; ++rank) {
    // d >= 2: with d = 1 the normalized value is 0 and only the bias remains (checked separately).
    auto shape = random_shape(rng, rank);
    shape.back() = random_int(rng, 2, 17);
    worst = std::max(worst, check(rng, shape, with_w, with_b, 1e-5));
  }
  worst = std::max(worst, check(rng, {3, 1, 17}, with_w, with_b, 1e-5));
  worst = std::max(worst, check(rng, {4, 7}, with_w, with_b, 1e-2));
  worst = std::max(worst, check(rng, {2, 5}, with_w, with_b, 1.0));  // eps that dominates the variance
  worst = std::max(worst, check(rng, {5, 1}, with_w, with_b, 1e-5));  // d = 1
  return worst;
}

}  // namespace

TEST_CASE("layer_norm with weight and bias") { MESSAGE("layer_norm w+b worst abs error " << check_all(51, true, true)); }
TEST_CASE("layer_norm with weight only") { MESSAGE("layer_norm w worst abs error " << check_all(52, true, false)); }
TEST_CASE("layer_norm with bias only") { MESSAGE("layer_norm b worst abs error " << check_all(53, false, true)); }
TEST_CASE("layer_norm without weight and bias") { MESSAGE("layer_norm plain worst abs error " << check_all(54, false, false)); }

TEST_CASE("layer_norm of src + residual") {
  // What fuse-add-layer-norm produces: layer_norm(x + r).
  Rng rng = make_rng(56);
  double worst = 0;
  for (int i = 0; i < 8; ++i) {
    auto shape = random_shape(rng, static_cast<int>(random_int(rng, 1, 4)));
    const std::int64_t d = shape.back();
    Tensor x = random_f32(rng, shape, -3.f, 5.f), res = random_f32(rng, shape);
    Tensor w = random_f32(rng, {d}, -2.f, 2.f), b = random_f32(rng, {d});
    const bool with_w = i % 2 == 0, with_b = i % 4 < 2;
    OpResult r = run_op("layer_norm", {in(x), with_w ? weight(w) : none(), with_b ? weight(b) : none(), in(res)});
    Tensor want = ref_layer_norm(ref_binary('+', x, res), with_w ? &w : nullptr, with_b ? &b : nullptr, 1e-5);
    double err = max_abs_error(r.out, want);
    INFO("layer_norm + residual ", dims_str(shape), with_w ? " weight" : "", with_b ? " bias" : "", "\n", r.impl);
    CHECK(err <= kTol);
    worst = std::max(worst, err);
  }
  MESSAGE("layer_norm residual worst abs error " << worst);
}

TEST_CASE("layer_norm shape rule") {
  Rng rng = make_rng(55);
  Tensor x = random_f32(rng, {2, 3, 6});
  std::string msg = error_of([&] { run_op("layer_norm", {in(x), weight(random_f32(rng, {5})), none()}); });
  CHECK(msg == "error: layer_norm 'out': expected weight of shape [6], got [5] ('w1')");
  msg = error_of([&] { run_op("layer_norm", {in(x), none(), none()}, {{"eps", -1.0}}); });
  CHECK(msg == "error: layer_norm 'out': attribute 'eps' must be >= 0");
}
