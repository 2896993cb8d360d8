// linear (y = x · Wᵀ + b, W [out, in] as nn.Linear) against a naive double-accumulating reference, with
// and without bias, for inputs of rank 2, 3 and 4, weights as graph constants (as a model file loads
// them) and as run-time inputs; plus the fused forms the passes create (activation, residual).
// Every case runs with Kiln's GEMM (weights packed into panels, the activation in its epilogue) and with
// oneDNN's matmul (KILN_GEMM=onednn, and weights given at run time); tests/ops/test_gemm.cpp covers the GEMM's
// blocking edges at larger sizes.
// Tolerance 1e-4 absolute: |x|, |W|, |b| <= 1 and in_features <= 17, so each output sums at most 18
// terms of magnitude <= 1; f32 accumulation errs by at most ~18 * 2^-24 * 18 ~= 2e-5 (see test_matmul).

#include "ops/gemm.hpp"
#include "tests/ops/op_test_util.hpp"

namespace {

using namespace kiln;
using namespace kiln::test;

constexpr double kTol = 1e-4;

/// Kernels made while this lives use Kiln's own kernels (`kiln`) or oneDNN's.
struct KernelChoice {
  explicit KernelChoice(bool kiln) { gemm::override_enabled(kiln); }
  ~KernelChoice() { gemm::override_enabled(std::nullopt); }
};

double check(Rng& rng, const std::vector<std::int64_t>& x_shape, std::int64_t out_features, bool bias,
             bool constants = true) {
  const std::int64_t in_features = x_shape.back();
  Tensor x = random_f32(rng, x_shape);
  Tensor w = random_f32(rng, {out_features, in_features});
  Tensor b = random_f32(rng, {out_features});
  auto param = [&](const Tensor& t) { return constants ? weight(t) : in(t); };
  Tensor want = ref_linear(x, w, bias ? &b : nullptr);
  double worst = 0;
  for (bool kiln_kernels : {true, false}) {
    KernelChoice choice(kiln_kernels);
    OpResult r = run_op("linear", {in(x), param(w), bias ? param(b) : none()});
    double err = max_abs_error(r.out, want);
    INFO("linear ", dims_str(x_shape), " -> ", out_features, bias ? " with bias" : " without bias", "\n", r.impl);
    CHECK(r.out.shape() == want.shape());
    CHECK(err <= kTol);
    // Kiln's GEMM packs constant weights; weights given at run time always go to oneDNN.
    const bool kiln = kiln_kernels && constants && gemm::available();
    // Which kernel runs depends on the CPU (and KILN_MAX_ISA): Kiln's reports the variant gemm::variant()
    // names; oneDNN's is one of its optimized implementations (whichever this CPU gets), never its
    // reference one.
    if (kiln) {
      CHECK(r.impl.find(std::string("[") + gemm::variant() + "]") != std::string::npos);
    } else {
      CHECK(r.impl.find("[kiln:") == std::string::npos);
      CHECK(r.impl.find("[ref") == std::string::npos);
      CHECK(r.impl.find("  [") != std::string::npos);  // a oneDNN primitive's name is there
    }
    worst = std::max(worst, err);
  }
  return worst;
}

}  // namespace

TEST_CASE("linear with bias, rank 2/3/4 inputs") {
  Rng rng = make_rng(31);
  double worst = 0;
  for (int rank = 2; rank <= 4; ++rank)
    for (int i = 0; i < 2; ++i) worst = std::max(worst, check(rng, random_shape(rng, rank), random_int(rng, 1, 17), true));
  worst = std::max(worst, check(rng, {1, 1}, 1, true));
  worst = std::max(worst, check(rng, {3, 1, 17}, 13, true));
  MESSAGE("linear with bias worst abs error " << worst);
}

TEST_CASE("linear without bias, rank 2/3/4 inputs") {
  Rng rng = make_rng(32);
  double worst = 0;
  for (int rank = 2; rank <= 4; ++rank)
    for (int i = 0; i < 2; ++i) worst = std::max(worst, check(rng, random_shape(rng, rank), random_int(rng, 1, 17), false));
  worst = std::max(worst, check(rng, {5, 1}, 17, false));
  MESSAGE("linear without bias worst abs error " << worst);
}

TEST_CASE("linear with weights given at run time") {
  Rng rng = make_rng(33);
  double worst = 0;
  worst = std::max(worst, check(rng, {2, 7, 9}, 5, true, false));
  worst = std::max(worst, check(rng, {4, 9}, 11, false, false));
  MESSAGE("linear run-time weights worst abs error " << worst);
}

TEST_CASE("linear with a fused activation and residual") {
  // What the fusion passes produce: act(x · Wᵀ + b) + residual, as the GEMM's epilogue or oneDNN post-ops.
  Rng rng = make_rng(35);
  double worst = 0;
  for (bool kiln_kernels : {true, false})
  for (const char* act : {"none", "relu", "gelu", "gelu_tanh", "tanh", "sigmoid"})
    for (bool residual : {false, true})
      for (bool bias : {false, true}) {
        auto x_shape = random_shape(rng, static_cast<int>(random_int(rng, 2, 4)), 1, 9);
        const std::int64_t n = random_int(rng, 1, 17);
        auto out_shape = x_shape;
        out_shape.back() = n;
        Tensor x = random_f32(rng, x_shape), w = random_f32(rng, {n, x_shape.back()}), b = random_f32(rng, {n});
        Tensor res = random_f32(rng, out_shape);
        KernelChoice choice(kiln_kernels);
        OpResult r = run_op("linear", {in(x), weight(w), bias ? weight(b) : none(), residual ? in(res) : none()},
                            {{"activation", std::string(act)}});
        const bool kiln = kiln_kernels && gemm::available();
        CHECK((r.impl.find(std::string("[") + gemm::variant() + "]") != std::string::npos) == kiln);
        Tensor want = ref_linear(x, w, bias ? &b : nullptr);
        if (std::string(act) != "none") want = ref_unary(act, want);
        if (residual) want = ref_binary('+', want, res);
        double err = max_abs_error(r.out, want);
        INFO("linear ", dims_str(x_shape), " -> ", n, " activation ", act, residual ? " + residual" : "",
             bias ? " with bias" : "", "\n", r.impl);
        CHECK(err <= kTol);
        worst = std::max(worst, err);
      }
  MESSAGE("linear activation/residual worst abs error " << worst);
}

TEST_CASE("linear shape rule") {
  Rng rng = make_rng(34);
  Tensor x = random_f32(rng, {2, 3, 8}), w = random_f32(rng, {5, 8}), b = random_f32(rng, {5});
  OpResult r = run_op("linear", {in(x, {Dim::symbol("batch"), Dim::symbol("seq"), Dim::of(8)}), weight(w), weight(b)});
  CHECK(r.inferred.str() == "f32[batch,seq,5]");
  CHECK(max_abs_error(r.out, ref_linear(x, w, &b)) <= kTol);
  std::string msg = error_of([&] { run_op("linear", {in(x), weight(random_f32(rng, {5, 7}))}); });
  CHECK(msg == "error: linear 'out': expected weight of shape [*,8] for input f32[2,3,8], got [5,7]");
  msg = error_of([&] { run_op("linear", {in(x), weight(w), weight(random_f32(rng, {4}))}); });
  CHECK(msg == "error: linear 'out': expected bias of shape [5], got [4] ('w2')");
}
