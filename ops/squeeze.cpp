// squeeze and unsqueeze: remove or insert axes of size 1 (torch.squeeze / unsqueeze, ONNX Squeeze and
// Unsqueeze). Views: no kernel runs. Unlike reshape's 0 (which copies the dim at the same position), they
// keep every other dim, symbolic ones included, whatever its position becomes.
//   %c = squeeze(%x) {axes=[1]} : (f32[batch,1,64]) -> f32[batch,64]
//   %u = unsqueeze(%p) {axes=[0]} : (i64[seq]) -> i64[1,seq]
// squeeze needs each named axis to be 1 for every binding: a symbolic dim is refused.

#include "ops/common.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer_squeeze(const ShapeCtx& ctx) {
  const TensorType& x = ctx.in(0);
  std::vector<bool> drop(static_cast<std::size_t>(x.rank()), false);
  for (auto a : ctx.node().attr_ints("axes")) {
    const int k = normalize_axis(ctx, a, x.rank(), "axes");
    if (drop[static_cast<std::size_t>(k)]) ctx.fail("axis " + std::to_string(a) + " is named twice");
    const Dim& d = x.shape[static_cast<std::size_t>(k)];
    if (!d.is(1))
      ctx.fail("cannot squeeze axis " + std::to_string(k) + " of " + x.str() + ": its size is " + d.str() +
               (d.concrete() ? "" : ", symbolic") + " (expected 1)");
    drop[static_cast<std::size_t>(k)] = true;
  }
  Shape out;
  for (int a = 0; a < x.rank(); ++a)
    if (!drop[static_cast<std::size_t>(a)]) out.push_back(x.shape[static_cast<std::size_t>(a)]);
  return {TensorType{x.dtype, out}};
}

std::vector<TensorType> infer_unsqueeze(const ShapeCtx& ctx) {
  const TensorType& x = ctx.in(0);
  const auto& axes = ctx.node().attr_ints("axes");
  const int rank = x.rank() + static_cast<int>(axes.size());
  std::vector<bool> ins(static_cast<std::size_t>(rank), false);
  for (auto a : axes) {
    const int k = normalize_axis(ctx, a, rank, "axes");
    if (ins[static_cast<std::size_t>(k)]) ctx.fail("axis " + std::to_string(a) + " is named twice");
    ins[static_cast<std::size_t>(k)] = true;
  }
  Shape out;
  std::size_t src = 0;
  for (int a = 0; a < rank; ++a) out.push_back(ins[static_cast<std::size_t>(a)] ? Dim::of(1) : x.shape[src++]);
  return {TensorType{x.dtype, out}};
}

}  // namespace

const OpSchema& op_squeeze() {
  static const OpSchema s{
      .name = "squeeze",
      .doc = "removes the named axes, each of size 1 (torch.squeeze); a view",
      .inputs = {{"src"}},
      .attrs = {AttrSpec{"axes", AttrType::Ints, std::nullopt, "axes removed (negative: from the end)"}},
      .infer = infer_squeeze,
      .view_of = 0,
  };
  return s;
}

const OpSchema& op_unsqueeze() {
  static const OpSchema s{
      .name = "unsqueeze",
      .doc = "inserts axes of size 1 at the named positions of the output (torch.unsqueeze); a view",
      .inputs = {{"src"}},
      .attrs = {AttrSpec{"axes", AttrType::Ints, std::nullopt, "output axes inserted (negative: from the end)"}},
      .infer = infer_unsqueeze,
      .view_of = 0,
  };
  return s;
}

}  // namespace kiln
