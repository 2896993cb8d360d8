// Kiln's f32 GEMM with prepacked weights (see gemm.hpp for why). Blocking, from the inside out:
//   - a 6x16 register block: 12 ymm accumulators, two ymm loads of the packed panel and six broadcasts
//     of A per k, 12 FMAs (the classic AVX2 shape: 15 of the 16 ymm registers);
//   - K in blocks of kDepth (512: a whole K for most Transformer layers; partial sums live in C between
//     K blocks and the epilogue runs on the last one);
//   - M in blocks of at most kRowBlock rows, copied into a per-thread buffer in register-block order so
//     the block being swept (144 x 512 floats = 288 KB) stays in L2 and is read as one stream, while each
//     panel's block streams from memory once per row block.
// Threads split the panels (columns), or the rows when there are fewer panels than threads.
// The AVX-512 variant (tile512, below the AVX2 one) keeps the panels and the K/M blocking and changes the
// register block to 12x32 (two adjacent panels, 24 zmm accumulators); multiply() and softmax_rows() pick
// the variant at each call from variant_level().
// Measured choices (docs/gemm.md; `kiln_matmul_peak --kiln` compares with oneDNN): K blocks of 256 were slower than 512 at
// the Transformer shapes (the extra pass over C costs more than L1 residency of the panel gains), and
// software prefetch of the next panel did not help.

#include "ops/gemm.hpp"
#include "ops/gemm_epilogue.hpp"
#include "ops/isa.hpp"

#include <omp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>
#include <string_view>
#include <tuple>
#include <utility>

namespace kiln::gemm {
namespace {

using detail::activate_scalar;

constexpr std::int64_t kDepth = 512;     // K block
constexpr std::int64_t kRowBlock = 144;  // largest M block (a multiple of kRows)

std::int64_t panels(std::int64_t n) { return (n + kPanel - 1) / kPanel; }

#if KILN_GEMM_X86

enum Mode : int { kFirst = 1, kLast = 2 };

using detail::activate;
using detail::activate512;
using detail::exp_nonpositive;
using detail::exp_nonpositive512;

KILN_AVX2 inline __m256 load_cols(const float* p, __m256i mask, bool full) {
  return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, mask);
}

// One k of a register block: the panel's 16 floats at k against each of the MR rows' value at k.
template <int MR>
KILN_AVX2 __attribute__((always_inline)) inline void fma_step(const float* a, const float* b, std::int64_t k,
                                                              __m256 (&acc0)[MR], __m256 (&acc1)[MR]) {
  const __m256 b0 = _mm256_load_ps(b + 16 * k);
  const __m256 b1 = _mm256_load_ps(b + 16 * k + 8);
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
    const __m256 av = _mm256_broadcast_ss(a + kRows * k + r);
    acc0[r] = _mm256_fmadd_ps(av, b0, acc0[r]);
    acc1[r] = _mm256_fmadd_ps(av, b1, acc1[r]);
  }
}

