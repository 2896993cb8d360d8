// cumsum: running sums along `axis` (torch.cumsum; ONNX CumSum): `exclusive` leaves the element itself
// out (the first sum is 0), `reverse` sums from the end. f32, f64, i64, i32.
//   %c = cumsum(%x) {axis=1} : (f32[batch,5]) -> f32[batch,5]
// Kernel: one sequential pass along the axis per (outer, inner) line, in the element type (f32 sums
// accumulate in f32, as torch does); parallel over outer slabs.

#include <tbb/parallel_for.h>

#include <type_traits>

#include "ops/movement.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  const TensorType& x = ctx.in(0);
  if (x.dtype != DType::f32 && x.dtype != DType::f64 && x.dtype != DType::i64 && x.dtype != DType::i32)
    ctx.fail("expected input 'src' of type f32, f64, i64 or i32, got " + x.str());
  normalize_axis(ctx, ctx.node().attr_int("axis"), std::max(x.rank(), 1));
  return {TensorType{x.dtype, x.shape}};
}

// Integer sums wrap around (two's complement, computed unsigned) instead of overflowing.
template <class T>
auto acc_of() {
  if constexpr (std::is_integral_v<T>) return std::make_unsigned_t<T>{};
  else return T{};
}
template <class T>
using Acc = decltype(acc_of<T>());

template <class T>
void cumsum_slab(const T* src, T* dst, std::int64_t n, std::int64_t inner, bool exclusive, bool reverse) {
  for (std::int64_t j = 0; j < inner; ++j) {
    Acc<T> sum = 0;
    for (std::int64_t s = 0; s < n; ++s) {
      const std::int64_t i = (reverse ? n - 1 - s : s) * inner + j;
      const auto v = static_cast<Acc<T>>(src[i]);
      if (exclusive) {
        dst[i] = static_cast<T>(sum);
        sum += v;
      } else {
        sum += v;
        dst[i] = static_cast<T>(sum);
      }
    }
  }
}

class CumsumKernel : public Kernel {
 public:
  explicit CumsumKernel(const KernelCtx& ctx)
      : dtype_(ctx.in[0].dtype), exclusive_(ctx.node.attr_bool("exclusive")), reverse_(ctx.node.attr_bool("reverse")) {
    auto dims = dims_of(ctx.in[0].shape);
    if (dims.empty()) dims = {1};
    const AxisSplit split = split_at_axis(dims, ctx.node.attr_int("axis"));
    outer_ = split.outer;
    n_ = split.n;
    inner_ = split.inner;
  }
  void execute(dnnl::stream&, const KernelArgs& args) override {
    switch (dtype_) {
      case DType::f32: run<float>(args); break;
      case DType::f64: run<double>(args); break;
      case DType::i64: run<std::int64_t>(args); break;
      default: run<std::int32_t>(args); break;
    }
  }
  std::string impl() const override { return "kiln:cumsum"; }

 private:
  template <class T>
  void run(const KernelArgs& args) {
    const auto* src = static_cast<const T*>(args.in[0]);
    auto* dst = static_cast<T*>(args.out[0]);
    const std::int64_t slab = n_ * inner_;
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, outer_, 1), [&](const tbb::blocked_range<std::int64_t>& r) {
      for (std::int64_t o = r.begin(); o < r.end(); ++o)
        cumsum_slab(src + o * slab, dst + o * slab, n_, inner_, exclusive_, reverse_);
    });
  }
  DType dtype_;
  bool exclusive_, reverse_;
  std::int64_t outer_ = 1, inner_ = 1, n_ = 1;
};

std::unique_ptr<Kernel> make(const KernelCtx& ctx) { return std::make_unique<CumsumKernel>(ctx); }

}  // namespace

const OpSchema& op_cumsum() {
  static const OpSchema s{
      .name = "cumsum",
      .doc = "running sums along axis, optionally exclusive and/or from the end (torch.cumsum)",
      .inputs = {{"src"}},
      .attrs = {AttrSpec{"axis", AttrType::Int, std::nullopt, "the axis summed along"},
                AttrSpec{"exclusive", AttrType::Bool, Attr{false}, "leave each element out of its own sum"},
                AttrSpec{"reverse", AttrType::Bool, Attr{false}, "sum from the end"}},
      .infer = infer,
      .make_kernel = make,
  };
  return s;
}

}  // namespace kiln
