// Kiln's kernels for quantized weights (ops/qgemm.hpp): packing round trips, the portable reference
// against the f32 product (within the quantization error), and every vector variant the CPU runs under the
// ISA cap against the reference (qgemm::multiply_reference is the oracle): odd shapes, row strides, row0
// views of a packed weight, each epilogue part, one and two threads, the worst case for int8 overflow and
// saturation, zero rows and columns, and the non-finite policy. No test names the instruction set or kernel
// it expects: it forces each level with gemm::override_variant and asks qgemm::variant() what runs.
//
// What "equal" means:
//   - s8: each variant is compared with the reference of its own activation scheme,
//     multiply_reference(..., qgemm::activation_levels(f)): 8-bit (qa in [-127, 127]) on VNNI, 7-bit (qa in
//     [-63, 63]) on AVX2. The vector kernels sum the same integer products exactly in s32 (VNNI: u8 = qa + 128
//     against s8, minus 128·Σq, exact modulo 2^32 and so exact while the true sum fits; AVX2: u8 = qa + 64
//     against s8 by vpmaddubsw, |pair| <= 2·127·127 = 32258 < 32767, then vpmaddwd, minus 64·Σq), quantize
//     the rows with the same f32 division and round-to-nearest-even, and dequantize as (sa·scale)·float(Σ),
//     the reference's order. So with no activation or relu the results are bit-identical to the reference; gelu, gelu_tanh, tanh and sigmoid use the vector approximations of
//     gemm's epilogue (gemm.hpp: ~3e-7 absolute per unit), so those are compared within 2e-6·(1 + |x|).
//   - bf16: the rows are rounded to bf16 exactly as the reference rounds them and each bf16 x bf16 product
//     is exact in f32, but vdpbf16ps and the two-chain kernels add in a different order: compared within the
//     f32 bound of a k-term sum, (k+2)·u·Σ|aᵢwᵢ| (u = 2^-24).

#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "kiln/error.hpp"
#include "ops/gemm.hpp"
#include "ops/isa.hpp"
#include "ops/qgemm.hpp"
#include "tests/gemm_test_util.hpp"
#include "tests/test_util.hpp"

namespace {

using kiln::gemm::Activation;
using kiln::gemm::Epilogue;
using kiln::isa::Level;
using kiln::qgemm::Format;
namespace qgemm = kiln::qgemm;

constexpr double kU = 5.96e-8;  // 2^-24
constexpr float kFill = 12345.f;

using kiln::test::VariantChoice;

struct Packed {
  Packed(Format f, const std::vector<float>& w, std::int64_t n, std::int64_t k)
      : bytes(qgemm::packed_bytes(f, n, k)), data(std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64)) {
    qgemm::pack(f, w.data(), n, k, data);
  }
  ~Packed() { std::free(data); }
  Packed(const Packed&) = delete;
  Packed& operator=(const Packed&) = delete;
  std::size_t bytes;
  void* data;
};

using kiln::test::random_floats;

std::string format_name(Format f) { return f == Format::s8 ? "s8" : "bf16"; }

struct Shape {
  std::int64_t rows, n, k;
};

struct Case {
  bool bias = false, residual = false;
  float scale = 1.0f;
  Activation act = Activation::None;
};

// The rows of `a` (rows x k, lda apart) rounded to bf16, as the bf16 format rounds them: packed as a
// one-column weight and unpacked.
std::vector<double> bf16_row(const float* a, std::int64_t k) {
  Packed p(Format::bf16, std::vector<float>(a, a + k), 1, k);
  std::vector<float> out(static_cast<std::size_t>(k));
  qgemm::unpack(Format::bf16, p.data, 1, k, out.data());
  return {out.begin(), out.end()};
}

