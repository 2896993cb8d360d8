// max_pool, avg_pool, global_avg_pool, global_max_pool over [N, C, H, W] (nn.MaxPool2d, nn.AvgPool2d,
// and nn.AdaptiveAvgPool2d(1) / nn.AdaptiveMaxPool2d(1), which keep the 1x1 spatial dims).
//   %p = max_pool(%x) {kernel=[3,3], stride=[2,2], padding=[1,1]} : (f32[batch,16,h,w]) -> f32[batch,16,(h-1)/2+1,(w-1)/2+1]
//   %g = global_avg_pool(%x) : (f32[batch,64,7,7]) -> f32[batch,64,1,1]
// Max pooling ignores padding (PyTorch pads with -inf); avg_pool counts padded zeros unless
// count_include_pad is false (PyTorch's default is true). Kernel: one oneDNN pooling, in whatever layout
// src has (jit in the blocked layouts; plain nchw pooling is not jit-compiled here).

#include "ops/spatial.hpp"

namespace kiln {
namespace {

bool is_global(const Node& n) { return n.op == "global_avg_pool" || n.op == "global_max_pool"; }

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  expect_nchw(ctx, 0);
  const TensorType& x = ctx.in(0);
  if (is_global(ctx.node()))
    return {TensorType{DType::f32, {x.shape[0], x.shape[1], Dim::of(1), Dim::of(1)}, x.layout}};
  auto k = attr_pair(ctx, "kernel", 1);
  auto stride = attr_pair(ctx, "stride", 1, k);
  auto pad = attr_padding(ctx);
  const auto dil = ctx.node().op == "max_pool" ? attr_pair(ctx, "dilation", 1) : std::vector<std::int64_t>{1, 1};
  if (2 * std::max(pad[0], pad[2]) > k[0] || 2 * std::max(pad[1], pad[3]) > k[1])
    ctx.fail("attribute 'padding' " + attr_str(Attr{ctx.node().attr_ints("padding")}) +
             " must be at most half the kernel " + attr_str(Attr{k}));
  Shape out = {x.shape[0], x.shape[1], window_out(ctx, x.shape[2], k[0], stride[0], pad[0] + pad[2], dil[0], "height"),
               window_out(ctx, x.shape[3], k[1], stride[1], pad[1] + pad[3], dil[1], "width")};
  return {TensorType{DType::f32, out, x.layout}};
}

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  const Node& n = ctx.node;
  auto src = md_of(ctx.in[0]);
  auto dst = md_of(ctx.out[0]);
  auto x = dims_of(ctx.in[0].shape);
  dnnl::memory::dims k, st, pad_l = {0, 0}, pad_r = {0, 0};
  dnnl::algorithm alg = dnnl::algorithm::pooling_avg_include_padding;
  if (is_global(n)) {
    k = st = {x[2], x[3]};
    if (n.op == "global_max_pool") alg = dnnl::algorithm::pooling_max;
  } else {
    k = to_dnnl(n.attr_ints("kernel"));
    st = n.attr_ints("stride").empty() ? k : to_dnnl(n.attr_ints("stride"));
    auto p = n.attr_ints("padding");
    if (p.size() == 2) p = {p[0], p[1], p[0], p[1]};
    pad_l = {p[0], p[1]};
    const auto dl = n.op == "max_pool" ? n.attr_ints("dilation") : std::vector<std::int64_t>{1, 1};
    // oneDNN wants the right padding that the output size implies (it may be less than written).
    auto y = dims_of(ctx.out[0].shape);
    pad_r = {(y[2] - 1) * st[0] + (k[0] - 1) * dl[0] + 1 - x[2] - p[0],
             (y[3] - 1) * st[1] + (k[1] - 1) * dl[1] + 1 - x[3] - p[1]};
    if (n.op == "max_pool") alg = dnnl::algorithm::pooling_max;
    else if (!n.attr_bool("count_include_pad")) alg = dnnl::algorithm::pooling_avg_exclude_padding;
    if (dl[0] != 1 || dl[1] != 1) {  // dilated max pooling: oneDNN's pooling_v2 (dilation counted from 0)
      dnnl::pooling_v2_forward::primitive_desc pd(
          dnnl::pooling_v2_forward::desc(dnnl::prop_kind::forward_inference, alg, src, dst, st, k,
                                         {dl[0] - 1, dl[1] - 1}, pad_l, pad_r),
          user_scratchpad_attr(), ctx.engine);
      auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
      int s = kernel->add(pd);
      kernel->input(s, DNNL_ARG_SRC, src, 0);
      kernel->output(s, DNNL_ARG_DST, dst, 0);
      return kernel;
    }
  }
  dnnl::pooling_forward::primitive_desc pd(
      dnnl::pooling_forward::desc(dnnl::prop_kind::forward_inference, alg, src, dst, st, k, pad_l, pad_r),
      user_scratchpad_attr(), ctx.engine);
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
  int s = kernel->add(pd);
  kernel->input(s, DNNL_ARG_SRC, src, 0);
  kernel->output(s, DNNL_ARG_DST, dst, 0);
  return kernel;
}

std::vector<AttrSpec> window_attrs() {
  return {AttrSpec{"kernel", AttrType::Ints, std::nullopt, "[h, w]"},
          AttrSpec{"stride", AttrType::Ints, Attr{std::vector<std::int64_t>{}}, "[h, w]; default: the kernel size"},
          AttrSpec{"padding", AttrType::Ints, Attr{std::vector<std::int64_t>{0, 0}},
                   "[h, w] or [top, left, bottom, right]"}};
}

}  // namespace

const OpSchema& op_max_pool() {
  static const OpSchema s{
      .name = "max_pool",
      .doc = "max over sliding windows, optionally dilated (nn.MaxPool2d)",
      .inputs = {{"src"}},
      .attrs =
          [] {
            auto attrs = window_attrs();
            attrs.push_back(AttrSpec{"dilation", AttrType::Ints, Attr{std::vector<std::int64_t>{1, 1}}, "[h, w]"});
            return attrs;
          }(),
      .infer = infer,
      .make_kernel = make,
      .layout = layout_of_src};
  return s;
}

const OpSchema& op_avg_pool() {
  static const OpSchema s = [] {
    auto attrs = window_attrs();
    attrs.push_back(AttrSpec{"count_include_pad", AttrType::Bool, Attr{true}, "padded zeros count in the average"});
    return OpSchema{.name = "avg_pool",
                    .doc = "mean over sliding windows (nn.AvgPool2d)",
                    .inputs = {{"src"}},
                    .attrs = std::move(attrs),
                    .infer = infer,
                    .make_kernel = make,
                    .layout = layout_of_src};
  }();
  return s;
}

const OpSchema& op_global_avg_pool() {
  static const OpSchema s{.name = "global_avg_pool",
                          .doc = "mean over H and W, keeping them as 1x1 (nn.AdaptiveAvgPool2d(1))",
                          .inputs = {{"src"}},
                          .infer = infer,
                          .make_kernel = make,
                          .layout = layout_of_src};
  return s;
}

const OpSchema& op_global_max_pool() {
  static const OpSchema s{.name = "global_max_pool",
                          .doc = "max over H and W, keeping them as 1x1 (nn.AdaptiveMaxPool2d(1))",
                          .inputs = {{"src"}},
                          .infer = infer,
                          .make_kernel = make,
                          .layout = layout_of_src};
  return s;
}

}  // namespace kiln
