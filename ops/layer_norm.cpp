// layer_norm over the last axis with optional scale and shift (nn.LayerNorm(normalized_shape=dim)),
// optionally of `src + residual` (what fuse-add-layer-norm folds in: the post-norm residual add).
//   %n1 = layer_norm(%r1, %norm1.weight, %norm1.bias) {eps=1e-05} : (f32[batch,seq,64], f32[64], f32[64]) -> f32[batch,seq,64]
// layer_norm_stats computes the mean or the inverse standard deviation 1/sqrt(var + eps) of the same
// rows, keeping the normalized dims as 1 (ONNX LayerNormalization's Mean and InvStdDev outputs).
// Kernel: a TBB loop over rows, two passes per row (sum into dst, then mean and centred variance, then
// normalize in place). oneDNN 2.6's layer normalization is not jit-compiled on this CPU
// (docs/onednn.md) and cannot add a residual, so Kiln owns this kernel.

#include <cmath>

#include <tbb/parallel_for.h>

#include "ops/common.hpp"

namespace kiln {
namespace {

enum { kSrc, kWeight, kBias, kResidual };

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  expect_f32(ctx, kSrc);
  const TensorType& x = ctx.in(kSrc);
  if (x.rank() < 1) ctx.fail("expected input of rank >= 1, got " + x.str());
  for (std::size_t i : {kWeight, kBias}) {
    if (!ctx.has(i)) continue;
    expect_f32(ctx, i);
    expect_weight_shape(ctx, i, {x.shape.back()});
  }
  if (ctx.has(kResidual)) {
    expect_f32(ctx, kResidual);
    if (ctx.in(kResidual).shape != x.shape)
      ctx.fail("expected residual of shape " + shape_str(x.shape) + ", got " + ctx.in(kResidual).str());
  }
  if (ctx.node().attr_float("eps") < 0) ctx.fail("attribute 'eps' must be >= 0");
  return {x};
}

// The size of the normalized rows: the dims from `axis` on.
std::int64_t normalized_size(const KernelCtx& ctx) {
  const auto dims = dims_of(ctx.in[kSrc].shape);
  const std::int64_t a = ctx.node.attr_int("axis");
  std::int64_t d = 1;
  for (auto i = static_cast<std::size_t>(a < 0 ? a + static_cast<std::int64_t>(dims.size()) : a); i < dims.size(); ++i)
    d *= dims[i];
  return d;
}

class LayerNormKernel : public Kernel {
 public:
  explicit LayerNormKernel(const KernelCtx& ctx)
      : d_(ctx.in[kSrc].shape.back().value),
        rows_(d_ ? numel_of(ctx.in[kSrc].shape) / d_ : 0),
        eps_(static_cast<float>(ctx.node.attr_float("eps"))),
        has_weight_(ctx.has(kWeight)),
        has_bias_(ctx.has(kBias)),
        has_residual_(ctx.has(kResidual)) {}

  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* x = static_cast<const float*>(args.in[kSrc]);
    const auto* w = has_weight_ ? static_cast<const float*>(args.in[kWeight]) : nullptr;
    const auto* b = has_bias_ ? static_cast<const float*>(args.in[kBias]) : nullptr;
    const auto* r = has_residual_ ? static_cast<const float*>(args.in[kResidual]) : nullptr;
    auto* y = static_cast<float*>(args.out[0]);
    const std::int64_t d = d_;
    const float inv_d = 1.0f / static_cast<float>(d);
    auto rows = [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t row = begin; row < end; ++row) {
        const float* xr = x + row * d;
        float* yr = y + row * d;
        float sum = 0.f;
        if (r) {
          const float* rr = r + row * d;
#pragma omp simd reduction(+ : sum)
          for (std::int64_t j = 0; j < d; ++j) {
            yr[j] = xr[j] + rr[j];
            sum += yr[j];
          }
          xr = yr;
        } else {
#pragma omp simd reduction(+ : sum)
          for (std::int64_t j = 0; j < d; ++j) sum += xr[j];
        }
        const float mean = sum * inv_d;
        float var = 0.f;
#pragma omp simd reduction(+ : var)
        for (std::int64_t j = 0; j < d; ++j) var += (xr[j] - mean) * (xr[j] - mean);
        const float rstd = 1.0f / std::sqrt(var * inv_d + eps_);
        if (w && b) {
#pragma omp simd
          for (std::int64_t j = 0; j < d; ++j) yr[j] = (xr[j] - mean) * rstd * w[j] + b[j];
        } else {
#pragma omp simd
          for (std::int64_t j = 0; j < d; ++j) yr[j] = (xr[j] - mean) * rstd * (w ? w[j] : 1.f) + (b ? b[j] : 0.f);
        }
      }
    };
    // Small tensors run inline: a parallel loop costs more than it saves below ~16K elements a task.
    const std::int64_t grain = std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(d, 1));
    if (rows_ <= grain) {
      rows(0, rows_);
    } else {
      tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, rows_, grain),
                        [&](const tbb::blocked_range<std::int64_t>& range) { rows(range.begin(), range.end()); });
    }
  }
  std::string impl() const override { return has_residual_ ? "kiln:layer_norm+residual" : "kiln:layer_norm"; }

 private:
  std::int64_t d_, rows_;
  float eps_;
  bool has_weight_, has_bias_, has_residual_;
};

