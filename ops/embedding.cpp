// embedding: gathers rows of a [num_embeddings, dim] table by integer ids (PyTorch nn.Embedding).
//   %x = embedding(%tokens, %embedding.weight) : (i64[batch,seq], f32[1000,128]) -> f32[batch,seq,128]
// oneDNN has no gather primitive: the kernel is a TBB loop over ids, each row a memcpy.

#include <cstring>

#include <tbb/parallel_for.h>

#include "ops/common.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  const TensorType& ids = ctx.in(0);
  if (ids.dtype != DType::i64 && ids.dtype != DType::i32)
    ctx.fail("expected input 'indices' of type i64 or i32, got " + ids.str());
  expect_f32(ctx, 1);
  ctx.expect_rank(1, 2);
  Shape out = ids.shape;
  out.push_back(ctx.in(1).shape[1]);
  return {TensorType{DType::f32, out}};
}

class EmbeddingKernel : public Kernel {
 public:
  explicit EmbeddingKernel(const KernelCtx& ctx)
      : node_(ctx.node),
        ids_i64_(ctx.in[0].dtype == DType::i64),
        count_(numel_of(ctx.in[0].shape)),
        rows_(ctx.in[1].shape[0].value),
        dim_(ctx.in[1].shape[1].value) {}

  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* table = static_cast<const float*>(args.in[1]);
    auto* dst = static_cast<float*>(args.out[0]);
    const std::size_t row_bytes = static_cast<std::size_t>(dim_) * sizeof(float);
    auto id_at = [&](std::int64_t i) -> std::int64_t {
      return ids_i64_ ? static_cast<const std::int64_t*>(args.in[0])[i]
                      : static_cast<const std::int32_t*>(args.in[0])[i];
    };
    // Validate first, so a bad id fails the run cleanly before any work is done.
    for (std::int64_t i = 0; i < count_; ++i) {
      std::int64_t id = id_at(i);
      if (id < 0 || id >= rows_)
        node_.fail("index " + std::to_string(id) + " at flat position " + std::to_string(i) + " is out of range [0, " +
                   std::to_string(rows_) + ")");
    }
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, count_, 16), [&](const tbb::blocked_range<std::int64_t>& r) {
      for (std::int64_t i = r.begin(); i < r.end(); ++i)
        std::memcpy(dst + i * dim_, table + id_at(i) * dim_, row_bytes);
    });
  }
  std::string impl() const override { return "kiln:tbb_gather"; }

 private:
  const Node& node_;
  bool ids_i64_;
  std::int64_t count_, rows_, dim_;
};

std::unique_ptr<Kernel> make(const KernelCtx& ctx) { return std::make_unique<EmbeddingKernel>(ctx); }

}  // namespace

const OpSchema& op_embedding() {
  static const OpSchema s{
      .name = "embedding",
      .doc = "rows of `weight` [num_embeddings, dim] gathered by integer `indices` (nn.Embedding)",
      .inputs = {{"indices"}, {"weight", false, "weight"}},
      .infer = infer,
      .make_kernel = make,
  };
  return s;
}

}  // namespace kiln
