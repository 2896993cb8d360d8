// linear: y = x · weightᵀ + bias over the last axis (PyTorch nn.Linear; weight stored [out, in]).
//   %h = linear(%x, %l1.weight, %l1.bias) : (f32[batch,seq,64], f32[256,64], f32[256]) -> f32[batch,seq,256]
// Kernel: one oneDNN matmul over the flattened leading dims, weights read in place as [N,K] (oneDNN's
// `ba` for a K x N matrix), the layout ONEDNN_NOTES.md measured 1.8x faster than `ab` on AVX2.

#include "ops/common.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  expect_f32(ctx, 0);
  expect_f32(ctx, 1);
  const TensorType& x = ctx.in(0);
  if (x.rank() < 1) ctx.fail("expected input 'src' of rank >= 1, got " + x.str());
  ctx.expect_rank(1, 2);
  const Shape& w = ctx.in(1).shape;
  const Dim& k = x.shape.back();
  if (!same_dim(w[1], k))
    ctx.fail("expected weight of shape [*," + k.str() + "] for input " + x.str() + ", got " + shape_str(w));
  if (ctx.has(2)) {
    expect_f32(ctx, 2);
    expect_weight_shape(ctx, 2, {w[0]});
  }
  Shape out = x.shape;
  out.back() = w[0];
  return {TensorType{DType::f32, out}};
}

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  auto dims = dims_of(ctx.in[0].shape);
  std::int64_t k = dims.back(), n = ctx.in[1].shape[0].value, m = 1;
  for (std::size_t i = 0; i + 1 < dims.size(); ++i) m *= dims[i];
  auto src = plain_md({m, k});
  auto wei = strided_md({k, n}, {1, k});
  auto dst = plain_md({m, n});
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
  dnnl::matmul::primitive_desc pd;
  if (ctx.has(2)) {
    auto bias = plain_md({1, n});
    pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wei, bias, dst), user_scratchpad_attr(), ctx.engine);
    int s = kernel->add(pd);
    kernel->input(s, DNNL_ARG_BIAS, bias, 2);
  } else {
    pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wei, dst), user_scratchpad_attr(), ctx.engine);
    kernel->add(pd);
  }
  kernel->input(0, DNNL_ARG_SRC, src, 0);
  kernel->input(0, DNNL_ARG_WEIGHTS, wei, 1);
  kernel->output(0, DNNL_ARG_DST, dst, 0);
  return kernel;
}

}  // namespace

const OpSchema& op_linear() {
  static const OpSchema s{
      .name = "linear",
      .doc = "x · weightᵀ + bias over the last axis; weight [out_features, in_features] (nn.Linear)",
      .inputs = {{"src"}, {"weight", false, "weight"}, {"bias", true, "bias"}},
      .infer = infer,
      .make_kernel = make,
  };
  return s;
}

}  // namespace kiln