// Rows [row0, row0+MR) x columns [col0, col0+cols) of C from one K block. `a` is the rows' packed register
// block (kRows floats per k), `b` the panel's K block (16 floats per k).
// One or two rows (a decoding step) keep kSets = 4 or 2 sets of accumulators, k mod kSets each, added at the end:
// with one set a row's two chains of dependent FMAs bound the loop by the FMA latency, not by the loads
// (1 x 256 x 1024: 0.0142 ms with one set, 0.0074 with four; docs/gemm.md "The GEMM"). Three rows and more have
// enough chains and sum in k order.
template <int MR>
KILN_AVX2 void block(const float* a, const float* b, std::int64_t depth, float* c, std::int64_t ldc, int cols, int mode,
                     const Epilogue& ep, std::int64_t row0, std::int64_t col0) {
  constexpr int kSets = MR == 1 ? 4 : MR == 2 ? 2 : 1;
  __m256 acc0[kSets][MR], acc1[kSets][MR];
#pragma GCC unroll 4
  for (int s = 0; s < kSets; ++s)
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) acc0[s][r] = acc1[s][r] = _mm256_setzero_ps();
  std::int64_t k = 0;
  if constexpr (kSets == 1) {
#pragma GCC unroll 4
    for (; k < depth; ++k) fma_step<MR>(a, b, k, acc0[0], acc1[0]);
  } else {
    for (; k + kSets <= depth; k += kSets)
#pragma GCC unroll 4
      for (int s = 0; s < kSets; ++s) fma_step<MR>(a, b, k + s, acc0[s], acc1[s]);
    for (; k < depth; ++k) fma_step<MR>(a, b, k, acc0[0], acc1[0]);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      if constexpr (kSets == 4) {
        acc0[0][r] = _mm256_add_ps(_mm256_add_ps(acc0[0][r], acc0[1][r]), _mm256_add_ps(acc0[2][r], acc0[3][r]));
        acc1[0][r] = _mm256_add_ps(_mm256_add_ps(acc1[0][r], acc1[1][r]), _mm256_add_ps(acc1[2][r], acc1[3][r]));
      } else {
        acc0[0][r] = _mm256_add_ps(acc0[0][r], acc0[1][r]);
        acc1[0][r] = _mm256_add_ps(acc1[0][r], acc1[1][r]);
      }
    }
  }
  // Columns past `cols` (a partial last panel) are computed from the zero padding and never stored.
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i mask0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);
  const __m256i mask1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), lane);
  const bool full = cols == static_cast<int>(kPanel);
  __m256 bias0 = _mm256_setzero_ps(), bias1 = _mm256_setzero_ps();
  if ((mode & kLast) && ep.bias) {
    bias0 = load_cols(ep.bias + col0, mask0, full);
    bias1 = load_cols(ep.bias + col0 + 8, mask1, full);
  }
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
    float* cr = c + r * ldc;
    __m256 v0 = acc0[0][r], v1 = acc1[0][r];
    if (!(mode & kFirst)) {
      v0 = _mm256_add_ps(v0, load_cols(cr, mask0, full));
      v1 = _mm256_add_ps(v1, load_cols(cr + 8, mask1, full));
    }
    if (mode & kLast) {
      if (ep.scale != 1.0f) {
        v0 = _mm256_mul_ps(v0, _mm256_set1_ps(ep.scale));
        v1 = _mm256_mul_ps(v1, _mm256_set1_ps(ep.scale));
      }
      v0 = _mm256_add_ps(v0, bias0);
      v1 = _mm256_add_ps(v1, bias1);
      if (ep.activation != Activation::None) {
        v0 = activate(v0, ep.activation);
        v1 = activate(v1, ep.activation);
      }
      if (ep.residual) {
        const float* res = ep.residual + (row0 + r) * ep.ldr + col0;
        v0 = _mm256_add_ps(v0, load_cols(res, mask0, full));
        v1 = _mm256_add_ps(v1, load_cols(res + 8, mask1, full));
      }
    }
    if (full) {
      _mm256_storeu_ps(cr, v0);
      _mm256_storeu_ps(cr + 8, v1);
    } else {
      _mm256_maskstore_ps(cr, mask0, v0);
      _mm256_maskstore_ps(cr + 8, mask1, v1);
    }
  }
}

using BlockFn = void (*)(const float*, const float*, std::int64_t, float*, std::int64_t, int, int, const Epilogue&,
                         std::int64_t, std::int64_t);
constexpr BlockFn kBlocks[kRows + 1] = {nullptr, block<1>, block<2>, block<3>, block<4>, block<5>, block<6>};

// Copies rows [r0, r1) x columns [k0, k0+depth) of A into `dst` as register blocks of kRows rows, each
// stored k-major (kRows consecutive floats per k), so the kernel reads one sequential stream.
// `per`: rows per register block (kRows for the AVX2 kernel, kRows512 for the AVX-512 one).
void pack_rows(const float* a, std::int64_t lda, std::int64_t r0, std::int64_t r1, std::int64_t k0, std::int64_t depth,
               float* dst, std::int64_t per) {
  for (std::int64_t r = r0; r < r1; r += per) {
    float* blockd = dst + (r - r0) * depth;
    const std::int64_t mr = std::min(per, r1 - r);
    for (std::int64_t j = 0; j < mr; ++j) {
      const float* src = a + (r + j) * lda + k0;
      for (std::int64_t i = 0; i < depth; ++i) blockd[i * per + j] = src[i];
    }
  }
}

