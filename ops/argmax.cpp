// argmax: the index of the largest value along the last axis (the first one on ties, as torch.argmax).
//   %next = argmax(%logits) : (f32[batch,70]) -> i64[batch]

#include <tbb/parallel_for.h>

#include "ops/common.hpp"
#include "ops/select.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  expect_f32(ctx, 0);
  if (ctx.in(0).rank() < 1) ctx.fail("expected input of rank >= 1, got " + ctx.in(0).str());
  Shape out = ctx.in(0).shape;
  out.pop_back();
  return {TensorType{DType::i64, out}};
}

class ArgmaxKernel : public Kernel {
 public:
  explicit ArgmaxKernel(const KernelCtx& ctx)
      : rows_(numel_of(ctx.in[0].shape) / ctx.in[0].shape.back().value), n_(ctx.in[0].shape.back().value) {}
  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* src = static_cast<const float*>(args.in[0]);
    auto* dst = static_cast<std::int64_t*>(args.out[0]);
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, rows_, 64), [&](const tbb::blocked_range<std::int64_t>& r) {
      for (std::int64_t i = r.begin(); i < r.end(); ++i) dst[i] = arg_max(src + i * n_, n_);
    });
  }
  std::string impl() const override { return "kiln:argmax"; }

 private:
  std::int64_t rows_, n_;
};

std::unique_ptr<Kernel> make(const KernelCtx& ctx) { return std::make_unique<ArgmaxKernel>(ctx); }

}  // namespace

const OpSchema& op_argmax() {
  static const OpSchema s{
      .name = "argmax",
      .doc = "i64 index of the largest value along the last axis (first on ties); drops that axis",
      .inputs = {{"src"}},
      .infer = infer,
      .make_kernel = make,
  };
  return s;
}

}  // namespace kiln
