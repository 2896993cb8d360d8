// conv2d: 2-D convolution over [N, C, H, W] (nn.Conv2d: stride, padding, dilation, groups incl.
// depthwise, optional bias), with what the fusion passes fold in: an activation and a residual added
// before it, y = act(conv(x) + bias + residual).
//   %y = conv2d(%x, %c1.weight, %c1.bias) {stride=[2,2], padding=[1,1], ...} : (f32[batch,16,h,w], f32[32,16,3,3], f32[32]) -> f32[batch,32,(h-1)/2+1,(w-1)/2+1]
// `layout` is the activation layout the kernel runs in: "plain" (nchw, as written and at -O0) or the
// blocked layout the assign-layouts pass picks (nChw8c on AVX2). A first convolution with fewer input
// channels than one block reads plain nchw and writes blocked (oneDNN has a jit kernel for that).
// Kernel: one oneDNN convolution; the residual is a `sum` post-op (dst holds the residual when the
// plan computes the output in the residual's buffer, else the kernel copies it there first); the
// activation an eltwise post-op. Weights are reordered once, at compile time, by the pack-weights pass into
// the blocked format the primitive reads (a constant of layout "dnnl:<format tag>", e.g. dnnl:ABcd8b8a),
// which every plan binds in place.

#include <cstring>

#include "ops/eltwise.hpp"
#include "ops/spatial.hpp"

namespace kiln {
namespace {

enum { kSrc, kWeight, kBias, kResidual };

// The activations conv2d takes, each as a oneDNN eltwise post-op: every post-op of the table but gelu's
// two forms, which conv2d has never taken (test_conv2d pins the list; dropping the exclusion is all it
// takes to fuse them).
bool conv_accepts(const ActivationDef& a) { return a.post_op && std::string_view(a.op) != "gelu"; }

bool has_residual(const Node& n) { return n.inputs.size() > kResidual && n.inputs[kResidual]; }

std::string layout_attr(const Node& n) {
  const std::string& l = n.attr_string("layout");
  return l == "plain" ? std::string() : l;
}

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  const Node& n = ctx.node();
  const auto [c, groups] = expect_conv_operands(ctx, kSrc, kWeight, "[out_channels, in_channels/groups, kh, kw]");
  const Shape& x = ctx.in(kSrc).shape;
  const Shape& w = ctx.in(kWeight).shape;
  const std::int64_t o = w[0].value;
  if (c % groups != 0 || o % groups != 0)
    ctx.fail("attribute 'groups' = " + std::to_string(groups) + " must divide the input channels (" +
             std::to_string(c) + ") and the output channels (" + std::to_string(o) + ")");
  if (w[1].value != c / groups)
    ctx.fail("expected weight of shape [" + std::to_string(o) + "," + std::to_string(c / groups) + ",kh,kw] for " +
             std::to_string(c) + " input channels in " + std::to_string(groups) + " group(s), got " + shape_str(w));
  auto stride = attr_pair(ctx, "stride", 1);
  auto dilation = attr_pair(ctx, "dilation", 1);
  auto pad = attr_padding(ctx);
  Shape out = {x[0], w[0], window_out(ctx, x[2], w[2].value, stride[0], pad[0] + pad[2], dilation[0], "height"),
               window_out(ctx, x[3], w[3].value, stride[1], pad[1] + pad[3], dilation[1], "width")};
  if (ctx.has(kBias)) {
    expect_f32(ctx, kBias);
    expect_weight_shape(ctx, kBias, {w[0]});
  }
  if (ctx.has(kResidual)) {
    expect_f32(ctx, kResidual);
    if (ctx.in(kResidual).shape != out)
      ctx.fail("expected residual of shape " + shape_str(out) + ", got " + ctx.in(kResidual).str());
  }
  check_activation_attr(ctx);
  const std::string layout = layout_attr(n);
  if (!layout.empty() && channel_block(layout) == 0)
    ctx.fail("attribute 'layout' must be plain, nChw8c or nChw16c; got \"" + layout + "\"");
  return {TensorType{DType::f32, out, layout}};
}

// The layout conv2d reads src (and the residual) in: its `layout`, except that a first convolution with
// fewer input channels than one block reads plain nchw.
std::string required(const Node& n) {
  std::string layout = layout_attr(n);
  const Dim& c = n.inputs[kSrc]->type.shape.at(1);
  if (!layout.empty() && n.attr_int("groups") == 1 && c.concrete() && c.value < channel_block(layout) &&
      !has_residual(n))
    return {};
  return layout;
}

// Blocked when the channels per group fill whole blocks (or the convolution is depthwise, or not
// grouped): the cases oneDNN has blocked jit kernels for.
std::string preferred(const Node& n) {
  const std::string& blocked = blocked_channel_layout();
  const std::int64_t block = channel_block(blocked), groups = n.attr_int("groups");
  const Dim& c = n.inputs[kSrc]->type.shape.at(1);
  const std::int64_t o = n.inputs[kWeight]->type.shape.at(0).value;
  if (!c.concrete()) return "plain";
  bool depthwise = groups == c.value && o == c.value;
  bool whole_blocks = (c.value / groups) % block == 0 && (o / groups) % block == 0;
  return groups == 1 || depthwise || whole_blocks ? blocked : "plain";
}

class ConvKernel : public Kernel {
 public:
  ConvKernel(std::unique_ptr<DnnlKernel> conv, std::size_t residual_bytes)
      : conv_(std::move(conv)), residual_bytes_(residual_bytes) {}
  void execute(dnnl::stream& stream, const KernelArgs& args) override {
    // The sum post-op adds onto dst: dst must hold the residual (it does when computed in place).
    if (residual_bytes_ && args.in[kResidual] != args.out[0])
      std::memcpy(args.out[0], args.in[kResidual], residual_bytes_);
    conv_->execute(stream, args);
  }
  std::size_t scratch_bytes() const override { return conv_->scratch_bytes(); }
  std::string impl() const override { return conv_->impl(); }