// One thread's share: panels [p0, p1) x rows [m0, m1).
void tile(const float* a, std::int64_t lda, const float* packed, float* c, std::int64_t ldc, std::int64_t m0,
          std::int64_t m1, std::int64_t p0, std::int64_t p1, std::int64_t n, std::int64_t k, const Epilogue& ep) {
  float* rows = thread_buffer(0, static_cast<std::size_t>(kRowBlock * kDepth));
  // Row blocks of equal size (whole register blocks), not kRowBlock and a small remainder: each row
  // block reads every panel again.
  const std::int64_t nblocks = (m1 - m0 + kRowBlock - 1) / kRowBlock;
  const std::int64_t step = ((m1 - m0 + nblocks - 1) / nblocks + kRows - 1) / kRows * kRows;
  for (std::int64_t mb = m0; mb < m1; mb += step) {
    const std::int64_t me = std::min(m1, mb + step);
    for (std::int64_t k0 = 0; k0 < k; k0 += kDepth) {
      const std::int64_t depth = std::min(kDepth, k - k0);
      const int mode = (k0 == 0 ? kFirst : 0) | (k0 + depth == k ? kLast : 0);
      pack_rows(a, lda, mb, me, k0, depth, rows, kRows);
      for (std::int64_t p = p0; p < p1; ++p) {
        const float* b = packed + p * kPanel * k + k0 * kPanel;
        const std::int64_t col0 = p * kPanel;
        const int cols = static_cast<int>(std::min(kPanel, n - col0));
        for (std::int64_t r = mb; r < me; r += kRows)
          kBlocks[std::min(kRows, me - r)](rows + (r - mb) * depth, b, depth, c + r * ldc + col0, ldc, cols, mode, ep,
                                           r, col0);
      }
    }
  }
}

// ---- AVX-512 variant ------------------------------------------------------------------------------------
// The same packed panels, read two at a time: a kRows512 x 32 register block (2·kRows512 zmm accumulators),
// per k two zmm loads (one per panel), kRows512 broadcasts of A and 2·kRows512 FMAs. The epilogue is the
// AVX2 one, sixteen lanes wide, with the same formulas (so the same accuracy).

constexpr std::int64_t kRows512 = 12;  // rows per register block
constexpr std::int64_t kRowBlock512 =
    kRowBlock / kRows512 * kRows512;        // largest M block, whole register blocks (288 rows: no better)
constexpr std::int64_t kDepth512 = kDepth;  // K block (256 measured slower here too)

KILN_AVX512 inline __m512 load16(const float* p, __mmask16 mask, bool full) {
  return full ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(mask, p);
}

// One k of an AVX-512 register block: NP panels' 16 floats at k against each of the MR rows' value at k.
template <int MR, int NP>
KILN_AVX512 __attribute__((always_inline)) inline void fma_step512(const float* a, const float* b, std::int64_t next,
                                                                   std::int64_t k, __m512 (&acc)[NP][MR]) {
  __m512 bv[NP];
#pragma GCC unroll 2
  for (int q = 0; q < NP; ++q) bv[q] = _mm512_load_ps(b + q * next + 16 * k);
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    const __m512 av = _mm512_set1_ps(a[kRows512 * k + r]);
#pragma GCC unroll 2
    for (int q = 0; q < NP; ++q) acc[q][r] = _mm512_fmadd_ps(av, bv[q], acc[q][r]);
  }
}

