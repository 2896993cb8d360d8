// clip and silu: the activations MobileNet- and EfficientNet-style models use, one oneDNN eltwise each,
// run in whatever layout src has. At -O2 they fold into a preceding conv2d as post-ops.
//   %r = clip(%x) {min=0.0, max=6.0} : (f32[batch,32,h,w]) -> f32[batch,32,h,w]     (nn.ReLU6, nn.Hardtanh)
//   %s = silu(%x) : (f32[batch,32,h,w]) -> f32[batch,32,h,w]                        (nn.SiLU, swish)

#include "ops/common.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  expect_f32(ctx, 0);
  if (ctx.node().op == "clip" && !(ctx.node().attr_float("min") <= ctx.node().attr_float("max")))
    ctx.fail("attribute 'min' (" + attr_str(ctx.node().attr("min")) + ") must be <= 'max' (" + attr_str(ctx.node().attr("max")) + ")");
  return {ctx.in(0)};
}

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  auto md = ctx.in[0].plain() ? plain_md({numel_of(ctx.in[0].shape)}) : md_of(ctx.in[0]);
  bool clip = ctx.node.op == "clip";
  float alpha = clip ? static_cast<float>(ctx.node.attr_float("min")) : 1.f;
  float beta = clip ? static_cast<float>(ctx.node.attr_float("max")) : 0.f;
  dnnl::eltwise_forward::primitive_desc pd(
      dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference,
                                  clip ? dnnl::algorithm::eltwise_clip : dnnl::algorithm::eltwise_swish, md, alpha, beta),
      user_scratchpad_attr(), ctx.engine);
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
  int s = kernel->add(pd);
  kernel->input(s, DNNL_ARG_SRC, md, 0);
  kernel->output(s, DNNL_ARG_DST, md, 0);
  return kernel;
}

}  // namespace

const OpSchema& op_clip() {
  static const OpSchema s{.name = "clip",
                          .doc = "min(max(x, min), max) (torch.clamp, nn.ReLU6)",
                          .inputs = {{"src"}},
                          .attrs = {AttrSpec{"min", AttrType::Float, Attr{0.0}, "lower bound"},
                                    AttrSpec{"max", AttrType::Float, Attr{6.0}, "upper bound"}},
                          .infer = infer,
                          .make_kernel = make,
                          .in_place = {0},
                          .layout = layout_of_first_input};
  return s;
}

const OpSchema& op_silu() {
  static const OpSchema s{.name = "silu", .doc = "x * sigmoid(x) (nn.SiLU, swish)", .inputs = {{"src"}}, .infer = infer,
                          .make_kernel = make, .in_place = {0}, .layout = layout_of_first_input};
  return s;
}

}  // namespace kiln