/// Runs `multiply` (the variant in force) and the reference on one random product; returns the number of
/// results outside the tolerance of the "What equal means" above, and checks C's padding is untouched.
int compare_with_reference(std::mt19937& rng, Format f, const Shape& s, const Case& cs, int threads) {
  const std::int64_t lda = s.k + 3, ldc = s.n + 5, ldr = s.n + 2;
  const std::vector<float> a =
      random_floats(rng, static_cast<std::size_t>(std::max<std::int64_t>(s.rows * lda, 1)), -1.f, 1.f);
  const std::vector<float> w =
      random_floats(rng, static_cast<std::size_t>(std::max<std::int64_t>(s.n * s.k, 1)), -0.5f, 0.5f);
  const std::vector<float> b = random_floats(rng, static_cast<std::size_t>(s.n), -1.f, 1.f);
  const std::vector<float> res =
      random_floats(rng, static_cast<std::size_t>(std::max<std::int64_t>(s.rows * ldr, 1)), -1.f, 1.f);
  Packed packed(f, w, s.n, s.k);
  Epilogue ep;
  ep.scale = cs.scale;
  ep.bias = cs.bias ? b.data() : nullptr;
  ep.activation = cs.act;
  ep.residual = cs.residual ? res.data() : nullptr;
  ep.ldr = ldr;
  std::vector<float> c(static_cast<std::size_t>(s.rows * ldc), kFill), want(c.size(), kFill);
  qgemm::multiply(f, a.data(), lda, packed.data, c.data(), ldc, s.rows, s.n, s.k, ep, threads);
  qgemm::multiply_reference(f, a.data(), lda, packed.data, want.data(), ldc, s.rows, s.n, s.k, ep,
                            qgemm::activation_levels(f));
  std::vector<float> wq(static_cast<std::size_t>(s.n * s.k));
  if (f == Format::bf16) qgemm::unpack(f, packed.data, s.n, s.k, wq.data());
  const bool exact_act = cs.act == Activation::None || cs.act == Activation::Relu;
  int bad = 0;
  for (std::int64_t i = 0; i < s.rows; ++i) {
    const std::vector<double> ar = f == Format::bf16 ? bf16_row(a.data() + i * lda, s.k) : std::vector<double>{};
    for (std::int64_t j = 0; j < s.n; ++j) {
      const double got = c[static_cast<std::size_t>(i * ldc + j)], ref = want[static_cast<std::size_t>(i * ldc + j)];
      double tol = 0;
      if (f == Format::bf16) {
        double mag = 0;
        for (std::int64_t p = 0; p < s.k; ++p)
          mag += std::fabs(ar[static_cast<std::size_t>(p)] * wq[static_cast<std::size_t>(j * s.k + p)]);
        // Both sums err by at most (k+2)·u·mag from the exact one; the activation's slope is <= 1.13.
        tol = 2 * 1.13 * (static_cast<double>(s.k) + 2) * kU * mag * std::fabs(cs.scale) +
              4 * kU * (std::fabs(ref) + 1.0);
      }
      if (!exact_act) tol += 2e-6 * (1.0 + std::fabs(ref));
      const bool ok = tol == 0 ? got == ref : std::fabs(got - ref) <= tol;
      if (!ok && ++bad <= 3)
        MESSAGE(format_name(f) << " " << qgemm::variant(f) << " row " << i << " col " << j << ": " << got
                               << " vs reference " << ref << " (tolerance " << tol << ")");
    }
    for (std::int64_t j = s.n; j < ldc; ++j)
      if (c[static_cast<std::size_t>(i * ldc + j)] != kFill) ++bad;  // nothing past column n is written
  }
  return bad;
}

}  // namespace

TEST_CASE("qgemm: the ISA features follow CPUID and the cap") {
  using kiln::isa::Feature;
  for (Feature f : {Feature::avx512_vnni, Feature::avx512_bf16}) {
    INFO(std::string(kiln::isa::name(f)));
    // Allowed only where the CPU has it and the level in force is AVX-512: a cap to avx2 excludes it.
    CHECK(kiln::isa::has(f) == (kiln::isa::cpu_has(f) && kiln::isa::effective() == Level::avx512));
    if (kiln::isa::cpu_has(f)) CHECK(kiln::isa::cpu() == Level::avx512);
  }
}