// Rows [row0, row0+MR) x columns [col0, col0+cols) of C from one K block of NP adjacent panels (cols <=
// 16·NP). `a`: the rows' register block (kRows512 floats per k); `b`: the first panel's K block, the next
// panel `next` floats further (16·K: panels are stored whole, one after the other).
template <int MR, int NP>
KILN_AVX512 void block512(const float* a, const float* b, std::int64_t next, std::int64_t depth, float* c,
                          std::int64_t ldc, int cols, int mode, const Epilogue& ep, std::int64_t row0,
                          std::int64_t col0) {
  // One or two rows: kSets sets of accumulators over k mod kSets, as in the AVX2 block.
  constexpr int kSets = MR == 1 ? 4 : MR == 2 ? 2 : 1;
  __m512 accs[kSets][NP][MR];
#pragma GCC unroll 4
  for (int s = 0; s < kSets; ++s)
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
      for (int q = 0; q < NP; ++q) accs[s][q][r] = _mm512_setzero_ps();
  std::int64_t k = 0;
  if constexpr (kSets == 1) {
#pragma GCC unroll 2
    for (; k < depth; ++k) fma_step512<MR, NP>(a, b, next, k, accs[0]);
  } else {
    for (; k + kSets <= depth; k += kSets)
#pragma GCC unroll 4
      for (int s = 0; s < kSets; ++s) fma_step512<MR, NP>(a, b, next, k + s, accs[s]);
    for (; k < depth; ++k) fma_step512<MR, NP>(a, b, next, k, accs[0]);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
      for (int q = 0; q < NP; ++q) {
        if constexpr (kSets == 4)
          accs[0][q][r] =
              _mm512_add_ps(_mm512_add_ps(accs[0][q][r], accs[1][q][r]), _mm512_add_ps(accs[2][q][r], accs[3][q][r]));
        else accs[0][q][r] = _mm512_add_ps(accs[0][q][r], accs[1][q][r]);
      }
  }
  auto& acc = accs[0];
  __mmask16 mask[NP];
  bool full[NP];
  __m512 bias[NP];
#pragma GCC unroll 2
  for (int q = 0; q < NP; ++q) {
    const int here = std::clamp(cols - 16 * q, 0, 16);
    mask[q] = static_cast<__mmask16>((1u << here) - 1u);
    full[q] = here == 16;
    bias[q] = (mode & kLast) && ep.bias ? load16(ep.bias + col0 + 16 * q, mask[q], full[q]) : _mm512_setzero_ps();
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    float* cr = c + r * ldc;
#pragma GCC unroll 2
    for (int q = 0; q < NP; ++q) {
      __m512 v = acc[q][r];
      if (!(mode & kFirst)) v = _mm512_add_ps(v, load16(cr + 16 * q, mask[q], full[q]));
      if (mode & kLast) {
        if (ep.scale != 1.0f) v = _mm512_mul_ps(v, _mm512_set1_ps(ep.scale));
        v = _mm512_add_ps(v, bias[q]);
        if (ep.activation != Activation::None) v = activate512(v, ep.activation);
        if (ep.residual)
          v = _mm512_add_ps(v, load16(ep.residual + (row0 + r) * ep.ldr + col0 + 16 * q, mask[q], full[q]));
      }
      if (full[q]) _mm512_storeu_ps(cr + 16 * q, v);
      else _mm512_mask_storeu_ps(cr + 16 * q, mask[q], v);
    }
  }
}

// r[0..15] (16 rows of 16 floats) becomes its transpose: r[c] = column c of the input, lane j = row j.
KILN_AVX512 inline void transpose16(__m512 r[16]) {
  __m512 t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);      // per 128-bit lane: a0 b0 a1 b1
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);  // a2 b2 a3 b3
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {  // u[4i+c]: rows 4i..4i+3 of column c + 4L in 128-bit lane L
    r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {  // gather lane L of u[c], u[4+c], u[8+c], u[12+c] into column c + 4L
    t[c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);      // u[c].L0 u[c].L2 u[4+c].L0 u[4+c].L2
    t[4 + c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xDD);  // lanes 1 and 3
    t[8 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
    t[12 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xDD);
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);
    r[c + 8] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xDD);
    r[c + 4] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0x88);
    r[c + 12] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0xDD);
  }
}

