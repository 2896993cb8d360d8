// matmul against a naive double-accumulating torch.matmul reference: 2D, 3D, 4D, batch broadcasting on
// either side and rank-mismatched operands.
// Tolerance 1e-4 absolute: with |a|, |b| <= 1 and K <= 17, each output is a sum of at most 17 products of
// magnitude <= 1; f32 accumulation in any order errs by at most ~K * 2^-24 * sum|a_i b_i| ~= 1.7e-5 in
// the worst case (and oneDNN may use FMA, which only reduces it), so 1e-4 leaves a wide margin while
// still catching any wrong element (errors from indexing bugs are O(0.1)).

#include <tuple>

#include "tests/ops/op_test_util.hpp"

namespace {

using namespace kiln;
using namespace kiln::test;

constexpr double kTol = 1e-4;

using Dims = std::vector<std::int64_t>;

double check(Rng& rng, const Dims& sa, const Dims& sb) {
  Tensor a = random_f32(rng, sa), b = random_f32(rng, sb);
  OpResult r = run_op("matmul", {in(a), in(b)});
  Tensor want = ref_matmul(a, b);
  double err = max_abs_error(r.out, want);
  INFO("matmul ", dims_str(sa), " x ", dims_str(sb), "\n", r.impl);
  CHECK(r.out.shape() == want.shape());
  CHECK(err <= kTol);
  return err;
}

// [batch..., m, k] x [batch..., k, n] with random m, k, n.
double check_batched(Rng& rng, const Dims& batch_a, const Dims& batch_b) {
  auto [m, k, n] = std::tuple{random_int(rng, 1, 17), random_int(rng, 1, 17), random_int(rng, 1, 17)};
  Dims sa = batch_a, sb = batch_b;
  sa.insert(sa.end(), {m, k});
  sb.insert(sb.end(), {k, n});
  return check(rng, sa, sb);
}

}  // namespace

TEST_CASE("matmul 2D") {
  Rng rng = make_rng(21);
  double worst = 0;
  for (int i = 0; i < 4; ++i) worst = std::max(worst, check_batched(rng, {}, {}));
  worst = std::max(worst, check(rng, {1, 1}, {1, 1}));
  worst = std::max(worst, check(rng, {1, 17}, {17, 1}));   // dot product
  worst = std::max(worst, check(rng, {17, 1}, {1, 13}));   // outer product
  MESSAGE("matmul 2D worst abs error " << worst);
}

TEST_CASE("matmul 3D and 4D") {
  Rng rng = make_rng(22);
  double worst = 0;
  for (int i = 0; i < 3; ++i) {
    Dims b3 = random_shape(rng, 1, 1, 5);
    worst = std::max(worst, check_batched(rng, b3, b3));
    Dims b4 = random_shape(rng, 2, 1, 5);
    worst = std::max(worst, check_batched(rng, b4, b4));
  }
  worst = std::max(worst, check(rng, {2, 3, 16, 5}, {2, 3, 5, 16}));  // attention-like scores
  MESSAGE("matmul 3D/4D worst abs error " << worst);
}

TEST_CASE("matmul batch broadcast on either side") {
  Rng rng = make_rng(23);
  double worst = 0;
  // The second operand broadcast.
  worst = std::max(worst, check_batched(rng, {4}, {1}));
  worst = std::max(worst, check_batched(rng, {3, 4}, {1, 4}));
  worst = std::max(worst, check_batched(rng, {3, 4}, {3, 1}));
  worst = std::max(worst, check_batched(rng, {5}, {}));        // [5,m,k] x [k,n]
  worst = std::max(worst, check_batched(rng, {2, 3}, {}));     // rank 4 x rank 2
  // The first operand broadcast.
  worst = std::max(worst, check_batched(rng, {1}, {4}));
  worst = std::max(worst, check_batched(rng, {1, 4}, {3, 4}));
  worst = std::max(worst, check_batched(rng, {}, {5}));        // [m,k] x [5,k,n]
  worst = std::max(worst, check_batched(rng, {3}, {2, 3}));    // rank 3 x rank 4
  // Both, on different axes.
  worst = std::max(worst, check_batched(rng, {3, 1}, {1, 4}));
  worst = std::max(worst, check_batched(rng, {1, 2, 1}, {3, 1, 5}));
  MESSAGE("matmul broadcast worst abs error " << worst);
}

TEST_CASE("matmul shape rule") {
  Rng rng = make_rng(24);
  Tensor a = random_f32(rng, {2, 5, 8}), b = random_f32(rng, {8, 3});
  OpResult r = run_op("matmul", {in(a, {Dim::symbol("batch"), Dim::symbol("seq"), Dim::of(8)}), in(b)});
  CHECK(r.inferred.str() == "f32[batch,seq,3]");
  CHECK(max_abs_error(r.out, ref_matmul(a, b)) <= kTol);
  std::string msg = error_of([&] { run_op("matmul", {in(random_f32(rng, {2, 3})), in(random_f32(rng, {4, 2}))}); });
  CHECK(msg == "error: matmul 'out': inner dims differ: f32[2,3] · f32[4,2] (3 vs 4)");
}