TEST_CASE("qgemm: available() and variant() say what runs, for every level the CPU allows") {
  for (Format f : {Format::s8, Format::bf16}) {
    INFO(format_name(f));
    CHECK(qgemm::available(f) == kiln::isa::has(Level::avx2));
    CHECK(std::string(qgemm::variant(f)).rfind(f == Format::s8 ? "kiln:qgemm_s8_" : "kiln:qgemm_bf16_", 0) == 0);
    std::set<std::string> names;
    for (Level l : kiln::test::gemm_levels()) {
      VariantChoice choice(l);
      names.insert(qgemm::variant(f));
    }
    // A variant of its own at AVX-512 exactly where the CPU's extension is allowed.
    const bool own512 = f == Format::s8 ? kiln::isa::has(kiln::isa::Feature::avx512_vnni)
                                        : kiln::isa::has(kiln::isa::Feature::avx512_bf16);
    CHECK(names.size() == (own512 ? 2u : kiln::test::gemm_levels().size() > 0 ? 1u : 0u));
    // s8 activations: 7-bit exactly where the AVX2 s8 kernel runs (docs/gemm.md), 8-bit elsewhere; bf16: none.
    for (Level l : kiln::test::gemm_levels()) {
      VariantChoice choice(l);
      const bool seven = std::string(qgemm::variant(f)) == "kiln:qgemm_s8_avx2";
      CHECK(qgemm::activation_levels(f) == (f == Format::bf16 ? 0 : seven ? qgemm::kS8Levels7 : qgemm::kS8Levels8));
    }
  }
}

