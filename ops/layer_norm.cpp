// layer_norm over the last axis with optional scale and shift (nn.LayerNorm(normalized_shape=dim)).
//   %n1 = layer_norm(%r1, %norm1.weight, %norm1.bias) {eps=1.0e-05} : (f32[batch,seq,64], f32[64], f32[64]) -> f32[batch,seq,64]

#include "ops/common.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  expect_f32(ctx, 0);
  const TensorType& x = ctx.in(0);
  if (x.rank() < 1) ctx.fail("expected input of rank >= 1, got " + x.str());
  for (std::size_t i : {1, 2}) {
    if (!ctx.has(i)) continue;
    expect_f32(ctx, i);
    expect_weight_shape(ctx, i, {x.shape.back()});
  }
  if (ctx.node().attr_float("eps") < 0) ctx.fail("attribute 'eps' must be >= 0");
  return {x};
}

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  auto dims = dims_of(ctx.in[0].shape);
  std::int64_t d = dims.back(), m = numel_of(ctx.in[0].shape) / std::max<std::int64_t>(d, 1);
  auto md = plain_md({m, d});
  auto flags = dnnl::normalization_flags::none;
  if (ctx.has(1)) flags |= dnnl::normalization_flags::use_scale;
  if (ctx.has(2)) flags |= dnnl::normalization_flags::use_shift;
  auto eps = static_cast<float>(ctx.node.attr_float("eps"));
  dnnl::layer_normalization_forward::primitive_desc pd(
      dnnl::layer_normalization_forward::desc(dnnl::prop_kind::forward_inference, md, eps, flags),
      user_scratchpad_attr(), ctx.engine);
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
  int s = kernel->add(pd);
  kernel->input(s, DNNL_ARG_SRC, md, 0);
  if (ctx.has(1)) kernel->input(s, DNNL_ARG_SCALE, plain_md({d}), 1);
  if (ctx.has(2)) kernel->input(s, DNNL_ARG_SHIFT, plain_md({d}), 2);
  kernel->output(s, DNNL_ARG_DST, md, 0);
  return kernel;
}

}  // namespace

const OpSchema& op_layer_norm() {
  static const OpSchema s{
      .name = "layer_norm",
      .doc = "(x - mean) / sqrt(var + eps) · weight + bias over the last axis",
      .inputs = {{"src"}, {"weight", true, "weight"}, {"bias", true, "bias"}},
      .attrs = {AttrSpec{"eps", AttrType::Float, Attr{1e-5}, "added to the variance"}},
      .infer = infer,
      .make_kernel = make,
  };
  return s;
}

}  // namespace kiln
