// Packing, the portable reference and the vector kernels for quantized weights (qgemm.hpp).
//
// Panel layout (16 output columns over k inputs), the same for every variant:
//   s8:   [16 f32 scales][16 s32 column sums of q][ceil(k/4) groups of 64 bytes]; group g holds, for each
//         column j, the 4 bytes q[j][4g..4g+3] (vpdpbusd's order), zero past k. 128 + 64·ceil(k/4) bytes.
//         The column sums let a kernel that adds 128 (VNNI) or 64 (AVX2) to the activations (u8 x s8) take
//         128·Σq or 64·Σq back out.
//   bf16: ceil(k/2) groups of 64 bytes; group g holds, for each column j, w[j][2g], w[j][2g+1] as bf16
//         (vdpbf16ps's order), zero past k. 64·ceil(k/2) bytes.
// Columns past n are zero (scale 1).
//
// Non-finite values (the policy the reference defines and every variant follows):
//   - s8 weights: a column holding NaN or ±Inf gets scale NaN and q = 0: every output of that column is NaN.
//   - s8 activations (quantized to [-levels, levels]: 127 or 63, activation_levels()): a row of A holding NaN
//     or ±Inf gets sa = NaN and qa = 0: every output of that row is
//     NaN (before the epilogue, which then adds bias and residual as usual). f32 would give NaN or ±Inf
//     there; int8 cannot carry an infinity, so NaN says "not a number you can use" for all of the row.
//   - bf16: NaN stays NaN and ±Inf stays ±Inf through the rounding, and the f32 sums propagate them as an
//     f32 product would.
//
// Variants (chosen per call, kernel() below):
//   - s8_vnni (AVX-512 VNNI): A quantized once per call into u8 = qa + 128 rows; vpdpbusd multiplies 4 u8
//     activations by 4 s8 weights per column and adds them to s32 (no saturation); 128·Σq (the panel's
//     column sums) is subtracted at the end. Register block up to 6 rows x 4 panels (24 zmm accumulators);
//     one or two rows use two accumulator chains over alternate groups (vpdpbusd's latency).
//   - s8_avx2: 7-bit activations: A quantized once per call with sa = max|a|/63 into u8 = qa + 64 rows (qa in
//     [-63, 63], u8 in [1, 127]); vpmaddubsw multiplies the row's 4 broadcast u8 by each column's 4 s8 weights
//     (half a group per ymm: 8 columns x 4 k) and adds adjacent products into s16: a pair sum is at most
//     2·127·127 = 32258 < 32767, so it never saturates (with 8-bit activations, u8 = qa + 128, it would: up
//     to 2·255·127). vpmaddwd with ones adds the two pairs of a column into s32, vpaddd accumulates: 32
//     multiply-adds per 3 instructions (the s16 kernel before did 16). 64·Σq is subtracted at the end.
//     Register block up to 4 rows x 1 panel (8 ymm accumulators); one row uses two chains.
//   - bf16_avx512 (AVX512_BF16): A rounded to bf16 once per call (the reference's round to nearest even,
//     in integer arithmetic); vdpbf16ps adds the two products of a pair to f32. Blocks as s8_vnni.
//   - bf16_avx2 (emulated): the bf16 pairs are widened to f32 by a shift and a mask, then FMAs: in registers
//     for one or two rows (1 or 2 rows x 1 panel); from three rows on, each panel is widened once per thread
//     and rows block into an f32 panel that the f32 GEMM's 6x16 register block reads.
// Every variant stores each block through the epilogue of gemm.cpp (gemm_epilogue.hpp): dequantization
// (s8: (sa[m]·scale[n])·Σ, the reference's order, so None/Relu results are bit-identical), · scale, + bias,
// activation, + residual. Threads split the panels as gemm::multiply does; the rows of A are quantized
// once per call (split over the same threads), not per thread or panel.

#include "ops/qgemm.hpp"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "kiln/error.hpp"
#include "ops/gemm_epilogue.hpp"
#include "ops/isa.hpp"