 private:
  std::unique_ptr<DnnlKernel> conv_;
  std::size_t residual_bytes_;
};

/// The node's convolution primitive for concrete input and output types (src, dst, weight, bias, residual
/// as the node has them). Its weights desc says the format oneDNN reads the weights in.
dnnl::convolution_forward::primitive_desc conv_pd(const Node& n, const TensorType& src_t, const TensorType& dst_t,
                                                  const TensorType& weight_t, bool has_bias, bool has_residual,
                                                  const dnnl::engine& engine) {
  auto w = dims_of(weight_t.shape);
  const std::int64_t groups = n.attr_int("groups");
  std::vector<std::int64_t> wdims =
      groups == 1 ? w : std::vector<std::int64_t>{groups, w[0] / groups, w[1], w[2], w[3]};
  const auto& st = n.attr_ints("stride");
  const auto& dl = n.attr_ints("dilation");
  auto p = n.attr_ints("padding");
  if (p.size() == 2) p = {p[0], p[1], p[0], p[1]};

  auto src = md_of(src_t);
  auto dst = md_of(dst_t);
  dnnl::memory::desc wei_any(to_dnnl(wdims), dnnl::memory::data_type::f32, dnnl::memory::format_tag::any);
  auto bias = plain_md({w[0]});

  dnnl::post_ops ops;
  if (has_residual) ops.append_sum(1.0f);
  if (const ActivationDef* a = find_activation(n.attr_string("activation"))) {
    Eltwise e = *eltwise_of(*a, activation_params(*a, n, true));
    ops.append_eltwise(1.0f, e.alg, e.alpha, e.beta);
  }
  auto attr = user_scratchpad_attr();
  attr.set_post_ops(ops);

  dnnl::memory::dims strides = {st[0], st[1]}, dilates = {dl[0] - 1, dl[1] - 1}, pad_l = {p[0], p[1]},
                     pad_r = {p[2], p[3]};
  auto desc =
      has_bias
          ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                            src, wei_any, bias, dst, strides, dilates, pad_l, pad_r)
          : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                            src, wei_any, dst, strides, dilates, pad_l, pad_r);
  return {desc, attr, engine};
}

// A convolution with a residual reads src in the blocked layout of its output and residual (`required`),
// even with fewer input channels than one block; oneDNN 2.6 has no jit kernel for that (8 channels in
// nChw16c runs its reference kernel, 25-50x slower), but has one reading such a src plain. Then the
// kernel reorders src to plain in its scratch first: the type its convolution reads src in.
TensorType conv_src_type(const Node& n, const TensorType& src_t, bool residual) {
  const std::int64_t block = src_t.plain() ? 0 : channel_block(src_t.layout);
  const Dim& c = src_t.shape.at(1);
  if (!residual || block == 0 || n.attr_int("groups") != 1 || !c.concrete() || c.value >= block) return src_t;
  TensorType plain = src_t;
  plain.layout.clear();
  return plain;
}

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  const Node& n = ctx.node;
  const TensorType src_t = conv_src_type(n, ctx.in[kSrc], ctx.has(kResidual));
  const bool reorder_src = src_t.layout != ctx.in[kSrc].layout;
  const auto pd = conv_pd(n, src_t, ctx.out[0], ctx.in[kWeight], ctx.has(kBias), ctx.has(kResidual), ctx.engine);
  const dnnl::memory::desc want = pd.weights_desc();
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
  int s = -1;
  if (reorder_src) {
    const dnnl::memory::desc from = md_of(ctx.in[kSrc]), to = md_of(src_t);
    const std::size_t at = kernel->reserve(to.get_size());
    dnnl::reorder::primitive_desc rpd(ctx.engine, from, ctx.engine, to, user_scratchpad_attr());
    int r = kernel->add(rpd);
    kernel->input(r, DNNL_ARG_FROM, from, kSrc);
    kernel->scratch(r, DNNL_ARG_TO, to, at);
    s = kernel->add(pd);
    kernel->scratch(s, DNNL_ARG_SRC, to, at);
  } else {
    s = kernel->add(pd);
    kernel->input(s, DNNL_ARG_SRC, md_of(ctx.in[kSrc]), kSrc);
  }
  // Weights in the primitive's format: in place when they are in it (the pack-weights pass packed them, see
  // pack below, or it reads them plain), else a private copy reordered now.
  bind_dnnl_weights(*kernel, s, ctx, kWeight, plain_md(want.dims()), want);
  if (ctx.has(kBias)) kernel->input(s, DNNL_ARG_BIAS, plain_md({ctx.in[kWeight].shape[0].value}), kBias);
  kernel->output(s, DNNL_ARG_DST, md_of(ctx.out[0]), 0);
  return std::make_unique<ConvKernel>(std::move(kernel), ctx.has(kResidual) ? buffer_bytes(ctx.out[0]) : 0);
}

