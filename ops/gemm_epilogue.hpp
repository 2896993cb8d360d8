#pragma once
// Internal to Kiln's GEMM kernels (ops/gemm.cpp, ops/qgemm.cpp): the vector activations of gemm::Epilogue,
// eight (AVX2) and sixteen (AVX-512) lanes at a time, with the accuracy gemm.hpp states, and the scalar
// activation for empty sums. Include only from kernel .cpp files.

#include <algorithm>
#include <cmath>

#include "ops/gemm.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KILN_GEMM_X86 1
#endif

namespace kiln::gemm::detail {

inline float activate_scalar(float v, Activation act) {
  switch (act) {
    case Activation::None: return v;
    case Activation::Relu: return std::max(v, 0.0f);
    case Activation::Gelu: return 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f));
    case Activation::GeluTanh: return 0.5f * v * (1.0f + std::tanh(0.79788456080286536f * (v + 0.044715f * v * v * v)));
    case Activation::Tanh: return std::tanh(v);
    case Activation::Sigmoid: return 1.0f / (1.0f + std::exp(-v));
  }
  return v;
}

#if KILN_GEMM_X86

#define KILN_AVX2 __attribute__((target("avx2,fma")))
#define KILN_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_ps() (`__m512 __Y = __Y;`), which
// -Wmaybe-uninitialized and -Wuninitialized report at every use once inlined: a false positive (GCC bug
// 105593). Off in every file that includes this one.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

// e^x for x <= 0, eight at a time: x = n·ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial, 2^n
// put into the exponent bits (the vector form of step_attention::exp_nonpositive).
KILN_AVX2 inline __m256 exp_nonpositive(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

// The activations of Epilogue, eight at a time (see gemm.hpp for their accuracy).
KILN_AVX2 inline __m256 tanh_of(__m256 x) {  // sign(x)·(1 - e^-2|x|)/(1 + e^-2|x|)
  const __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
  const __m256 z = exp_nonpositive(_mm256_mul_ps(_mm256_set1_ps(-2.0f), _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x)));
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_or_ps(sign, _mm256_div_ps(_mm256_sub_ps(one, z), _mm256_add_ps(one, z)));
}

KILN_AVX2 inline __m256 erf_of(__m256 x) {  // Abramowitz-Stegun 7.1.26, odd
  const __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
  const __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), a, one));
  __m256 p = _mm256_set1_ps(1.061405429f);
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
  p = _mm256_mul_ps(p, t);
  const __m256 e = exp_nonpositive(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(a, a)));
  return _mm256_or_ps(sign, _mm256_fnmadd_ps(p, e, one));
}

KILN_AVX2 inline __m256 activate(__m256 v, Activation act) {
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  switch (act) {
    case Activation::None: return v;
    case Activation::Relu: return _mm256_max_ps(v, _mm256_setzero_ps());
    case Activation::Gelu:  // x/2 · (1 + erf(x/√2))
      return _mm256_mul_ps(_mm256_mul_ps(half, v),
                           _mm256_add_ps(one, erf_of(_mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f)))));
    case Activation::GeluTanh: {  // x/2 · (1 + tanh(√(2/π)·(x + 0.044715x³)))
      const __m256 inner =
          _mm256_mul_ps(_mm256_set1_ps(0.79788456080286536f),
                        _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(0.044715f), v), _mm256_mul_ps(v, v), v));
      return _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, tanh_of(inner)));
    }
    case Activation::Tanh: return tanh_of(v);
    case Activation::Sigmoid: {  // 1/(1+e^-x) from z = e^-|x|: x >= 0 gives 1/(1+z), x < 0 gives z/(1+z)
      const __m256 z = exp_nonpositive(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v)));
      const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, z));
      return _mm256_blendv_ps(s, _mm256_mul_ps(z, s), v);  // blend on the sign bit of v
    }
  }
  return v;
}

// The same, sixteen lanes wide.
KILN_AVX512 inline __m512 exp_nonpositive512(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
}

KILN_AVX512 inline __m512 tanh512(__m512 x) {
  const __m512 sign = _mm512_and_ps(x, _mm512_set1_ps(-0.0f));
  const __m512 z = exp_nonpositive512(_mm512_mul_ps(_mm512_set1_ps(-2.0f), _mm512_andnot_ps(_mm512_set1_ps(-0.0f), x)));
  const __m512 one = _mm512_set1_ps(1.0f);
  return _mm512_or_ps(sign, _mm512_div_ps(_mm512_sub_ps(one, z), _mm512_add_ps(one, z)));
}

KILN_AVX512 inline __m512 erf512(__m512 x) {
  const __m512 sign = _mm512_and_ps(x, _mm512_set1_ps(-0.0f));
  const __m512 a = _mm512_andnot_ps(_mm512_set1_ps(-0.0f), x);
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), a, one));
  __m512 p = _mm512_set1_ps(1.061405429f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
  p = _mm512_mul_ps(p, t);
  const __m512 e = exp_nonpositive512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(a, a)));
  return _mm512_or_ps(sign, _mm512_fnmadd_ps(p, e, one));
}

KILN_AVX512 inline __m512 activate512(__m512 v, Activation act) {
  const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
  switch (act) {
    case Activation::None: return v;
    case Activation::Relu: return _mm512_max_ps(v, _mm512_setzero_ps());
    case Activation::Gelu:
      return _mm512_mul_ps(_mm512_mul_ps(half, v),
                           _mm512_add_ps(one, erf512(_mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752f)))));
    case Activation::GeluTanh: {
      const __m512 inner =
          _mm512_mul_ps(_mm512_set1_ps(0.79788456080286536f),
                        _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(0.044715f), v), _mm512_mul_ps(v, v), v));
      return _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_add_ps(one, tanh512(inner)));
    }
    case Activation::Tanh: return tanh512(v);
    case Activation::Sigmoid: {
      const __m512 z =
          exp_nonpositive512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_andnot_ps(_mm512_set1_ps(-0.0f), v)));
      const __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, z));
      // z·s where v's sign bit is set (as the AVX2 blendv)
      return _mm512_mask_blend_ps(_mm512_movepi32_mask(_mm512_castps_si512(v)), s, _mm512_mul_ps(z, s));
    }
  }
  return v;
}

#endif  // KILN_GEMM_X86

}  // namespace kiln::gemm::detail
