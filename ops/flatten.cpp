// flatten: dims from `axis` on merged into one (torch.flatten(x, axis), nn.Flatten). A view of plain
// data: no kernel runs.
//   %f = flatten(%p) {axis=1} : (f32[batch,64,1,1]) -> f32[batch,64]

#include "graph/checked.hpp"
#include "ops/common.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  const TensorType& x = ctx.in(0);
  const int axis = normalize_axis(ctx, ctx.node().attr_int("axis"), std::max(x.rank(), 1));
  Shape out(x.shape.begin(), x.shape.begin() + std::min(axis, x.rank()));
  Dim rest = Dim::of(1);
  for (int i = axis; i < x.rank(); ++i) {
    if (rest.concrete() && x.shape[i].concrete() && !checked::mul(rest.value, x.shape[i].value))
      ctx.fail("dims " + std::to_string(axis) + ".. of " + x.str() + " multiply to more than " +
               std::to_string(checked::kMaxSize) + " elements");
    rest = mul_dims(rest, x.shape[i]);
  }
  out.push_back(rest);
  return {TensorType{x.dtype, out}};
}

}  // namespace

const OpSchema& op_flatten() {
  static const OpSchema s{
      .name = "flatten",
      .doc = "merges dims axis.. into one (torch.flatten(x, axis)); a view",
      .inputs = {{"src"}},
      .attrs = {AttrSpec{"axis", AttrType::Int, Attr{std::int64_t{1}}, "first dim merged"}},
      .infer = infer,
      .view_of = 0,
  };
  return s;
}

}  // namespace kiln