TEST_CASE("qgemm: packing round trips within half a step (s8) and 2^-8 relative (bf16)") {
  std::mt19937 rng(7);
  for (const Shape& s : {Shape{0, 1, 1}, Shape{0, 17, 5}, Shape{0, 40, 67}, Shape{0, 3, 1}, Shape{0, 16, 64}}) {
    std::vector<float> w = random_floats(rng, static_cast<std::size_t>(s.n * s.k), -2.f, 2.f);
    w[0] = 0.0f;
    for (Format f : {Format::s8, Format::bf16}) {
      INFO(format_name(f) << " n=" << s.n << " k=" << s.k);
      CHECK(qgemm::packed_bytes(f, s.n, s.k) == static_cast<std::size_t>((s.n + 15) / 16) * qgemm::panel_bytes(f, s.k));
      CHECK(qgemm::panel_bytes(f, s.k) % 64 == 0);
      Packed p(f, w, s.n, s.k);
      std::vector<float> back(w.size());
      qgemm::unpack(f, p.data, s.n, s.k, back.data());
      int bad = 0;
      for (std::int64_t j = 0; j < s.n; ++j) {
        float amax = 0;
        for (std::int64_t i = 0; i < s.k; ++i)
          amax = std::max(amax, std::fabs(w[static_cast<std::size_t>(j * s.k + i)]));
        for (std::int64_t i = 0; i < s.k; ++i) {
          const double x = w[static_cast<std::size_t>(j * s.k + i)], y = back[static_cast<std::size_t>(j * s.k + i)];
          // s8: |w - scale·q| <= scale/2 (plus the f32 rounding of w/scale and of scale·q).
          const double tol = f == Format::s8 ? amax / 127.0 * 0.5 * (1 + 1e-5) : std::ldexp(std::fabs(x), -8);
          if (std::fabs(x - y) > tol) ++bad;
          if (x == 0.0 && y != 0.0) ++bad;  // zero stays zero
        }
      }
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("qgemm: the reference is within the quantization error of the f32 product") {
  std::mt19937 rng(11);
  for (const Shape& s : {Shape{3, 20, 70}, Shape{1, 33, 515}, Shape{5, 1, 1}}) {
    const std::vector<float> a = random_floats(rng, static_cast<std::size_t>(s.rows * s.k), -1.f, 1.f);
    const std::vector<float> w = random_floats(rng, static_cast<std::size_t>(s.n * s.k), -0.5f, 0.5f);
    for (const auto& scheme : {std::pair{Format::s8, qgemm::kS8Levels8}, std::pair{Format::s8, qgemm::kS8Levels7},
                               std::pair{Format::bf16, 0}}) {
      // Not a structured binding: clang 14 (the ASan build) refuses those inside INFO's lambda.
      const Format f = scheme.first;
      const int lv = scheme.second;
      INFO(format_name(f) << " levels " << lv << " " << s.rows << "x" << s.n << "x" << s.k);
      Packed p(f, w, s.n, s.k);
      std::vector<float> wq(w.size()), c(static_cast<std::size_t>(s.rows * s.n));
      qgemm::unpack(f, p.data, s.n, s.k, wq.data());
      qgemm::multiply_reference(f, a.data(), s.k, p.data, c.data(), s.n, s.rows, s.n, s.k, Epilogue{}, lv);
      int bad = 0;
      for (std::int64_t i = 0; i < s.rows; ++i) {
        double amax = 0;
        for (std::int64_t t = 0; t < s.k; ++t)
          amax = std::max(amax, std::fabs(static_cast<double>(a[static_cast<std::size_t>(i * s.k + t)])));
        for (std::int64_t j = 0; j < s.n; ++j) {
          double exact = 0, bound = 0;
          for (std::int64_t t = 0; t < s.k; ++t) {
            const double x = a[static_cast<std::size_t>(i * s.k + t)], y = w[static_cast<std::size_t>(j * s.k + t)],
                         yq = wq[static_cast<std::size_t>(j * s.k + t)];
            exact += x * y;
            // s8: a·w - aq·wq = a·(w - wq) + (a - aq)·wq, |a - aq| <= sa/2 (sa = amax/levels); bf16: each factor within 2^-8
            // relative (8 significant bits, round to nearest).
            bound += f == Format::s8 ? std::fabs(x) * std::fabs(y - yq) + amax / lv * 0.5 * std::fabs(yq)
                                     : std::fabs(x * y) * (2 * std::ldexp(1.0, -8) + std::ldexp(1.0, -16));
          }
          bound += (static_cast<double>(s.k) + 4) * kU * (std::fabs(exact) + bound + 1e-3);
          if (std::fabs(c[static_cast<std::size_t>(i * s.n + j)] - exact) > bound) ++bad;
        }
      }
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("qgemm: every variant equals the reference, odd shapes, strides, each epilogue part, 1 and 2 threads") {
  std::mt19937 rng(2024);
  const std::vector<Shape> shapes = {{1, 256, 256}, {1, 1, 1},   {2, 17, 5},      {3, 33, 67},
                                     {7, 80, 130},  {13, 48, 4}, {16, 100, 1030}, {37, 70, 513},
                                     {1, 300, 1},   {6, 64, 3},  {150, 40, 4096}, {25, 200, 9}};
  const std::vector<Case> cases = {
      Case{},
      Case{true, true, 0.5f, Activation::Relu},
      Case{true, false, 1.0f, Activation::Gelu},
      Case{false, true, 2.0f, Activation::GeluTanh},
      Case{true, false, 1.0f, Activation::Tanh},
      Case{false, false, 1.0f, Activation::Sigmoid},
  };
  for (Level l : kiln::test::gemm_levels()) {
    VariantChoice choice(l);
    for (Format f : {Format::s8, Format::bf16}) {
      if (!qgemm::available(f)) continue;
      for (const Shape& s : shapes)
        for (std::size_t ci = 0; ci < cases.size(); ++ci)
          for (int threads : {1, 2}) {
            // The activations other than relu only on a few shapes: they exercise the same epilogue.
            if (ci >= 2 && s.rows * s.n * s.k > 100000) continue;
            INFO(std::string(qgemm::variant(f))
                 << " " << s.rows << "x" << s.n << "x" << s.k << " case " << ci << " threads " << threads);
            CHECK(compare_with_reference(rng, f, s, cases[ci], threads) == 0);
          }
    }
  }
}

TEST_CASE("qgemm: rows row0.. of a packed weight read from packed + row0/16 panels equal those columns of the whole") {
  std::mt19937 rng(5);
  const std::int64_t rows = 9, n = 80, k = 70, row0 = 32, nv = 37;  // the view: columns 32..68
  const std::vector<float> a = random_floats(rng, static_cast<std::size_t>(rows * k), -1.f, 1.f);
  const std::vector<float> w = random_floats(rng, static_cast<std::size_t>(n * k), -1.f, 1.f);
  const std::vector<float> b = random_floats(rng, static_cast<std::size_t>(n), -1.f, 1.f);
  for (Level l : kiln::test::gemm_levels()) {
    VariantChoice choice(l);
    for (Format f : {Format::s8, Format::bf16}) {
      if (!qgemm::available(f)) continue;
      INFO(std::string(qgemm::variant(f)));
      Packed p(f, w, n, k);
      Epilogue ep;
      ep.bias = b.data();
      std::vector<float> whole(static_cast<std::size_t>(rows * n)), view(static_cast<std::size_t>(rows * nv));
      qgemm::multiply(f, a.data(), k, p.data, whole.data(), n, rows, n, k, ep, 1);
      ep.bias = b.data() + row0;
      const auto* at = static_cast<const unsigned char*>(p.data) + row0 / qgemm::kPanel * qgemm::panel_bytes(f, k);
      for (int threads : {1, 2}) {
        qgemm::multiply(f, a.data(), k, at, view.data(), nv, rows, nv, k, ep, threads);
        int bad = 0;
        for (std::int64_t i = 0; i < rows; ++i)
          for (std::int64_t j = 0; j < nv; ++j)
            if (view[static_cast<std::size_t>(i * nv + j)] != whole[static_cast<std::size_t>(i * n + row0 + j)]) ++bad;
        CHECK(bad == 0);
      }
    }
  }
}

TEST_CASE("qgemm: s8 at the extremes (all weights and activations +-127, k = 4096) neither saturates nor overflows") {
  const std::int64_t rows = 4, n = 32, k = 4096;
  // Weights +-1 (q = +-127, scale 1/127); rows of +-1 (qa = +-127): same signs, opposite signs, and patterns
  // where -127 meets -127 in both halves of each vpmaddubsw/vpmaddwd pair.
  std::vector<float> w(static_cast<std::size_t>(n * k)), a(static_cast<std::size_t>(rows * k));
  for (std::int64_t j = 0; j < n; ++j)
    for (std::int64_t i = 0; i < k; ++i) {
      float v = 1.0f;
      if (j % 4 == 1) v = -1.0f;
      if (j % 4 == 2) v = (i % 2) ? -1.0f : 1.0f;
      if (j % 4 == 3) v = (i % 4 < 2) ? -1.0f : 1.0f;
      w[static_cast<std::size_t>(j * k + i)] = v;
    }
  for (std::int64_t i = 0; i < k; ++i) {
    a[static_cast<std::size_t>(i)] = 1.0f;
    a[static_cast<std::size_t>(k + i)] = -1.0f;
    a[static_cast<std::size_t>(2 * k + i)] = (i % 2) ? -1.0f : 1.0f;
    a[static_cast<std::size_t>(3 * k + i)] = (i % 4 < 2) ? -1.0f : 1.0f;
  }
  Packed p(Format::s8, w, n, k);
  for (int levels : {qgemm::kS8Levels8, qgemm::kS8Levels7}) {
    std::vector<float> want(static_cast<std::size_t>(rows * n));
    qgemm::multiply_reference(Format::s8, a.data(), k, p.data, want.data(), n, rows, n, k, Epilogue{}, levels);
    // The reference itself: ±4096 or 0 (each product is (1/127)·(1/levels)·127·levels up to the f32 rounding
    // of the scales).
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        double exact = 0;
        for (std::int64_t t = 0; t < k; ++t)
          exact += static_cast<double>(a[static_cast<std::size_t>(i * k + t)]) * w[static_cast<std::size_t>(j * k + t)];
        CHECK(std::fabs(want[static_cast<std::size_t>(i * n + j)] - exact) <= 1e-5 * 4096);
      }
  }
  for (Level l : kiln::test::gemm_levels()) {
    VariantChoice choice(l);
    INFO(std::string(qgemm::variant(Format::s8)));
    std::vector<float> want(static_cast<std::size_t>(rows * n));
    qgemm::multiply_reference(Format::s8, a.data(), k, p.data, want.data(), n, rows, n, k, Epilogue{},
                              qgemm::activation_levels(Format::s8));
    for (int threads : {1, 2}) {
      std::vector<float> c(want.size());
      qgemm::multiply(Format::s8, a.data(), k, p.data, c.data(), n, rows, n, k, Epilogue{}, threads);
      CHECK(c == want);
    }
  }
}

TEST_CASE("qgemm: s8 activations at +-levels against weights +-127 in every sign pattern, k = 4096, exact sums") {
  // Rows: the 16 sign patterns of four consecutive activations (one group, two vpmaddubsw pairs), repeated
  // over k; columns: the same 16 patterns of weights. All magnitudes are the largest the scheme has: a = ±1
  // quantizes to qa = ±levels (127 on 8-bit variants, 63 on 7-bit ones), w = ±1 to q = ±127. On the 7-bit AVX2
  // variant a pair of u8·s8 products reaches 2·127·127 = 32258 (qa = +63 against +127 twice) and -32258; a
  // kernel whose pair sums saturated at 32767 (as with u8 = qa + 128: up to 2·255·127) would differ here from
  // the exact sums this test computes itself (not through the reference).
  const std::int64_t rows = 16, n = 16, k = 4096;
  std::vector<float> w(static_cast<std::size_t>(n * k)), a(static_cast<std::size_t>(rows * k));
  for (std::int64_t r = 0; r < 16; ++r)
    for (std::int64_t i = 0; i < k; ++i) {
      const float v = (r >> (i % 4)) & 1 ? -1.0f : 1.0f;
      a[static_cast<std::size_t>(r * k + i)] = v;
      w[static_cast<std::size_t>(r * k + i)] = v;
    }
  Packed p(Format::s8, w, n, k);
  // What every scheme must give: (sa·scale)·float(Σ qa·q), sa = 1/levels, scale = 1/127 (f32, as quantized).
  auto exact = [&](int levels) {
    std::vector<float> out(static_cast<std::size_t>(rows * n));
    const float sa = 1.0f / static_cast<float>(levels), sw = 1.0f / 127.0f;
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        std::int64_t sum = 0;
        for (std::int64_t t = 0; t < k; ++t)
          sum += (a[static_cast<std::size_t>(i * k + t)] > 0 ? levels : -levels) *
                 (w[static_cast<std::size_t>(j * k + t)] > 0 ? 127 : -127);
        out[static_cast<std::size_t>(i * n + j)] = (sa * sw) * static_cast<float>(sum);
      }
    return out;
  };
  for (int levels : {qgemm::kS8Levels8, qgemm::kS8Levels7}) {
    INFO("reference, levels " << levels);
    std::vector<float> c(static_cast<std::size_t>(rows * n));
    qgemm::multiply_reference(Format::s8, a.data(), k, p.data, c.data(), n, rows, n, k, Epilogue{}, levels);
    CHECK(c == exact(levels));
  }
  for (Level l : kiln::test::gemm_levels()) {
    VariantChoice choice(l);
    INFO(std::string(qgemm::variant(Format::s8)) << " levels " << qgemm::activation_levels(Format::s8));
    const std::vector<float> want = exact(qgemm::activation_levels(Format::s8));
    for (int threads : {1, 2}) {
      std::vector<float> c(want.size());
      qgemm::multiply(Format::s8, a.data(), k, p.data, c.data(), n, rows, n, k, Epilogue{}, threads);
      CHECK(c == want);
      // One row at a time (the decoding step's register block) gives the same.
      for (std::int64_t i = 0; i < rows; ++i)
        qgemm::multiply(Format::s8, a.data() + i * k, k, p.data, c.data() + i * n, n, 1, n, k, Epilogue{}, threads);
      CHECK(c == want);
    }
  }
}

TEST_CASE("qgemm: a row's result does not depend on the batch it is in") {
  std::mt19937 rng(17);
  const std::int64_t rows = 19, n = 72, k = 301;
  const std::vector<float> a = random_floats(rng, static_cast<std::size_t>(rows * k), -1.f, 1.f);
  const std::vector<float> w = random_floats(rng, static_cast<std::size_t>(n * k), -1.f, 1.f);
  for (Level l : kiln::test::gemm_levels()) {
    VariantChoice choice(l);
    for (Format f : {Format::s8, Format::bf16}) {
      if (!qgemm::available(f)) continue;
      Packed p(f, w, n, k);
      std::vector<float> all(static_cast<std::size_t>(rows * n)), part(all.size());
      qgemm::multiply(f, a.data(), k, p.data, all.data(), n, rows, n, k, Epilogue{}, 1);
      for (std::int64_t batch : {1, 2, 3, 5, 16}) {
        INFO(std::string(qgemm::variant(f)) << " batches of " << batch);
        for (std::int64_t r = 0; r < rows; r += batch)
          qgemm::multiply(f, a.data() + r * k, k, p.data, part.data() + r * n, n, std::min(batch, rows - r), n, k,
                          Epilogue{}, 1);
        // s8: exact integer sums, so bit for bit; bf16 on AVX2 sums one or two rows in registers and more in a
        // widened panel, in a different order: within the f32 bound of a k-term sum.
        int bad = 0;
        for (std::size_t i = 0; i < all.size(); ++i) {
          const double tol = f == Format::s8 ? 0.0 : 2 * (static_cast<double>(k) + 2) * kU * k;
          if (std::fabs(static_cast<double>(all[i]) - part[i]) > tol) ++bad;
        }
        CHECK(bad == 0);
      }
    }
  }
}

TEST_CASE("qgemm: multiply_reference takes s8 activation levels 127 or 63 only") {
  const std::vector<float> w(16 * 4, 0.5f), a(4, 1.0f);
  Packed p(Format::s8, w, 16, 4);
  std::vector<float> c(16);
  for (int levels : {0, 62, 64, 128, -63}) {
    INFO("levels " << levels);
    CHECK_THROWS_WITH_AS(
        qgemm::multiply_reference(Format::s8, a.data(), 4, p.data, c.data(), 16, 1, 16, 4, Epilogue{}, levels),
        doctest::Contains("must be 127 or 63"), kiln::Error);
  }
  // 63 and 127 give 0.5·(1·4) = 2 up to the scales' rounding.
  for (int levels : {qgemm::kS8Levels8, qgemm::kS8Levels7}) {
    qgemm::multiply_reference(Format::s8, a.data(), 4, p.data, c.data(), 16, 1, 16, 4, Epilogue{}, levels);
    CHECK(c[0] == doctest::Approx(2.0).epsilon(1e-6));
  }
}

TEST_CASE(
    "qgemm: zero rows and zero columns give exact zeros, k = 0 gives the epilogue of zero, rows = 0 writes nothing") {
  std::mt19937 rng(3);
  const std::int64_t rows = 3, n = 20, k = 9;
  std::vector<float> a = random_floats(rng, static_cast<std::size_t>(rows * k), -1.f, 1.f);
  std::vector<float> w = random_floats(rng, static_cast<std::size_t>(n * k), -1.f, 1.f);
  const std::vector<float> b = random_floats(rng, static_cast<std::size_t>(n), -1.f, 1.f);
  for (std::int64_t i = 0; i < k; ++i) a[static_cast<std::size_t>(k + i)] = 0.0f;      // row 1
  for (std::int64_t i = 0; i < k; ++i) w[static_cast<std::size_t>(5 * k + i)] = 0.0f;  // column 5
  for (Level l : kiln::test::gemm_levels()) {
    VariantChoice choice(l);
    for (Format f : {Format::s8, Format::bf16}) {
      if (!qgemm::available(f)) continue;
      INFO(std::string(qgemm::variant(f)));
      Packed p(f, w, n, k);
      Epilogue ep;
      ep.bias = b.data();
      std::vector<float> c(static_cast<std::size_t>(rows * n));
      qgemm::multiply(f, a.data(), k, p.data, c.data(), n, rows, n, k, ep, 1);
      for (std::int64_t j = 0; j < n; ++j) CHECK(c[static_cast<std::size_t>(n + j)] == b[static_cast<std::size_t>(j)]);
      for (std::int64_t i = 0; i < rows; ++i) CHECK(c[static_cast<std::size_t>(i * n + 5)] == b[5]);
      // k = 0: the epilogue of an empty sum (bias, relu).
      Packed empty(f, w, n, 0);
      ep.activation = Activation::Relu;
      qgemm::multiply(f, a.data(), k, empty.data, c.data(), n, rows, n, 0, ep, 2);
      for (std::int64_t j = 0; j < n; ++j)
        CHECK(c[static_cast<std::size_t>(j)] == std::max(b[static_cast<std::size_t>(j)], 0.0f));
      // rows = 0 and n = 0 write nothing.
      std::vector<float> untouched(4, kFill);
      qgemm::multiply(f, a.data(), k, p.data, untouched.data(), n, 0, n, k, ep, 2);
      qgemm::multiply(f, a.data(), k, p.data, untouched.data(), n, rows, 0, k, ep, 2);
      CHECK(untouched == std::vector<float>(4, kFill));
    }
  }
}

TEST_CASE("qgemm: NaN and Inf follow the documented policy in every variant") {
  std::mt19937 rng(9);
  const std::int64_t rows = 4, n = 24, k = 21;
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<float> a = random_floats(rng, static_cast<std::size_t>(rows * k), -1.f, 1.f);
  std::vector<float> w = random_floats(rng, static_cast<std::size_t>(n * k), -1.f, 1.f);
  a[static_cast<std::size_t>(1 * k + 3)] = nan;   // row 1
  a[static_cast<std::size_t>(2 * k + 20)] = inf;  // row 2
  w[static_cast<std::size_t>(7 * k + 4)] = nan;   // column 7
  for (const auto& scheme : {std::pair{Format::s8, qgemm::kS8Levels8}, std::pair{Format::s8, qgemm::kS8Levels7},
                             std::pair{Format::bf16, 0}}) {
    const Format f = scheme.first;  // not a structured binding: clang 14 refuses those inside INFO
    const int lv = scheme.second;
    Packed p(f, w, n, k);
    std::vector<float> want(static_cast<std::size_t>(rows * n));
    qgemm::multiply_reference(f, a.data(), k, p.data, want.data(), n, rows, n, k, Epilogue{}, lv);
    // Rows 0 and 3 without column 7 are ordinary numbers; row 1 (NaN) and column 7 are NaN throughout.
    for (std::int64_t j = 0; j < n; ++j) {
      INFO(format_name(f) << " levels " << lv << " column " << j);
      CHECK(std::isnan(want[static_cast<std::size_t>(n + j)]));
      if (j != 7) CHECK(std::isfinite(want[static_cast<std::size_t>(j)]));
      // Row 2 (an infinity): s8 gives NaN (int8 holds no infinity); bf16 gives what f32 gives: not finite.
      if (f == Format::s8) CHECK(std::isnan(want[static_cast<std::size_t>(2 * n + j)]));
      else CHECK(!std::isfinite(want[static_cast<std::size_t>(2 * n + j)]));
    }
    for (std::int64_t i = 0; i < rows; ++i) CHECK(std::isnan(want[static_cast<std::size_t>(i * n + 7)]));
    for (Level l : kiln::test::gemm_levels()) {
      VariantChoice choice(l);
      // Each variant against the reference of its own scheme.
      if (!qgemm::available(f) || (f == Format::s8 && qgemm::activation_levels(f) != lv)) continue;
      INFO(std::string(qgemm::variant(f)));
      std::vector<float> c(want.size());
      qgemm::multiply(f, a.data(), k, p.data, c.data(), n, rows, n, k, Epilogue{}, 2);
      int bad = 0;
      for (std::size_t i = 0; i < c.size(); ++i) {
        const bool same_kind = std::isnan(c[i]) == std::isnan(want[i]) && std::isfinite(c[i]) == std::isfinite(want[i]);
        const bool close = !std::isfinite(want[i]) || std::fabs(c[i] - want[i]) <= 1e-5 * (1 + std::fabs(want[i]));
        if (!same_kind || !close) ++bad;
      }
      CHECK(bad == 0);
    }
  }
}
