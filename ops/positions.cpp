// positions: the position ids 0..n-1 along one axis of a tensor (torch.arange(x.shape[axis])), for
// learned position embeddings.
//   %pos = positions(%source) {axis=1} : (i64[batch,src]) -> i64[src]

#include "ops/common.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  if (ctx.in(0).rank() < 1) ctx.fail("expected input of rank >= 1, got " + ctx.in(0).str());
  int axis = normalize_axis(ctx, ctx.node().attr_int("axis"), ctx.in(0).rank());
  return {TensorType{DType::i64, {ctx.in(0).shape[axis]}}};
}

class PositionsKernel : public Kernel {
 public:
  explicit PositionsKernel(std::int64_t n) : n_(n) {}
  void execute(dnnl::stream&, const KernelArgs& args) override {
    auto* dst = static_cast<std::int64_t*>(args.out[0]);
    for (std::int64_t i = 0; i < n_; ++i) dst[i] = i;
  }
  std::string impl() const override { return "kiln:iota"; }

 private:
  std::int64_t n_;
};

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  return std::make_unique<PositionsKernel>(ctx.out[0].shape[0].value);
}

}  // namespace

const OpSchema& op_positions() {
  static const OpSchema s{
      .name = "positions",
      .doc = "i64 ids 0..n-1 where n is the size of `axis` of the input (its values are not read)",
      .inputs = {{"src"}},
      .attrs = {AttrSpec{"axis", AttrType::Int, Attr{std::int64_t{1}}, "the axis whose length is counted"}},
      .infer = infer,
      .make_kernel = make,
  };
  return s;
}

}  // namespace kiln
