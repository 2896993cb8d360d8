// cached_attention: one decoding step of causal multi-head self-attention with a key/value cache, with
// nn.MultiheadAttention's weights. The query is the one new position `step`; it attends to the cached
// keys/values of positions 0..step-1 and to its own key/value, which the op returns so that the caller
// (the generation loop) stores them at position `step` of the cache. The cache has a fixed length T
// (the maximum output length), so one plan serves every step.
//   %y, %k_new, %v_new = cached_attention(%x, %k_cache, %v_cache, %step, %sa.in_proj_weight, ...) {heads=4}
//       : (f32[batch,1,64], f32[batch,T,64], f32[batch,T,64], i64[1], ...) -> (f32[batch,1,64], f32[batch,1,64], f32[batch,1,64])
// Optional `cache_rows` i64 [batch,T]: position j of row b is read from cache row cache_rows[b,j] (beam
// search reorders beams by rewriting this table instead of copying the cache); absent: row b itself.

#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "ops/gemm.hpp"
#include "ops/isa.hpp"
#include "ops/step_attention.hpp"

namespace kiln {
namespace {

enum { kX, kKCache, kVCache, kStep, kInW, kInB, kOutW, kOutB, kRows };

struct RowArgs {
  const float *qkv, *k_cache, *v_cache;
  const std::int64_t* rows;  // null: row b reads its own cache row
  float *scores, *context;
  std::int64_t e, t, dh, h, step;
  float scale;
  // Which loop runs, chosen when the kernel is made from isa::has() (so KILN_MAX_ISA governs it):
  // the AVX2 intrinsics (gemm::enabled() and dh a multiple of 8), the portable loop compiled for AVX2+FMA
  // (other head sizes, or KILN_GEMM=onednn), or the portable loop for the baseline ISA.
  enum class Loop : std::uint8_t { portable, portable_avx2, avx2 } loop;
};

// Attention of row b's new position over its cache, all heads: the inner loops are where the time grows
// with the position. Compiled twice (attend_row, attend_row_portable_avx2) and picked by explicit dispatch
// on isa::has(avx2) rather than by target_clones: the ISA cap then governs it, and there is no ifunc
// resolver (which ThreadSanitizer used to crash on at start-up).
__attribute__((always_inline)) inline void attend_row_body(const RowArgs& a, std::int64_t b) {
  const std::int64_t e = a.e, t = a.t, dh = a.dh, h = a.h, step = a.step, n = step + 1;
  const float* q = a.qkv + b * 3 * e;
  const float* kn = q + e;
  const float* vn = q + 2 * e;
  float* sc = a.scores + b * h * (t + 1);  // [head][position]
  auto row = [&](std::int64_t j) { return a.rows ? a.rows[b * t + j] : b; };
  for (std::int64_t j = 0; j < n; ++j) {
    const float* k = j == step ? kn : a.k_cache + (row(j) * t + j) * e;
    for (std::int64_t head = 0; head < h; ++head)
      sc[head * (t + 1) + j] = step_attention::dot(q + head * dh, k + head * dh, dh) * a.scale;
  }
  for (std::int64_t head = 0; head < h; ++head) step_attention::softmax(sc + head * (t + 1), n);
  float* c = a.context + b * e;
  for (std::int64_t d = 0; d < e; ++d) c[d] = 0.0f;
  for (std::int64_t j = 0; j < n; ++j) {
    const float* v = j == step ? vn : a.v_cache + (row(j) * t + j) * e;
    for (std::int64_t head = 0; head < h; ++head) {
      const float p = sc[head * (t + 1) + j];
      for (std::int64_t d = head * dh; d < (head + 1) * dh; ++d) c[d] += p * v[d];
    }
  }
}

void attend_row(const RowArgs& a, std::int64_t b) { attend_row_body(a, b); }
#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void attend_row_portable_avx2(const RowArgs& a, std::int64_t b) {
  attend_row_body(a, b);
}
#endif

#if defined(__x86_64__)
// attend_row with AVX2 intrinsics for head sizes that are a multiple of 8 (gemm::enabled() CPUs): the part
// of a decoding step that grows with the position, so the time per token stays flat as the output grows.
//   - scores: four positions at a time per head, their four dot products reduced together by two rounds
//     of horizontal adds (one reduction per position and head was most of the cost);
//   - softmax: gemm::softmax_rows (vector exponentials);
//   - context: 64 columns at a time held in eight registers while every position is added in.
__attribute__((target("avx2,fma"))) void attend_row_avx2(const RowArgs& a, std::int64_t b) {
  const std::int64_t e = a.e, t = a.t, dh = a.dh, h = a.h, step = a.step, n = step + 1;
  const float* q = a.qkv + b * 3 * e;
  float* sc = a.scores + b * h * (t + 1);  // [head][position]
  auto key = [&](std::int64_t j) {
    return j == step ? q + e : a.k_cache + ((a.rows ? a.rows[b * t + j] : b) * t + j) * e;
  };
  auto value = [&](std::int64_t j) {
    return j == step ? q + 2 * e : a.v_cache + ((a.rows ? a.rows[b * t + j] : b) * t + j) * e;
  };
  const __m128 scale = _mm_set1_ps(a.scale);
  std::int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const float* k[4] = {key(j), key(j + 1), key(j + 2), key(j + 3)};
    for (std::int64_t head = 0; head < h; ++head) {
      __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
      for (std::int64_t d = head * dh; d < (head + 1) * dh; d += 8) {
        const __m256 qv = _mm256_loadu_ps(q + d);
        s0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k[0] + d), s0);
        s1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k[1] + d), s1);
        s2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k[2] + d), s2);
        s3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k[3] + d), s3);
      }
      // hadd(hadd(s0,s1), hadd(s2,s3)) holds each sum's two halves: lane i of the low and the high half.
      const __m256 sums = _mm256_hadd_ps(_mm256_hadd_ps(s0, s1), _mm256_hadd_ps(s2, s3));
      const __m128 four = _mm_add_ps(_mm256_castps256_ps128(sums), _mm256_extractf128_ps(sums, 1));
      _mm_storeu_ps(sc + head * (t + 1) + j, _mm_mul_ps(four, scale));
    }
  }
  for (; j < n; ++j) {
    const float* k = key(j);
    for (std::int64_t head = 0; head < h; ++head)
      sc[head * (t + 1) + j] = step_attention::dot(q + head * dh, k + head * dh, dh) * a.scale;
  }
  for (std::int64_t head = 0; head < h; ++head) gemm::softmax_rows(sc + head * (t + 1), sc + head * (t + 1), 1, n);
  float* c = a.context + b * e;
  std::int64_t c0 = 0;
  for (; c0 + 64 <= e; c0 += 64) {
    __m256 acc[8];
#pragma GCC unroll 8
    for (auto& i : acc) i = _mm256_setzero_ps();
    const float* p[8];  // the score row of each register's head
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) p[i] = sc + (c0 + 8 * i) / dh * (t + 1);
    for (std::int64_t jj = 0; jj < n; ++jj) {
      const float* v = value(jj) + c0;
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i)
        acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(p[i] + jj), _mm256_loadu_ps(v + 8 * i), acc[i]);
    }
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) _mm256_storeu_ps(c + c0 + 8 * i, acc[i]);
  }
  for (; c0 < e; c0 += 8) {  // the last e % 64 columns, eight at a time
    __m256 acc = _mm256_setzero_ps();
    const float* p = sc + c0 / dh * (t + 1);
    for (std::int64_t jj = 0; jj < n; ++jj)
      acc = _mm256_fmadd_ps(_mm256_broadcast_ss(p + jj), _mm256_loadu_ps(value(jj) + c0), acc);
    _mm256_storeu_ps(c + c0, acc);
  }
}
#endif

