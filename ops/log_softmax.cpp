// log_softmax along one axis (torch.log_softmax): x - max - log(sum(exp(x - max))), oneDNN's logsoftmax.
//   %logp = log_softmax(%logits) {axis=-1} : (f32[batch,70]) -> f32[batch,70]

#include "ops/common.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  expect_f32(ctx, 0);
  if (ctx.in(0).rank() < 1) ctx.fail("expected input of rank >= 1, got " + ctx.in(0).str());
  normalize_axis(ctx, ctx.node().attr_int("axis"), ctx.in(0).rank());
  return {ctx.in(0)};
}

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  auto md = plain_md(ctx.in[0]);
  int rank = ctx.in[0].rank();
  std::int64_t axis = ctx.node.attr_int("axis");
  int a = static_cast<int>(axis < 0 ? axis + rank : axis);
  dnnl::logsoftmax_forward::primitive_desc pd(
      dnnl::logsoftmax_forward::desc(dnnl::prop_kind::forward_inference, md, a), user_scratchpad_attr(), ctx.engine);
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
  int s = kernel->add(pd);
  kernel->input(s, DNNL_ARG_SRC, md, 0);
  kernel->output(s, DNNL_ARG_DST, md, 0);
  return kernel;
}

}  // namespace

const OpSchema& op_log_softmax() {
  static const OpSchema s{
      .name = "log_softmax",
      .doc = "log(softmax(x)) along `axis`, computed stably",
      .inputs = {{"src"}},
      .attrs = {AttrSpec{"axis", AttrType::Int, Attr{std::int64_t{-1}}, "axis to normalize"}},
      .infer = infer,
      .make_kernel = make,
      .in_place = {0},
  };
  return s;
}

}  // namespace kiln
