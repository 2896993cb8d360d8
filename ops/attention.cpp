// attention: multi-head scaled-dot-product attention with PyTorch nn.MultiheadAttention's weights
// (in_proj_weight [3E,E] holding q, k, v rows; out_proj [E,E]), batch-first.
//   %a = attention(%x, %x, %x, %sa.in_proj_weight, %sa.in_proj_bias, %sa.out_proj.weight, %sa.out_proj.bias)
//        {heads=8} : (f32[batch,seq,64], ...) -> f32[batch,seq,64]
// An optional last input `key_padding_mask` f32 [B,Sk] is added to every head's scores before the softmax
// (0 for real keys, -inf for padding: what `padding_mask` makes; PyTorch's key_padding_mask).
// Kernel: oneDNN matmuls over strided views (no per-head copies), the projections as `linear`'s (Kiln's
// GEMM with packed weights where it applies, see add_linear):
//   1. projections: one GEMM [B*S,E]x[E,3E] when query, key and value are the same value, else three;
//   2. scores[B,H,Sq,Sk] = Q·Kᵀ / sqrt(E/H), reading Q and K in place as [B,H,S,dh] views of the projection;
//   3. (mask added in place, broadcast over heads and queries;) softmax over the last axis, in place;
//   4. context = P·V written straight into [B,Sq,H*dh] = [B,Sq,E] order;
//   5. output projection.
// With Kiln's kernels (gemm::enabled()) steps 2-4 are one step over (batch row, head) pairs instead
// (attention_heads): the GEMM for scores (the mask as its per-column bias) and context, a row softmax.

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "graph/checked.hpp"
#include "ops/common.hpp"
#include "ops/gemm.hpp"

