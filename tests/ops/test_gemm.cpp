// Kiln's GEMM (ops/gemm.hpp) against a double-precision reference: shapes that cross every blocking
// edge (rows not a multiple of the 6-row register block and above the 144-row block, columns not a
// multiple of the 16-column panel, depths above the 512 K block), row strides larger than the rows,
// each part of the epilogue and each activation, one and two threads; the packing routines, the shared pack cache, the
// row softmax, and the per-thread buffers. Every kernel variant the CPU has under the ISA cap is checked
// (gemm::override_variant: on an AVX-512 host both the AVX-512 and the AVX2 kernels); no test names an
// instruction set it expects, it asks the library (isa::effective(), gemm::variant()).
// Tolerance, per element: an f32 sum of k products, in any order, errs by at most about k·u·Σ|aᵢwᵢ|
// (u = 2^-24; Higham, Accuracy and Stability, §3.1), so each result is checked against
// (k+2)·u·Σ|aᵢwᵢ| plus the rounding of the epilogue's own adds: a bound, not a guess.

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ops/gemm.hpp"
#include "ops/isa.hpp"
#include "tests/gemm_test_util.hpp"
#include "tests/test_util.hpp"

namespace {

using kiln::isa::Level;

using kiln::test::VariantChoice;

using kiln::gemm::Epilogue;

constexpr double kU = 5.96e-8;  // 2^-24

struct AlignedFloats {
  explicit AlignedFloats(std::size_t n)
      : data(static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64 + 64))) {}
  ~AlignedFloats() { std::free(data); }
  AlignedFloats(const AlignedFloats&) = delete;
  AlignedFloats& operator=(const AlignedFloats&) = delete;
  float* data;
};

using kiln::test::random_floats;

struct Shape {
  std::int64_t rows, n, k;
};

/// Runs one product with the given epilogue parts and strides; returns the worst error over the bound
/// (<= 1 passes).
using kiln::gemm::Activation;

double activation_of(double v, Activation act) {
  switch (act) {
    case Activation::None: return v;
    case Activation::Relu: return std::max(v, 0.0);
    case Activation::Gelu: return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
    case Activation::GeluTanh: return 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
    case Activation::Tanh: return std::tanh(v);
    case Activation::Sigmoid: return 1.0 / (1.0 + std::exp(-v));
  }
  return v;
}

double check(std::mt19937& rng, const Shape& s, bool bias, Activation act, bool residual, float scale, int threads) {
  const std::int64_t lda = s.k + 3, ldc = s.n + 5;
  std::vector<float> a = random_floats(rng, static_cast<std::size_t>(s.rows * lda), -1.f, 1.f);
  std::vector<float> w = random_floats(rng, static_cast<std::size_t>(s.n * s.k), -0.5f, 0.5f);
  std::vector<float> b = random_floats(rng, static_cast<std::size_t>(s.n), -1.f, 1.f);
  std::vector<float> res = random_floats(rng, static_cast<std::size_t>(s.rows * s.n), -1.f, 1.f);
  std::vector<float> c(static_cast<std::size_t>(s.rows * ldc), 12345.f);
  AlignedFloats packed(kiln::gemm::packed_floats(s.n, s.k));
  kiln::gemm::pack_weights(w.data(), s.n, s.k, packed.data);
  Epilogue ep;
  ep.scale = scale;
  ep.bias = bias ? b.data() : nullptr;
  ep.activation = act;
  ep.residual = residual ? res.data() : nullptr;
  ep.ldr = s.n;
  kiln::gemm::multiply(a.data(), lda, packed.data, c.data(), ldc, s.rows, s.n, s.k, ep, threads);
  double worst = 0;
  for (std::int64_t i = 0; i < s.rows; ++i) {
    for (std::int64_t j = 0; j < s.n; ++j) {
      double sum = 0, mag = 0;
      for (std::int64_t p = 0; p < s.k; ++p) {
        const double t = static_cast<double>(a[i * lda + p]) * w[j * s.k + p];
        sum += t;
        mag += std::fabs(t);
      }
      const double pre = sum * scale + (bias ? b[j] : 0.0);
      double want = activation_of(pre, act);
      if (residual) want += res[i * s.n + j];
      // The activations have slope <= 1.13 (gelu's largest), so the product's error passes through
      // scaled by at most 1.13; their own approximation adds ~3e-7 absolute per unit of |pre| (erf, exp).
      const double bound = 1.13 * (static_cast<double>(s.k) + 2) * kU * mag * std::fabs(scale) +
                           4 * kU * (std::fabs(want) + (bias ? std::fabs(b[j]) : 0.0) + 1.0) +
                           (act == Activation::None || act == Activation::Relu ? 0.0 : 5e-7 * (1.0 + std::fabs(pre))) +
                           1e-30;
      worst = std::max(worst, std::fabs(c[i * ldc + j] - want) / bound);
    }
    // The padding of each C row past n is never written.
    for (std::int64_t j = s.n; j < ldc; ++j)
      if (c[i * ldc + j] != 12345.f) return 1e30;
  }
  return worst;
}

}  // namespace