// pack_rows for the AVX-512 kernel (kRows512 rows per block), sixteen k at a time through transpose16;
// the same layout as pack_rows(..., kRows512), rows past r1 in the last block zero.
KILN_AVX512 void pack_rows512(const float* a, std::int64_t lda, std::int64_t r0, std::int64_t r1, std::int64_t k0,
                              std::int64_t depth, float* dst) {
  constexpr __mmask16 kBlockLanes = (1u << kRows512) - 1u;
  const std::int64_t whole = depth / 16 * 16;
  for (std::int64_t r = r0; r < r1; r += kRows512) {
    float* blockd = dst + (r - r0) * depth;
    const std::int64_t mr = std::min(kRows512, r1 - r);
    for (std::int64_t i = 0; i < whole; i += 16) {
      __m512 v[16];
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j) v[j] = j < mr ? _mm512_loadu_ps(a + (r + j) * lda + k0 + i) : _mm512_setzero_ps();
      transpose16(v);
#pragma GCC unroll 16
      for (int c = 0; c < 16; ++c) _mm512_mask_storeu_ps(blockd + (i + c) * kRows512, kBlockLanes, v[c]);
    }
    for (std::int64_t j = 0; j < mr; ++j) {
      const float* src = a + (r + j) * lda + k0;
      for (std::int64_t i = whole; i < depth; ++i) blockd[i * kRows512 + j] = src[i];
    }
  }
}

// Panel p of pack_weights (columns 16p.. of w, rows ldw apart, k of each), sixteen k at a time.
KILN_AVX512 void pack_panel512(const float* w, std::int64_t ldw, std::int64_t cols, std::int64_t k, float* dst) {
  const std::int64_t whole = k / 16 * 16;
  for (std::int64_t i = 0; i < whole; i += 16) {
    __m512 v[16];
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) v[j] = j < cols ? _mm512_loadu_ps(w + j * ldw + i) : _mm512_setzero_ps();
    transpose16(v);
#pragma GCC unroll 16
    for (int c = 0; c < 16; ++c) _mm512_storeu_ps(dst + (i + c) * kPanel, v[c]);
  }
  for (std::int64_t j = 0; j < kPanel; ++j)
    for (std::int64_t i = whole; i < k; ++i) dst[i * kPanel + j] = j < cols ? w[j * ldw + i] : 0.0f;
}

using Block512Fn = void (*)(const float*, const float*, std::int64_t, std::int64_t, float*, std::int64_t, int, int,
                            const Epilogue&, std::int64_t, std::int64_t);
template <int NP, std::size_t... R>
constexpr std::array<Block512Fn, kRows512 + 1> blocks512(std::index_sequence<R...>) {
  return {nullptr, block512<static_cast<int>(R) + 1, NP>...};
}
constexpr std::array<Block512Fn, kRows512 + 1> kBlocks512[2] = {blocks512<1>(std::make_index_sequence<kRows512>{}),
                                                                blocks512<2>(std::make_index_sequence<kRows512>{})};

// tile() for the AVX-512 kernel: panels [p0, p1) in pairs (a last odd panel alone), rows [m0, m1).
void tile512(const float* a, std::int64_t lda, const float* packed, float* c, std::int64_t ldc, std::int64_t m0,
             std::int64_t m1, std::int64_t p0, std::int64_t p1, std::int64_t n, std::int64_t k, const Epilogue& ep) {
  float* rows = thread_buffer(0, static_cast<std::size_t>(kRowBlock512 * kDepth512));
  const std::int64_t nblocks = (m1 - m0 + kRowBlock512 - 1) / kRowBlock512;
  const std::int64_t step = ((m1 - m0 + nblocks - 1) / nblocks + kRows512 - 1) / kRows512 * kRows512;
  for (std::int64_t mb = m0; mb < m1; mb += step) {
    const std::int64_t me = std::min(m1, mb + step);
    for (std::int64_t k0 = 0; k0 < k; k0 += kDepth512) {
      const std::int64_t depth = std::min(kDepth512, k - k0);
      const int mode = (k0 == 0 ? kFirst : 0) | (k0 + depth == k ? kLast : 0);
      pack_rows512(a, lda, mb, me, k0, depth, rows);
      for (std::int64_t p = p0; p < p1; p += 2) {
        const int np = static_cast<int>(std::min<std::int64_t>(2, p1 - p));
        const float* b = packed + p * kPanel * k + k0 * kPanel;
        const std::int64_t col0 = p * kPanel;
        const int cols = static_cast<int>(std::min(kPanel * np, n - col0));
        for (std::int64_t r = mb; r < me; r += kRows512)
          kBlocks512[np - 1][std::min(kRows512, me - r)](rows + (r - mb) * depth, b, kPanel * k, depth,
                                                         c + r * ldc + col0, ldc, cols, mode, ep, r, col0);
      }
    }
  }
}

