// conv_transpose2d: 2-D transposed convolution over [N, C, H, W] (nn.ConvTranspose2d; ONNX ConvTranspose):
// stride, padding, dilation, groups, output_padding, optional bias. The weight is PyTorch's and ONNX's
// [in_channels, out_channels/groups, kh, kw]. Output size: (in - 1) * stride - pad_begin - pad_end +
// dilation * (k - 1) + 1 + output_padding.
//   %y = conv_transpose2d(%x, %up.weight, %up.bias) {stride=[2,2], padding=[1,1]} : (f32[batch,16,8,8], f32[16,8,3,3], f32[8]) -> f32[batch,8,15,15]
// `layout` is the activation layout the kernel runs in: "plain" (nchw, as written and at -O0) or the blocked
// layout the assign-layouts pass picks (nChw8c on AVX2, nChw16c on AVX-512) when every group's input and
// output channels fill whole blocks, where oneDNN has jit deconvolutions (on plain data it runs a
// gemm-based one). Kernel: one oneDNN deconvolution. The pack-weights pass reorders the weights
// once, at compile time, into the format the primitive reads for a representative shape (a constant of
// layout "dnnl:<format tag>", as conv2d's); a plan whose primitive wants another format reorders a private
// copy when it is made.

#include "ops/spatial.hpp"