namespace kiln::qgemm {

namespace {

constexpr std::size_t kS8Head = 128;  // scales + column sums

std::int64_t groups(Format f, std::int64_t k) { return f == Format::s8 ? (k + 3) / 4 : (k + 1) / 2; }

std::uint16_t to_bf16(float v) {
  std::uint32_t u;
  std::memcpy(&u, &v, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);                                                            // round to nearest even
  return static_cast<std::uint16_t>(u >> 16);
}

float from_bf16(std::uint16_t h) {
  const std::uint32_t u = static_cast<std::uint32_t>(h) << 16;
  float v;
  std::memcpy(&v, &u, 4);
  return v;
}

// The symmetric scale of finite values whose largest magnitude is amax, for q in [-levels, levels] (127
// for weights and 8-bit activations, 63 for 7-bit ones): 1 when they are all 0 (or so small that
// amax/levels underflows to 0), so that everything quantizes to 0.
float s8_scale(float amax, int levels) {
  const float s = amax / static_cast<float>(levels);
  return s > 0.0f ? s : 1.0f;
}

// q in [-levels, levels] (an int: stored as a byte by pack, as u8 = q + 128 or q + 64 by the kernels' rows).
int s8_round(float v, float scale, int levels) {
  const float q = std::nearbyint(v / scale);
  const auto l = static_cast<float>(levels);
  return static_cast<int>(std::clamp(q, -l, l));
}

bool finite(float v) { return std::fabs(v) < std::numeric_limits<float>::infinity(); }

// The scale of x[0..k) (NaN when one of them is NaN or ±Inf: see the policy above).
float s8_row_scale(const float* x, std::int64_t k, int levels) {
  float amax = 0.0f;
  for (std::int64_t i = 0; i < k; ++i) {
    if (!finite(x[i])) return std::numeric_limits<float>::quiet_NaN();
    amax = std::max(amax, std::fabs(x[i]));
  }
  return s8_scale(amax, levels);
}

int s8_quantize(float v, float scale, int levels) { return std::isnan(scale) ? 0 : s8_round(v, scale, levels); }

}  // namespace

const char* layout_name(Format f) { return f == Format::s8 ? kS8Layout : kBf16Layout; }

std::size_t panel_bytes(Format f, std::int64_t k) {
  const auto g = static_cast<std::size_t>(groups(f, std::max<std::int64_t>(k, 0)));
  return (f == Format::s8 ? kS8Head : 0) + 64 * g;
}

std::size_t packed_bytes(Format f, std::int64_t n, std::int64_t k) {
  return static_cast<std::size_t>((n + kPanel - 1) / kPanel) * panel_bytes(f, k);
}

void pack(Format f, const float* w, std::int64_t n, std::int64_t k, void* out) {
  auto* base = static_cast<unsigned char*>(out);
  const std::size_t pb = panel_bytes(f, k);
  const std::int64_t np = (n + kPanel - 1) / kPanel, ng = groups(f, k);
  for (std::int64_t p = 0; p < np; ++p) {
    unsigned char* panel = base + static_cast<std::size_t>(p) * pb;
    std::memset(panel, 0, pb);
    for (std::int64_t j = 0; j < kPanel; ++j) {
      const std::int64_t col = p * kPanel + j;
      if (f == Format::s8) {
        const float scale = col < n ? s8_row_scale(w + col * k, k, kS8Levels8) : 1.0f;
        std::int32_t sum = 0;
        for (std::int64_t g = 0; g < ng && col < n; ++g)
          for (std::int64_t t = 0; t < 4 && 4 * g + t < k; ++t) {
            const int q = s8_quantize(w[col * k + 4 * g + t], scale, kS8Levels8);
            panel[kS8Head + static_cast<std::size_t>(g * 64 + j * 4 + t)] = static_cast<unsigned char>(q);
            sum += q;
          }
        std::memcpy(panel + 4 * j, &scale, 4);
        std::memcpy(panel + 64 + 4 * j, &sum, 4);
      } else {
        auto* h = reinterpret_cast<std::uint16_t*>(panel);
        for (std::int64_t g = 0; g < ng && col < n; ++g)
          for (std::int64_t t = 0; t < 2 && 2 * g + t < k; ++t) h[g * 32 + j * 2 + t] = to_bf16(w[col * k + 2 * g + t]);
      }
    }
  }
}

void unpack(Format f, const void* packed, std::int64_t n, std::int64_t k, float* w) {
  const auto* base = static_cast<const unsigned char*>(packed);
  const std::size_t pb = panel_bytes(f, k);
  for (std::int64_t col = 0; col < n; ++col) {
    const unsigned char* panel = base + static_cast<std::size_t>(col / kPanel) * pb;
    const std::int64_t j = col % kPanel;
    for (std::int64_t i = 0; i < k; ++i) {
      if (f == Format::s8) {
        float scale;
        std::memcpy(&scale, panel + 4 * j, 4);
        const auto q =
            static_cast<std::int8_t>(panel[kS8Head + static_cast<std::size_t>((i / 4) * 64 + j * 4 + i % 4)]);
        w[col * k + i] = scale * static_cast<float>(q);
      } else {
        const auto* h = reinterpret_cast<const std::uint16_t*>(panel);
        w[col * k + i] = from_bf16(h[(i / 2) * 32 + j * 2 + i % 2]);
      }
    }
  }
}

void multiply_reference(Format f, const float* a, std::int64_t lda, const void* packed, float* c, std::int64_t ldc,
                        std::int64_t rows, std::int64_t n, std::int64_t k, const gemm::Epilogue& ep, int levels) {
  if (f == Format::s8 && levels != kS8Levels8 && levels != kS8Levels7)
    throw Error("error: qgemm::multiply_reference: s8 activation levels must be " + std::to_string(kS8Levels8) +
                " or " + std::to_string(kS8Levels7) + ", got " + std::to_string(levels));
  const auto* base = static_cast<const unsigned char*>(packed);
  const std::size_t pb = panel_bytes(f, k);
  std::vector<std::int32_t> qa(static_cast<std::size_t>(std::max<std::int64_t>(k, 0)));
  std::vector<float> ba(qa.size());
  for (std::int64_t m = 0; m < rows; ++m) {
    const float* row = a + m * lda;
    float sa = 1.0f;
    if (f == Format::s8) {
      sa = s8_row_scale(row, k, levels);
      for (std::int64_t i = 0; i < k; ++i) qa[static_cast<std::size_t>(i)] = s8_quantize(row[i], sa, levels);
    } else {
      for (std::int64_t i = 0; i < k; ++i) ba[static_cast<std::size_t>(i)] = from_bf16(to_bf16(row[i]));
    }
    for (std::int64_t col = 0; col < n; ++col) {
      const unsigned char* panel = base + static_cast<std::size_t>(col / kPanel) * pb;
      const std::int64_t j = col % kPanel;
      float v;
      if (f == Format::s8) {
        float scale;
        std::memcpy(&scale, panel + 4 * j, 4);
        std::int32_t acc = 0;
        for (std::int64_t i = 0; i < k; ++i)
          acc += qa[static_cast<std::size_t>(i)] *
                 static_cast<std::int8_t>(panel[kS8Head + static_cast<std::size_t>((i / 4) * 64 + j * 4 + i % 4)]);
        v = sa * scale * static_cast<float>(acc);
      } else {
        const auto* h = reinterpret_cast<const std::uint16_t*>(panel);
        float acc = 0.0f;
        for (std::int64_t i = 0; i < k; ++i)
          acc += ba[static_cast<std::size_t>(i)] * from_bf16(h[(i / 2) * 32 + j * 2 + i % 2]);
        v = acc;
      }
      v = v * ep.scale + (ep.bias ? ep.bias[col] : 0.0f);
      v = gemm::detail::activate_scalar(v, ep.activation);
      if (ep.residual) v += ep.residual[m * ep.ldr + col];
      c[m * ldc + col] = v;
    }
  }
}

// ---- Vector kernels ---------------------------------------------------------------------------------------

namespace {

enum class Kernel { none, s8_avx2, s8_vnni, bf16_avx2, bf16_avx512 };

// Whether the AVX2 bf16 kernel (emulated: shift + FMA) is offered: see docs/gemm.md "Quantized weights".
constexpr bool kBf16OnAvx2 = true;

Kernel kernel(Format f) {
#if KILN_GEMM_X86
  const isa::Level level = gemm::variant_level();
  const bool wide = level == isa::Level::avx512;
  if (f == Format::s8) {
    if (wide && isa::has(isa::Feature::avx512_vnni)) return Kernel::s8_vnni;
    if (isa::has(isa::Level::avx2)) return Kernel::s8_avx2;
  } else {
    if (wide && isa::has(isa::Feature::avx512_bf16)) return Kernel::bf16_avx512;
    if (kBf16OnAvx2 && isa::has(isa::Level::avx2)) return Kernel::bf16_avx2;
  }
#else
  (void)f;
#endif
  return Kernel::none;
}

// Bytes of one quantized row of A as kernel `kern` reads it (64-byte multiple).
std::size_t row_stride(Kernel kern, std::int64_t ng) {
  const auto g = static_cast<std::size_t>(ng);
  const std::size_t per_group = kern == Kernel::bf16_avx2 ? 8 : 4;
  return (per_group * g + 63) / 64 * 64;
}

// The calling thread's buffers, grown on demand and kept (warm calls allocate nothing): slot 0 holds a
// call's quantized activations, slot 1 a thread's widened panel (bf16 on AVX2).
unsigned char* act_buffer(std::size_t bytes, int slot = 0) {
  struct Buffer {
    unsigned char* data = nullptr;
    std::size_t size = 0;
    ~Buffer() { std::free(data); }
  };
  static thread_local Buffer buffers[2];
  Buffer& buffer = buffers[slot];
  if (buffer.size < bytes) {
    std::free(buffer.data);
    buffer.data = static_cast<unsigned char*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
    if (!buffer.data) {
      buffer.size = 0;
      throw std::bad_alloc();
    }
    buffer.size = bytes;
  }
  return buffer.data;
}

using BlockFn = void (*)(const unsigned char* a, std::size_t lda, const unsigned char* panel, std::size_t pb,
                         std::int64_t ng, float* c, std::int64_t ldc, int cols, const float* sa,
                         const gemm::Epilogue& ep, std::int64_t row0, std::int64_t col0);
constexpr int kMaxRows = 6, kMaxPanels = 4;
constexpr int kAvx2S8Rows = 4;  // rows per register block of the AVX2 s8 kernel (2 ymm accumulators a row)
using BlockTable = std::array<std::array<BlockFn, kMaxRows + 1>, kMaxPanels + 1>;  // [np][mr]

#if KILN_GEMM_X86

using gemm::detail::activate;
using gemm::detail::activate512;

#define KILN_VNNI __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,fma")))
#define KILN_BF16 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,fma")))

inline std::int32_t load32(const unsigned char* p) {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// ---- the epilogue of one row of a block, 8 or 16 columns at a time

KILN_AVX2 __attribute__((always_inline)) inline __m256 load_cols(const float* p, __m256i mask, bool full) {
  return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, mask);
}

KILN_AVX2 __attribute__((always_inline)) inline void store8(__m256 v, float* c, __m256i mask, bool full,
                                                            const gemm::Epilogue& ep, __m256 bias, const float* res) {
  if (ep.scale != 1.0f) v = _mm256_mul_ps(v, _mm256_set1_ps(ep.scale));
  v = _mm256_add_ps(v, bias);
  if (ep.activation != gemm::Activation::None) v = activate(v, ep.activation);
  if (res) v = _mm256_add_ps(v, load_cols(res, mask, full));
  if (full) _mm256_storeu_ps(c, v);
  else _mm256_maskstore_ps(c, mask, v);
}

KILN_AVX512 __attribute__((always_inline)) inline __m512 load16(const float* p, __mmask16 mask, bool full) {
  return full ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(mask, p);
}

KILN_AVX512 __attribute__((always_inline)) inline void store16(__m512 v, float* c, __mmask16 mask, bool full,
                                                               const gemm::Epilogue& ep, __m512 bias,
                                                               const float* res) {
  if (ep.scale != 1.0f) v = _mm512_mul_ps(v, _mm512_set1_ps(ep.scale));
  v = _mm512_add_ps(v, bias);
  if (ep.activation != gemm::Activation::None) v = activate512(v, ep.activation);
  if (res) v = _mm512_add_ps(v, load16(res, mask, full));
  if (full) _mm512_storeu_ps(c, v);
  else _mm512_mask_storeu_ps(c, mask, v);
}

// Masks, bias and residual rows of an AVX-512 block of NP panels.
template <int NP>
struct Cols512 {
  __mmask16 mask[NP];
  bool full[NP];
  __m512 bias[NP];
  KILN_AVX512 Cols512(int cols, const gemm::Epilogue& ep, std::int64_t col0) {
#pragma GCC unroll 4
    for (int q = 0; q < NP; ++q) {
      const int here = std::clamp(cols - 16 * q, 0, 16);
      mask[q] = static_cast<__mmask16>((1u << here) - 1u);
      full[q] = here == 16;
      bias[q] = ep.bias ? load16(ep.bias + col0 + 16 * q, mask[q], full[q]) : _mm512_setzero_ps();
    }
  }
};

inline const float* residual_row(const gemm::Epilogue& ep, std::int64_t row, std::int64_t col) {
  return ep.residual ? ep.residual + row * ep.ldr + col : nullptr;
}

// ---- s8, AVX-512 VNNI

// Rows [row0, row0+MR) x the NP panels from `panel` on (pb bytes apart), all of K. `a`: the rows' u8
// activations (qa + 128), lda bytes apart; sa: their scales.
// One group (4 k of 16 columns) of NP panels into acc.
template <int MR, int NP>
KILN_VNNI __attribute__((always_inline)) inline void vnni_step(__v16si (&acc)[MR][NP], const unsigned char* a,
                                                               std::size_t lda, const unsigned char* w, std::size_t pb,
                                                               std::int64_t g) {
  __m512i bv[NP];
#pragma GCC unroll 4
  for (int q = 0; q < NP; ++q) bv[q] = _mm512_loadu_si512(w + q * pb + g * 64);
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
    const __m512i av = _mm512_set1_epi32(load32(a + r * lda + 4 * g));
#pragma GCC unroll 4
    for (int q = 0; q < NP; ++q) acc[r][q] = (__v16si)_mm512_dpbusd_epi32((__m512i)acc[r][q], av, bv[q]);
  }
}

template <int MR, int NP>
KILN_VNNI void s8_block_vnni(const unsigned char* a, std::size_t lda, const unsigned char* panel, std::size_t pb,
                             std::int64_t ng, float* c, std::int64_t ldc, int cols, const float* sa,
                             const gemm::Epilogue& ep, std::int64_t row0, std::int64_t col0) {
  constexpr bool kTwoChains = MR <= 2;  // a second accumulator chain over alternate groups (vpdpbusd's latency)
  // Accumulators typed __v16si, the type vpdpbusd works in: an __m512i array (long long lanes) accessed
  // as int lanes is not kept in registers by GCC 12 (every step stored to the stack: 4x slower).
  __v16si acc[MR][NP], acc2[MR][NP];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int q = 0; q < NP; ++q) acc[r][q] = acc2[r][q] = __v16si{};
  const unsigned char* w = panel + kS8Head;
  std::int64_t g = 0;
  if constexpr (kTwoChains) {
    for (; g + 2 <= ng; g += 2) {
      vnni_step<MR, NP>(acc, a, lda, w, pb, g);
      vnni_step<MR, NP>(acc2, a, lda, w, pb, g + 1);
    }
  }
  for (; g < ng; ++g) vnni_step<MR, NP>(acc, a, lda, w, pb, g);
  const Cols512<NP> cl(cols, ep, col0);
  __m512 scale[NP];
  __m512i shift[NP];
#pragma GCC unroll 4
  for (int q = 0; q < NP; ++q) {
    scale[q] = _mm512_loadu_ps(reinterpret_cast<const float*>(panel + q * pb));
    shift[q] = _mm512_slli_epi32(_mm512_loadu_si512(panel + q * pb + 64), 7);  // 128·Σq
  }
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
    const __m512 s = _mm512_set1_ps(sa[r]);
#pragma GCC unroll 4
    for (int q = 0; q < NP; ++q) {
      auto sum = (__m512i)acc[r][q];
      if constexpr (kTwoChains) sum = _mm512_add_epi32(sum, (__m512i)acc2[r][q]);
      const __m512 v = _mm512_mul_ps(_mm512_mul_ps(s, scale[q]), _mm512_cvtepi32_ps(_mm512_sub_epi32(sum, shift[q])));
      store16(v, c + r * ldc + 16 * q, cl.mask[q], cl.full[q], ep, cl.bias[q],
              residual_row(ep, row0 + r, col0 + 16 * q));
    }
  }
}

