// batch_norm: inference-mode batch normalization over channel dim 1 with the running statistics,
// y = (x - mean) / sqrt(var + eps) * weight + bias (nn.BatchNorm1d/2d/3d in eval mode).
//   %b = batch_norm(%x, %bn.weight, %bn.bias, %bn.running_mean, %bn.running_var) {eps=1.0e-05} : (f32[batch,16,h,w], f32[16], f32[16], f32[16], f32[16]) -> f32[batch,16,h,w]
// Kernel: oneDNN batch normalization (global stats, scale, shift), in whatever layout src has (jit in
// the blocked ones). At -O2 a batch_norm after a convolution is folded into its weights (fold-conv-
// batch-norm) and no kernel runs.

#include "ops/spatial.hpp"

namespace kiln {
namespace {

enum { kSrc, kWeight, kBias, kMean, kVar };

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  expect_f32(ctx, kSrc);
  const TensorType& x = ctx.in(kSrc);
  if (x.rank() < 2 || x.rank() > 5) ctx.fail("expected input 'src' of rank 2 to 5 [N,C,...], got " + x.str());
  for (int i : {kWeight, kBias, kMean, kVar})
    if (ctx.has(i)) {
      expect_f32(ctx, i);
      expect_weight_shape(ctx, i, {x.shape[1]});
    }
  if (ctx.node().attr_float("eps") < 0) ctx.fail("attribute 'eps' must be >= 0");
  return {x};
}

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  auto md = md_of(ctx.in[kSrc]);
  auto channels = plain_md({ctx.in[kSrc].shape[1].value});
  auto flags = dnnl::normalization_flags::use_global_stats;
  if (ctx.has(kWeight)) flags |= dnnl::normalization_flags::use_scale;
  if (ctx.has(kBias)) flags |= dnnl::normalization_flags::use_shift;
  dnnl::batch_normalization_forward::primitive_desc pd(
      dnnl::batch_normalization_forward::desc(dnnl::prop_kind::forward_inference, md,
                                              static_cast<float>(ctx.node.attr_float("eps")), flags),
      user_scratchpad_attr(), ctx.engine);
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
  int s = kernel->add(pd);
  kernel->input(s, DNNL_ARG_SRC, md, kSrc);
  kernel->input(s, DNNL_ARG_MEAN, channels, kMean);
  kernel->input(s, DNNL_ARG_VARIANCE, channels, kVar);
  if (ctx.has(kWeight)) kernel->input(s, DNNL_ARG_SCALE, channels, kWeight);
  if (ctx.has(kBias)) kernel->input(s, DNNL_ARG_SHIFT, channels, kBias);
  kernel->output(s, DNNL_ARG_DST, md, 0);
  return kernel;
}

}  // namespace

const OpSchema& op_batch_norm() {
  static const OpSchema s{
      .name = "batch_norm",
      .doc = "(x - running_mean) / sqrt(running_var + eps) * weight + bias over channel dim 1 (nn.BatchNorm2d, eval)",
      .inputs = {{"src"},
                 {"weight", true, "weight"},
                 {"bias", true, "bias"},
                 {"running_mean", false, "running_mean"},
                 {"running_var", false, "running_var"}},
      .attrs = {AttrSpec{"eps", AttrType::Float, Attr{1e-5}, "added to the variance"}},
      .infer = infer,
      .make_kernel = make,
      .in_place = {kSrc},
      .layout = layout_of_src,
  };
  return s;
}

}  // namespace kiln