namespace kiln {
namespace {

enum { kSrc, kWeight, kBias };

std::string layout_attr(const Node& n) {
  const std::string& l = n.attr_string("layout");
  return l == "plain" ? std::string() : l;
}

std::vector<std::int64_t> output_padding(const ShapeCtx& ctx) { return attr_pair(ctx, "output_padding", 0); }

// Output size along one axis, also over a symbolic input size.
Dim transposed_out(const ShapeCtx& ctx, const Dim& in, std::int64_t k, std::int64_t stride, std::int64_t pad_total,
                   std::int64_t dilation, std::int64_t out_pad, const char* axis) {
  const __int128 extra = static_cast<__int128>(dilation) * (k - 1) + 1 + out_pad - pad_total;
  const __int128 max = std::numeric_limits<std::int32_t>::max();
  if (extra > max || extra < -max) ctx.fail(std::string("the ") + axis + " window or padding is too large");
  const auto e = static_cast<std::int64_t>(extra);
  if (in.concrete()) {
    const __int128 out = (static_cast<__int128>(in.value) - 1) * stride + e;
    if (in.value < 1 || out < 1)
      ctx.fail(std::string("the ") + axis + " output size " + std::to_string(static_cast<std::int64_t>(out)) +
               " is not positive");
    if (out > std::numeric_limits<std::int64_t>::max() / 4)
      ctx.fail(std::string("the ") + axis + " output is too large");
    return Dim::of(static_cast<std::int64_t>(out));
  }
  auto offset = [](std::int64_t v) { return v == 0 ? std::string() : (v > 0 ? "+" : "") + std::to_string(v); };
  if (stride == 1) return e - 1 == 0 ? in : Dim::symbol(in.sym + offset(e - 1));
  return Dim::symbol("(" + in.sym + "-1)*" + std::to_string(stride) + offset(e));
}

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  const Node& n = ctx.node();
  const auto [c, groups] = expect_conv_operands(ctx, kSrc, kWeight, "[in_channels, out_channels/groups, kh, kw]");
  const Shape& x = ctx.in(kSrc).shape;
  const Shape& w = ctx.in(kWeight).shape;
  if (c % groups != 0 || w[0].value != c)
    ctx.fail("expected weight of shape [" + std::to_string(c) + ",out/groups,kh,kw] for " + std::to_string(c) +
             " input channels in " + std::to_string(groups) + " group(s), got " + shape_str(w));
  const std::int64_t o = w[1].value * groups;
  auto stride = attr_pair(ctx, "stride", 1);
  auto dilation = attr_pair(ctx, "dilation", 1);
  auto pad = attr_padding(ctx);
  auto op = output_padding(ctx);
  for (int a = 0; a < 2; ++a)
    if (op[a] >= stride[a])
      ctx.fail("attribute 'output_padding' " + attr_str(Attr{op}) + " must be smaller than the stride " +
               attr_str(Attr{stride}));
  Shape out = {x[0], Dim::of(o),
               transposed_out(ctx, x[2], w[2].value, stride[0], pad[0] + pad[2], dilation[0], op[0], "height"),
               transposed_out(ctx, x[3], w[3].value, stride[1], pad[1] + pad[3], dilation[1], op[1], "width")};
  if (ctx.has(kBias)) {
    expect_f32(ctx, kBias);
    expect_weight_shape(ctx, kBias, {Dim::of(o)});
  }
  const std::string layout = layout_attr(n);
  if (!layout.empty() && channel_block(layout) == 0)
    ctx.fail("attribute 'layout' must be plain, nChw8c or nChw16c; got \"" + layout + "\"");
  return {TensorType{DType::f32, out, layout}};
}

std::string required(const Node& n) { return layout_attr(n); }

// Blocked when each group's input and output channels fill whole blocks.
std::string preferred(const Node& n) {
  const std::string& blocked = blocked_channel_layout();
  const std::int64_t block = channel_block(blocked), groups = n.attr_int("groups");
  const Dim& c = n.inputs[kSrc]->type.shape.at(1);
  const std::int64_t og = n.inputs[kWeight]->type.shape.at(1).value;
  if (!c.concrete() || c.value % groups != 0) return "plain";
  return (c.value / groups) % block == 0 && og % block == 0 ? blocked : "plain";
}

// The weights as oneDNN's deconvolution sees them: dims [O, C, kh, kw] (grouped: [g, O/g, C/g, kh, kw]),
// and the desc of the ONNX/PyTorch bytes [C, O/g, kh, kw] in those dims.
dnnl::memory::dims weight_dims(const Node& n, const std::vector<std::int64_t>& w) {
  const std::int64_t g = n.attr_int("groups");
  if (g == 1) return {w[1], w[0], w[2], w[3]};
  return {g, w[1], w[0] / g, w[2], w[3]};
}
dnnl::memory::desc source_weight_md(const Node& n, const std::vector<std::int64_t>& w) {
  const std::int64_t g = n.attr_int("groups"), og = w[1], cg = w[0] / g, kk = w[2] * w[3];
  if (g == 1) return strided_md({og, w[0], w[2], w[3]}, {kk, og * kk, w[3], 1});
  return strided_md({g, og, cg, w[2], w[3]}, {cg * og * kk, kk, og * kk, w[3], 1});
}

dnnl::deconvolution_forward::primitive_desc deconv_pd(const Node& n, const TensorType& src_t, const TensorType& dst_t,
                                                      const TensorType& weight_t, bool has_bias,
                                                      const dnnl::engine& engine) {
  const auto w = dims_of(weight_t.shape);
  const auto& st = n.attr_ints("stride");
  const auto& dl = n.attr_ints("dilation");
  auto p = n.attr_ints("padding");
  if (p.size() == 2) p = {p[0], p[1], p[0], p[1]};
  auto src = md_of(src_t);
  auto dst = md_of(dst_t);
  dnnl::memory::desc wei_any(weight_dims(n, w), dnnl::memory::data_type::f32, dnnl::memory::format_tag::any);
  auto bias = plain_md({dst_t.shape[1].value});
  dnnl::memory::dims strides = {st[0], st[1]}, dilates = {dl[0] - 1, dl[1] - 1}, pad_l = {p[0], p[1]},
                     pad_r = {p[2], p[3]};
  auto desc =
      has_bias
          ? dnnl::deconvolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::deconvolution_direct,
                                              src, wei_any, bias, dst, strides, dilates, pad_l, pad_r)
          : dnnl::deconvolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::deconvolution_direct,
                                              src, wei_any, dst, strides, dilates, pad_l, pad_r);
  return {desc, user_scratchpad_attr(), engine};
}

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  const Node& n = ctx.node;
  const auto pd = deconv_pd(n, ctx.in[kSrc], ctx.out[0], ctx.in[kWeight], ctx.has(kBias), ctx.engine);
  const dnnl::memory::desc want = pd.weights_desc();
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
  int s = kernel->add(pd);
  kernel->input(s, DNNL_ARG_SRC, md_of(ctx.in[kSrc]), kSrc);
  // Weights in the primitive's format: in place when the pack-weights pass packed them so, else a private
  // copy reordered now (from the packed format, or from the ONNX/PyTorch one).
  bind_dnnl_weights(*kernel, s, ctx, kWeight, source_weight_md(n, dims_of(ctx.in[kWeight].shape)), want);
  if (ctx.has(kBias)) kernel->input(s, DNNL_ARG_BIAS, plain_md({ctx.out[0].shape[1].value}), kBias);
  kernel->output(s, DNNL_ARG_DST, md_of(ctx.out[0]), 0);
  return kernel;
}