// Row scale and u8 = qa + 128 of x[0..k), padded with 128 (qa = 0) to `bytes`.
KILN_AVX512 void quantize_row_u8(const float* x, std::int64_t k, unsigned char* dst, std::size_t bytes, float* sa) {
  const __m512 inf = _mm512_set1_ps(std::numeric_limits<float>::infinity());
  const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  __m512 amax = _mm512_setzero_ps();
  __mmask16 bad = 0;
  for (std::int64_t i = 0; i < k; i += 16) {
    const auto m = static_cast<__mmask16>(k - i >= 16 ? 0xffffu : (1u << (k - i)) - 1u);
    const __m512 v = _mm512_and_ps(_mm512_maskz_loadu_ps(m, x + i), absmask);
    bad |= _mm512_cmp_ps_mask(v, inf, _CMP_NLT_UQ);  // ±Inf or NaN
    amax = _mm512_max_ps(amax, v);
  }
  std::memset(dst, 128, bytes);
  if (bad) {
    *sa = std::numeric_limits<float>::quiet_NaN();
    return;
  }
  const float s = s8_scale(_mm512_reduce_max_ps(amax), kS8Levels8);
  *sa = s;
  const __m512 vs = _mm512_set1_ps(s), lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  for (std::int64_t i = 0; i < k; i += 16) {
    const auto m = static_cast<__mmask16>(k - i >= 16 ? 0xffffu : (1u << (k - i)) - 1u);
    __m512 q = _mm512_roundscale_ps(_mm512_div_ps(_mm512_maskz_loadu_ps(m, x + i), vs),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm512_min_ps(_mm512_max_ps(q, lo), hi);
    const __m512i u = _mm512_add_epi32(_mm512_cvtps_epi32(q), _mm512_set1_epi32(128));
    _mm512_mask_cvtepi32_storeu_epi8(dst + i, m, u);
  }
}

// ---- bf16, AVX512_BF16

template <int MR, int NP>
KILN_BF16 __attribute__((always_inline)) inline void bf16_step(__m512 (&acc)[MR][NP], const unsigned char* a,
                                                               std::size_t lda, const unsigned char* w, std::size_t pb,
                                                               std::int64_t g) {
  __m512bh bv[NP];
#pragma GCC unroll 4
  for (int q = 0; q < NP; ++q) bv[q] = (__m512bh)_mm512_loadu_si512(w + q * pb + g * 64);
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
    const auto av = (__m512bh)_mm512_set1_epi32(load32(a + r * lda + 4 * g));
#pragma GCC unroll 4
    for (int q = 0; q < NP; ++q) acc[r][q] = _mm512_dpbf16_ps(acc[r][q], av, bv[q]);
  }
}

