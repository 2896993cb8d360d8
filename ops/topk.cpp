// topk: the k largest (or, with largest=false, smallest) values along `axis` (default the last) and their
// indices, largest (smallest) first; ties go to the lower index (torch.topk(x, k, dim, largest,
// sorted=True) up to its tie order; ONNX TopK).
//   %v, %i = topk(%logp) {k=4} : (f32[batch,70]) -> (f32[batch,4], i64[batch,4])
// Kernel: along the last axis with largest=true, each row selected in place; otherwise each line is
// first copied (negated for smallest) into the plan's scratch, selected there, and the k results written
// back along the axis. Parallel over lines.

#include <tbb/parallel_for.h>

#include "ops/common.hpp"
#include "ops/select.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  expect_f32(ctx, 0);
  if (ctx.in(0).rank() < 1) ctx.fail("expected input of rank >= 1, got " + ctx.in(0).str());
  const int axis = normalize_axis(ctx, ctx.node().attr_int("axis"), ctx.in(0).rank());
  std::int64_t k = ctx.node().attr_int("k");
  const Dim& n = ctx.in(0).shape[axis];
  if (k < 1 || (n.concrete() && k > n.value))
    ctx.fail("attribute 'k' = " + std::to_string(k) + " must be between 1 and the " +
             (axis == ctx.in(0).rank() - 1 ? "last dim " + n.str()
                                           : "size of dim " + std::to_string(axis) + " (" + n.str() + ")"));
  Shape out = ctx.in(0).shape;
  out[axis] = Dim::of(k);
  return {TensorType{DType::f32, out}, TensorType{DType::i64, out}};
}

class TopkKernel : public Kernel {
 public:
  explicit TopkKernel(const KernelCtx& ctx) : k_(ctx.node.attr_int("k")), largest_(ctx.node.attr_bool("largest")) {
    const auto dims = dims_of(ctx.in[0].shape);
    const AxisSplit split = split_at_axis(dims, ctx.node.attr_int("axis"));
    outer_ = split.outer;
    n_ = split.n;
    inner_ = split.inner;
    if (k_ > n_) {  // a symbolic dim bound below k
      const std::int64_t a = ctx.node.attr_int("axis");
      ctx.node.fail("attribute 'k' = " + std::to_string(k_) + " exceeds dim " +
                    std::to_string(a < 0 ? a + static_cast<std::int64_t>(dims.size()) : a) + " (" + std::to_string(n_) +
                    ") of " + ctx.in[0].str());
    }
    direct_ = inner_ == 1 && largest_;
  }
  std::size_t scratch_bytes() const override {
    if (direct_) return 0;
    const auto lines = static_cast<std::size_t>(outer_ * inner_);
    return lines * static_cast<std::size_t>(n_ + k_) * sizeof(float) + lines * static_cast<std::size_t>(k_) * 8;
  }
  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* src = static_cast<const float*>(args.in[0]);
    auto* values = static_cast<float*>(args.out[0]);
    auto* indices = static_cast<std::int64_t*>(args.out[1]);
    const std::int64_t lines = outer_ * inner_;
    if (direct_) {
      tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, lines, 16), [&](const tbb::blocked_range<std::int64_t>& r) {
        for (std::int64_t i = r.begin(); i < r.end(); ++i)
          top_k(src + i * n_, n_, k_, values + i * k_, indices + i * k_);
      });
      return;
    }
    auto* idx_scratch = static_cast<std::int64_t*>(args.scratch);
    auto* line_scratch = reinterpret_cast<float*>(idx_scratch + lines * k_);
    auto* val_scratch = line_scratch + lines * n_;
    const float sign = largest_ ? 1.0f : -1.0f;
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, lines, 16), [&](const tbb::blocked_range<std::int64_t>& r) {
      for (std::int64_t i = r.begin(); i < r.end(); ++i) {
        const std::int64_t o = i / inner_, j = i % inner_;
        float* line = line_scratch + i * n_;
        for (std::int64_t t = 0; t < n_; ++t) line[t] = sign * src[(o * n_ + t) * inner_ + j];
        float* v = val_scratch + i * k_;
        std::int64_t* x = idx_scratch + i * k_;
        top_k(line, n_, k_, v, x);
        for (std::int64_t t = 0; t < k_; ++t) {
          values[(o * k_ + t) * inner_ + j] = sign * v[t];
          indices[(o * k_ + t) * inner_ + j] = x[t];
        }
      }
    });
  }
  std::string impl() const override { return "kiln:topk"; }

 private:
  std::int64_t k_;
  bool largest_, direct_ = true;
  std::int64_t outer_ = 1, inner_ = 1, n_ = 1;
};

std::unique_ptr<Kernel> make(const KernelCtx& ctx) { return std::make_unique<TopkKernel>(ctx); }

}  // namespace

const OpSchema& op_topk() {
  static const OpSchema s{
      .name = "topk",
      .doc = "the k largest (or smallest) values along axis and their i64 indices, in that order (ties: lower index)",
      .inputs = {{"src"}},
      .num_outputs = 2,
      .attrs = {AttrSpec{"k", AttrType::Int, std::nullopt, "how many to keep (1..the axis' size)"},
                AttrSpec{"axis", AttrType::Int, Attr{std::int64_t{-1}}, "the axis selected along"},
                AttrSpec{"largest", AttrType::Bool, Attr{true}, "false: the k smallest, smallest first"}},
      .infer = infer,
      .make_kernel = make,
  };
  return s;
}

}  // namespace kiln
