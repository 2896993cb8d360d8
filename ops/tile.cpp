// tile: the input repeated `repeats[d]` times along each dim d (torch.tile with one repeat per dim; ONNX
// Tile). Any element type.
//   %y = tile(%x) {repeats=[1,2]} : (f32[batch,3]) -> f32[batch,6]
// Kernel: per output row (the last dim), the source row its outer indices map to, copied repeats times;
// parallel over rows.

#include <tbb/parallel_for.h>

#include "graph/checked.hpp"
#include "ops/movement.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  const TensorType& x = ctx.in(0);
  const auto& reps = ctx.node().attr_ints("repeats");
  if (static_cast<int>(reps.size()) != x.rank())
    ctx.fail("attribute 'repeats' must have one entry per dim (" + std::to_string(x.rank()) + " for " + x.str() +
             "), got " + attr_str(Attr{reps}));
  Shape out = x.shape;
  for (int d = 0; d < x.rank(); ++d) {
    if (reps[d] < 0 || reps[d] > kMaxPad)
      ctx.fail("attribute 'repeats' entries must be between 0 and " + std::to_string(kMaxPad) + ", got " +
               attr_str(Attr{reps}));
    if (reps[d] == 1) continue;
    if (!x.shape[d].concrete())
      ctx.fail("expected a concrete size in repeated dim " + std::to_string(d) + ", got " + x.str());
    auto size = checked::mul(x.shape[d].value, reps[d]);
    if (!size)
      ctx.fail("dim " + std::to_string(d) + " of " + x.str() + " repeated " + std::to_string(reps[d]) +
               " times is too large");
    out[d] = Dim::of(*size);
  }
  return {TensorType{x.dtype, out}};
}

class TileKernel : public Kernel {
 public:
  explicit TileKernel(const KernelCtx& ctx)
      : in_(dims_of(ctx.in[0].shape)), out_(dims_of(ctx.out[0].shape)), esize_(dtype_size(ctx.in[0].dtype)) {
    if (in_.empty()) in_ = out_ = {1};
    in_strides_ = row_strides(in_);
  }
  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* src = static_cast<const unsigned char*>(args.in[0]);
    auto* dst = static_cast<unsigned char*>(args.out[0]);
    const int r = static_cast<int>(out_.size());
    const std::int64_t w = out_.back(), iw = in_.back();
    std::int64_t rows = 1;
    for (int d = 0; d < r - 1; ++d) rows *= out_[d];
    if (rows == 0 || w == 0) return;
    const std::size_t row_bytes = static_cast<std::size_t>(iw) * esize_;
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, rows, 16), [&](const tbb::blocked_range<std::int64_t>& rr) {
      for (std::int64_t row = rr.begin(); row < rr.end(); ++row) {
        std::int64_t src_row = 0, rest = row;
        for (int d = r - 2; d >= 0; --d) {
          src_row += (rest % out_[d]) % in_[d] * in_strides_[d];
          rest /= out_[d];
        }
        const unsigned char* in = src + src_row * esize_;  // src_row: an element offset
        unsigned char* out = dst + row * w * esize_;
        for (std::int64_t k = 0; k < w / iw; ++k) std::memcpy(out + k * row_bytes, in, row_bytes);
      }
    });
  }
  std::string impl() const override { return "kiln:tile"; }

 private:
  std::vector<std::int64_t> in_, out_, in_strides_;
  std::size_t esize_;
};

std::unique_ptr<Kernel> make(const KernelCtx& ctx) { return std::make_unique<TileKernel>(ctx); }

}  // namespace

const OpSchema& op_tile() {
  static const OpSchema s{
      .name = "tile",
      .doc = "the input repeated repeats[d] times along each dim d (torch.tile); any type",
      .inputs = {{"src"}},
      .attrs = {AttrSpec{"repeats", AttrType::Ints, std::nullopt, "one count >= 0 per dim"}},
      .infer = infer,
      .make_kernel = make,
  };
  return s;
}

}  // namespace kiln
