#pragma once
// Shared by the decoding-step attention ops (cached_attention, cross_attention, attention_kv): a
// nn.Linear-style matmul over a slice of nn.MultiheadAttention's packed in_proj weights, and the
// single-query attention of one head over n keys, written as a plain loop (at one query per row the
// work is a few thousand FLOPs per head: less than oneDNN's per-primitive overhead).

#include <cmath>
#include <limits>

#include "ops/common.hpp"

namespace kiln::step_attention {

/// y[rows,out] = x[rows,in] · W[row0:row0+out, :]ᵀ (+ b[row0:row0+out]) with W stored [*, in] as PyTorch
/// does. The caller binds SRC, WEIGHTS (at byte offset row0*in*4), BIAS (row0*4) and DST.
struct Linear {
  dnnl::memory::desc src, weights, bias, dst;
  dnnl::matmul::primitive_desc pd;
  Linear(const dnnl::engine& engine, std::int64_t rows, std::int64_t in, std::int64_t out, bool has_bias)
      : src(plain_md({rows, in})), weights(strided_md({in, out}, {1, in})), bias(plain_md({1, out})),
        dst(plain_md({rows, out})),
        pd(has_bias ? dnnl::matmul::desc(src, weights, bias, dst) : dnnl::matmul::desc(src, weights, dst),
           user_scratchpad_attr(), engine) {}
};

/// One query against n keys of one head: out[dh] = softmax(q·kⱼ·scale + mask[j]) · vⱼ. `key(j)` and
/// `value(j)` give the head's slice of key/value j; `mask` may be null; `scores` holds n floats.
template <class KeyAt, class ValueAt>
inline void attend(const float* q, std::int64_t dh, float scale, std::int64_t n, KeyAt key, ValueAt value,
                   const float* mask, float* scores, float* out) {
  float max = -std::numeric_limits<float>::infinity();
  for (std::int64_t j = 0; j < n; ++j) {
    const float* k = key(j);
    float s = 0.0f;
    for (std::int64_t d = 0; d < dh; ++d) s += q[d] * k[d];
    s = s * scale + (mask ? mask[j] : 0.0f);
    scores[j] = s;
    max = std::max(max, s);
  }
  float sum = 0.0f;
  for (std::int64_t j = 0; j < n; ++j) {
    scores[j] = std::exp(scores[j] - max);
    sum += scores[j];
  }
  const float inv = 1.0f / sum;
  for (std::int64_t d = 0; d < dh; ++d) out[d] = 0.0f;
  for (std::int64_t j = 0; j < n; ++j) {
    const float p = scores[j] * inv;
    const float* v = value(j);
    for (std::int64_t d = 0; d < dh; ++d) out[d] += p * v[d];
  }
}

/// TBB grain size giving each task at least ~16k multiply-adds, so small steps run on one thread.
inline std::size_t grain(std::int64_t work_per_item) {
  return static_cast<std::size_t>(std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(work_per_item, 1)));
}

}  // namespace kiln::step_attention