TEST_CASE(
    "gemm: products across the blocking edges, with each activation, equal a double reference within the f32 bound") {
  if (!kiln::gemm::available()) {
    MESSAGE("this CPU has no AVX2+FMA: Kiln's GEMM is not used here (oneDNN runs the products)");
    CHECK(!kiln::gemm::enabled());
    return;
  }
  // Rows: under, at and over both register blocks (6, 12) and the 144-row block; columns: partial panels,
  // an odd number of panels (the AVX-512 kernel's single-panel tail) and whole pairs; depths over 512.
  const Shape shapes[] = {{1, 1, 1},     {1, 16, 512},   {5, 17, 3},    {6, 16, 16},  {7, 33, 100},
                          {13, 15, 513}, {150, 40, 70},  {289, 48, 31}, {2, 2, 1100}, {31, 200, 640},
                          {12, 32, 64},  {25, 47, 1030}, {145, 80, 17}, {1, 2048, 8}};
  for (Level level : kiln::test::gemm_levels()) {
    VariantChoice choice(level);
    REQUIRE(kiln::gemm::variant_level() == level);
    std::mt19937 rng(71);
    double worst = 0;
    for (const Shape& s : shapes)
      for (int threads : {1, 2}) {
        INFO(std::string(kiln::gemm::variant())
             << ": rows " << s.rows << " n " << s.n << " k " << s.k << ", " << threads << " thread(s)");
        const double plain = check(rng, s, false, Activation::None, false, 1.0f, threads);
        const double all = check(rng, s, true, Activation::Relu, true, 0.125f, threads);
        const double bias_relu = check(rng, s, true, Activation::Relu, false, 1.0f, threads);
        CHECK(plain <= 1.0);
        CHECK(all <= 1.0);
        CHECK(bias_relu <= 1.0);
        worst = std::max({worst, plain, all, bias_relu});
        for (Activation act : {Activation::Gelu, Activation::GeluTanh, Activation::Tanh, Activation::Sigmoid}) {
          INFO("activation " << static_cast<int>(act));
          const double with_act = check(rng, s, true, act, true, 1.0f, threads);
          CHECK(with_act <= 1.0);
          worst = std::max(worst, with_act);
        }
      }
    MESSAGE(std::string(kiln::gemm::variant()) << " worst error / f32 bound: " << worst);
  }
}

TEST_CASE("gemm: the variant follows isa::effective(), and a forced variant is never above it") {
  if (!kiln::gemm::available()) return;
  const Level eff = kiln::isa::effective();
  CHECK(kiln::gemm::variant_level() == eff);
  CHECK(std::string(kiln::gemm::variant()) == std::string("kiln:gemm_") + kiln::isa::name(eff));
  CHECK(kiln::gemm::override_variant(Level::avx2) == Level::avx2);
  CHECK(std::string(kiln::gemm::variant()) ==
        std::string("kiln:gemm_") + kiln::isa::name(Level::avx2));  // forced, so on any host
  CHECK(kiln::gemm::override_variant(Level::avx512) == eff);        // clamped to what the CPU and cap allow
  CHECK(kiln::gemm::variant_level() == eff);
  CHECK(kiln::gemm::override_variant(Level::sse41) == Level::avx2);  // no kernel below AVX2
  CHECK(kiln::gemm::override_variant(std::nullopt) == eff);
  CHECK(std::string(kiln::gemm::variant()) == std::string("kiln:gemm_") + kiln::isa::name(eff));
}