namespace kiln {
namespace {

enum { kQuery, kKey, kValue, kInW, kInB, kOutW, kOutB, kMask };

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  for (std::size_t i = 0; i < 7; ++i)
    if (ctx.has(i) && i != kInW && i != kOutW) expect_f32(ctx, i);
  expect_gemm_weight_type(ctx, kInW);
  expect_gemm_weight_type(ctx, kOutW);
  for (std::size_t i : {kQuery, kKey, kValue}) ctx.expect_rank(i, 3);
  const Shape& q = ctx.in(kQuery).shape;
  const Shape& k = ctx.in(kKey).shape;
  const Shape& v = ctx.in(kValue).shape;
  const Dim& e = q[2];
  if (!e.concrete()) ctx.fail("the embedding dim (last axis of query) must be concrete, got " + ctx.in(kQuery).str());
  if (k[2] != e || v[2] != e)
    ctx.fail("query, key and value must share the embedding dim: " + ctx.in(kQuery).str() + ", " + ctx.in(kKey).str() +
             ", " + ctx.in(kValue).str());
  if (k[0] != q[0] || v[0] != q[0]) ctx.fail("query, key and value must share the batch dim");
  if (k[1] != v[1])
    ctx.fail("key and value must have the same length: " + ctx.in(kKey).str() + " vs " + ctx.in(kValue).str());
  std::int64_t heads = ctx.node().attr_int("heads");
  if (heads <= 0 || e.value % heads != 0)
    ctx.fail("attribute 'heads' = " + std::to_string(heads) + " must be positive and divide the embedding dim " +
             e.str());
  expect_weight_shape(ctx, kInW, {Dim::of(3 * e.value), e});
  if (ctx.has(kInB)) expect_weight_shape(ctx, kInB, {Dim::of(3 * e.value)});
  expect_weight_shape(ctx, kOutW, {e, e});
  if (ctx.has(kOutB)) expect_weight_shape(ctx, kOutB, {e});
  if (ctx.has(kMask)) {
    expect_f32(ctx, kMask);
    const Shape& m = ctx.in(kMask).shape;
    if (m.size() != 2 || m[0] != q[0] || m[1] != k[1])
      ctx.fail("expected key_padding_mask of shape [" + q[0].str() + "," + k[1].str() + "] (batch, key length), got " +
               ctx.in(kMask).str());
  }
  return {ctx.in(kQuery)};
}

// Steps 2-4 for Kiln's kernels: one (batch row, head) pair per task.
struct Heads {
  const float *q, *k, *v;  // [B,S,*] with rows `ld` floats apart; head h at column h*dh
  std::int64_t ld;
  const float* mask;  // [B,Sk] or null
  float* context;     // [B,Sq,E]
  std::int64_t b, h, sq, sk, dh, e;
  float scale;
};

// The OpenMP team attention_heads runs (b x h) items of ~flops with: below ~1 MFLOP of work in all a
// parallel region costs more than it saves.
std::int64_t heads_team(std::int64_t items, double flops) {
  return flops < 1e6 ? 1 : std::min<std::int64_t>(std::max(omp_get_max_threads(), 1), items);
}

void attention_heads(const Heads& a) {
  const std::int64_t items = a.b * a.h;
  auto one = [&a](std::int64_t item) {
    const std::int64_t bi = item / a.h, head = item % a.h;
    float* scores = gemm::thread_buffer(1, static_cast<std::size_t>(a.sq * a.sk));
    float* keys = gemm::thread_buffer(2, gemm::packed_floats(a.sk, a.dh));
    float* values = gemm::thread_buffer(3, gemm::packed_floats(a.dh, a.sk));
    gemm::pack_weights(a.k + bi * a.sk * a.ld + head * a.dh, a.ld, a.sk, a.dh, keys);
    gemm::pack_columns(a.v + bi * a.sk * a.ld + head * a.dh, a.ld, a.sk, a.dh, values);
    gemm::Epilogue ep;
    ep.scale = a.scale;
    ep.bias = a.mask ? a.mask + bi * a.sk : nullptr;  // the key padding mask is a per-column bias
    gemm::multiply(a.q + bi * a.sq * a.ld + head * a.dh, a.ld, keys, scores, a.sk, a.sq, a.sk, a.dh, ep, 1);
    gemm::softmax_rows(scores, scores, a.sq, a.sk);
    gemm::multiply(scores, a.sk, values, a.context + bi * a.sq * a.e + head * a.dh, a.e, a.sq, a.dh, a.sk,
                   gemm::Epilogue{}, 1);
  };
  const int threads =
      static_cast<int>(heads_team(items, 4.0 * static_cast<double>(items) * static_cast<double>(a.sq * a.sk * a.dh)));
  if (threads <= 1) {
    for (std::int64_t i = 0; i < items; ++i) one(i);
    return;
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (std::int64_t i = 0; i < items; ++i) one(i);
}

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  const auto qd = dims_of(ctx.in[kQuery].shape);
  const std::int64_t b = qd[0], sq = qd[1], e = qd[2];
  const std::int64_t sk = ctx.in[kKey].shape[1].value;
  const std::int64_t h = ctx.node.attr_int("heads"), dh = e / h;
  const bool fused_qkv =
      ctx.node.inputs[kQuery] == ctx.node.inputs[kKey] && ctx.node.inputs[kKey] == ctx.node.inputs[kValue];
  const bool has_in_bias = ctx.has(kInB), has_out_bias = ctx.has(kOutB);
  constexpr std::size_t kF = sizeof(float);
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);

  auto add_output_projection = [&](std::size_t ctx_at) {
    add_linear(*kernel, ctx,
               LinearStep{.rows = b * sq,
                          .in = e,
                          .out = e,
                          .src = Operand::scratch(ctx_at),
                          .dst = Operand::output(0),
                          .weight = kOutW,
                          .bias = has_out_bias ? kOutB : -1});
  };

