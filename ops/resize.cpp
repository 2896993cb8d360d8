// resize: spatial resampling of [N, C, H, W] to `size` or by `scale` (F.interpolate, align_corners=False).
//   %u = resize(%x) {mode="nearest", scale=[2.0,2.0]} : (f32[batch,16,h,w]) -> f32[batch,16,h*2,w*2]
// Coordinates map by half-pixel centres with the ratio of the sizes: "linear" is PyTorch's bilinear;
// "nearest" takes the source pixel whose centre is nearest (PyTorch's "nearest-exact", the same as its
// "nearest" for integer upscaling). Kernel: one oneDNN resampling, in whatever layout src has.

#include <cmath>

#include "ops/spatial.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  const Node& n = ctx.node();
  expect_nchw(ctx, 0);
  const TensorType& x = ctx.in(0);
  const std::string& mode = n.attr_string("mode");
  if (mode != "nearest" && mode != "linear")
    ctx.fail(R"(attribute 'mode' must be "nearest" or "linear", got ")" + mode + "\"");
  const auto& size = n.attr_ints("size");
  const auto& scale = std::get<std::vector<double>>(n.attr("scale"));
  if (size.empty() == scale.empty()) ctx.fail("expected exactly one of the attributes 'size' and 'scale'");
  Shape out = x.shape;
  for (int i = 0; i < 2; ++i) {
    const Dim& in = x.shape[2 + i];
    if (!size.empty()) {
      if (size.size() != 2 || size[i] < 1)
        ctx.fail("attribute 'size' must be 2 entries [h, w] >= 1, got " + attr_str(Attr{size}));
      out[2 + i] = Dim::of(size[i]);
    } else {
      if (scale.size() != 2 || !(scale[i] > 0))
        ctx.fail("attribute 'scale' must be 2 entries [h, w] > 0, got " + attr_str(Attr{scale}));
      if (in.concrete()) {
        out[2 + i] = Dim::of(static_cast<std::int64_t>(std::floor(static_cast<double>(in.value) * scale[i])));
        if (out[2 + i].value < 1) ctx.fail("scaling " + x.str() + " by " + attr_str(Attr{scale}) + " leaves no pixels");
      } else if (scale[i] == std::floor(scale[i])) {
        // Parenthesized when the size is already an expression: "((h-1)/2+1)*2".
        bool plain_symbol = in.sym.find_first_of("()+-*/") == std::string::npos;
        out[2 + i] = Dim::symbol((plain_symbol ? in.sym : "(" + in.sym + ")") + "*" +
                                 std::to_string(static_cast<std::int64_t>(scale[i])));
        if (scale[i] == 1) out[2 + i] = in;
      } else {
        ctx.fail("a fractional 'scale' needs a concrete size, got " + x.str());
      }
    }
  }
  return {TensorType{DType::f32, out, x.layout}};
}

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  auto src = md_of(ctx.in[0]);
  auto dst = md_of(ctx.out[0]);
  auto alg = ctx.node.attr_string("mode") == "linear" ? dnnl::algorithm::resampling_linear
                                                      : dnnl::algorithm::resampling_nearest;
  dnnl::resampling_forward::primitive_desc pd(
      dnnl::resampling_forward::desc(dnnl::prop_kind::forward_inference, alg, src, dst), user_scratchpad_attr(),
      ctx.engine);
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
  int s = kernel->add(pd);
  kernel->input(s, DNNL_ARG_SRC, src, 0);
  kernel->output(s, DNNL_ARG_DST, dst, 0);
  return kernel;
}

}  // namespace

const OpSchema& op_resize() {
  static const OpSchema s{
      .name = "resize",
      .doc = "spatial resampling to size or by scale, nearest or bilinear (F.interpolate, align_corners=False)",
      .inputs = {{"src"}},
      .attrs = {AttrSpec{"mode", AttrType::String, Attr{std::string("nearest")}, "nearest or linear"},
                AttrSpec{"size", AttrType::Ints, Attr{std::vector<std::int64_t>{}}, "output [h, w]"},
                AttrSpec{"scale", AttrType::Floats, Attr{std::vector<double>{}},
                         "[h, w] factors (output = floor(in * scale))"}},
      .infer = infer,
      .make_kernel = make,
      .layout = layout_of_src,
  };
  return s;
}

}  // namespace kiln