TEST_CASE("gemm: every variant gives the same products on a model-sized shape") {
  // The variants sum each product in the same order (k ascending, one FMA each; a row alone in its register
  // block in the same 4 interleaved sums in both: 37 rows leave one in each) and share the epilogue's
  // formulas, so they agree to within a few ulps (contraction of the epilogue may differ); checked here
  // against each other on a Transformer FFN shape with 2 threads.
  if (!kiln::gemm::available() || kiln::test::gemm_levels().size() < 2) return;
  const std::int64_t rows = 37, n = 2048 + 16 + 5, k = 512 + 40;
  std::mt19937 rng(73);
  std::vector<float> a = random_floats(rng, static_cast<std::size_t>(rows * k), -1.f, 1.f);
  std::vector<float> w = random_floats(rng, static_cast<std::size_t>(n * k), -0.5f, 0.5f);
  std::vector<float> b = random_floats(rng, static_cast<std::size_t>(n), -1.f, 1.f);
  AlignedFloats packed(kiln::gemm::packed_floats(n, k));
  kiln::gemm::pack_weights(w.data(), n, k, packed.data);
  Epilogue ep;
  ep.bias = b.data();
  ep.activation = Activation::Gelu;
  std::vector<std::vector<float>> out;
  for (Level level : kiln::test::gemm_levels()) {
    VariantChoice choice(level);
    out.emplace_back(static_cast<std::size_t>(rows * n));
    kiln::gemm::multiply(a.data(), k, packed.data, out.back().data(), n, rows, n, k, ep, 2);
  }
  double worst = 0;
  for (std::size_t i = 0; i < out[0].size(); ++i)
    worst = std::max(worst, std::fabs(double(out[0][i]) - out[1][i]) / (std::fabs(double(out[0][i])) + 1e-3));
  MESSAGE("largest relative difference between the variants: " << worst);
  CHECK(worst <= 1e-5);
}

TEST_CASE("gemm: an empty depth gives the epilogue of zero, empty rows or columns write nothing") {
  if (!kiln::gemm::available()) return;
  const float bias[3] = {-1.f, 2.f, 0.5f}, res[6] = {1, 1, 1, 1, 1, 1};
  float c[6] = {9, 9, 9, 9, 9, 9};
  AlignedFloats packed(16);
  Epilogue ep;
  ep.bias = bias;
  ep.activation = Activation::Relu;
  ep.residual = res;
  ep.ldr = 3;
  kiln::gemm::multiply(nullptr, 0, packed.data, c, 3, 2, 3, 0, ep);
  CHECK(std::vector<float>(c, c + 6) == std::vector<float>{1, 3, 1.5f, 1, 3, 1.5f});
  float d[2] = {7, 7};
  kiln::gemm::multiply(nullptr, 0, packed.data, d, 1, 0, 2, 4, Epilogue{});
  kiln::gemm::multiply(nullptr, 0, packed.data, d, 1, 2, 0, 4, Epilogue{});
  CHECK(d[0] == 7.f);
  CHECK(d[1] == 7.f);
}

TEST_CASE("gemm: packing lays out 16-column panels, zero-padded, and strided or column-major sources agree") {
  // w [n=18, k=3]: panel 0 holds columns 0..15, panel 1 columns 16, 17 and 14 zeros, each k-major.
  std::vector<float> w(18 * 3);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i + 1);
  REQUIRE(kiln::gemm::packed_floats(18, 3) == 2 * 16 * 3);
  std::vector<float> out(kiln::gemm::packed_floats(18, 3), -1.f);
  kiln::gemm::pack_weights(w.data(), 18, 3, out.data());
  CHECK(out[0] == w[0 * 3 + 0]);                 // panel 0, k 0, column 0
  CHECK(out[1] == w[1 * 3 + 0]);                 // column 1
  CHECK(out[16 + 5] == w[5 * 3 + 1]);            // k 1, column 5
  CHECK(out[48 + 16 * 2 + 1] == w[17 * 3 + 2]);  // panel 1, k 2, column 17
  CHECK(out[48 + 16 * 2 + 2] == 0.f);            // column 18 does not exist
  // The same weights with a row stride of 5, and given as b = wᵀ [k, n] to pack_columns.
  std::vector<float> strided(18 * 5, 99.f), bt(3 * 18);
  for (int j = 0; j < 18; ++j)
    for (int p = 0; p < 3; ++p) {
      strided[j * 5 + p] = w[j * 3 + p];
      bt[p * 18 + j] = w[j * 3 + p];
    }
  std::vector<float> out2(out.size(), -2.f), out3(out.size(), -3.f);
  kiln::gemm::pack_weights(strided.data(), 5, 18, 3, out2.data());
  kiln::gemm::pack_columns(bt.data(), 18, 3, 18, out3.data());
  CHECK(out2 == out);
  CHECK(out3 == out);
  // Every variant packs the same panels (the AVX-512 one transposes 16x16 tiles): a plan file's panels
  // are valid on any host. Depths under, at and over 16 and columns past a whole panel, strided rows.
  for (std::int64_t n : {1, 16, 18, 33})
    for (std::int64_t k : {1, 15, 16, 17, 40}) {
      std::vector<float> src(static_cast<std::size_t>(n * (k + 3)));
      for (std::size_t i = 0; i < src.size(); ++i) src[i] = static_cast<float>(i) * 0.5f;
      std::vector<std::vector<float>> packs;
      for (Level level : kiln::test::gemm_levels()) {
        VariantChoice choice(level);
        packs.emplace_back(kiln::gemm::packed_floats(n, k), -7.f);
        kiln::gemm::pack_weights(src.data(), k + 3, n, k, packs.back().data());
      }
      for (std::int64_t p = 0; p < (n + 15) / 16; ++p)
        for (std::int64_t i = 0; i < k; ++i)
          for (std::int64_t j = 0; j < 16; ++j) {
            const std::int64_t col = p * 16 + j;
            const float want = col < n ? src[static_cast<std::size_t>(col * (k + 3) + i)] : 0.f;
            for (const auto& packed : packs) REQUIRE(packed[static_cast<std::size_t>(p * 16 * k + i * 16 + j)] == want);
          }
    }
}

