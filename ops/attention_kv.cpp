// attention_kv: the key and value projections of nn.MultiheadAttention (rows E..2E and 2E..3E of
// in_proj_weight) applied to a memory once, so that a decoder's cross-attention can reuse them at every
// step (see cross_attention).
//   %k, %v = attention_kv(%memory, %l0.multihead_attn.in_proj_weight, %l0.multihead_attn.in_proj_bias)
//            : (f32[batch,src,64], f32[192,64], f32[192]) -> (f32[batch,src,64], f32[batch,src,64])

#include "ops/step_attention.hpp"

namespace kiln {
namespace {

enum { kSrc, kInW, kInB };

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  expect_f32(ctx, kSrc);
  ctx.expect_rank(kSrc, 3);
  const Dim& e = ctx.in(kSrc).shape[2];
  if (!e.concrete()) ctx.fail("the embedding dim (last axis) must be concrete, got " + ctx.in(kSrc).str());
  expect_gemm_weight_type(ctx, kInW);
  expect_weight_shape(ctx, kInW, {Dim::of(3 * e.value), e});
  if (ctx.has(kInB)) expect_weight_shape(ctx, kInB, {Dim::of(3 * e.value)});
  return {ctx.in(kSrc), ctx.in(kSrc)};
}

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  const auto d = dims_of(ctx.in[kSrc].shape);
  const std::int64_t rows = d[0] * d[1], e = d[2];
  const bool has_bias = ctx.has(kInB);
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
  for (int which = 0; which < 2; ++which)
    add_linear(*kernel, ctx,
               LinearStep{.rows = rows,
                          .in = e,
                          .out = e,
                          .src = Operand::input(kSrc),
                          .dst = Operand::output(which),
                          .weight = kInW,
                          .weight_row0 = (which + 1) * e,
                          .bias = has_bias ? kInB : -1});
  return kernel;
}

// The k and v thirds of in_proj (rows E.. and 2E..).
void pack(PackCtx& ctx) {
  const std::int64_t e = ctx.node().inputs[kInW]->type.shape[1].value;
  pack_gemm_weight(ctx, kInW, {e, 2 * e});
}

}  // namespace

const OpSchema& op_attention_kv() {
  static const OpSchema s{
      .name = "attention_kv",
      .doc = "keys and values of nn.MultiheadAttention (in_proj rows E..3E) for a memory, computed once",
      .inputs = {{"src"}, {"in_proj_weight", false, "in_proj_weight"}, {"in_proj_bias", true, "in_proj_bias"}},
      .num_outputs = 2,
      .infer = infer,
      .make_kernel = make,
      .pack = pack,
  };
  return s;
}

}  // namespace kiln
