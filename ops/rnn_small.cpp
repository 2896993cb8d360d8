// Kiln's LSTM and GRU kernel for small hidden sizes (see rnn_small.hpp for the design; the kernel itself is
// rnn_small_body.inc, compiled here once for AVX-512 and once for AVX2+FMA). Gate nonlinearities use the
// same exponential as Kiln's GEMM epilogue (a degree-6 polynomial after range reduction, relative error
// ~2e-7): sigmoid and tanh of it agree with std::exp's to ~3e-7 absolute.

#include "ops/rnn_small.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "ops/gemm.hpp"
#include "ops/gemm_epilogue.hpp"
#include "ops/isa.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KILN_RNN_X86 1
#endif

namespace kiln::rnn_small {

void pack(const float* w, std::int64_t gates, std::int64_t hidden, std::int64_t k, float* out) {
  const std::int64_t hp = padded(hidden);
  std::fill(out, out + packed_floats(gates, hidden, k), 0.0f);
  for (std::int64_t g = 0; g < gates; ++g)
    for (std::int64_t j = 0; j < hidden; ++j) {
      const float* row = w + (g * hidden + j) * k;
      for (std::int64_t i = 0; i < k; ++i) out[(i * gates + g) * hp + j] = row[i];
    }
}

void unpack(const float* packed, std::int64_t gates, std::int64_t hidden, std::int64_t k, float* w) {
  const std::int64_t hp = padded(hidden);
  for (std::int64_t g = 0; g < gates; ++g)
    for (std::int64_t j = 0; j < hidden; ++j) {
      float* row = w + (g * hidden + j) * k;
      for (std::int64_t i = 0; i < k; ++i) row[i] = packed[(i * gates + g) * hp + j];
    }
}

bool enabled() { return gemm::enabled(); }

const char* variant(bool gru) {
  if (gemm::variant_level() == isa::Level::avx512) return gru ? "kiln:gru_avx512" : "kiln:lstm_avx512";
  return gru ? "kiln:gru_avx2" : "kiln:lstm_avx2";
}

#if KILN_RNN_X86
namespace {

// KILN_AVX2 / KILN_AVX512 and the vector exponential come from the GEMM's epilogue (ops/gemm_epilogue.hpp),
// which also turns off GCC 12's false -Wmaybe-uninitialized on AVX-512 intrinsics (GCC bug 105593).

struct V256 {
  using T = __m256;
  static constexpr std::int64_t kWidth = 8;
  KILN_AVX2 static T load(const float* p) { return _mm256_loadu_ps(p); }
  KILN_AVX2 static void store(float* p, T v) { _mm256_storeu_ps(p, v); }
  KILN_AVX2 static T set1(float v) { return _mm256_set1_ps(v); }
  KILN_AVX2 static T add(T a, T b) { return _mm256_add_ps(a, b); }
  KILN_AVX2 static T sub(T a, T b) { return _mm256_sub_ps(a, b); }
  KILN_AVX2 static T mul(T a, T b) { return _mm256_mul_ps(a, b); }
  KILN_AVX2 static T div(T a, T b) { return _mm256_div_ps(a, b); }
  KILN_AVX2 static T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  KILN_AVX2 static T neg_abs(T x) { return _mm256_or_ps(x, _mm256_set1_ps(-0.0f)); }
  KILN_AVX2 static T with_sign_of(T v, T x) {
    return _mm256_or_ps(v, _mm256_and_ps(x, _mm256_set1_ps(-0.0f)));  // v >= 0
  }
  KILN_AVX2 static T select_negative(T x, T if_negative, T otherwise) {
    return _mm256_blendv_ps(otherwise, if_negative, x);  // by x's sign bit
  }
  // e^x for x <= 0 (degree-6 polynomial, relative error ~2e-7): the GEMM epilogue's.
  KILN_AVX2 static T exp_nonpositive(T x) { return gemm::detail::exp_nonpositive(x); }
};

struct V512 {
  using T = __m512;
  static constexpr std::int64_t kWidth = 16;
  KILN_AVX512 static T load(const float* p) { return _mm512_loadu_ps(p); }
  KILN_AVX512 static void store(float* p, T v) { _mm512_storeu_ps(p, v); }
  KILN_AVX512 static T set1(float v) { return _mm512_set1_ps(v); }
  KILN_AVX512 static T add(T a, T b) { return _mm512_add_ps(a, b); }
  KILN_AVX512 static T sub(T a, T b) { return _mm512_sub_ps(a, b); }
  KILN_AVX512 static T mul(T a, T b) { return _mm512_mul_ps(a, b); }
  KILN_AVX512 static T div(T a, T b) { return _mm512_div_ps(a, b); }
  KILN_AVX512 static T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  KILN_AVX512 static T neg_abs(T x) { return _mm512_or_ps(x, _mm512_set1_ps(-0.0f)); }
  KILN_AVX512 static T with_sign_of(T v, T x) { return _mm512_or_ps(v, _mm512_and_ps(x, _mm512_set1_ps(-0.0f))); }
  KILN_AVX512 static T select_negative(T x, T if_negative, T otherwise) {
    const __mmask16 negative = _mm512_movepi32_mask(_mm512_castps_si512(x));  // x's sign bits
    return _mm512_mask_blend_ps(negative, otherwise, if_negative);
  }
  KILN_AVX512 static T exp_nonpositive(T x) { return gemm::detail::exp_nonpositive512(x); }
};

namespace avx2 {
using V = V256;
constexpr std::size_t kMaxRows = 3;  // 12 ymm accumulators, the weights read from L1 by the FMAs
#define KILN_TARGET KILN_AVX2
#include "ops/rnn_small_body.inc"
#undef KILN_TARGET
}  // namespace avx2

namespace avx512 {
using V = V512;
constexpr std::size_t kMaxRows = 6;  // 24 zmm accumulators, 4 of weights, 1 broadcast
#define KILN_TARGET KILN_AVX512
#include "ops/rnn_small_body.inc"
#undef KILN_TARGET
}  // namespace avx512

}  // namespace
#endif

const float* run(const Direction& d, bool gru, std::int64_t rows, std::int64_t steps, const float* x,
                 std::int64_t x_row, std::int64_t x_step, float* y, std::int64_t y_row, std::int64_t y_step, float* h,
                 float* c, float* proj, std::int64_t chunk) {
#if KILN_RNN_X86
  if (gemm::variant_level() == isa::Level::avx512)
    return avx512::run(d, gru, rows, steps, x, x_row, x_step, y, y_row, y_step, h, c, proj, chunk);
  return avx2::run(d, gru, rows, steps, x, x_row, x_step, y, y_row, y_step, h, c, proj, chunk);
#else
  (void)d, (void)gru, (void)rows, (void)steps, (void)x, (void)x_row, (void)x_step, (void)y, (void)y_row, (void)y_step,
      (void)c, (void)proj, (void)chunk;
  return h;  // not reached: enabled() is false (oneDNN runs the op)
#endif
}

}  // namespace kiln::rnn_small
