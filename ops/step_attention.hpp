#pragma once
// Shared by the decoding-step attention ops (cached_attention, cross_attention, attention_kv; their
// projections are add_linear steps): the single-query attention of one head over n keys, written as a
// plain loop (at one query per row the work is a few thousand FLOPs per head: less than oneDNN's
// per-primitive overhead).

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "ops/common.hpp"

namespace kiln::step_attention {

/// e^x for x <= 0 (softmax after subtracting the max): x = n·ln2 + r with |r| <= ln2/2, e^r by a degree-6
/// polynomial, 2^n put into the exponent bits. Relative error about 2e-7 (a few float ulps); an inline
/// branch-light function instead of a libm call per score, which dominated the step at long caches.
inline float exp_nonpositive(float x) {
  if (x < -87.0f) return 0.0f;
  // Round to nearest by adding and subtracting 1.5·2^23 (std::nearbyint is a libm call without SSE4.1).
  const float shifter = 12582912.0f;
  const float n = (x * 1.44269504088896341f + shifter) - shifter;
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

/// q·k over dh floats with 8 partial sums (vectorizable without reassociating a single sum).
inline float dot(const float* q, const float* k, std::int64_t dh) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::int64_t d = 0;
  for (; d + 8 <= dh; d += 8)
    for (int j = 0; j < 8; ++j) acc[j] += q[d + j] * k[d + j];
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; d < dh; ++d) s += q[d] * k[d];
  return s;
}

/// In-place softmax of x[0..n).
inline void softmax(float* x, std::int64_t n) {
  float max = -std::numeric_limits<float>::infinity();
  for (std::int64_t j = 0; j < n; ++j) max = std::max(max, x[j]);
  float sum = 0.0f;
  for (std::int64_t j = 0; j < n; ++j) {
    x[j] = exp_nonpositive(x[j] - max);
    sum += x[j];
  }
  const float inv = 1.0f / sum;
  for (std::int64_t j = 0; j < n; ++j) x[j] *= inv;
}

/// One query against n keys of one head: out[dh] = softmax(q·kⱼ·scale + mask[j]) · vⱼ. `key(j)` and
/// `value(j)` give the head's slice of key/value j; `mask` may be null; `scores` holds n floats.
template <class KeyAt, class ValueAt>
inline void attend(const float* q, std::int64_t dh, float scale, std::int64_t n, KeyAt key, ValueAt value,
                   const float* mask, float* scores, float* out) {
  float max = -std::numeric_limits<float>::infinity();
  for (std::int64_t j = 0; j < n; ++j) {
    float s = dot(q, key(j), dh) * scale + (mask ? mask[j] : 0.0f);
    scores[j] = s;
    max = std::max(max, s);
  }
  float sum = 0.0f;
  for (std::int64_t j = 0; j < n; ++j) {
    scores[j] = exp_nonpositive(scores[j] - max);
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

/// TBB grain size giving each task at least ~64k multiply-adds, so small steps run inline on one thread
/// (a task split costs microseconds: more than a short head's whole attention).
inline std::size_t grain(std::int64_t work_per_item) {
  return static_cast<std::size_t>(std::max<std::int64_t>(1, 65536 / std::max<std::int64_t>(work_per_item, 1)));
}

}  // namespace kiln::step_attention