template <int MR, int NP>
KILN_BF16 void bf16_block512(const unsigned char* a, std::size_t lda, const unsigned char* panel, std::size_t pb,
                             std::int64_t ng, float* c, std::int64_t ldc, int cols, const float*,
                             const gemm::Epilogue& ep, std::int64_t row0, std::int64_t col0) {
  constexpr bool kTwoChains = MR <= 2;
  __m512 acc[MR][NP], acc2[MR][NP];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int q = 0; q < NP; ++q) acc[r][q] = acc2[r][q] = _mm512_setzero_ps();
  std::int64_t g = 0;
  if constexpr (kTwoChains) {
    for (; g + 2 <= ng; g += 2) {
      bf16_step<MR, NP>(acc, a, lda, panel, pb, g);
      bf16_step<MR, NP>(acc2, a, lda, panel, pb, g + 1);
    }
  }
  for (; g < ng; ++g) bf16_step<MR, NP>(acc, a, lda, panel, pb, g);
  const Cols512<NP> cl(cols, ep, col0);
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int q = 0; q < NP; ++q) {
      __m512 v = acc[r][q];
      if constexpr (kTwoChains) v = _mm512_add_ps(v, acc2[r][q]);
      store16(v, c + r * ldc + 16 * q, cl.mask[q], cl.full[q], ep, cl.bias[q],
              residual_row(ep, row0 + r, col0 + 16 * q));
    }
  }
}