void attend(const RowArgs& a, std::int64_t b) {
#if defined(__x86_64__)
  if (a.loop == RowArgs::Loop::avx2) return attend_row_avx2(a, b);
  if (a.loop == RowArgs::Loop::portable_avx2) return attend_row_portable_avx2(a, b);
#endif
  attend_row(a, b);
}

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  for (int i : {kX, kKCache, kVCache}) {
    expect_f32(ctx, i);
    ctx.expect_rank(i, 3);
  }
  const Shape& x = ctx.in(kX).shape;
  const Dim& e = x[2];
  if (!e.concrete()) ctx.fail("the embedding dim (last axis of x) must be concrete, got " + ctx.in(kX).str());
  if (!x[1].is(1))
    ctx.fail("expected x of shape [" + x[0].str() + ",1," + e.str() + "] (one new position per step), got " +
             ctx.in(kX).str());
  for (int i : {kKCache, kVCache}) {
    const Shape& c = ctx.in(i).shape;
    if (c[0] != x[0] || c[2] != e)
      ctx.fail("expected " + ctx.node().schema->inputs[i].name + " of shape [" + x[0].str() + ",T," + e.str() +
               "], got " + ctx.in(i).str());
  }
  if (ctx.in(kKCache).shape[1] != ctx.in(kVCache).shape[1])
    ctx.fail("k_cache and v_cache must have the same length: " + ctx.in(kKCache).str() + " vs " +
             ctx.in(kVCache).str());
  if (ctx.in(kStep).dtype != DType::i64 || ctx.in(kStep).shape.size() != 1 || !ctx.in(kStep).shape[0].is(1))
    ctx.fail("expected step of type i64[1], got " + ctx.in(kStep).str());
  std::int64_t heads = ctx.node().attr_int("heads");
  if (heads <= 0 || e.value % heads != 0)
    ctx.fail("attribute 'heads' = " + std::to_string(heads) + " must be positive and divide the embedding dim " +
             e.str());
  expect_gemm_weight_type(ctx, kInW);
  expect_gemm_weight_type(ctx, kOutW);
  expect_weight_shape(ctx, kInW, {Dim::of(3 * e.value), e});
  if (ctx.has(kInB)) expect_weight_shape(ctx, kInB, {Dim::of(3 * e.value)});
  expect_weight_shape(ctx, kOutW, {e, e});
  if (ctx.has(kOutB)) expect_weight_shape(ctx, kOutB, {e});
  if (ctx.has(kRows)) {
    const TensorType& r = ctx.in(kRows);
    if (r.dtype != DType::i64 || r.shape.size() != 2 || r.shape[0] != x[0] || r.shape[1] != ctx.in(kKCache).shape[1])
      ctx.fail("expected cache_rows of type i64[" + x[0].str() + "," + ctx.in(kKCache).shape[1].str() + "], got " +
               r.str());
  }
  return {ctx.in(kX), ctx.in(kX), ctx.in(kX)};
}

