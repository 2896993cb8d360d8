// topk: the k largest values along the last axis and their indices, largest first; ties go to the lower
// index (torch.topk(x, k, dim=-1, sorted=True) up to its tie order).
//   %v, %i = topk(%logp) {k=4} : (f32[batch,70]) -> (f32[batch,4], i64[batch,4])

#include <tbb/parallel_for.h>

#include "ops/common.hpp"
#include "ops/select.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  expect_f32(ctx, 0);
  if (ctx.in(0).rank() < 1) ctx.fail("expected input of rank >= 1, got " + ctx.in(0).str());
  std::int64_t k = ctx.node().attr_int("k");
  const Dim& n = ctx.in(0).shape.back();
  if (k < 1 || (n.concrete() && k > n.value))
    ctx.fail("attribute 'k' = " + std::to_string(k) + " must be between 1 and the last dim " + n.str());
  Shape out = ctx.in(0).shape;
  out.back() = Dim::of(k);
  return {TensorType{DType::f32, out}, TensorType{DType::i64, out}};
}

class TopkKernel : public Kernel {
 public:
  explicit TopkKernel(const KernelCtx& ctx)
      : rows_(numel_of(ctx.in[0].shape) / ctx.in[0].shape.back().value),
        n_(ctx.in[0].shape.back().value),
        k_(ctx.node.attr_int("k")) {}
  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* src = static_cast<const float*>(args.in[0]);
    auto* values = static_cast<float*>(args.out[0]);
    auto* indices = static_cast<std::int64_t*>(args.out[1]);
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, rows_, 16), [&](const tbb::blocked_range<std::int64_t>& r) {
      for (std::int64_t i = r.begin(); i < r.end(); ++i) top_k(src + i * n_, n_, k_, values + i * k_, indices + i * k_);
    });
  }
  std::string impl() const override { return "kiln:topk"; }

 private:
  std::int64_t rows_, n_, k_;
};

std::unique_ptr<Kernel> make(const KernelCtx& ctx) { return std::make_unique<TopkKernel>(ctx); }

}  // namespace

const OpSchema& op_topk() {
  static const OpSchema s{
      .name = "topk",
      .doc = "the k largest values along the last axis and their i64 indices, largest first (ties: lower index)",
      .inputs = {{"src"}},
      .num_outputs = 2,
      .attrs = {AttrSpec{"k", AttrType::Int, std::nullopt, "how many to keep (1..last dim)"}},
      .infer = infer,
      .make_kernel = make,
  };
  return s;
}

}  // namespace kiln
