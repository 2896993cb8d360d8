// matmul: batched matrix product with NumPy batch broadcasting (torch.matmul for rank >= 2).
//   %s = matmul(%q, %kt) : (f32[batch,8,seq,16], f32[batch,8,16,seq]) -> f32[batch,8,seq,seq]

#include "ops/common.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  expect_f32(ctx, 0);
  expect_f32(ctx, 1);
  const Shape& a = ctx.in(0).shape;
  const Shape& b = ctx.in(1).shape;
  if (a.size() < 2 || b.size() < 2)
    ctx.fail("expected inputs of rank >= 2, got " + ctx.in(0).str() + " and " + ctx.in(1).str());
  const Dim& ka = a[a.size() - 1];
  const Dim& kb = b[b.size() - 2];
  if (!same_dim(ka, kb))
    ctx.fail("inner dims differ: " + ctx.in(0).str() + " · " + ctx.in(1).str() + " (" + ka.str() + " vs " + kb.str() +
             ")");
  Shape out = broadcast(ctx, Shape(a.begin(), a.end() - 2), Shape(b.begin(), b.end() - 2));
  out.push_back(a[a.size() - 2]);
  out.push_back(b[b.size() - 1]);
  return {TensorType{DType::f32, out}};
}

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  auto out = dims_of(ctx.out[0].shape);
  std::size_t rank = out.size();
  auto src = plain_md(padded_dims(dims_of(ctx.in[0].shape), rank));
  auto wei = plain_md(padded_dims(dims_of(ctx.in[1].shape), rank));
  auto dst = plain_md(out);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wei, dst), user_scratchpad_attr(), ctx.engine);
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
  int s = kernel->add(pd);
  kernel->input(s, DNNL_ARG_SRC, src, 0);
  kernel->input(s, DNNL_ARG_WEIGHTS, wei, 1);
  kernel->output(s, DNNL_ARG_DST, dst, 0);
  return kernel;
}

}  // namespace

const OpSchema& op_matmul() {
  static const OpSchema s{
      .name = "matmul",
      .doc = "batched a · b over the last two axes, leading axes broadcast (torch.matmul, rank >= 2)",
      .inputs = {{"a"}, {"b"}},
      .infer = infer,
      .make_kernel = make,
  };
  return s;
}

}  // namespace kiln
