// add, sub, mul, div: elementwise with NumPy broadcasting.
//   %r = add(%x, %a) : (f32[batch,seq,64], f32[batch,seq,64]) -> f32[batch,seq,64]
// Kernel: oneDNN binary, which broadcasts its second operand only; when the first operand is the one
// broadcast, add and mul swap operands, and sub and div use a strided TBB loop.

#include <tbb/parallel_for.h>

#include "ops/common.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  expect_f32(ctx, 0);
  expect_f32(ctx, 1);
  const TensorType& a = ctx.in(0);
  const TensorType& b = ctx.in(1);
  // Same shapes and layouts: computed in that layout. Otherwise plain (broadcasting is done on plain data).
  std::string layout = a.shape == b.shape && a.layout == b.layout ? a.layout : std::string();
  return {TensorType{DType::f32, broadcast(ctx, a.shape, b.shape), layout}};
}

// Broadcast-strided loop for the case oneDNN does not cover.
class BroadcastKernel : public Kernel {
 public:
  BroadcastKernel(dnnl::algorithm alg, std::vector<std::int64_t> a, std::vector<std::int64_t> b,
                  std::vector<std::int64_t> out)
      : alg_(alg), out_(std::move(out)) {
    std::size_t r = out_.size();
    sa_ = strides(a);
    sb_ = strides(b);
    for (std::size_t i = 0; i < r; ++i) {
      if (a[i] == 1) sa_[i] = 0;
      if (b[i] == 1) sb_[i] = 0;
    }
  }
  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* a = static_cast<const float*>(args.in[0]);
    const auto* b = static_cast<const float*>(args.in[1]);
    auto* y = static_cast<float*>(args.out[0]);
    std::int64_t inner = out_.empty() ? 1 : out_.back();
    std::int64_t rows = 1;
    for (std::size_t i = 0; i + 1 < out_.size(); ++i) rows *= out_[i];
    const std::size_t r = out_.size();
    tbb::parallel_for(std::int64_t{0}, rows, [&](std::int64_t row) {
      std::int64_t oa = 0, ob = 0, rem = row;
      for (std::size_t d = r - 1; d-- > 0;) {
        std::int64_t idx = rem % out_[d];
        rem /= out_[d];
        oa += idx * sa_[d];
        ob += idx * sb_[d];
      }
      std::int64_t ia = r ? sa_[r - 1] : 0, ib = r ? sb_[r - 1] : 0;
      float* dst = y + row * inner;
      for (std::int64_t j = 0; j < inner; ++j) {
        float x = a[oa + j * ia], z = b[ob + j * ib];
        dst[j] = alg_ == dnnl::algorithm::binary_sub   ? x - z
                 : alg_ == dnnl::algorithm::binary_div ? x / z
                 : alg_ == dnnl::algorithm::binary_add ? x + z
                                                       : x * z;
      }
    });
  }
  std::string impl() const override { return "kiln:tbb_broadcast"; }

 private:
  static std::vector<std::int64_t> strides(const std::vector<std::int64_t>& d) {
    std::vector<std::int64_t> s(d.size(), 1);
    for (std::size_t i = d.size(); i-- > 1;) s[i - 1] = s[i] * d[i];
    return s;
  }
  dnnl::algorithm alg_;
  std::vector<std::int64_t> out_, sa_, sb_;
};

template <dnnl::algorithm Alg>
std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  if (!ctx.out[0].plain()) {  // same shapes, one shared non-plain layout
    auto md = md_of(ctx.out[0]);
    dnnl::binary::primitive_desc pd(dnnl::binary::desc(Alg, md, md, md), user_scratchpad_attr(), ctx.engine);
    auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
    int s = kernel->add(pd);
    kernel->input(s, DNNL_ARG_SRC_0, md, 0);
    kernel->input(s, DNNL_ARG_SRC_1, md, 1);
    kernel->output(s, DNNL_ARG_DST, md, 0);
    return kernel;
  }
  auto out = dims_of(ctx.out[0].shape);
  auto a = padded_dims(dims_of(ctx.in[0].shape), out.size());
  auto b = padded_dims(dims_of(ctx.in[1].shape), out.size());
  int src0 = 0, src1 = 1;
  if (a != out) {
    bool commutative = Alg == dnnl::algorithm::binary_add || Alg == dnnl::algorithm::binary_mul;
    if (!commutative || b != out) return std::make_unique<BroadcastKernel>(Alg, a, b, out);
    std::swap(a, b);
    std::swap(src0, src1);
  }
  auto md0 = plain_md(a), md1 = plain_md(b), dst = plain_md(out);
  dnnl::binary::primitive_desc pd(dnnl::binary::desc(Alg, md0, md1, dst), user_scratchpad_attr(), ctx.engine);
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
  int s = kernel->add(pd);
  kernel->input(s, DNNL_ARG_SRC_0, md0, src0);
  kernel->input(s, DNNL_ARG_SRC_1, md1, src1);
  kernel->output(s, DNNL_ARG_DST, dst, 0);
  return kernel;
}

OpSchema binary_schema(const char* name, const char* doc, KernelFn fn) {
  return OpSchema{.name = name,
                  .doc = doc,
                  .inputs = {{"a"}, {"b"}},
                  .infer = infer,
                  .make_kernel = fn,
                  .in_place = {0},
                  .layout = layout_of_first_input};
}

}  // namespace

const OpSchema& op_add() {
  static const OpSchema s = binary_schema("add", "a + b, broadcast", make<dnnl::algorithm::binary_add>);
  return s;
}
const OpSchema& op_sub() {
  static const OpSchema s = binary_schema("sub", "a - b, broadcast", make<dnnl::algorithm::binary_sub>);
  return s;
}
const OpSchema& op_mul() {
  static const OpSchema s = binary_schema("mul", "a * b, broadcast", make<dnnl::algorithm::binary_mul>);
  return s;
}
const OpSchema& op_div() {
  static const OpSchema s = binary_schema("div", "a / b, broadcast", make<dnnl::algorithm::binary_div>);
  return s;
}

}  // namespace kiln