// x[0..k) rounded to bf16 (to_bf16, sixteen at a time), zero-padded to `bytes`.
KILN_AVX512 void round_row_bf16(const float* x, std::int64_t k, unsigned char* dst, std::size_t bytes) {
  std::memset(dst, 0, bytes);
  const __m512i absmask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
  for (std::int64_t i = 0; i < k; i += 16) {
    const auto m = static_cast<__mmask16>(k - i >= 16 ? 0xffffu : (1u << (k - i)) - 1u);
    const __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, x + i));
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff))), 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, absmask), inf);
    r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
    _mm512_mask_cvtepi32_storeu_epi16(dst + 2 * i, m, r);
  }
}

// ---- s8, AVX2

// One group (4 k of 16 columns) into acc: vpmaddubsw multiplies the row's 4 broadcast u8 activations
// (qa + 64, in [1, 127]) by each column's 4 s8 weights and adds adjacent products into s16 (at most
// 2·127·127 = 32258: never saturates), vpmaddwd with ones adds the two pairs of a column into s32.
template <int MR>
KILN_AVX2 __attribute__((always_inline)) inline void s8_step_avx2(__v8si (&acc)[MR][2], const unsigned char* a,
                                                                  std::size_t lda, const unsigned char* w,
                                                                  std::int64_t g) {
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + g * 64));
  const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + g * 64 + 32));
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
    const __m256i av = _mm256_set1_epi32(load32(a + r * lda + 4 * g));
    acc[r][0] += (__v8si)_mm256_madd_epi16(_mm256_maddubs_epi16(av, w0), ones);
    acc[r][1] += (__v8si)_mm256_madd_epi16(_mm256_maddubs_epi16(av, w1), ones);
  }
}

// Rows [row0, row0+MR) x one panel, all of K. `a`: the rows' u8 activations (qa + 64, 4 per group, lda bytes
// apart); 64·Σq (the panel's column sums) is subtracted at the end.
template <int MR, int NP>
KILN_AVX2 void s8_block_avx2(const unsigned char* a, std::size_t lda, const unsigned char* panel, std::size_t,
                             std::int64_t ng, float* c, std::int64_t ldc, int cols, const float* sa,
                             const gemm::Epilogue& ep, std::int64_t row0, std::int64_t col0) {
  static_assert(NP == 1);
  constexpr bool kTwoChains = MR == 1;  // one row: a second accumulator chain over alternate groups
  __v8si acc[MR][2], acc2[MR][2];       // int lanes, as vpmaddwd and vpaddd see them (see s8_block_vnni)
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = acc2[r][0] = acc2[r][1] = __v8si{};
  const unsigned char* w = panel + kS8Head;
  std::int64_t g = 0;
  if constexpr (kTwoChains) {
    for (; g + 2 <= ng; g += 2) {
      s8_step_avx2<MR>(acc, a, lda, w, g);
      s8_step_avx2<MR>(acc2, a, lda, w, g + 1);
    }
  }
  for (; g < ng; ++g) s8_step_avx2<MR>(acc, a, lda, w, g);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i mask0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);
  const __m256i mask1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), lane);
  const bool full = cols == 16;
  const __m256 bias0 = ep.bias ? load_cols(ep.bias + col0, mask0, full) : _mm256_setzero_ps();
  const __m256 bias1 = ep.bias ? load_cols(ep.bias + col0 + 8, mask1, full) : _mm256_setzero_ps();
  const __m256 scale0 = _mm256_loadu_ps(reinterpret_cast<const float*>(panel));
  const __m256 scale1 = _mm256_loadu_ps(reinterpret_cast<const float*>(panel) + 8);
  const __m256i shift0 = _mm256_slli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + 64)), 6);
  const __m256i shift1 = _mm256_slli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + 96)), 6);
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
    auto s0 = (__m256i)acc[r][0], s1 = (__m256i)acc[r][1];
    if constexpr (kTwoChains) {
      s0 = _mm256_add_epi32(s0, (__m256i)acc2[r][0]);
      s1 = _mm256_add_epi32(s1, (__m256i)acc2[r][1]);
    }
    const __m256 s = _mm256_set1_ps(sa[r]);
    const __m256 v0 = _mm256_mul_ps(_mm256_mul_ps(s, scale0), _mm256_cvtepi32_ps(_mm256_sub_epi32(s0, shift0)));
    const __m256 v1 = _mm256_mul_ps(_mm256_mul_ps(s, scale1), _mm256_cvtepi32_ps(_mm256_sub_epi32(s1, shift1)));
    const float* res = residual_row(ep, row0 + r, col0);
    store8(v0, c + r * ldc, mask0, full, ep, bias0, res);
    store8(v1, c + r * ldc + 8, mask1, full, ep, bias1, res ? res + 8 : nullptr);
  }
}

// Row scale (max|x|/63) and u8 = qa + 64 (qa in [-63, 63]) of x[0..k), padded with 64 (qa = 0) to `bytes`.
KILN_AVX2 void quantize_row_u7(const float* x, std::int64_t k, unsigned char* dst, std::size_t bytes, float* sa) {
  const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 inf = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  const std::int64_t whole = k / 8 * 8;
  __m256 amax = _mm256_setzero_ps();
  int bad = 0;
  for (std::int64_t i = 0; i < whole; i += 8) {
    const __m256 v = _mm256_and_ps(_mm256_loadu_ps(x + i), absmask);
    bad |= _mm256_movemask_ps(_mm256_cmp_ps(v, inf, _CMP_NLT_UQ));
    amax = _mm256_max_ps(amax, v);
  }
  float lanes[8];
  _mm256_storeu_ps(lanes, amax);
  float m = 0.0f;
  for (float l : lanes) m = std::max(m, l);
  for (std::int64_t i = whole; i < k; ++i) {
    if (!finite(x[i])) bad = 1;
    m = std::max(m, std::fabs(x[i]));
  }
  std::memset(dst, 64, bytes);
  if (bad) {
    *sa = std::numeric_limits<float>::quiet_NaN();
    return;
  }
  const float s = s8_scale(m, kS8Levels7);
  *sa = s;
  const __m256 vs = _mm256_set1_ps(s), lo = _mm256_set1_ps(-63.0f), hi = _mm256_set1_ps(63.0f);
  const __m256i offset = _mm256_set1_epi32(64);
  const std::int64_t whole32 = k / 32 * 32;
  for (std::int64_t i = 0; i < whole32; i += 32) {
    __m256i q[4];
#pragma GCC unroll 4
    for (int t = 0; t < 4; ++t) {
      __m256 v = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x + i + 8 * t), vs),
                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
      q[t] = _mm256_add_epi32(_mm256_cvtps_epi32(v), offset);
    }
    // packs works within 128-bit lanes: after the two packs the dwords hold x[0-3], x[8-11], x[16-19],
    // x[24-27] | x[4-7], x[12-15], x[20-23], x[28-31]; the permutation puts the eight in order.
    const __m256i p = _mm256_packus_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_permutevar8x32_epi32(p, order));
  }
  for (std::int64_t i = whole32; i < k; ++i) dst[i] = static_cast<unsigned char>(s8_round(x[i], s, kS8Levels7) + 64);
}

