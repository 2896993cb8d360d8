// gather: entries of `src` along `axis` at constant `indices` (x[:, i] in NumPy; ONNX Gather with constant
// indices). Negative indices count from the end. With `scalar` the one index drops the axis (BERT's CLS
// token x[:, 0]); otherwise the axis has len(indices) entries.
//   %cls = gather(%x) {axis=1, indices=[0], scalar=true} : (f32[batch,seq,64]) -> f32[batch,64]
// Kernel: one memcpy per (outer, index) block; indices are checked against the concrete dim when the plan
// is made.

#include <cstring>

#include "ops/common.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  const TensorType& x = ctx.in(0);
  const Node& n = ctx.node();
  if (x.rank() < 1) ctx.fail("expected input of rank >= 1, got " + x.str());
  const int axis = normalize_axis(ctx, n.attr_int("axis"), x.rank());
  const auto& idx = n.attr_ints("indices");
  const bool scalar = n.attr_bool("scalar");
  if (scalar && idx.size() != 1) ctx.fail("attribute 'scalar' needs exactly one index, got " + attr_str(idx));
  const Dim& d = x.shape[static_cast<std::size_t>(axis)];
  for (auto i : idx)
    if (d.concrete() ? (i < -d.value || i >= d.value) : false)
      ctx.fail("index " + std::to_string(i) + " is out of range for axis " + std::to_string(axis) + " of " + x.str() +
               " (expected -" + d.str() + " <= index < " + d.str() + ")");
  Shape out;
  for (int a = 0; a < x.rank(); ++a) {
    if (a != axis) out.push_back(x.shape[static_cast<std::size_t>(a)]);
    else if (!scalar) out.push_back(Dim::of(static_cast<std::int64_t>(idx.size())));
  }
  return {TensorType{x.dtype, out}};
}

class GatherKernel : public Kernel {
 public:
  explicit GatherKernel(const KernelCtx& ctx) {
    const auto dims = dims_of(ctx.in[0].shape);
    const int axis = static_cast<int>(ctx.node.attr_int("axis") < 0 ? ctx.node.attr_int("axis") + ctx.in[0].rank()
                                                                    : ctx.node.attr_int("axis"));
    const AxisSplit split = split_at_axis(dims, axis);
    outer_ = split.outer;
    inner_ = split.inner * static_cast<std::int64_t>(dtype_size(ctx.in[0].dtype));  // bytes
    dim_ = split.n;
    for (auto i : ctx.node.attr_ints("indices")) {
      if (i < -dim_ || i >= dim_)
        ctx.node.fail("index " + std::to_string(i) + " is out of range for axis " + std::to_string(axis) + " of " +
                      ctx.in[0].str());
      idx_.push_back(i < 0 ? i + dim_ : i);
    }
  }
  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* src = static_cast<const unsigned char*>(args.in[0]);
    auto* dst = static_cast<unsigned char*>(args.out[0]);
    for (std::int64_t o = 0; o < outer_; ++o)
      for (auto i : idx_) {
        std::memcpy(dst, src + (o * dim_ + i) * inner_, static_cast<std::size_t>(inner_));
        dst += inner_;
      }
  }
  std::string impl() const override { return "kiln:gather_copy"; }

 private:
  std::int64_t outer_ = 1, inner_ = 1, dim_ = 0;
  std::vector<std::int64_t> idx_;
};

std::unique_ptr<Kernel> make(const KernelCtx& ctx) { return std::make_unique<GatherKernel>(ctx); }

}  // namespace

const OpSchema& op_gather() {
  static const OpSchema s{
      .name = "gather",
      .doc = "entries along axis at constant indices (x[:, i]); scalar=true drops the axis",
      .inputs = {{"src"}},
      .attrs = {AttrSpec{"axis", AttrType::Int, Attr{std::int64_t{0}}, "the axis indexed"},
                AttrSpec{"indices", AttrType::Ints, std::nullopt, "indices along axis (negative: from the end)"},
                AttrSpec{"scalar", AttrType::Bool, Attr{false}, "one index that drops the axis"}},
      .infer = infer,
      .make_kernel = make,
  };
  return s;
}

}  // namespace kiln
