// trilu: the upper or lower triangle of the last two dims, zeros elsewhere (torch.triu / torch.tril with
// `diagonal` = k; ONNX Trilu). Any element type.
//   %m = trilu(%x) {upper=false, k=0} : (f32[batch,4,4]) -> f32[batch,4,4]
// Element (i, j) is kept when j - i >= k (upper) or j - i <= k (lower). Kernel: per matrix row, the kept
// run copied and the rest zeroed; parallel over rows.

#include <tbb/parallel_for.h>

#include <algorithm>

#include "ops/movement.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  const TensorType& x = ctx.in(0);
  if (x.rank() < 2) ctx.fail("expected input of rank >= 2, got " + x.str());
  const std::int64_t k = ctx.node().attr_int("k");
  if (k < -kMaxPad || k > kMaxPad) ctx.fail("attribute 'k' = " + std::to_string(k) + " is out of range");
  return {TensorType{x.dtype, x.shape}};
}

class TriluKernel : public Kernel {
 public:
  explicit TriluKernel(const KernelCtx& ctx)
      : upper_(ctx.node.attr_bool("upper")), k_(ctx.node.attr_int("k")), esize_(dtype_size(ctx.in[0].dtype)) {
    const auto dims = dims_of(ctx.in[0].shape);
    h_ = dims[dims.size() - 2];
    w_ = dims.back();
    rows_ = numel_of(ctx.in[0].shape) / std::max<std::int64_t>(w_, 1);
    if (w_ == 0) rows_ = 0;
  }
  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* src = static_cast<const unsigned char*>(args.in[0]);
    auto* dst = static_cast<unsigned char*>(args.out[0]);
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, rows_, 64), [&](const tbb::blocked_range<std::int64_t>& r) {
      for (std::int64_t row = r.begin(); row < r.end(); ++row) {
        const std::int64_t i = row % h_;
        // Kept columns [lo, hi): upper: j >= i + k; lower: j <= i + k.
        const std::int64_t lo = upper_ ? std::clamp<std::int64_t>(i + k_, 0, w_) : 0;
        const std::int64_t hi = upper_ ? w_ : std::clamp<std::int64_t>(i + k_ + 1, 0, w_);
        const std::size_t base = static_cast<std::size_t>(row * w_) * esize_;
        unsigned char* out = dst + base;
        if (src != dst)
          std::memcpy(out + lo * esize_, src + base + lo * esize_, static_cast<std::size_t>(hi - lo) * esize_);
        std::memset(out, 0, static_cast<std::size_t>(lo) * esize_);
        std::memset(out + hi * esize_, 0, static_cast<std::size_t>(w_ - hi) * esize_);
      }
    });
  }
  std::string impl() const override { return "kiln:trilu"; }

 private:
  bool upper_;
  std::int64_t k_, h_ = 0, w_ = 0, rows_ = 0;
  std::size_t esize_;
};

std::unique_ptr<Kernel> make(const KernelCtx& ctx) { return std::make_unique<TriluKernel>(ctx); }

}  // namespace

const OpSchema& op_trilu() {
  static const OpSchema s{
      .name = "trilu",
      .doc = "upper or lower triangle of the last two dims from diagonal k, zeros elsewhere (torch.triu/tril)",
      .inputs = {{"src"}},
      .attrs = {AttrSpec{"upper", AttrType::Bool, Attr{true}, "true: keep j - i >= k; false: keep j - i <= k"},
                AttrSpec{"k", AttrType::Int, Attr{std::int64_t{0}}, "the diagonal (0: the main one)"}},
      .infer = infer,
      .make_kernel = make,
      .in_place = {0},
  };
  return s;
}

}  // namespace kiln