// The pack rule (OpSchema::pack): the weights in the format oneDNN reads them in for a representative
// shape of the node (symbolic dims at 1 for the batch, 32 elsewhere), named after its format tag. A plan
// whose primitive wants another format (other spatial sizes can change oneDNN's choice) reorders a private
// copy from the packed one.
void pack(PackCtx& ctx) {
  const Node& n = ctx.node();
  const Value* w = n.inputs[kWeight];
  if (!w || !w->is_constant() || !w->type.plain() || w->type.dtype != DType::f32 || !is_concrete(w->type.shape)) return;
  // src with its symbolic dims bound (batch 1, the rest 32); the output follows from the shape rule. The
  // residual, when there is one, has the output's shape.
  const TensorType src = representative_type(n.inputs[kSrc]->type);
  std::vector<const TensorType*> in;
  for (std::size_t i = 0; i < n.inputs.size(); ++i)
    in.push_back(i == kSrc ? &src : (i == kResidual || !n.inputs[i]) ? nullptr : &n.inputs[i]->type);
  dnnl::memory::desc want;
  try {
    const TensorType out = n.schema->infer(ShapeCtx(n, in)).at(0);
    const bool residual = n.inputs.size() > kResidual && n.inputs[kResidual];
    want = conv_pd(n, conv_src_type(n, src, residual), out, w->type, n.inputs.size() > kBias && n.inputs[kBias],
                   residual, detail::cpu_engine())
               .weights_desc();
  } catch (const std::exception& e) {
    ctx.keep(kWeight, std::string("no representative shape to ask oneDNN with (") + e.what() + ")");
    return;
  }
  pack_dnnl_weight(ctx, kWeight, plain_md(want.dims()), want);
}

std::vector<AttrSpec> conv_attrs() {
  std::vector<AttrSpec> attrs = {
      AttrSpec{"stride", AttrType::Ints, Attr{std::vector<std::int64_t>{1, 1}}, "[h, w]"},
      AttrSpec{"padding", AttrType::Ints, Attr{std::vector<std::int64_t>{0, 0}},
               "[h, w] or [top, left, bottom, right]"},
      AttrSpec{"dilation", AttrType::Ints, Attr{std::vector<std::int64_t>{1, 1}}, "[h, w]"},
      AttrSpec{"groups", AttrType::Int, Attr{std::int64_t{1}}, "channel groups (= channels: depthwise)"}};
  for (AttrSpec& a : activation_attrs(conv_accepts, "applied after the residual")) attrs.push_back(std::move(a));
  attrs.push_back(AttrSpec{"layout", AttrType::String, Attr{std::string("plain")},
                           "activation layout: plain or the blocked one assign-layouts picks (nChw8c)"});
  return attrs;
}

}  // namespace

const OpSchema& op_conv2d() {
  static const OpSchema s{
      .name = "conv2d",
      .doc = "act(conv(x, weight) + bias + residual) over [N,C,H,W]; weight [out, in/groups, kh, kw] (nn.Conv2d)",
      .inputs = {{"src"}, {"weight", false, "weight"}, {"bias", true, "bias"}, {"residual", true}},
      .attrs = conv_attrs(),
      .infer = infer,
      .make_kernel = make,
      .in_place = {kResidual},
      .layout = required,
      .preferred_layout = preferred,
      .post_ops = {.activations = conv_accepts, .residual = kResidual, .activation_first = false},
      .pack = pack,
  };
  return s;
}

}  // namespace kiln
