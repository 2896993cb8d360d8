// reduce_mean, reduce_sum over `axes` (torch.mean / torch.sum with dim=axes, keepdim=keepdims).
//   %pooled = reduce_mean(%x) {axes=[1], keepdims=false} : (f32[batch,seq,64]) -> f32[batch,64]

#include <set>

#include "ops/common.hpp"

namespace kiln {
namespace {

std::set<int> reduced_axes(const ShapeCtx& ctx) {
  const auto& axes = ctx.node().attr_ints("axes");
  if (axes.empty()) ctx.fail("attribute 'axes' must name at least one axis");
  std::set<int> out;
  for (auto a : axes)
    if (!out.insert(normalize_axis(ctx, a, ctx.in(0).rank(), "axes")).second)
      ctx.fail("attribute 'axes' names axis " + std::to_string(a) + " twice");
  return out;
}

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  expect_f32(ctx, 0);
  auto axes = reduced_axes(ctx);
  bool keep = ctx.node().attr_bool("keepdims");
  Shape out;
  for (int i = 0; i < ctx.in(0).rank(); ++i) {
    if (!axes.count(i)) out.push_back(ctx.in(0).shape[i]);
    else if (keep) out.push_back(Dim::of(1));
  }
  return {TensorType{DType::f32, out}};
}

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  auto src_dims = dims_of(ctx.in[0].shape);
  auto dst_dims = src_dims;
  for (auto a : ctx.node.attr_ints("axes")) dst_dims[a < 0 ? a + src_dims.size() : a] = 1;
  auto src = plain_md(src_dims), dst = plain_md(dst_dims);
  auto alg = ctx.node.op == "reduce_mean" ? dnnl::algorithm::reduction_mean : dnnl::algorithm::reduction_sum;
  dnnl::reduction::primitive_desc pd(dnnl::reduction::desc(alg, src, dst, 0.f, 0.f), user_scratchpad_attr(), ctx.engine);
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
  int s = kernel->add(pd);
  kernel->input(s, DNNL_ARG_SRC, src, 0);
  kernel->output(s, DNNL_ARG_DST, dst, 0);
  return kernel;
}

OpSchema reduce_schema(const char* name, const char* doc) {
  return OpSchema{
      .name = name,
      .doc = doc,
      .inputs = {{"src"}},
      .attrs = {AttrSpec{"axes", AttrType::Ints, std::nullopt, "axes to reduce"},
                AttrSpec{"keepdims", AttrType::Bool, Attr{false}, "keep reduced axes as size 1"}},
      .infer = infer,
      .make_kernel = make,
  };
}

}  // namespace

const OpSchema& op_reduce_mean() {
  static const OpSchema s = reduce_schema("reduce_mean", "mean over `axes`");
  return s;
}
const OpSchema& op_reduce_sum() {
  static const OpSchema s = reduce_schema("reduce_sum", "sum over `axes`");
  return s;
}

}  // namespace kiln