// ---- bf16, AVX2 (emulated)

// Rows [row0, row0+MR) x one panel: each 32-bit pair (w[2g] low, w[2g+1] high) widened to two f32 by a
// shift and a mask. `a`: the rows' activations as f32 already rounded to bf16 (2 per group).
// One group (2 k of 16 columns) into acc[r][half] (columns 8·half..) and odd[r][half] (the odd k: a chain of
// its own, so that the two FMAs of a group do not wait for each other).
template <int MR>
KILN_AVX2 __attribute__((always_inline)) inline void bf16_step_avx2(__m256 (&acc)[MR][2], __m256 (&odd)[MR][2],
                                                                    const unsigned char* a, std::size_t lda,
                                                                    const unsigned char* panel, std::int64_t g) {
  const __m256i high = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
#pragma GCC unroll 2
  for (int half = 0; half < 2; ++half) {
    const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + g * 64 + 32 * half));
    const __m256 w0 = _mm256_castsi256_ps(_mm256_slli_epi32(wv, 16));
    const __m256 w1 = _mm256_castsi256_ps(_mm256_and_si256(wv, high));
#pragma GCC unroll 5
    for (int r = 0; r < MR; ++r) {
      const float* ar = reinterpret_cast<const float*>(a + r * lda) + 2 * g;
      acc[r][half] = _mm256_fmadd_ps(_mm256_broadcast_ss(ar), w0, acc[r][half]);
      odd[r][half] = _mm256_fmadd_ps(_mm256_broadcast_ss(ar + 1), w1, odd[r][half]);
    }
  }
}

// Rows [row0, row0+MR) x one panel: each 32-bit pair (w[2g] low, w[2g+1] high) widened to two f32 by a
// shift and a mask. `a`: the rows' activations as f32 already rounded to bf16 (2 per group).
template <int MR, int NP>
KILN_AVX2 void bf16_block_avx2(const unsigned char* a, std::size_t lda, const unsigned char* panel, std::size_t,
                               std::int64_t ng, float* c, std::int64_t ldc, int cols, const float*,
                               const gemm::Epilogue& ep, std::int64_t row0, std::int64_t col0) {
  static_assert(NP == 1);
  constexpr bool kTwoChains = MR == 1;  // one row: two more chains over alternate groups
  __m256 acc[MR][2], odd[MR][2], acc2[MR][2], odd2[MR][2];
#pragma GCC unroll 5
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) acc[r][h] = odd[r][h] = acc2[r][h] = odd2[r][h] = _mm256_setzero_ps();
  std::int64_t g = 0;
  if constexpr (kTwoChains) {
    for (; g + 2 <= ng; g += 2) {
      bf16_step_avx2<MR>(acc, odd, a, lda, panel, g);
      bf16_step_avx2<MR>(acc2, odd2, a, lda, panel, g + 1);
    }
  }
  for (; g < ng; ++g) bf16_step_avx2<MR>(acc, odd, a, lda, panel, g);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i mask0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);
  const __m256i mask1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), lane);
  const bool full = cols == 16;
  const __m256 bias0 = ep.bias ? load_cols(ep.bias + col0, mask0, full) : _mm256_setzero_ps();
  const __m256 bias1 = ep.bias ? load_cols(ep.bias + col0 + 8, mask1, full) : _mm256_setzero_ps();
#pragma GCC unroll 5
  for (int r = 0; r < MR; ++r) {
    __m256 v0 = _mm256_add_ps(acc[r][0], odd[r][0]), v1 = _mm256_add_ps(acc[r][1], odd[r][1]);
    if constexpr (kTwoChains) {
      v0 = _mm256_add_ps(v0, _mm256_add_ps(acc2[r][0], odd2[r][0]));
      v1 = _mm256_add_ps(v1, _mm256_add_ps(acc2[r][1], odd2[r][1]));
    }
    const float* res = residual_row(ep, row0 + r, col0);
    store8(v0, c + r * ldc, mask0, full, ep, bias0, res);
    store8(v1, c + r * ldc + 8, mask1, full, ep, bias1, res ? res + 8 : nullptr);
  }
}

// Panel `panel` (bf16) widened to f32 in `dst`, 32 floats per group: the 16 columns of k = 2g, then of
// k = 2g+1 (the f32 GEMM's panel order), for bf16_wide_block_avx2.
KILN_AVX2 void widen_panel_bf16(const unsigned char* panel, std::int64_t ng, float* dst) {
  const __m256i high = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  for (std::int64_t g = 0; g < ng; ++g)
    for (int half = 0; half < 2; ++half) {
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + g * 64 + 32 * half));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + g * 32 + 8 * half), _mm256_slli_epi32(wv, 16));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + g * 32 + 16 + 8 * half), _mm256_and_si256(wv, high));
    }
}

