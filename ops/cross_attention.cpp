// cross_attention: multi-head attention of decoder positions over keys/values computed once from the
// encoder output (attention_kv), with nn.MultiheadAttention's weights: only the query projection (rows
// 0..E of in_proj_weight) and the output projection run per call.
//   %y = cross_attention(%x, %mem_k, %mem_v, %l0.multihead_attn.in_proj_weight, ..., %src_mask) {heads=4}
//        : (f32[batch,1,64], f32[batch,src,64], f32[batch,src,64], ..., f32[batch,src]) -> f32[batch,1,64]
// Optional `key_padding_mask` f32 [batch,src]: added to the scores (-inf at padding; see padding_mask).

#include "ops/step_attention.hpp"

namespace kiln {
namespace {

enum { kX, kK, kV, kInW, kInB, kOutW, kOutB, kMask };

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  for (int i : {kX, kK, kV}) {
    expect_f32(ctx, i);
    ctx.expect_rank(i, 3);
  }
  const Shape& x = ctx.in(kX).shape;
  const Dim& e = x[2];
  if (!e.concrete()) ctx.fail("the embedding dim (last axis of x) must be concrete, got " + ctx.in(kX).str());
  const Shape& k = ctx.in(kK).shape;
  if (k[0] != x[0] || k[2] != e)
    ctx.fail("expected key of shape [" + x[0].str() + ",S," + e.str() + "], got " + ctx.in(kK).str());
  if (ctx.in(kV).shape != k)
    ctx.fail("key and value must have the same shape: " + ctx.in(kK).str() + " vs " + ctx.in(kV).str());
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
  if (ctx.has(kMask)) {
    expect_f32(ctx, kMask);
    const Shape& m = ctx.in(kMask).shape;
    if (m.size() != 2 || m[0] != x[0] || m[1] != k[1])
      ctx.fail("expected key_padding_mask of shape [" + x[0].str() + "," + k[1].str() + "], got " +
               ctx.in(kMask).str());
  }
  return {ctx.in(kX)};
}

class CrossAttentionKernel : public step_attention::ProjectedKernel {
 public:
  explicit CrossAttentionKernel(const KernelCtx& ctx) : ProjectedKernel(ctx) {
    b_ = ctx.in[kX].shape[0].value;
    tq_ = ctx.in[kX].shape[1].value;
    e_ = ctx.in[kX].shape[2].value;
    s_ = ctx.in[kK].shape[1].value;
    h_ = ctx.node.attr_int("heads");
    dh_ = e_ / h_;
    mask_ = ctx.has(kMask);
    // rows 0..E of in_proj: the query
    build(ctx, kX, kInW, kInB, kOutW, kOutB, b_ * tq_, e_, e_, static_cast<std::size_t>(b_ * h_ * tq_ * s_),
          "kiln:cross_attention");
  }

  void execute(dnnl::stream& stream, const KernelArgs& args) override {
    project(stream, args);
    const float* q = projected(args);
    float* context = this->context(args);
    float* scores = this->scores(args);
    const auto* keys = static_cast<const float*>(args.in[kK]);
    const auto* values = static_cast<const float*>(args.in[kV]);
    // The mask is optional: without it the node has no input kMask and args.in ends before it.
    const auto* mask = mask_ ? static_cast<const float*>(args.in[kMask]) : nullptr;
    const float scale = 1.0f / std::sqrt(static_cast<float>(dh_));
    const std::int64_t e = e_, s = s_, dh = dh_, h = h_, tq = tq_;
    auto one = [&](std::int64_t item) {  // item = (b * tq + i) * h + head
      const std::int64_t head = item % h, bi = item / h, b = bi / tq;
      auto key = [&](std::int64_t j) { return keys + (b * s + j) * e + head * dh; };
      auto value = [&](std::int64_t j) { return values + (b * s + j) * e + head * dh; };
      step_attention::attend(q + bi * e + head * dh, dh, scale, s, key, value, mask_ ? mask + b * s : nullptr,
                             scores + item * s, context + bi * e + head * dh);
    };
    step_attention::for_items(b_ * tq_ * h_, 2 * s_ * dh_, one);
    finish(stream, args);
  }

 private:
  std::int64_t b_ = 0, tq_ = 0, e_ = 0, s_ = 0, h_ = 0, dh_ = 0;
  bool mask_ = false;
};

std::unique_ptr<Kernel> make(const KernelCtx& ctx) { return std::make_unique<CrossAttentionKernel>(ctx); }

void pack(PackCtx& ctx) {
  pack_gemm_weight(ctx, kInW, {0});
  pack_gemm_weight(ctx, kOutW, {0});
}

}  // namespace

const OpSchema& op_cross_attention() {
  static const OpSchema s{
      .name = "cross_attention",
      .doc = "attention over keys/values precomputed by attention_kv (nn.MultiheadAttention weights)",
      .inputs = mha_inputs({{"x"}, {"key"}, {"value"}}, {{"key_padding_mask", true}}),
      .attrs = {heads_attr()},
      .infer = infer,
      .make_kernel = make,
      .pack = pack,
  };
  return s;
}

}  // namespace kiln