  // 1. Projections into scratch. `ld` is the row stride of each projected tensor, `*_at` their offsets.
  std::int64_t ld;
  std::size_t q_at, k_at, v_at;
  auto projection = [&](int src_input, std::int64_t rows, std::int64_t out_features, std::int64_t w_row0,
                        std::size_t dst_at) {
    LinearStep p;
    p.rows = rows;
    p.in = e;
    p.out = out_features;
    p.src = Operand::input(src_input);
    p.dst = Operand::scratch(dst_at);
    p.weight = kInW;
    p.weight_row0 = w_row0;
    p.bias = has_in_bias ? kInB : -1;
    add_linear(*kernel, ctx, p);
  };
  if (fused_qkv) {
    ld = 3 * e;
    q_at = kernel->reserve(static_cast<std::size_t>(b * sq * 3 * e) * kF);
    k_at = q_at + e * kF;
    v_at = q_at + 2 * e * kF;
    projection(kQuery, b * sq, 3 * e, 0, q_at);
  } else {
    ld = e;
    q_at = kernel->reserve(static_cast<std::size_t>(b * sq * e) * kF);
    k_at = kernel->reserve(static_cast<std::size_t>(b * sk * e) * kF);
    v_at = kernel->reserve(static_cast<std::size_t>(b * sk * e) * kF);
    projection(kQuery, b * sq, e, 0, q_at);
    projection(kKey, b * sk, e, e, k_at);
    projection(kValue, b * sk, e, 2 * e, v_at);
  }

  if (gemm::enabled()) {
    // 2-4 in one Kiln step, per (batch row, head) on the OpenMP team: pack the head's keys and values,
    // scores = Q·Kᵀ·scale + mask with the GEMM, softmax by rows, context = P·V into [B,Sq,E].
    const std::size_t ctx_at = kernel->reserve(static_cast<std::size_t>(b * sq * e) * kF);
    const bool masked = ctx.has(kMask);
    const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
    kernel->add_step(
        [=](const KernelArgs& args, char* scratch) {
          const auto* qkv = reinterpret_cast<const float*>(scratch);
          const float* mask = masked ? static_cast<const float*>(args.in[kMask]) : nullptr;
          attention_heads(Heads{qkv + q_at / kF, qkv + k_at / kF, qkv + v_at / kF, ld, mask,
                                reinterpret_cast<float*>(scratch + ctx_at), b, h, sq, sk, dh, e, scale});
        },
        "kiln:attention");
    add_output_projection(ctx_at);
    return kernel;
  }

  // 2. scores = Q·Kᵀ · 1/sqrt(dh)
  const std::size_t scores_at = kernel->reserve(static_cast<std::size_t>(b * h * sq * sk) * kF);
  auto q_md = strided_md({b, h, sq, dh}, {sq * ld, dh, ld, 1});
  auto kt_md = strided_md({b, h, dh, sk}, {sk * ld, dh, 1, ld});
  auto scores_md = plain_md({b, h, sq, sk});
  {
    auto attr = user_scratchpad_attr();
    attr.set_output_scales(0, {1.0f / std::sqrt(static_cast<float>(dh))});
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(q_md, kt_md, scores_md), attr, ctx.engine);
    int s = kernel->add(pd);
    kernel->scratch(s, DNNL_ARG_SRC, q_md, q_at);
    kernel->scratch(s, DNNL_ARG_WEIGHTS, kt_md, k_at);
    kernel->scratch(s, DNNL_ARG_DST, scores_md, scores_at);
  }
  // 3. mask (broadcast over heads and queries) and softmax, in place
  if (ctx.has(kMask)) {
    auto mask_md = plain_md({b, 1, 1, sk});
    dnnl::binary::primitive_desc pd(dnnl::binary::desc(dnnl::algorithm::binary_add, scores_md, mask_md, scores_md),
                                    user_scratchpad_attr(), ctx.engine);
    int s = kernel->add(pd);
    kernel->scratch(s, DNNL_ARG_SRC_0, scores_md, scores_at);
    kernel->input(s, DNNL_ARG_SRC_1, mask_md, kMask);
    kernel->scratch(s, DNNL_ARG_DST, scores_md, scores_at);
  }
  {
    dnnl::softmax_forward::primitive_desc pd(
        dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference, scores_md, 3), user_scratchpad_attr(),
        ctx.engine);
    int s = kernel->add(pd);
    kernel->scratch(s, DNNL_ARG_SRC, scores_md, scores_at);
    kernel->scratch(s, DNNL_ARG_DST, scores_md, scores_at);
  }
  // 4. context = P·V, into [B,Sq,E]
  const std::size_t ctx_at = kernel->reserve(static_cast<std::size_t>(b * sq * e) * kF);
  {
    auto v_md = strided_md({b, h, sk, dh}, {sk * ld, dh, ld, 1});
    auto c_md = strided_md({b, h, sq, dh}, {sq * e, dh, e, 1});
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(scores_md, v_md, c_md), user_scratchpad_attr(), ctx.engine);
    int s = kernel->add(pd);
    kernel->scratch(s, DNNL_ARG_SRC, scores_md, scores_at);
    kernel->scratch(s, DNNL_ARG_WEIGHTS, v_md, v_at);
    kernel->scratch(s, DNNL_ARG_DST, c_md, ctx_at);
  }
  // 5. output projection
  add_output_projection(ctx_at);
  return kernel;
}

