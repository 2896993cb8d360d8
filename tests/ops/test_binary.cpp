// add, sub, mul, div against a naive broadcasting reference. Covers oneDNN's path (second operand
// broadcast), the operand swap add/mul use when the first operand is broadcast, the TBB fallback kernel
// sub/div take in that case (and every op takes when both operands broadcast), and rank mismatches.
// Tolerance 1e-5 absolute: one f32 rounding of results with |y| <= 4 (divisors are kept in [0.5, 2)).

#include <array>

#include "tests/ops/op_test_util.hpp"

namespace {

using namespace kiln;
using namespace kiln::test;

struct BinaryOp {
  const char* name;
  char sym;
  bool commutative;
};
constexpr std::array<BinaryOp, 4> kOps{{{"add", '+', true}, {"sub", '-', false}, {"mul", '*', true}, {"div", '/', false}}};

constexpr double kTol = 1e-5;

Tensor operand(Rng& rng, const BinaryOp& op, const std::vector<std::int64_t>& shape, bool divisor) {
  // Divisors away from zero, so the quotient stays bounded.
  return divisor && op.sym == '/' ? random_f32(rng, shape, 0.5f, 2.f) : random_f32(rng, shape);
}

/// Runs `op(a, b)` on random data of the given shapes and checks it; returns the max abs error. When
/// `fallback` is set, also checks whether the TBB broadcast kernel ran (true) or oneDNN did (false).
double check(Rng& rng, const BinaryOp& op, const std::vector<std::int64_t>& sa, const std::vector<std::int64_t>& sb,
             int fallback = -1) {
  Tensor a = operand(rng, op, sa, false), b = operand(rng, op, sb, true);
  OpResult r = run_op(op.name, {in(a), in(b)});
  Tensor want = ref_binary(op.sym, a, b);
  double err = max_abs_error(r.out, want);
  INFO(op.name, " ", dims_str(sa), " vs ", dims_str(sb), "\n", r.impl);
  CHECK(r.out.shape() == want.shape());
  CHECK(err <= kTol);
  if (fallback >= 0) CHECK((r.impl.find("kiln:tbb_broadcast") != std::string::npos) == (fallback == 1));
  return err;
}

// A copy of `full` with each dim set to 1 with probability 1/2.
std::vector<std::int64_t> with_ones(Rng& rng, std::vector<std::int64_t> full) {
  for (auto& d : full)
    if (random_int(rng, 0, 1)) d = 1;
  return full;
}

}  // namespace

TEST_CASE("binary ops: same shapes") {
  Rng rng = make_rng(1);
  double worst = 0;
  for (const auto& op : kOps)
    for (int rank = 1; rank <= 4; ++rank) {
      auto s = random_shape(rng, rank);
      worst = std::max(worst, check(rng, op, s, s, 0));
    }
  // Odd sizes and 1s explicitly.
  for (const auto& op : kOps) {
    worst = std::max(worst, check(rng, op, {1}, {1}, 0));
    worst = std::max(worst, check(rng, op, {17, 1, 13}, {17, 1, 13}, 0));
  }
  MESSAGE("binary same-shape worst abs error " << worst);
}

TEST_CASE("binary ops: second operand broadcast runs oneDNN") {
  Rng rng = make_rng(2);
  double worst = 0;
  for (const auto& op : kOps) {
    worst = std::max(worst, check(rng, op, {3, 4, 5}, {1, 4, 1}, 0));
    worst = std::max(worst, check(rng, op, {7, 9}, {9}, 0));       // rank mismatch: bias-like
    worst = std::max(worst, check(rng, op, {2, 3, 5}, {1}, 0));     // scalar-like
    for (int i = 0; i < 3; ++i) {
      auto full = random_shape(rng, static_cast<int>(random_int(rng, 2, 4)));
      auto b = with_ones(rng, full);
      b.erase(b.begin(), b.begin() + random_int(rng, 0, static_cast<std::int64_t>(b.size()) - 1));
      worst = std::max(worst, check(rng, op, full, b, 0));
    }
  }
  MESSAGE("binary second-broadcast worst abs error " << worst);
}

