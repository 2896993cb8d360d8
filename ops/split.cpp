// split: one part of the input cut along `axis` into consecutive parts of `sizes` (torch.split's
// output number `index`; ONNX Split becomes one split node per output). Any element type.
//   %b = split(%x) {axis=1, sizes=[2,4], index=1} : (f32[batch,6]) -> f32[batch,4]
// Kernel: one copy of index's slab per outer index; parallel over them.

#include <tbb/parallel_for.h>

#include "ops/movement.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  const Node& n = ctx.node();
  const TensorType& x = ctx.in(0);
  const int axis = normalize_axis(ctx, n.attr_int("axis"), x.rank());
  const auto& sizes = n.attr_ints("sizes");
  const std::int64_t index = n.attr_int("index");
  if (index < 0 || index >= static_cast<std::int64_t>(sizes.size()))
    ctx.fail("attribute 'index' = " + std::to_string(index) + " must name one of the " + std::to_string(sizes.size()) +
             " parts in 'sizes'");
  std::int64_t total = 0;
  for (auto s : sizes) {
    if (s < 0 || s > kMaxPad)
      ctx.fail("attribute 'sizes' entries must be between 0 and " + std::to_string(kMaxPad) + ", got " +
               attr_str(Attr{sizes}));
    total += s;
  }
  const Dim& d = x.shape[axis];
  if (!d.concrete() || d.value != total)
    ctx.fail("attribute 'sizes' " + attr_str(Attr{sizes}) + " must add up to dim " + std::to_string(axis) + " of " +
             x.str());
  Shape out = x.shape;
  out[axis] = Dim::of(sizes[index]);
  return {TensorType{x.dtype, out}};
}

class SplitKernel : public Kernel {
 public:
  explicit SplitKernel(const KernelCtx& ctx) {
    const auto dims = dims_of(ctx.in[0].shape);
    const int axis = static_cast<int>(ctx.node.attr_int("axis") < 0 ? ctx.node.attr_int("axis") + ctx.in[0].rank()
                                                                    : ctx.node.attr_int("axis"));
    const auto& sizes = ctx.node.attr_ints("sizes");
    const auto index = static_cast<std::size_t>(ctx.node.attr_int("index"));
    const AxisSplit split = split_at_axis(dims, axis);
    const std::int64_t inner = split.inner * static_cast<std::int64_t>(dtype_size(ctx.in[0].dtype));  // bytes
    std::int64_t start = 0;
    outer_ = split.outer;
    for (std::size_t i = 0; i < index; ++i) start += sizes[i];
    in_row_ = split.n * inner;
    offset_ = start * inner;
    bytes_ = sizes[index] * inner;
  }
  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* src = static_cast<const unsigned char*>(args.in[0]);
    auto* dst = static_cast<unsigned char*>(args.out[0]);
    if (bytes_ == 0) return;
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, outer_, 64), [&](const tbb::blocked_range<std::int64_t>& r) {
      for (std::int64_t o = r.begin(); o < r.end(); ++o)
        std::memcpy(dst + o * bytes_, src + o * in_row_ + offset_, static_cast<std::size_t>(bytes_));
    });
  }
  std::string impl() const override { return "kiln:split"; }

 private:
  std::int64_t outer_ = 1, in_row_ = 0, offset_ = 0, bytes_ = 0;  // bytes
};

std::unique_ptr<Kernel> make(const KernelCtx& ctx) { return std::make_unique<SplitKernel>(ctx); }

}  // namespace

const OpSchema& op_split() {
  static const OpSchema s{
      .name = "split",
      .doc = "part `index` of the input cut along axis into parts of `sizes` (torch.split(...)[index]); any type",
      .inputs = {{"src"}},
      .attrs = {AttrSpec{"axis", AttrType::Int, Attr{std::int64_t{0}}, "the axis cut along"},
                AttrSpec{"sizes", AttrType::Ints, std::nullopt, "every part's size along axis (adding up to it)"},
                AttrSpec{"index", AttrType::Int, std::nullopt, "the part this node computes"}},
      .infer = infer,
      .make_kernel = make,
  };
  return s;
}

}  // namespace kiln