class CachedAttentionKernel : public step_attention::ProjectedKernel {
 public:
  explicit CachedAttentionKernel(const KernelCtx& ctx) : ProjectedKernel(ctx), node_(ctx.node) {
    b_ = ctx.in[kX].shape[0].value;
    e_ = ctx.in[kX].shape[2].value;
    t_ = ctx.in[kKCache].shape[1].value;
    h_ = ctx.node.attr_int("heads");
    dh_ = e_ / h_;
    rows_ = ctx.has(kRows);
    loop_ = !isa::has(isa::Level::avx2)       ? RowArgs::Loop::portable
            : gemm::enabled() && dh_ % 8 == 0 ? RowArgs::Loop::avx2
                                              : RowArgs::Loop::portable_avx2;
    // q, k, v of the new position in one GEMM: [B,E] x [E,3E]; scores per row and head over t+1 positions.
    build(ctx, kX, kInW, kInB, kOutW, kOutB, b_, e_, 3 * e_, static_cast<std::size_t>(b_ * h_ * (t_ + 1)),
          "kiln:cached_attention");
  }

  void execute(dnnl::stream& stream, const KernelArgs& args) override {
    const std::int64_t step = *static_cast<const std::int64_t*>(args.in[kStep]);
    if (step < 0 || step >= t_)
      node_.fail("step " + std::to_string(step) + " is out of range for a cache of length " + std::to_string(t_));
    // cache_rows is optional: without it the node has no input kRows and args.in ends before it.
    const auto* rows = rows_ ? static_cast<const std::int64_t*>(args.in[kRows]) : nullptr;
    if (rows_) {
      for (std::int64_t b = 0; b < b_; ++b)
        for (std::int64_t j = 0; j < step; ++j)
          if (rows[b * t_ + j] < 0 || rows[b * t_ + j] >= b_)
            node_.fail("cache_rows[" + std::to_string(b) + "," + std::to_string(j) +
                       "] = " + std::to_string(rows[b * t_ + j]) + " is not a row in [0, " + std::to_string(b_) + ")");
    }
    project(stream, args);
    const float* qkv = projected(args);
    float* context = this->context(args);
    float* scores = this->scores(args);
    const auto* k_cache = static_cast<const float*>(args.in[kKCache]);
    const auto* v_cache = static_cast<const float*>(args.in[kVCache]);
    auto* k_new = static_cast<float*>(args.out[1]);
    auto* v_new = static_cast<float*>(args.out[2]);
    const float scale = 1.0f / std::sqrt(static_cast<float>(dh_));
    const std::int64_t e = e_, n = step + 1;
    // Per row, all heads together: each cached key/value row is read once as E contiguous floats.
    RowArgs a{qkv, k_cache, v_cache, rows_ ? rows : nullptr, scores, context, e_, t_, dh_, h_, step, scale, loop_};
    step_attention::for_items(b_, 2 * n * e, [&](std::int64_t b) { attend(a, b); });
    for (std::int64_t b = 0; b < b_; ++b) {
      std::memcpy(k_new + b * e, qkv + b * 3 * e + e, static_cast<std::size_t>(e) * sizeof(float));
      std::memcpy(v_new + b * e, qkv + b * 3 * e + 2 * e, static_cast<std::size_t>(e) * sizeof(float));
    }
    finish(stream, args);
  }

 private:
  const Node& node_;
  std::int64_t b_ = 0, e_ = 0, t_ = 0, h_ = 0, dh_ = 0;
  RowArgs::Loop loop_ = RowArgs::Loop::portable;
  bool rows_ = false;
};

std::unique_ptr<Kernel> make(const KernelCtx& ctx) { return std::make_unique<CachedAttentionKernel>(ctx); }

void pack(PackCtx& ctx) {
  pack_gemm_weight(ctx, kInW, {0});
  pack_gemm_weight(ctx, kOutW, {0});
}

}  // namespace

const OpSchema& op_cached_attention() {
  static const OpSchema s{
      .name = "cached_attention",
      .doc = "one decoding step of causal self-attention over a key/value cache (nn.MultiheadAttention weights)",
      .inputs = mha_inputs({{"x"}, {"k_cache"}, {"v_cache"}, {"step"}}, {{"cache_rows", true}}),
      .num_outputs = 3,
      .attrs = {heads_attr()},
      .infer = infer,
      .make_kernel = make,
      .pack = pack,
  };
  return s;
}

}  // namespace kiln
