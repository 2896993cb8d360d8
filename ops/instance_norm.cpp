// instance_norm: each (sample, channel) plane of [N, C, ...] normalized by its own mean and variance, then
// scaled and shifted per channel: y = (x - mean) / sqrt(var + eps) * weight[c] + bias[c] (nn.InstanceNorm2d
// with affine=True and no running statistics; ONNX InstanceNormalization).
//   %y = instance_norm(%x, %in1.weight, %in1.bias) {eps=1e-5} : (f32[batch,16,h,w], f32[16], f32[16]) -> f32[batch,16,h,w]
// Kernel: two passes over each plane (mean, then variance of the differences, accumulated in double), then
// one writing y; parallel over planes.

#include <tbb/parallel_for.h>

#include <cmath>

#include "ops/common.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  expect_f32(ctx, 0);
  const TensorType& x = ctx.in(0);
  if (x.rank() < 3) ctx.fail("expected input 'src' of rank >= 3 [N,C,...], got " + x.str());
  if (!x.shape[1].concrete()) ctx.fail("expected a concrete channel count in dim 1 of 'src', got " + x.str());
  for (std::size_t i = 1; i < 3; ++i) {
    expect_f32(ctx, i);
    if (ctx.in(i).shape != Shape{x.shape[1]})
      ctx.fail("expected input '" + ctx.node().schema->inputs[i].name + "' of shape [" + x.shape[1].str() + "], got " +
               ctx.in(i).str());
  }
  if (!(ctx.node().attr_float("eps") >= 0)) ctx.fail("attribute 'eps' must be >= 0");
  return {TensorType{DType::f32, x.shape}};
}

class InstanceNormKernel : public Kernel {
 public:
  explicit InstanceNormKernel(const KernelCtx& ctx) : eps_(ctx.node.attr_float("eps")) {
    const auto dims = dims_of(ctx.in[0].shape);
    c_ = dims[1];
    planes_ = dims[0] * c_;
    size_ = 1;
    for (std::size_t d = 2; d < dims.size(); ++d) size_ *= dims[d];
  }
  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* src = static_cast<const float*>(args.in[0]);
    const auto* weight = static_cast<const float*>(args.in[1]);
    const auto* bias = static_cast<const float*>(args.in[2]);
    auto* dst = static_cast<float*>(args.out[0]);
    if (size_ == 0) return;
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, planes_, 1), [&](const tbb::blocked_range<std::int64_t>& r) {
      for (std::int64_t p = r.begin(); p < r.end(); ++p) {
        const float* x = src + p * size_;
        float* y = dst + p * size_;
        double sum = 0;
        for (std::int64_t i = 0; i < size_; ++i) sum += x[i];
        const double mean = sum / static_cast<double>(size_);
        double sq = 0;
        for (std::int64_t i = 0; i < size_; ++i) sq += (x[i] - mean) * (x[i] - mean);
        const double inv = 1.0 / std::sqrt(sq / static_cast<double>(size_) + eps_);
        const std::int64_t c = p % c_;
        const auto scale = static_cast<float>(inv * weight[c]);
        const auto shift = static_cast<float>(bias[c] - mean * inv * weight[c]);
        for (std::int64_t i = 0; i < size_; ++i) y[i] = x[i] * scale + shift;
      }
    });
  }
  std::string impl() const override { return "kiln:instance_norm"; }

 private:
  double eps_;
  std::int64_t c_ = 1, planes_ = 0, size_ = 1;
};

std::unique_ptr<Kernel> make(const KernelCtx& ctx) { return std::make_unique<InstanceNormKernel>(ctx); }

}  // namespace

const OpSchema& op_instance_norm() {
  static const OpSchema s{
      .name = "instance_norm",
      .doc =
          "each (sample, channel) plane normalized by its own statistics, then weight[c] * . + bias[c] "
          "(nn.InstanceNorm2d(affine=True))",
      .inputs = {{"src"}, {"weight", false, "weight"}, {"bias", false, "bias"}},
      .attrs = {AttrSpec{"eps", AttrType::Float, Attr{1e-5}, "added to the variance"}},
      .infer = infer,
      .make_kernel = make,
      .in_place = {0},
  };
  return s;
}

}  // namespace kiln