#endif  // KILN_GEMM_X86

}  // namespace

bool available() {
#if KILN_GEMM_X86
  return isa::has(isa::Level::avx2);
#else
  return false;
#endif
}

namespace {
std::atomic<int> g_override{-1};
std::atomic<int> g_variant{-1};  // override_variant's level, or -1

}  // namespace

bool enabled() {
  static const bool from_env = [] {
    const char* v = std::getenv("KILN_GEMM");
    return !(v && std::string_view(v) == "onednn");
  }();
  const int forced = g_override.load(std::memory_order_relaxed);
  return available() && (forced < 0 ? from_env : forced == 1);
}

isa::Level variant_level() {
  const isa::Level cpu = isa::effective();
  const int forced = g_variant.load(std::memory_order_relaxed);
  return forced >= 0 && forced < static_cast<int>(cpu) ? static_cast<isa::Level>(forced) : cpu;
}

const char* variant() { return variant_level() == isa::Level::avx512 ? "kiln:gemm_avx512" : "kiln:gemm_avx2"; }

isa::Level override_variant(std::optional<isa::Level> level) {
  if (!level) {
    g_variant = -1;
  } else {
    // Never above what the CPU (under the cap) has, never below the lowest Kiln kernel.
    const int want = std::clamp(static_cast<int>(*level), static_cast<int>(isa::Level::avx2),
                                std::max(static_cast<int>(isa::effective()), static_cast<int>(isa::Level::avx2)));
    g_variant = want;
  }
  return variant_level();
}

void override_enabled(std::optional<bool> use) { g_override = use ? (*use ? 1 : 0) : -1; }

std::size_t packed_floats(std::int64_t n, std::int64_t k) { return static_cast<std::size_t>(panels(n) * kPanel * k); }

namespace {
std::atomic<std::size_t> g_made{0};  // packs_made()
}  // namespace

void unpack_weights(const float* packed, std::int64_t n, std::int64_t k, float* w) {
  for (std::int64_t col = 0; col < n; ++col) {
    const float* panel = packed + (col / kPanel) * kPanel * k + col % kPanel;
    for (std::int64_t i = 0; i < k; ++i) w[col * k + i] = panel[i * kPanel];
  }
}

void pack_weights(const float* w, std::int64_t n, std::int64_t k, float* out) {
  ++g_made;
  pack_weights(w, k, n, k, out);
}

void pack_weights(const float* w, std::int64_t ldw, std::int64_t n, std::int64_t k, float* out) {
  // Large weights (packed once per model) are split over the OpenMP team; a head's keys (packed per call
  // inside a parallel region) stay on the calling thread.
  const bool parallel = static_cast<double>(n) * static_cast<double>(k) >= (1 << 20) && !omp_in_parallel();
#if KILN_GEMM_X86
  const bool wide = variant_level() == isa::Level::avx512;  // the same panels, transposed 16x16 at a time
#endif
#pragma omp parallel for schedule(static) if (parallel)
  for (std::int64_t p = 0; p < panels(n); ++p) {
    float* dst = out + p * kPanel * k;
#if KILN_GEMM_X86
    if (wide) {
      pack_panel512(w + p * kPanel * ldw, ldw, std::min(kPanel, n - p * kPanel), k, dst);
      continue;
    }
#endif
    for (std::int64_t j = 0; j < kPanel; ++j) {
      const std::int64_t col = p * kPanel + j;
      if (col < n) {
        const float* src = w + col * ldw;
        for (std::int64_t i = 0; i < k; ++i) dst[i * kPanel + j] = src[i];
      } else {
        for (std::int64_t i = 0; i < k; ++i) dst[i * kPanel + j] = 0.0f;
      }
    }
  }
}

void pack_columns(const float* b, std::int64_t ldb, std::int64_t k, std::int64_t n, float* out) {
  for (std::int64_t p = 0; p < panels(n); ++p) {
    float* dst = out + p * kPanel * k;
    const std::int64_t cols = std::min(kPanel, n - p * kPanel);
    for (std::int64_t i = 0; i < k; ++i) {
      const float* src = b + i * ldb + p * kPanel;
      std::int64_t j = 0;
      for (; j < cols; ++j) dst[i * kPanel + j] = src[j];
      for (; j < kPanel; ++j) dst[i * kPanel + j] = 0.0f;
    }
  }
}

