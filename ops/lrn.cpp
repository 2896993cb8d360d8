// lrn: local response normalization across channels of [N, C, H, W] (nn.LocalResponseNorm; ONNX LRN):
// y = x / (k + alpha / size * sum of x² over the `size` channels centred on c)^beta, `size` odd.
//   %y = lrn(%x) {size=5, alpha=0.0001, beta=0.75, k=1.0} : (f32[batch,64,h,w]) -> f32[batch,64,h,w]
// Kernel: one oneDNN LRN (across channels), in whatever layout src has.

#include <cmath>

#include "ops/spatial.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  expect_nchw(ctx, 0);
  const Node& n = ctx.node();
  const std::int64_t size = n.attr_int("size");
  if (size < 1 || size % 2 == 0 || size > kMaxWindowAttr)
    ctx.fail("attribute 'size' must be odd and >= 1, got " + std::to_string(size));
  for (const char* a : {"alpha", "beta", "k"})
    if (!std::isfinite(n.attr_float(a))) ctx.fail(std::string("attribute '") + a + "' must be finite");
  return {ctx.in(0)};
}

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  const Node& n = ctx.node;
  auto md = md_of(ctx.in[0]);
  dnnl::lrn_forward::primitive_desc pd(
      dnnl::lrn_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::lrn_across_channels, md,
                              n.attr_int("size"), static_cast<float>(n.attr_float("alpha")),
                              static_cast<float>(n.attr_float("beta")), static_cast<float>(n.attr_float("k"))),
      user_scratchpad_attr(), ctx.engine);
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
  int s = kernel->add(pd);
  kernel->input(s, DNNL_ARG_SRC, md, 0);
  kernel->output(s, DNNL_ARG_DST, md_of(ctx.out[0]), 0);
  return kernel;
}

}  // namespace

const OpSchema& op_lrn() {
  static const OpSchema s{
      .name = "lrn",
      .doc = "local response normalization across channels (nn.LocalResponseNorm)",
      .inputs = {{"src"}},
      .attrs = {AttrSpec{"size", AttrType::Int, std::nullopt, "channels summed over (odd)"},
                AttrSpec{"alpha", AttrType::Float, Attr{1e-4}, "scale of the sum (divided by size)"},
                AttrSpec{"beta", AttrType::Float, Attr{0.75}, "exponent"},
                AttrSpec{"k", AttrType::Float, Attr{1.0}, "added before the exponent"}},
      .infer = infer,
      .make_kernel = make,
      .layout = layout_of_src,
  };
  return s;
}

}  // namespace kiln