// bf16 on AVX2 for three rows or more (4 rows in registers measured 1.7x slower than this): the panel
// widened once per thread and rows block (widen_panel_bf16), then the f32 GEMM's 6x16 register block (12
// accumulators; per k two loads, six broadcasts, twelve FMAs), so that reusing the weights across rows
// costs no conversions. `panel`: the widened panel.
template <int MR, int NP>
KILN_AVX2 void bf16_wide_block_avx2(const unsigned char* a, std::size_t lda, const unsigned char* panel, std::size_t,
                                    std::int64_t ng, float* c, std::int64_t ldc, int cols, const float*,
                                    const gemm::Epilogue& ep, std::int64_t row0, std::int64_t col0) {
  static_assert(NP == 1);
  const auto* wf = reinterpret_cast<const float*>(panel);
  __m256 acc[MR][2];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (std::int64_t i = 0; i < 2 * ng; ++i) {  // k = i: group i/2, parity i%2
    const __m256 w0 = _mm256_loadu_ps(wf + 16 * i), w1 = _mm256_loadu_ps(wf + 16 * i + 8);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      const __m256 av = _mm256_broadcast_ss(reinterpret_cast<const float*>(a + r * lda) + i);
      acc[r][0] = _mm256_fmadd_ps(av, w0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(av, w1, acc[r][1]);
    }
  }
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i mask0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);
  const __m256i mask1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), lane);
  const bool full = cols == 16;
  const __m256 bias0 = ep.bias ? load_cols(ep.bias + col0, mask0, full) : _mm256_setzero_ps();
  const __m256 bias1 = ep.bias ? load_cols(ep.bias + col0 + 8, mask1, full) : _mm256_setzero_ps();
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
    const float* res = residual_row(ep, row0 + r, col0);
    store8(acc[r][0], c + r * ldc, mask0, full, ep, bias0, res);
    store8(acc[r][1], c + r * ldc + 8, mask1, full, ep, bias1, res ? res + 8 : nullptr);
  }
}

// x[0..k) rounded to bf16, as f32, zero-padded to `bytes`.
KILN_AVX2 void round_row_bf16_f32(const float* x, std::int64_t k, unsigned char* dst, std::size_t bytes) {
  std::memset(dst, 0, bytes);
  auto* out = reinterpret_cast<float*>(dst);
  const __m256i absmask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
  const __m256i high = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  const std::int64_t whole = k / 8 * 8;
  for (std::int64_t i = 0; i < whole; i += 8) {
    const __m256i u = _mm256_castps_si256(_mm256_loadu_ps(x + i));
    const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff)));
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, absmask), inf);  // both sides < 2^31: signed is fine
    const __m256i v = _mm256_blendv_epi8(r, _mm256_or_si256(u, _mm256_set1_epi32(0x400000)), nan);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_and_si256(v, high));
  }
  for (std::int64_t i = whole; i < k; ++i) out[i] = from_bf16(to_bf16(x[i]));
}

// ---- dispatch tables

template <int NP, std::size_t... R>
constexpr std::array<BlockFn, kMaxRows + 1> row_fns(std::index_sequence<R...>, int which) {
  std::array<BlockFn, kMaxRows + 1> out{};
  ((out[R + 1] = which == 0   ? &s8_block_vnni<static_cast<int>(R) + 1, NP>
                 : which == 1 ? &bf16_block512<static_cast<int>(R) + 1, NP>
                              : nullptr),
   ...);
  return out;
}

BlockTable wide_table(int which) {
  BlockTable t{};
  t[1] = row_fns<1>(std::make_index_sequence<kMaxRows>{}, which);
  t[2] = row_fns<2>(std::make_index_sequence<kMaxRows>{}, which);
  t[3] = row_fns<3>(std::make_index_sequence<kMaxRows>{}, which);
  t[4] = row_fns<4>(std::make_index_sequence<kMaxRows>{}, which);
  return t;
}

BlockTable avx2_table(bool s8) {
  BlockTable t{};
  if (s8) {
    t[1] = {nullptr,
            s8_block_avx2<1, 1>,
            s8_block_avx2<2, 1>,
            s8_block_avx2<3, 1>,
            s8_block_avx2<4, 1>,
            s8_block_avx2<5, 1>,
            s8_block_avx2<6, 1>};
  } else {
    t[1] = {nullptr, bf16_block_avx2<1, 1>, bf16_block_avx2<2, 1>};
    t[0] = {nullptr,  // widened panels
            bf16_wide_block_avx2<1, 1>,
            bf16_wide_block_avx2<2, 1>,
            bf16_wide_block_avx2<3, 1>,
            bf16_wide_block_avx2<4, 1>,
            bf16_wide_block_avx2<5, 1>,
            bf16_wide_block_avx2<6, 1>};
  }
  return t;
}

struct KernelInfo {
  BlockTable blocks;
  int rows;           // rows per register block
  int panels;         // panels per register block (and per thread share unit)
  int wide_rows = 0;  // bf16 on AVX2: rows per block of the widened-panel kernel (blocks[0])
};

const KernelInfo& info(Kernel kern) {
  static const KernelInfo s8_vnni{wide_table(0), kMaxRows, kMaxPanels};
  static const KernelInfo bf16_512{wide_table(1), kMaxRows, kMaxPanels};
  static const KernelInfo s8_avx2{avx2_table(true), kAvx2S8Rows, 1};
  static const KernelInfo bf16_avx2{avx2_table(false), 2, 1, 6};
  switch (kern) {
    case Kernel::s8_vnni: return s8_vnni;
    case Kernel::bf16_avx512: return bf16_512;
    case Kernel::s8_avx2: return s8_avx2;
    default: return bf16_avx2;
  }
}

void prepare_row(Kernel kern, const float* x, std::int64_t k, unsigned char* dst, std::size_t bytes, float* sa) {
  switch (kern) {
    case Kernel::s8_vnni: quantize_row_u8(x, k, dst, bytes, sa); break;
    case Kernel::s8_avx2: quantize_row_u7(x, k, dst, bytes, sa); break;
    case Kernel::bf16_avx512: round_row_bf16(x, k, dst, bytes); break;
    case Kernel::bf16_avx2: round_row_bf16_f32(x, k, dst, bytes); break;
    case Kernel::none: break;
  }
}

// A's rows as big a block as keeps them (their quantized form) in L2 while the panels stream past.
constexpr std::size_t kRowBlockBytes = 256 * 1024;