float* thread_buffer(int slot, std::size_t floats) {
  struct Buffers {
    float* data[4] = {};
    std::size_t size[4] = {};
    ~Buffers() {
      for (float* d : data) std::free(d);
    }
  };
  static thread_local Buffers buffers;
  if (buffers.size[slot] < floats) {
    std::free(buffers.data[slot]);
    buffers.data[slot] = static_cast<float*>(std::aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64));
    if (!buffers.data[slot]) {
      buffers.size[slot] = 0;
      throw std::bad_alloc();
    }
    buffers.size[slot] = floats;
  }
  return buffers.data[slot];
}

std::size_t packs_made() { return g_made.load(); }

bool worth_splitting(std::int64_t rows, std::int64_t n, std::int64_t k) {
  const double flops = 2.0 * static_cast<double>(rows) * static_cast<double>(n) * static_cast<double>(k);
  const double weight_bytes = static_cast<double>(n) * static_cast<double>(k) * sizeof(float);
  return flops >= kSplitFlops || weight_bytes >= kSplitWeightBytes;
}

void multiply(const float* a, std::int64_t lda, const float* packed, float* c, std::int64_t ldc, std::int64_t rows,
              std::int64_t n, std::int64_t k, const Epilogue& epilogue, int threads) {
#if KILN_GEMM_X86
  if (rows <= 0 || n <= 0) return;
  if (k <= 0) {  // an empty sum: the epilogue of zero
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t j = 0; j < n; ++j) {
        float v = activate_scalar(epilogue.bias ? epilogue.bias[j] : 0.0f, epilogue.activation);  // of 0·scale + bias
        if (epilogue.residual) v += epilogue.residual[r * epilogue.ldr + j];
        c[r * ldc + j] = v;
      }
    return;
  }
  const std::int64_t np = panels(n);
  if (threads <= 0) threads = worth_splitting(rows, n, k) ? omp_get_max_threads() : 1;
  // The AVX-512 kernel takes panels in pairs and rows in blocks of kRows512: threads split those units.
  const bool wide = variant_level() == isa::Level::avx512;
  const auto run = wide ? tile512 : tile;
  const std::int64_t unit = wide ? 2 : 1, units = (np + unit - 1) / unit, per = wide ? kRows512 : kRows;
  if (threads <= 1) {
    run(a, lda, packed, c, ldc, 0, rows, 0, np, n, k, epilogue);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const std::int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    if (units >= nt) {  // split the columns: each thread reads only its share of the weights
      run(a, lda, packed, c, ldc, 0, rows, std::min(np, units * t / nt * unit),
          std::min(np, units * (t + 1) / nt * unit), n, k, epilogue);
    } else {  // few columns: split the rows, in whole register blocks
      const std::int64_t blocks = (rows + per - 1) / per;
      const std::int64_t m0 = std::min(rows, blocks * t / nt * per), m1 = std::min(rows, blocks * (t + 1) / nt * per);
      if (m0 < m1) run(a, lda, packed, c, ldc, m0, m1, 0, np, n, k, epilogue);
    }
  }
#else
  (void)a, (void)lda, (void)packed, (void)c, (void)ldc, (void)rows, (void)n, (void)k, (void)epilogue, (void)threads;
#endif
}

#if KILN_GEMM_X86
namespace {
KILN_AVX2 inline float horizontal(__m256 v, bool max) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  __m128 x = max ? _mm_max_ps(lo, hi) : _mm_add_ps(lo, hi);
  __m128 y = _mm_movehl_ps(x, x);
  x = max ? _mm_max_ps(x, y) : _mm_add_ps(x, y);
  y = _mm_shuffle_ps(x, x, 1);
  x = max ? _mm_max_ss(x, y) : _mm_add_ss(x, y);
  return _mm_cvtss_f32(x);
}

