// gather_elements: out[..., i, ...] = data[..., indices[..., i, ...], ...] along `axis` (torch.gather; ONNX
// GatherElements): the output has the indices' shape; negative indices count from the end. Any data type;
// i64 or i32 indices. An index out of range fails the run, naming it.
//   %y = gather_elements(%x, %idx) {axis=1} : (f32[batch,5], i64[batch,2]) -> f32[batch,2]
// Kernel: one pass over the output, parallel over its rows.

#include <tbb/parallel_for.h>

#include "ops/movement.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  const TensorType& x = ctx.in(0);
  const TensorType& idx = ctx.in(1);
  if (idx.dtype != DType::i64 && idx.dtype != DType::i32)
    ctx.fail("expected input 'indices' of type i64 or i32, got " + idx.str());
  if (x.rank() < 1 || idx.rank() != x.rank())
    ctx.fail("expected 'indices' of the same rank as 'data' (>= 1), got " + idx.str() + " and " + x.str());
  const int axis = normalize_axis(ctx, ctx.node().attr_int("axis"), x.rank());
  for (int d = 0; d < x.rank(); ++d)
    if (d != axis && x.shape[d].concrete() && idx.shape[d].concrete() && idx.shape[d].value > x.shape[d].value)
      ctx.fail("dim " + std::to_string(d) + " of 'indices' " + idx.str() + " exceeds that of 'data' " + x.str());
  return {TensorType{x.dtype, idx.shape}};
}

class GatherElementsKernel : public Kernel {
 public:
  explicit GatherElementsKernel(const KernelCtx& ctx)
      : node_(ctx.node),
        data_(dims_of(ctx.in[0].shape)),
        idx_(dims_of(ctx.in[1].shape)),
        i64_(ctx.in[1].dtype == DType::i64),
        esize_(dtype_size(ctx.in[0].dtype)) {
    const std::int64_t a = ctx.node.attr_int("axis");
    axis_ = static_cast<int>(a < 0 ? a + ctx.in[0].rank() : a);
    data_strides_ = row_strides(data_);
  }
  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* src = static_cast<const unsigned char*>(args.in[0]);
    auto* dst = static_cast<unsigned char*>(args.out[0]);
    const int r = static_cast<int>(idx_.size());
    const std::int64_t w = idx_.back(), n = data_[axis_];
    std::int64_t rows = 1;
    for (int d = 0; d < r - 1; ++d) rows *= idx_[d];
    if (rows == 0 || w == 0) return;
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, rows, 16), [&](const tbb::blocked_range<std::int64_t>& rr) {
      for (std::int64_t row = rr.begin(); row < rr.end(); ++row) {
        // The data offset of the row's outer indices, with the axis' own index left out.
        std::int64_t base = 0, rest = row;
        for (int d = r - 2; d >= 0; --d) {
          if (d != axis_) base += (rest % idx_[d]) * data_strides_[d];
          rest /= idx_[d];
        }
        for (std::int64_t j = 0; j < w; ++j) {
          const std::int64_t flat = row * w + j;
          std::int64_t i = i64_ ? static_cast<const std::int64_t*>(args.in[1])[flat]
                                : static_cast<const std::int32_t*>(args.in[1])[flat];
          if (i < 0) i += n;
          if (i < 0 || i >= n)
            node_.fail("index " + std::to_string(i < 0 ? i - n : i) + " at flat position " + std::to_string(flat) +
                       " is out of range [-" + std::to_string(n) + ", " + std::to_string(n) + ")");
          const std::int64_t off = base + i * data_strides_[axis_] + (axis_ == r - 1 ? 0 : j);
          std::memcpy(dst + flat * esize_, src + off * esize_, esize_);
        }
      }
    });
  }
  std::string impl() const override { return "kiln:gather_elements"; }

 private:
  const Node& node_;
  std::vector<std::int64_t> data_, idx_, data_strides_;
  int axis_ = 0;
  bool i64_;
  std::size_t esize_;
};

std::unique_ptr<Kernel> make(const KernelCtx& ctx) { return std::make_unique<GatherElementsKernel>(ctx); }

}  // namespace

const OpSchema& op_gather_elements() {
  static const OpSchema s{
      .name = "gather_elements",
      .doc = "out = data indexed along axis by indices, elementwise (torch.gather); the indices' shape",
      .inputs = {{"data"}, {"indices"}},
      .attrs = {AttrSpec{"axis", AttrType::Int, Attr{std::int64_t{0}}, "the axis indexed"}},
      .infer = infer,
      .make_kernel = make,
  };
  return s;
}

}  // namespace kiln
