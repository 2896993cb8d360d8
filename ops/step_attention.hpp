#pragma once
// Shared by the decoding-step attention ops (cached_attention, cross_attention, attention_kv; their
// projections are add_linear steps): the single-query attention of one head over n keys, written as a
// plain loop (at one query per row the work is a few thousand FLOPs per head: less than oneDNN's
// per-primitive overhead).

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "ops/common.hpp"

namespace kiln::step_attention {

/// The frame of a decoding-step attention kernel: the input projection (rows x E by in_proj rows
/// 0..out_features, into scratch), the op's own attention loop over per-call scratch (`middle_floats`
/// floats: its scores), and the output projection (rows x E from the context into output 0). Subclasses
/// build the frame in their constructor with `build`, then run `project`, their loop, `finish`.
class ProjectedKernel : public Kernel {
 public:
  explicit ProjectedKernel(const KernelCtx& ctx) : proj_(ctx.engine), out_(ctx.engine) {}

  std::size_t scratch_bytes() const override { return scores_base_ + middle_floats_ * sizeof(float); }
  std::size_t packed_weight_bytes() const override { return proj_.packed_weight_bytes() + out_.packed_weight_bytes(); }
  std::string impl() const override { return proj_.impl() + " + " + name_ + " + " + out_.impl(); }

 protected:
  /// in_proj rows 0..out_features of input `x` (rows x E) into scratch; the output projection of the
  /// rows x E context into output 0. `name`: the loop's implementation name.
  void build(const KernelCtx& ctx, int x, int in_w, int in_b, int out_w, int out_b, std::int64_t rows, std::int64_t e,
             std::int64_t out_features, std::size_t middle_floats, std::string name) {
    projected_at_ = proj_.reserve(static_cast<std::size_t>(rows * out_features) * sizeof(float));
    add_linear(proj_, ctx,
               LinearStep{.rows = rows,
                          .in = e,
                          .out = out_features,
                          .src = Operand::input(x),
                          .dst = Operand::scratch(projected_at_),
                          .weight = in_w,
                          .bias = ctx.has(static_cast<std::size_t>(in_b)) ? in_b : -1});
    context_at_ = out_.reserve(static_cast<std::size_t>(rows * e) * sizeof(float));
    add_linear(out_, ctx,
               LinearStep{.rows = rows,
                          .in = e,
                          .out = e,
                          .src = Operand::scratch(context_at_),
                          .dst = Operand::output(0),
                          .weight = out_w,
                          .bias = ctx.has(static_cast<std::size_t>(out_b)) ? out_b : -1});
    out_base_ = align(proj_.scratch_bytes());
    scores_base_ = out_base_ + align(out_.scratch_bytes());
    middle_floats_ = middle_floats;
    name_ = std::move(name);
  }
  /// Runs the input projection; its result is projected(args).
  void project(dnnl::stream& stream, const KernelArgs& args) {
    proj_.execute(stream, KernelArgs{args.in, args.out, args.scratch});
  }
  const float* projected(const KernelArgs& args) const {
    return reinterpret_cast<const float*>(base(args) + projected_at_);
  }
  float* context(const KernelArgs& args) const {
    return reinterpret_cast<float*>(base(args) + out_base_ + context_at_);
  }
  float* scores(const KernelArgs& args) const { return reinterpret_cast<float*>(base(args) + scores_base_); }
  /// Runs the output projection of context(args) into output 0.
  void finish(dnnl::stream& stream, const KernelArgs& args) {
    out_.execute(stream, KernelArgs{args.in, args.out, base(args) + out_base_});
  }

 private:
  static std::size_t align(std::size_t n) { return (n + 63) / 64 * 64; }
  static char* base(const KernelArgs& args) { return static_cast<char*>(args.scratch); }
  DnnlKernel proj_, out_;
  std::size_t projected_at_ = 0, context_at_ = 0, out_base_ = 0, scores_base_ = 0, middle_floats_ = 0;
  std::string name_;
};

/// e^x for x <= 0 (softmax after subtracting the max): x = n·ln2 + r with |r| <= ln2/2, e^r by a degree-6
/// polynomial, 2^n put into the exponent bits. Relative error about 2e-7 (a few float ulps); an inline
/// branch-light function instead of a libm call per score, which dominated the step at long caches.
inline float exp_nonpositive(float x) {
  if (x < -87.0f) return 0.0f;
  // NaN (a row whose scores are all -inf: -inf - -inf) stays NaN, as e^NaN is; converting it to an int
  // below would be undefined behaviour (UBSan: float-cast-overflow).
  if (x != x) return x;
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

/// Runs f(i) for every i in [0, items): inline when the work (items x `work_per_item` multiply-adds) is
/// under ~128k multiply-adds (a parallel region costs microseconds: more than a short head's whole
/// attention; a decoding step at batch 1 stays on one thread), else split statically over the calling
/// thread's OpenMP team. That is the team the op's projections (gemm::multiply) run on, so a step's
/// attention and its GEMMs share one pool (with TBB here, the loop ran on a second pool, beside OpenMP's
/// workers still spinning after the projection: docs/gemm.md; on the decoding benchmark at batch 16 with 2
/// threads the 3 cross-attentions went from 0.25 to 0.16 ms per step, docs/threading.md). Each item is computed by one
/// thread with the same instructions, so results do not depend on the thread count; throughput mode (one
/// thread per run, omp_set_num_threads(1)) stays inline.
template <class F>
inline void for_items(std::int64_t items, std::int64_t work_per_item, const F& f) {
  const double work = static_cast<double>(items) * static_cast<double>(work_per_item);
  const int threads =
      work < 131072.0 || omp_in_parallel() ? 1 : static_cast<int>(std::min<std::int64_t>(omp_get_max_threads(), items));
  if (threads <= 1) {
    for (std::int64_t i = 0; i < items; ++i) f(i);
    return;
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (std::int64_t i = 0; i < items; ++i) f(i);
}

}  // namespace kiln::step_attention
