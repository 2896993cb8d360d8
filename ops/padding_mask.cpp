// padding_mask: an additive attention mask from token ids: 0 where the id is a real token, -inf where it
// is the padding id (PyTorch's key_padding_mask = tokens == pad, as attention applies it).
//   %mask = padding_mask(%source) {pad=0} : (i64[batch,src]) -> f32[batch,src]

#include <limits>

#include "ops/common.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  const TensorType& ids = ctx.in(0);
  if (ids.dtype != DType::i64 && ids.dtype != DType::i32)
    ctx.fail("expected token ids of type i64 or i32, got " + ids.str());
  ctx.expect_rank(0, 2);
  return {TensorType{DType::f32, ids.shape}};
}

class PaddingMaskKernel : public Kernel {
 public:
  PaddingMaskKernel(const KernelCtx& ctx)
      : i64_(ctx.in[0].dtype == DType::i64), count_(numel_of(ctx.in[0].shape)), pad_(ctx.node.attr_int("pad")) {}
  void execute(dnnl::stream&, const KernelArgs& args) override {
    auto* dst = static_cast<float*>(args.out[0]);
    const float masked = -std::numeric_limits<float>::infinity();
    for (std::int64_t i = 0; i < count_; ++i) {
      std::int64_t id =
          i64_ ? static_cast<const std::int64_t*>(args.in[0])[i] : static_cast<const std::int32_t*>(args.in[0])[i];
      dst[i] = id == pad_ ? masked : 0.0f;
    }
  }
  std::string impl() const override { return "kiln:padding_mask"; }

 private:
  bool i64_;
  std::int64_t count_, pad_;
};

std::unique_ptr<Kernel> make(const KernelCtx& ctx) { return std::make_unique<PaddingMaskKernel>(ctx); }

}  // namespace

const OpSchema& op_padding_mask() {
  static const OpSchema s{
      .name = "padding_mask",
      .doc = "f32 additive mask [batch,len] from token ids: -inf at the padding id, else 0",
      .inputs = {{"ids"}},
      .attrs = {AttrSpec{"pad", AttrType::Int, Attr{std::int64_t{0}}, "the padding token id"}},
      .infer = infer,
      .make_kernel = make,
  };
  return s;
}

}  // namespace kiln