KILN_AVX2 void softmax_row(const float* x, float* y, std::int64_t n, bool log) {
  const std::int64_t whole = n / 8 * 8;
  __m256 vmax = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  for (std::int64_t j = 0; j < whole; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + j));
  float max = horizontal(vmax, true);
  for (std::int64_t j = whole; j < n; ++j) max = std::max(max, x[j]);
  const __m256 m = _mm256_set1_ps(max);
  __m256 vsum = _mm256_setzero_ps();
  for (std::int64_t j = 0; j < whole; j += 8) {
    const __m256 e = exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(x + j), m));
    if (!log) _mm256_storeu_ps(y + j, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  float sum = horizontal(vsum, false);
  for (std::int64_t j = whole; j < n; ++j) {
    const float e = std::exp(std::max(x[j] - max, -87.0f));
    if (!log) y[j] = e;
    sum += e;
  }
  if (log) {  // log softmax = (x - max) - log(sum)
    const float shift = max + std::log(sum);
    const __m256 vshift = _mm256_set1_ps(shift);
    for (std::int64_t j = 0; j < whole; j += 8) _mm256_storeu_ps(y + j, _mm256_sub_ps(_mm256_loadu_ps(x + j), vshift));
    for (std::int64_t j = whole; j < n; ++j) y[j] = x[j] - shift;
    return;
  }
  const float inv = 1.0f / sum;
  const __m256 vinv = _mm256_set1_ps(inv);
  for (std::int64_t j = 0; j < whole; j += 8) _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(y + j), vinv));
  for (std::int64_t j = whole; j < n; ++j) y[j] *= inv;
}

// softmax_row sixteen lanes wide; the last n % 16 entries go through masked loads and stores.
KILN_AVX512 void softmax_row512(const float* x, float* y, std::int64_t n, bool log) {
  const __m512 neg_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const std::int64_t whole = n / 16 * 16;
  const auto tail = static_cast<__mmask16>((1u << (n - whole)) - 1u);
  __m512 vmax = neg_inf;
  for (std::int64_t j = 0; j < whole; j += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(x + j));
  if (tail) vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(neg_inf, tail, x + whole));
  const float max = _mm512_reduce_max_ps(vmax);
  const __m512 m = _mm512_set1_ps(max);
  __m512 vsum = _mm512_setzero_ps();
  for (std::int64_t j = 0; j < whole; j += 16) {
    const __m512 e = exp_nonpositive512(_mm512_sub_ps(_mm512_loadu_ps(x + j), m));
    if (!log) _mm512_storeu_ps(y + j, e);
    vsum = _mm512_add_ps(vsum, e);
  }
  if (tail) {
    const __m512 e = exp_nonpositive512(_mm512_sub_ps(_mm512_mask_loadu_ps(m, tail, x + whole), m));
    if (!log) _mm512_mask_storeu_ps(y + whole, tail, e);
    vsum = _mm512_mask_add_ps(vsum, tail, vsum, e);
  }
  const float sum = _mm512_reduce_add_ps(vsum);
  if (log) {  // log softmax = (x - max) - log(sum)
    const __m512 vshift = _mm512_set1_ps(max + std::log(sum));
    for (std::int64_t j = 0; j < whole; j += 16) _mm512_storeu_ps(y + j, _mm512_sub_ps(_mm512_loadu_ps(x + j), vshift));
    if (tail) _mm512_mask_storeu_ps(y + whole, tail, _mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + whole), vshift));
    return;
  }
  const __m512 vinv = _mm512_set1_ps(1.0f / sum);
  for (std::int64_t j = 0; j < whole; j += 16) _mm512_storeu_ps(y + j, _mm512_mul_ps(_mm512_loadu_ps(y + j), vinv));
  if (tail) _mm512_mask_storeu_ps(y + whole, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, y + whole), vinv));
}
}  // namespace
#endif

void softmax_rows(const float* x, float* y, std::int64_t rows, std::int64_t n, bool log) {
#if KILN_GEMM_X86
  if (variant_level() == isa::Level::avx512) {
    for (std::int64_t r = 0; r < rows; ++r) softmax_row512(x + r * n, y + r * n, n, log);
    return;
  }
  for (std::int64_t r = 0; r < rows; ++r) softmax_row(x + r * n, y + r * n, n, log);
#else
  (void)x, (void)y, (void)rows, (void)n, (void)log;
#endif
}

}  // namespace kiln::gemm