std::unique_ptr<Kernel> make(const KernelCtx& ctx) { return std::make_unique<LayerNormKernel>(ctx); }

std::vector<TensorType> infer_stats(const ShapeCtx& ctx) {
  expect_f32(ctx, 0);
  const TensorType& x = ctx.in(0);
  if (x.rank() < 1) ctx.fail("expected input of rank >= 1, got " + x.str());
  const int axis = normalize_axis(ctx, ctx.node().attr_int("axis"), x.rank());
  const std::string& stat = ctx.node().attr_string("stat");
  if (stat != "mean" && stat != "inv_std_dev")
    ctx.fail(R"(attribute 'stat' must be "mean" or "inv_std_dev", got ")" + stat + "\"");
  if (ctx.node().attr_float("eps") < 0) ctx.fail("attribute 'eps' must be >= 0");
  Shape out = x.shape;
  for (auto i = static_cast<std::size_t>(axis); i < out.size(); ++i) out[i] = Dim::of(1);
  return {TensorType{DType::f32, out}};
}

class LayerNormStatsKernel : public Kernel {
 public:
  explicit LayerNormStatsKernel(const KernelCtx& ctx)
      : d_(normalized_size(ctx)),
        rows_(d_ ? numel_of(ctx.in[kSrc].shape) / d_ : 0),
        eps_(static_cast<float>(ctx.node.attr_float("eps"))),
        mean_(ctx.node.attr_string("stat") == "mean") {}
  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* x = static_cast<const float*>(args.in[0]);
    auto* y = static_cast<float*>(args.out[0]);
    const std::int64_t d = d_;
    const float inv_d = 1.0f / static_cast<float>(d);
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, rows_, 16), [&](const tbb::blocked_range<std::int64_t>& r) {
      for (std::int64_t row = r.begin(); row < r.end(); ++row) {
        const float* xr = x + row * d;
        float sum = 0.f;
#pragma omp simd reduction(+ : sum)
        for (std::int64_t j = 0; j < d; ++j) sum += xr[j];
        const float mean = sum * inv_d;
        if (mean_) {
          y[row] = mean;
          continue;
        }
        float var = 0.f;
#pragma omp simd reduction(+ : var)
        for (std::int64_t j = 0; j < d; ++j) var += (xr[j] - mean) * (xr[j] - mean);
        y[row] = 1.0f / std::sqrt(var * inv_d + eps_);
      }
    });
  }
  std::string impl() const override { return "kiln:layer_norm_stats"; }

 private:
  std::int64_t d_, rows_;
  float eps_;
  bool mean_;
};

std::unique_ptr<Kernel> make_stats(const KernelCtx& ctx) { return std::make_unique<LayerNormStatsKernel>(ctx); }

}  // namespace

const OpSchema& op_layer_norm_stats() {
  static const OpSchema s{
      .name = "layer_norm_stats",
      .doc = "layer_norm's row statistics: the mean or 1/sqrt(var + eps) over the dims from axis, kept as 1",
      .inputs = {{"src"}},
      .attrs = {AttrSpec{"stat", AttrType::String, std::nullopt, "mean or inv_std_dev"},
                AttrSpec{"axis", AttrType::Int, Attr{std::int64_t{-1}}, "the first normalized dim"},
                AttrSpec{"eps", AttrType::Float, Attr{1e-5}, "added to the variance"}},
      .infer = infer_stats,
      .make_kernel = make_stats,
  };
  return s;
}

const OpSchema& op_layer_norm() {
  static const OpSchema s{
      .name = "layer_norm",
      .doc = "(s - mean) / sqrt(var + eps) · weight + bias over the last axis, s = src (+ residual)",
      .inputs = {{"src"}, {"weight", true, "weight"}, {"bias", true, "bias"}, {"residual", true}},
      .attrs = {AttrSpec{"eps", AttrType::Float, Attr{1e-5}, "added to the variance"}},
      .infer = infer,
      .make_kernel = make,
      .in_place = {0, 3},
  };
  return s;
}

}  // namespace kiln