TEST_CASE("gemm: softmax_rows equals a double softmax and log_softmax, with -inf entries, any row length") {
  if (!kiln::gemm::available()) return;
  for (Level level : kiln::test::gemm_levels()) {
    VariantChoice choice(level);
    INFO(kiln::isa::name(level));
    std::mt19937 rng(72);
    for (std::int64_t n : {1, 7, 8, 9, 15, 16, 17, 64, 129}) {
      std::vector<float> x = random_floats(rng, static_cast<std::size_t>(3 * n), -30.f, 30.f);
      if (n > 2) x[1] = -INFINITY;  // a masked key
      std::vector<float> y = x, logs(x.size());
      kiln::gemm::softmax_rows(y.data(), y.data(), 3, n);  // in place
      kiln::gemm::softmax_rows(x.data(), logs.data(), 3, n, true);
      for (std::int64_t r = 0; r < 3; ++r) {
        double max = -INFINITY, sum = 0;
        for (std::int64_t j = 0; j < n; ++j) max = std::max(max, static_cast<double>(x[r * n + j]));
        for (std::int64_t j = 0; j < n; ++j) sum += std::exp(x[r * n + j] - max);
        for (std::int64_t j = 0; j < n; ++j) {
          const double want = std::exp(x[r * n + j] - max) / sum;
          INFO("n " << n << " row " << r << " column " << j);
          // Relative 1e-6 (polynomial ~2e-7 plus the sum's rounding) plus the rounding of the f32 difference
          // x - max, which moves e^(x-max) by |x-max|·u relative; inputs more than 87 below the row's max
          // give e^-87 / sum (1.6e-38) instead of 0.
          const double shift = std::fabs(x[r * n + j] - max);
          CHECK(std::fabs(y[r * n + j] - want) <= (1e-6 + (std::isinf(shift) ? 0.0 : shift) * kU) * want + 1e-37);
          // log softmax: x - max - log(sum), rounding of each f32 term (|x - max| and log(sum) <= ~70 here)
          const double want_log = x[r * n + j] - max - std::log(sum);
          if (std::isinf(want_log)) CHECK(std::isinf(logs[r * n + j]));
          else
            CHECK(std::fabs(logs[r * n + j] - want_log) <=
                  4 * kU * (std::fabs(x[r * n + j]) + std::fabs(max) + std::fabs(std::log(sum)) + 1));
        }
      }
    }
  }
}

TEST_CASE("gemm: a thread's buffer grows when asked for more and is reused otherwise") {
  float* small = kiln::gemm::thread_buffer(2, 100);
  CHECK(kiln::gemm::thread_buffer(2, 50) == small);
  float* large = kiln::gemm::thread_buffer(2, 100000);
  large[99999] = 1.f;  // writable to its end
  CHECK(kiln::gemm::thread_buffer(2, 100000) == large);
  CHECK(reinterpret_cast<std::uintptr_t>(large) % 64 == 0);
  CHECK(kiln::gemm::thread_buffer(3, 10) != large);
}
