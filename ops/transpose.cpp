// transpose: permutes axes (torch.permute): output axis i is input axis perm[i].
//   %t = transpose(%q) {perm=[0,2,1,3]} : (f32[batch,seq,8,16]) -> f32[batch,8,seq,16]
// Kernel: one oneDNN reorder reading the input through permuted strides.

#include "ops/common.hpp"

namespace kiln {
namespace {

std::vector<int> checked_perm(const ShapeCtx& ctx) {
  const auto& perm = ctx.node().attr_ints("perm");
  int rank = ctx.in(0).rank();
  if (static_cast<int>(perm.size()) != rank)
    ctx.fail("attribute 'perm' has " + std::to_string(perm.size()) + " entries for an input of rank " +
             std::to_string(rank));
  std::vector<int> out;
  std::vector<bool> seen(rank, false);
  for (auto p : perm) {
    int a = normalize_axis(ctx, p, rank, "perm");
    if (seen[a]) ctx.fail("attribute 'perm' is not a permutation (axis " + std::to_string(a) + " twice)");
    seen[a] = true;
    out.push_back(a);
  }
  return out;
}

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  Shape out;
  for (int a : checked_perm(ctx)) out.push_back(ctx.in(0).shape[a]);
  return {TensorType{ctx.in(0).dtype, out}};
}

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  auto in = dims_of(ctx.in[0].shape);
  auto out = dims_of(ctx.out[0].shape);
  std::vector<std::int64_t> in_strides(in.size(), 1);
  for (std::size_t i = in.size(); i-- > 1;) in_strides[i - 1] = in_strides[i] * in[i];
  const auto& perm = ctx.node.attr_ints("perm");
  std::vector<std::int64_t> strides;
  strides.reserve(perm.size());
  for (auto p : perm) strides.push_back(in_strides[p < 0 ? p + in.size() : p]);
  DType dtype = ctx.in[0].dtype;
  if (dtype_size(dtype) == 8) {
    // oneDNN has no 8-byte types (i64 ids, f64): move each element as two s32 halves, an extra
    // innermost dim of 2.
    for (auto& st : strides) st *= 2;
    out.push_back(2);
    strides.push_back(1);
    dtype = DType::i32;
  }
  auto src = strided_md(out, strides, dtype);
  auto dst = plain_md(out, dtype);
  return reorder_kernel(ctx.engine, src, dst);
}

}  // namespace

const OpSchema& op_transpose() {
  static const OpSchema s{
      .name = "transpose",
      .doc = "output axis i is input axis perm[i] (torch.permute)",
      .inputs = {{"src"}},
      .attrs = {AttrSpec{"perm", AttrType::Ints, std::nullopt, "the permutation"}},
      .infer = infer,
      .make_kernel = make,
  };
  return s;
}

}  // namespace kiln