// Kiln's path keeps, per thread of heads_team, one (batch row, head)'s scores [Sq,Sk] and its packed keys
// and values (gemm::thread_buffer slots 1-3); oneDNN's path keeps its scores in kernel scratch, inside
// the arena. Saturates at checked::kMaxSize: the caller refuses such a size.
std::size_t working_bytes(const Node& node, const std::vector<const TensorType*>& in) {
  if (!gemm::enabled() || in.size() <= kKey || !in[kQuery] || !in[kKey]) return 0;
  const TensorType &q = *in[kQuery], &k = *in[kKey];
  if (q.rank() != 3 || k.rank() != 3 || !is_concrete(q.shape) || !is_concrete(k.shape)) return 0;
  const std::int64_t b = q.shape[0].value, sq = q.shape[1].value, sk = k.shape[1].value, e = q.shape[2].value;
  const std::int64_t h = std::max<std::int64_t>(node.attr_int("heads"), 1), dh = e / h;
  constexpr std::int64_t kMax = checked::kMaxSize;
  const auto scores = checked::mul(sq, sk), items = checked::mul(b, h);
  if (!scores || !items) return static_cast<std::size_t>(kMax);
  const double flops = 4.0 * static_cast<double>(*items) * static_cast<double>(*scores) * static_cast<double>(dh);
  const std::int64_t packed = checked::add(static_cast<std::int64_t>(gemm::packed_floats(sk, dh)),
                                           static_cast<std::int64_t>(gemm::packed_floats(dh, sk)))
                                  .value_or(kMax);
  const auto per_thread = checked::bytes(checked::add(*scores, packed).value_or(kMax), sizeof(float));
  return static_cast<std::size_t>(checked::mul(per_thread.value_or(kMax), heads_team(*items, flops)).value_or(kMax));
}

// The in_proj rows the projections read: all 3E at once when query, key and value are one value, else
// the q, k and v thirds.
void pack(PackCtx& ctx) {
  const Node& n = ctx.node();
  const bool fused_qkv = n.inputs[kQuery] == n.inputs[kKey] && n.inputs[kKey] == n.inputs[kValue];
  const std::int64_t e = n.inputs[kInW]->type.shape[1].value;
  pack_gemm_weight(ctx, kInW, fused_qkv ? std::vector<std::int64_t>{0} : std::vector<std::int64_t>{0, e, 2 * e});
  pack_gemm_weight(ctx, kOutW, {0});
}

}  // namespace

const OpSchema& op_attention() {
  static const OpSchema s{
      .name = "attention",
      .doc = "multi-head attention with nn.MultiheadAttention weights, batch-first",
      .inputs = mha_inputs({{"query"}, {"key"}, {"value"}}, {{"key_padding_mask", true}}),
      .attrs = {heads_attr()},
      .infer = infer,
      .make_kernel = make,
      .working_bytes = working_bytes,
      .pack = pack,
  };
  return s;
}

}  // namespace kiln