// One thread's share: panels [p0, p1) x rows [m0, m1) of the quantized rows `qa` (stride bytes apart).
void tile(const KernelInfo& ki, const unsigned char* qa, std::size_t stride, const float* sa,
          const unsigned char* packed, std::size_t pb, std::int64_t ng, float* c, std::int64_t ldc, std::int64_t m0,
          std::int64_t m1, std::int64_t p0, std::int64_t p1, std::int64_t n, const gemm::Epilogue& ep) {
  const bool widen = ki.wide_rows > 0 && m1 - m0 >= 3;
  float* wide =
      widen ? reinterpret_cast<float*>(act_buffer(static_cast<std::size_t>(ng) * 32 * sizeof(float), 1)) : nullptr;
  const std::int64_t mr = ki.rows, rstep = widen ? ki.wide_rows : mr;
  const std::int64_t mblock =
      std::max<std::int64_t>(rstep, static_cast<std::int64_t>(kRowBlockBytes / stride) / rstep * rstep);
  for (std::int64_t mb = m0; mb < m1; mb += mblock) {
    const std::int64_t me = std::min(m1, mb + mblock);
    for (std::int64_t p = p0; p < p1; p += ki.panels) {
      const auto np = static_cast<int>(std::min<std::int64_t>(ki.panels, p1 - p));
      const std::int64_t col0 = p * kPanel;
      const int cols = static_cast<int>(std::min(kPanel * np, n - col0));
      const unsigned char* panel = packed + static_cast<std::size_t>(p) * pb;
      auto table = static_cast<std::size_t>(np);
      if (widen) {  // bf16 on AVX2, three rows or more: f32 panel, the f32 register block (table 0)
        widen_panel_bf16(panel, ng, wide);
        panel = reinterpret_cast<const unsigned char*>(wide);
        table = 0;
      }
      for (std::int64_t r = mb; r < me; r += rstep) {
        const auto rows = static_cast<int>(std::min(rstep, me - r));
        ki.blocks[table][static_cast<std::size_t>(rows)](qa + static_cast<std::size_t>(r) * stride, stride, panel, pb,
                                                         ng, c + r * ldc + col0, ldc, cols, sa + r, ep, r, col0);
      }
    }
  }
}

#endif  // KILN_GEMM_X86

// Below this many multiply-adds (rows·n·k) a call runs on one thread: measured on the Zen 5 host (docs/gemm.md
// "Quantized weights"), two threads were no faster or slower at 2^20 (1x256x4096, 4x256x1024, 16x256x256)
// and 1.5-2.2x faster from 1.5·2^20 on (1x256x6144, 8x256x1024, 16x256x512).
constexpr double kMinParallelMacs = 1.25 * (1 << 20);

}  // namespace

bool available(Format f) { return kernel(f) != Kernel::none; }

int activation_levels(Format f) {
  if (f != Format::s8) return 0;
  return kernel(f) == Kernel::s8_avx2 ? kS8Levels7 : kS8Levels8;
}

const char* variant(Format f) {
  switch (kernel(f)) {
    case Kernel::s8_vnni: return "kiln:qgemm_s8_vnni";
    case Kernel::s8_avx2: return "kiln:qgemm_s8_avx2";
    case Kernel::bf16_avx512: return "kiln:qgemm_bf16_avx512";
    case Kernel::bf16_avx2: return "kiln:qgemm_bf16_avx2";
    case Kernel::none: break;
  }
  return f == Format::s8 ? "kiln:qgemm_s8_ref" : "kiln:qgemm_bf16_ref";
}

void multiply(Format f, const float* a, std::int64_t lda, const void* packed, float* c, std::int64_t ldc,
              std::int64_t rows, std::int64_t n, std::int64_t k, const gemm::Epilogue& epilogue, int threads) {
  if (rows <= 0 || n <= 0) return;
  const Kernel kern = kernel(f);
  if (kern == Kernel::none || k <= 0) {  // no vector kernel here, or an empty sum (the epilogue of 0)
    multiply_reference(f, a, lda, packed, c, ldc, rows, n, k, epilogue, activation_levels(f));
    return;
  }
#if KILN_GEMM_X86
  const KernelInfo& ki = info(kern);
  const std::int64_t ng = groups(f, k), np = (n + kPanel - 1) / kPanel;
  const std::size_t pb = panel_bytes(f, k), stride = row_stride(kern, ng);
  const std::size_t scales = (static_cast<std::size_t>(rows) * sizeof(float) + 63) / 64 * 64;
  unsigned char* buffer = act_buffer(scales + static_cast<std::size_t>(rows) * stride);
  auto* sa = reinterpret_cast<float*>(buffer);
  unsigned char* qa = buffer + scales;
  const auto* base = static_cast<const unsigned char*>(packed);
  const double macs = static_cast<double>(rows) * static_cast<double>(n) * static_cast<double>(k);
  if (threads <= 0) threads = macs < kMinParallelMacs ? 1 : omp_get_max_threads();
  const std::int64_t unit = ki.panels, units = (np + unit - 1) / unit;
  if (threads <= 1) {
    for (std::int64_t m = 0; m < rows; ++m)
      prepare_row(kern, a + m * lda, k, qa + static_cast<std::size_t>(m) * stride, stride, sa + m);
    tile(ki, qa, stride, sa, base, pb, ng, c, ldc, 0, rows, 0, np, n, epilogue);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    // Each row is quantized once, by one thread; the barrier at the end of the loop publishes them all.
#pragma omp for schedule(static)
    for (std::int64_t m = 0; m < rows; ++m)
      prepare_row(kern, a + m * lda, k, qa + static_cast<std::size_t>(m) * stride, stride, sa + m);
    const std::int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    if (units >= nt) {  // split the columns: each thread reads only its share of the weights
      tile(ki, qa, stride, sa, base, pb, ng, c, ldc, 0, rows, std::min(np, units * t / nt * unit),
           std::min(np, units * (t + 1) / nt * unit), n, epilogue);
    } else {  // few columns: split the rows, in whole register blocks
      const std::int64_t per = ki.rows, blocks = (rows + per - 1) / per;
      const std::int64_t m0 = std::min(rows, blocks * t / nt * per), m1 = std::min(rows, blocks * (t + 1) / nt * per);
      if (m0 < m1) tile(ki, qa, stride, sa, base, pb, ng, c, ldc, m0, m1, 0, np, n, epilogue);
    }
  }
#endif
}

}  // namespace kiln::qgemm