TEST_CASE("binary ops: first operand broadcast (swap for add/mul, TBB fallback for sub/div)") {
  Rng rng = make_rng(3);
  double worst = 0;
  for (const auto& op : kOps) {
    const int fallback = op.commutative ? 0 : 1;
    worst = std::max(worst, check(rng, op, {1, 4, 1}, {3, 4, 5}, fallback));
    worst = std::max(worst, check(rng, op, {9}, {7, 9}, fallback));
    worst = std::max(worst, check(rng, op, {1}, {2, 3, 5}, fallback));
    worst = std::max(worst, check(rng, op, {1}, {7}, fallback));  // rank 1: no outer loop
    worst = std::max(worst, check(rng, op, {5, 1}, {2, 5, 11}, fallback));  // inner dim broadcast in the loop
    for (int i = 0; i < 3; ++i) {
      auto full = random_shape(rng, static_cast<int>(random_int(rng, 2, 4)));
      auto a = with_ones(rng, full);
      a.erase(a.begin(), a.begin() + random_int(rng, 0, static_cast<std::int64_t>(a.size()) - 1));
      std::vector<std::int64_t> padded(full.size() - a.size(), 1);
      padded.insert(padded.end(), a.begin(), a.end());
      worst = std::max(worst, check(rng, op, a, full, padded == full ? 0 : fallback));
    }
  }
  MESSAGE("binary first-broadcast worst abs error " << worst);
}

TEST_CASE("binary ops: both operands broadcast, rank-mismatched shapes") {
  Rng rng = make_rng(4);
  double worst = 0;
  for (const auto& op : kOps) {
    worst = std::max(worst, check(rng, op, {3, 1, 5}, {4, 5}, 1));  // -> [3,4,5]
    worst = std::max(worst, check(rng, op, {4, 5}, {3, 1, 5}, 1));
    worst = std::max(worst, check(rng, op, {4, 1}, {1, 5}, 1));     // outer product
    worst = std::max(worst, check(rng, op, {2, 1, 3, 1}, {7, 1, 6}, 1));
    for (int i = 0; i < 3; ++i) {
      auto full = random_shape(rng, 4, 2, 9);
      auto a = full, b = full;
      for (std::size_t d = 0; d < full.size(); ++d) (random_int(rng, 0, 1) ? a : b)[d] = 1;
      if (a == full || b == full) continue;
      worst = std::max(worst, check(rng, op, a, b, 1));
    }
  }
  MESSAGE("binary both-broadcast worst abs error " << worst);
}

TEST_CASE("binary ops: symbolic shapes infer the broadcast shape") {
  Rng rng = make_rng(5);
  Tensor a = random_f32(rng, {3, 6, 8}), b = random_f32(rng, {8});
  OpResult r = run_op("add", {in(a, {Dim::symbol("batch"), Dim::symbol("seq"), Dim::of(8)}), in(b)});
  CHECK(r.inferred.str() == "f32[batch,seq,8]");
  CHECK(max_abs_error(r.out, ref_binary('+', a, b)) <= kTol);

  Tensor c = random_f32(rng, {3, 1, 8});
  r = run_op("sub", {in(c, {Dim::symbol("batch"), Dim::of(1), Dim::of(8)}), in(a, {Dim::symbol("batch"), Dim::symbol("seq"), Dim::of(8)})});
  CHECK(r.inferred.str() == "f32[batch,seq,8]");
  CHECK(max_abs_error(r.out, ref_binary('-', c, a)) <= kTol);

  std::string msg = error_of([&] { run_op("mul", {in(random_f32(rng, {3, 4})), in(random_f32(rng, {5}))}); });
  CHECK(msg == "error: mul 'out': cannot broadcast shapes [3,4] and [5] (dim 1: 4 vs 5)");
}
