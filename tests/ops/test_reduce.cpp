// reduce_mean and reduce_sum over one or several axes (negative ones too), keepdims true and false,
// against a double reference.
// Tolerance 1e-4 absolute: a sum may cover up to 17^3 ~= 4900 elements of magnitude <= 1, and f32
// accumulation over that many terms errs by up to ~1e-5 in practice (pairwise/blocked sums as oneDNN
// uses); means divide that by the count. 1e-4 still catches any wrong axis or a missing element (~0.1+).

#include <algorithm>

#include "tests/ops/op_test_util.hpp"

namespace {

using namespace kiln;
using namespace kiln::test;

constexpr double kTol = 1e-4;

double check(Rng& rng, const std::string& op, const std::vector<std::int64_t>& shape,
             const std::vector<std::int64_t>& axes, bool keepdims) {
  Tensor x = random_f32(rng, shape);
  OpResult r = run_op(op, {in(x)}, {{"axes", axes}, {"keepdims", keepdims}});
  Tensor want = ref_reduce(x, axes, keepdims, op == "reduce_mean");
  double err = max_abs_error(r.out, want);
  INFO(op, " ", dims_str(shape), " axes ", dims_str(axes), keepdims ? " keepdims" : "", "\n", r.impl);
  CHECK(r.out.shape() == want.shape());
  CHECK(err <= kTol);
  return err;
}

// A random non-empty set of axes of a rank-`rank` tensor, each written as positive or negative at random.
std::vector<std::int64_t> random_axes(Rng& rng, int rank) {
  std::vector<std::int64_t> axes;
  while (axes.empty())
    for (int a = 0; a < rank; ++a)
      if (random_int(rng, 0, 2) == 0) axes.push_back(random_int(rng, 0, 1) ? a : a - rank);
  std::shuffle(axes.begin(), axes.end(), rng);
  return axes;
}

double check_op(std::uint32_t seed, const std::string& op) {
  Rng rng = make_rng(seed);
  double worst = 0;
  for (bool keep : {false, true}) {
    worst = std::max(worst, check(rng, op, {4, 9, 6}, {1}, keep));           // the classifier's pooling
    worst = std::max(worst, check(rng, op, {5, 3, 7}, {-1}, keep));
    worst = std::max(worst, check(rng, op, {5, 3, 7}, {0, 2}, keep));
    worst = std::max(worst, check(rng, op, {2, 3, 4, 5}, {1, 2}, keep));
    worst = std::max(worst, check(rng, op, {2, 3, 4, 5}, {0, 1, 2, 3}, keep));  // everything: rank 0 or [1,1,1,1]
    worst = std::max(worst, check(rng, op, {17}, {0}, keep));
    for (int i = 0; i < 4; ++i) {
      int rank = static_cast<int>(random_int(rng, 1, 4));
      auto shape = random_shape(rng, rank);
      worst = std::max(worst, check(rng, op, shape, random_axes(rng, rank), keep));
    }
    worst = std::max(worst, check(rng, op, {17, 17, 17}, {0, 1, 2}, keep));  // long sums
  }
  return worst;
}

}  // namespace

TEST_CASE("reduce_mean over axes, keepdims true and false") {
  MESSAGE("reduce_mean worst abs error " << check_op(61, "reduce_mean"));
}

TEST_CASE("reduce_sum over axes, keepdims true and false") {
  MESSAGE("reduce_sum worst abs error " << check_op(62, "reduce_sum"));
}

TEST_CASE("reduce over axes of size 1") {
  // Reducing only size-1 axes leaves every element in place: src and dst dims are equal.
  Rng rng = make_rng(63);
  double worst = 0;
  for (const char* op : {"reduce_mean", "reduce_sum"})
    for (bool keep : {false, true}) {
      worst = std::max(worst, check(rng, op, {1, 5}, {0}, keep));
      worst = std::max(worst, check(rng, op, {4, 1, 6}, {1}, keep));
      worst = std::max(worst, check(rng, op, {1, 1}, {0, 1}, keep));
      worst = std::max(worst, check(rng, op, {5, 1}, {-1}, keep));       // trailing: the oneDNN path
      worst = std::max(worst, check(rng, op, {2, 3, 1}, {2}, keep));
      worst = std::max(worst, check(rng, op, {3, 1, 2}, {1, 2}, keep));  // one size-1 axis among others
    }
  MESSAGE("reduce size-1 axes worst abs error " << worst);
}

TEST_CASE("reduce shape rule") {
  Rng rng = make_rng(64);
  Tensor x = random_f32(rng, {2, 5, 8});
  OpResult r = run_op("reduce_mean", {in(x, {Dim::symbol("batch"), Dim::symbol("seq"), Dim::of(8)})}, {{"axes", std::vector<std::int64_t>{1}}});
  CHECK(r.inferred.str() == "f32[batch,8]");
  r = run_op("reduce_sum", {in(x, {Dim::symbol("batch"), Dim::symbol("seq"), Dim::of(8)})},
             {{"axes", std::vector<std::int64_t>{-2}}, {"keepdims", true}});
  CHECK(r.inferred.str() == "f32[batch,1,8]");
  std::string msg = error_of([&] { run_op("reduce_sum", {in(x)}, {{"axes", std::vector<std::int64_t>{1, -2}}}); });
  CHECK(msg == "error: reduce_sum 'out': attribute 'axes' names axis -2 twice");
  msg = error_of([&] { run_op("reduce_sum", {in(x)}, {{"axes", std::vector<std::int64_t>{}}}); });
  CHECK(msg == "error: reduce_sum 'out': attribute 'axes' must name at least one axis");
}
