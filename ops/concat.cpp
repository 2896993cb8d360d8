// concat: inputs joined along `axis` (torch.cat); every other dim must match.
//   %c = concat(%a, %b) {axis=1} : (f32[batch,16,h,w], f32[batch,8,h,w]) -> f32[batch,24,h,w]
// Kernel: one oneDNN concat. Along channels it runs in the blocked layout of its first input when every
// input's channels fill whole blocks (so a CNN stays blocked across it); otherwise on plain data.

#include "ops/spatial.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  const TensorType& first = ctx.in(0);
  const int axis = normalize_axis(ctx, ctx.node().attr_int("axis"), std::max(first.rank(), 1));
  Shape out = first.shape;
  for (std::size_t i = 0; i < ctx.num_inputs(); ++i) {
    expect_f32(ctx, i);
    const TensorType& t = ctx.in(i);
    bool same = t.rank() == first.rank();
    for (int d = 0; same && d < t.rank(); ++d) same = d == axis || t.shape[d] == first.shape[d];
    if (!same)
      ctx.fail("input " + std::to_string(i) + " " + t.str() + " does not match input 0 " + first.str() +
               " outside axis " + std::to_string(axis));
    if (i > 0) {
      if (!out[axis].concrete() || !t.shape[axis].concrete())
        ctx.fail("expected concrete sizes along axis " + std::to_string(axis) + ", got " + first.str() + " and " +
                 t.str());
      out[axis] = Dim::of(out[axis].value + t.shape[axis].value);
    }
  }
  // The layout the kernel runs in: the inputs' (assign-layouts makes them agree), when they agree.
  std::string layout = first.layout;
  for (std::size_t i = 0; i < ctx.num_inputs(); ++i)
    if (ctx.in(i).layout != layout) layout.clear();
  return {TensorType{DType::f32, out, layout}};
}

// Blocked along channels only when each input's channel count is a whole number of blocks.
std::string required(const Node& n) {
  const std::string& layout = n.inputs.at(0)->type.layout;
  const std::int64_t block = channel_block(layout);
  if (block == 0 || n.attr_int("axis") != 1) return {};
  for (const Value* v : n.inputs)
    if (v->type.shape.size() != 4 || !v->type.shape[1].concrete() || v->type.shape[1].value % block != 0) return {};
  return layout;
}

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  std::vector<dnnl::memory::desc> srcs;
  for (const auto& t : ctx.in) srcs.push_back(md_of(t));
  auto dst = md_of(ctx.out[0]);
  const int axis = static_cast<int>(ctx.node.attr_int("axis") < 0 ? ctx.node.attr_int("axis") + ctx.out[0].rank()
                                                                  : ctx.node.attr_int("axis"));
  dnnl::concat::primitive_desc pd(dst, axis, srcs, ctx.engine, user_scratchpad_attr());
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
  int s = kernel->add(pd);
  for (std::size_t i = 0; i < srcs.size(); ++i)
    kernel->input(s, DNNL_ARG_MULTIPLE_SRC + static_cast<int>(i), srcs[i], static_cast<int>(i));
  kernel->output(s, DNNL_ARG_DST, dst, 0);
  return kernel;
}

}  // namespace

const OpSchema& op_concat() {
  static const OpSchema s{
      .name = "concat",
      .doc = "inputs joined along axis (torch.cat)",
      .inputs = {{"src"}},
      .variadic = true,
      .attrs = {AttrSpec{"axis", AttrType::Int, Attr{std::int64_t{1}}, "the axis joined along"}},
      .infer = infer,
      .make_kernel = make,
      .layout = required,
  };
  return s;
}

}  // namespace kiln