// The pack rule: as conv2d's (src's symbolic dims bound to batch 1, 32 elsewhere; the format oneDNN picks
// for that shape, named after its format tag).
void pack(PackCtx& ctx) {
  const Node& n = ctx.node();
  const Value* w = n.inputs[kWeight];
  if (!w || !w->is_constant() || !w->type.plain() || w->type.dtype != DType::f32 || !is_concrete(w->type.shape)) return;
  const TensorType src = representative_type(n.inputs[kSrc]->type);
  std::vector<const TensorType*> in;
  for (std::size_t i = 0; i < n.inputs.size(); ++i)
    in.push_back(i == kSrc ? &src : n.inputs[i] ? &n.inputs[i]->type : nullptr);
  const bool has_bias = n.inputs.size() > kBias && n.inputs[kBias];
  dnnl::memory::desc want;
  try {
    const TensorType out = n.schema->infer(ShapeCtx(n, in)).at(0);
    want = deconv_pd(n, src, out, w->type, has_bias, detail::cpu_engine()).weights_desc();
  } catch (const std::exception& e) {
    ctx.keep(kWeight, std::string("no representative shape to ask oneDNN with (") + e.what() + ")");
    return;
  }
  pack_dnnl_weight(ctx, kWeight, source_weight_md(n, dims_of(w->type.shape)), want);
}

}  // namespace

const OpSchema& op_conv_transpose2d() {
  static const OpSchema s{
      .name = "conv_transpose2d",
      .doc = "transposed convolution over [N,C,H,W]; weight [in, out/groups, kh, kw] (nn.ConvTranspose2d)",
      .inputs = {{"src"}, {"weight", false, "weight"}, {"bias", true, "bias"}},
      .attrs = {AttrSpec{"stride", AttrType::Ints, Attr{std::vector<std::int64_t>{1, 1}}, "[h, w]"},
                AttrSpec{"padding", AttrType::Ints, Attr{std::vector<std::int64_t>{0, 0}},
                         "[h, w] or [top, left, bottom, right]"},
                AttrSpec{"dilation", AttrType::Ints, Attr{std::vector<std::int64_t>{1, 1}}, "[h, w]"},
                AttrSpec{"groups", AttrType::Int, Attr{std::int64_t{1}}, "channel groups"},
                AttrSpec{"output_padding", AttrType::Ints, Attr{std::vector<std::int64_t>{0, 0}},
                         "[h, w] added at the end of the output (< stride)"},
                AttrSpec{"layout", AttrType::String, Attr{std::string("plain")},
                         "activation layout: plain or the blocked one assign-layouts picks (nChw8c)"}},
      .infer = infer,
      .make_kernel = make,
      .layout = required,
      .preferred_layout = preferred,
      .pack = pack,
  };
  return s;
}

}  // namespace kiln
