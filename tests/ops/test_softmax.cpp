// softmax along each axis of 3D tensors (and negative axes) against a max-subtracted double reference.
// Tolerance 1e-5 absolute: outputs lie in [0, 1]; f32 exp and a sum of at most 17 terms err by a few
// ulp of 1 (~1e-7), so 1e-5 is loose for correct kernels yet catches a wrong axis (errors ~0.1).

#include "ops/gemm.hpp"
#include "tests/ops/op_test_util.hpp"

namespace {

using namespace kiln;
using namespace kiln::test;

constexpr double kTol = 1e-5;

// Along the last axis with Kiln's kernels enabled the op runs Kiln's row loop, else oneDNN's primitive:
// both are checked.
double check(Rng& rng, const std::vector<std::int64_t>& shape, std::int64_t axis) {
  Tensor x = random_f32(rng, shape, -4.f, 4.f);
  Tensor want = ref_softmax(x, static_cast<int>(axis));
  double worst = 0;
  // Kiln's row loop once per variant this CPU runs (AVX-512 and AVX2 on an AVX-512 host), then oneDNN.
  std::vector<std::pair<bool, isa::Level>> runs{{true, isa::Level::avx2}, {false, isa::Level::avx2}};
  if (isa::has(isa::Level::avx512)) runs.insert(runs.begin(), {true, isa::Level::avx512});
  for (const auto& run : runs) {
    // Not a structured binding: INFO captures these in a lambda, which clang 14 (the sanitizer build)
    // does not allow for bindings (C++20 P1091, clang 16).
    const bool kiln_kernels = run.first;
    const isa::Level level = run.second;
    gemm::override_enabled(kiln_kernels);
    gemm::override_variant(level);
    OpResult r = run_op("softmax", {in(x)}, {{"axis", axis}});
    gemm::override_variant(std::nullopt);
    gemm::override_enabled(std::nullopt);
    double err = max_abs_error(r.out, want);
    INFO("softmax ", dims_str(shape), " axis ", axis, " ", isa::name(level), "\n", r.impl);
    CHECK(r.out.shape() == shape);
    CHECK(err <= kTol);
    const bool last = axis == -1 || axis == static_cast<std::int64_t>(shape.size()) - 1;
    CHECK((r.impl.find("[kiln:softmax_rows]") != std::string::npos) == (kiln_kernels && last && gemm::available()));
    worst = std::max(worst, err);
  }
  return worst;
}

}  // namespace

TEST_CASE("softmax over each axis of a 3D tensor") {
  Rng rng = make_rng(41);
  double worst = 0;
  for (int i = 0; i < 3; ++i) {
    auto shape = random_shape(rng, 3);
    for (std::int64_t axis = 0; axis < 3; ++axis) worst = std::max(worst, check(rng, shape, axis));
  }
  for (std::int64_t axis = 0; axis < 3; ++axis) worst = std::max(worst, check(rng, {1, 17, 1}, axis));
  MESSAGE("softmax worst abs error " << worst);
}

TEST_CASE("softmax with negative axes and the default axis") {
  Rng rng = make_rng(42);
  double worst = 0;
  for (int i = 0; i < 3; ++i) {
    auto shape = random_shape(rng, 3);
    for (std::int64_t axis = -3; axis < 0; ++axis) worst = std::max(worst, check(rng, shape, axis));
  }
  // Default axis = -1, on other ranks too.
  for (int rank = 1; rank <= 4; ++rank) {
    auto shape = random_shape(rng, rank);
    Tensor x = random_f32(rng, shape, -4.f, 4.f);
    OpResult r = run_op("softmax", {in(x)});
    double err = max_abs_error(r.out, ref_softmax(x, -1));
    CHECK(err <= kTol);
    worst = std::max(worst, err);
  }
  MESSAGE("softmax negative/default axis worst abs error " << worst);
}

TEST_CASE("softmax rejects an out-of-range axis") {
  Rng rng = make_rng(43);
  std::string msg = error_of([&] { run_op("softmax", {in(random_f32(rng, {2, 3, 4}))}, {{"axis", std::int64_t{3}}}); });
  CHECK(msg == "error: softmax 'out': attribute 'axis' = 3 is out of range for rank 3 (expected -3..2)");
}
