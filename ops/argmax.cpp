// argmax: the index of the largest value along `axis` (default the last; the first one on ties, as
// torch.argmax, or the last with select_last_index, as ONNX ArgMax allows); keepdims keeps that axis as 1.
// argmin: the same for the smallest value (torch.argmin; ONNX ArgMin).
//   %next = argmax(%logits) : (f32[batch,70]) -> i64[batch]
//   %a = argmax(%x) {axis=1, keepdims=true} : (f32[batch,5,7]) -> i64[batch,1,7]

#include <tbb/parallel_for.h>

#include "ops/common.hpp"
#include "ops/select.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  expect_f32(ctx, 0);
  if (ctx.in(0).rank() < 1) ctx.fail("expected input of rank >= 1, got " + ctx.in(0).str());
  const int axis = normalize_axis(ctx, ctx.node().attr_int("axis"), ctx.in(0).rank());
  const Dim& n = ctx.in(0).shape[axis];
  if (n.concrete() && n.value == 0)
    ctx.fail("expected a non-empty axis " + std::to_string(axis) + ", got " + ctx.in(0).str());
  Shape out = ctx.in(0).shape;
  if (ctx.node().attr_bool("keepdims")) out[axis] = Dim::of(1);
  else out.erase(out.begin() + axis);
  return {TensorType{DType::i64, out}};
}

class ArgmaxKernel : public Kernel {
 public:
  explicit ArgmaxKernel(const KernelCtx& ctx)
      : last_(ctx.node.attr_bool("select_last_index")), min_(ctx.node.op == "argmin") {
    const auto dims = dims_of(ctx.in[0].shape);
    const AxisSplit split = split_at_axis(dims, ctx.node.attr_int("axis"));
    outer_ = split.outer;
    n_ = split.n;
    inner_ = split.inner;
  }
  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* src = static_cast<const float*>(args.in[0]);
    auto* dst = static_cast<std::int64_t*>(args.out[0]);
    const std::int64_t rows = outer_ * inner_;
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, rows, 64), [&](const tbb::blocked_range<std::int64_t>& r) {
      for (std::int64_t i = r.begin(); i < r.end(); ++i) {
        if (inner_ == 1 && !last_ && !min_) {
          dst[i] = arg_max(src + i * n_, n_);
          continue;
        }
        const float* x = src + (i / inner_) * n_ * inner_ + i % inner_;
        std::int64_t best = 0;
        for (std::int64_t j = 1; j < n_; ++j) {
          const float v = x[j * inner_], b = x[best * inner_];
          if ((min_ ? v < b : v > b) || (last_ && v == b)) best = j;
        }
        dst[i] = best;
      }
    });
  }
  std::string impl() const override { return min_ ? "kiln:argmin" : "kiln:argmax"; }

 private:
  bool last_, min_;
  std::int64_t outer_ = 1, inner_ = 1, n_ = 1;
};

std::unique_ptr<Kernel> make(const KernelCtx& ctx) { return std::make_unique<ArgmaxKernel>(ctx); }

std::vector<AttrSpec> arg_attrs() {
  return {AttrSpec{"axis", AttrType::Int, Attr{std::int64_t{-1}}, "the axis searched"},
          AttrSpec{"keepdims", AttrType::Bool, Attr{false}, "keep the axis as size 1"},
          AttrSpec{"select_last_index", AttrType::Bool, Attr{false}, "ties go to the last index"}};
}

}  // namespace

const OpSchema& op_argmax() {
  static const OpSchema s{
      .name = "argmax",
      .doc = "i64 index of the largest value along axis (first on ties, or last); drops that axis unless keepdims",
      .inputs = {{"src"}},
      .attrs = arg_attrs(),
      .infer = infer,
      .make_kernel = make,
  };
  return s;
}

const OpSchema& op_argmin() {
  static const OpSchema s{
      .name = "argmin",
      .doc = "i64 index of the smallest value along axis (first on ties, or last); drops that axis unless keepdims",
      .inputs = {{"src"}},
      .attrs = arg_attrs(),
      .infer = infer,
      .make_kernel = make,
  };
  return s;
}

}  // namespace kiln
