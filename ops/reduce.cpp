// reduce_mean, reduce_sum, reduce_max, reduce_min, reduce_prod over `axes` (torch.mean / sum / amax / amin /
// prod with dim=axes, keepdim=keepdims).
//   %pooled = reduce_mean(%x) {axes=[1], keepdims=false} : (f32[batch,seq,64]) -> f32[batch,64]

#include <algorithm>
#include <limits>
#include <set>
#include <type_traits>

#include <tbb/parallel_for.h>

#include "ops/common.hpp"

namespace kiln {
namespace {

std::set<int> reduced_axes(const ShapeCtx& ctx) {
  const auto& axes = ctx.node().attr_ints("axes");
  if (axes.empty()) ctx.fail("attribute 'axes' must name at least one axis");
  std::set<int> out;
  for (auto a : axes)
    if (!out.insert(normalize_axis(ctx, a, ctx.in(0).rank(), "axes")).second)
      ctx.fail("attribute 'axes' names axis " + std::to_string(a) + " twice");
  return out;
}

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  const DType t = ctx.in(0).dtype;
  // Integer sums, maxima and minima (masks and ids in exported graphs) run a loop of their own.
  if (t != DType::f32 && (ctx.node().op == "reduce_mean" || (t != DType::i64 && t != DType::i32)))
    ctx.fail("expected input 0 of type " + std::string(ctx.node().op == "reduce_mean" ? "f32" : "f32, i64 or i32") +
             ", got " + ctx.in(0).str());
  auto axes = reduced_axes(ctx);
  bool keep = ctx.node().attr_bool("keepdims");
  Shape out;
  for (int i = 0; i < ctx.in(0).rank(); ++i) {
    if (!axes.count(i)) out.push_back(ctx.in(0).shape[i]);
    else if (keep) out.push_back(Dim::of(1));
  }
  return {TensorType{t, out}};
}

// Reduction over one contiguous run of axes, viewed as [outer, reduced, inner]: oneDNN 2.6 takes its
// reference implementation for such shapes (e.g. the mean over the sequence of [batch, seq, dim]), so
// Kiln sums rows with a vectorized loop instead.
class ContiguousReduceKernel : public Kernel {
 public:
  enum class Kind : std::uint8_t { Sum, Max, Min, Prod };
  ContiguousReduceKernel(std::int64_t outer, std::int64_t reduced, std::int64_t inner, bool mean, Kind kind)
      : outer_(outer),
        reduced_(reduced),
        inner_(inner),
        scale_(mean && reduced ? 1.0f / static_cast<float>(reduced) : 1.0f),
        kind_(kind) {}

  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* x = static_cast<const float*>(args.in[0]);
    auto* y = static_cast<float*>(args.out[0]);
    const std::int64_t inner = inner_, reduced = reduced_;
    const Kind kind = kind_;
    auto body = [&](std::int64_t o) {
      float* dst = y + o * inner;
      const float* src = x + o * reduced * inner;
      if (kind != Kind::Sum) {  // max, min, prod: from the first row on (reduced >= 1: oneDNN takes the rest)
        for (std::int64_t j = 0; j < inner; ++j) dst[j] = src[j];
        for (std::int64_t r = 1; r < reduced; ++r) {
          const float* row = src + r * inner;
          if (kind == Kind::Max)
            for (std::int64_t j = 0; j < inner; ++j) dst[j] = std::max(dst[j], row[j]);
          else if (kind == Kind::Min)
            for (std::int64_t j = 0; j < inner; ++j) dst[j] = std::min(dst[j], row[j]);
          else
            for (std::int64_t j = 0; j < inner; ++j) dst[j] *= row[j];
        }
        return;
      }
      for (std::int64_t j = 0; j < inner; ++j) dst[j] = 0.f;
      for (std::int64_t r = 0; r < reduced; ++r) {
        const float* row = src + r * inner;
#pragma omp simd
        for (std::int64_t j = 0; j < inner; ++j) dst[j] += row[j];
      }
#pragma omp simd
      for (std::int64_t j = 0; j < inner; ++j) dst[j] *= scale_;
    };
    if (outer_ * reduced_ * inner_ < 65536) {
      for (std::int64_t o = 0; o < outer_; ++o) body(o);
    } else {
      tbb::parallel_for(std::int64_t{0}, outer_, body);
    }
  }
  std::string impl() const override { return "kiln:reduce_rows"; }

 private:
  std::int64_t outer_, reduced_, inner_;
  float scale_;
  Kind kind_;
};

dnnl::algorithm algorithm_of(const std::string& op) {
  return op == "reduce_mean"   ? dnnl::algorithm::reduction_mean
         : op == "reduce_max"  ? dnnl::algorithm::reduction_max
         : op == "reduce_min"  ? dnnl::algorithm::reduction_min
         : op == "reduce_prod" ? dnnl::algorithm::reduction_mul
                               : dnnl::algorithm::reduction_sum;
}

// reduce_sum, reduce_max, reduce_min over i64 or i32: one pass over the input, each element into its output
// element (integer reductions in exported graphs are small: mask lengths, id maxima).
template <class T>
class IntReduceKernel : public Kernel {
 public:
  IntReduceKernel(std::vector<std::int64_t> dims, const std::set<std::int64_t>& axes, const std::string& op)
      : dims_(std::move(dims)), out_strides_(dims_.size(), 0) {
    std::int64_t stride = 1;
    for (std::size_t i = dims_.size(); i-- > 0;) {
      if (!axes.count(static_cast<std::int64_t>(i))) {
        out_strides_[i] = stride;
        stride *= dims_[i];
      }
    }
    out_count_ = stride;
    kind_ = op == "reduce_max" ? 1 : op == "reduce_min" ? 2 : op == "reduce_prod" ? 3 : 0;
  }
  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* x = static_cast<const T*>(args.in[0]);
    auto* y = static_cast<T*>(args.out[0]);
    const T init = kind_ == 1   ? std::numeric_limits<T>::lowest()
                   : kind_ == 2 ? std::numeric_limits<T>::max()
                                : T{kind_ == 3 ? 1 : 0};
    std::fill(y, y + out_count_, init);
    std::int64_t total = 1;
    for (auto d : dims_) total *= d;
    for (std::int64_t i = 0; i < total; ++i) {
      std::int64_t rem = i, o = 0;
      for (std::size_t d = dims_.size(); d-- > 0;) {
        o += (rem % dims_[d]) * out_strides_[d];
        rem /= dims_[d];
      }
      using U = std::make_unsigned_t<T>;  // sums wrap instead of overflowing
      y[o] = kind_ == 1   ? std::max(y[o], x[i])
             : kind_ == 2 ? std::min(y[o], x[i])
             : kind_ == 3 ? static_cast<T>(static_cast<U>(y[o]) * static_cast<U>(x[i]))
                          : static_cast<T>(static_cast<U>(y[o]) + static_cast<U>(x[i]));
    }
  }
  std::string impl() const override { return "kiln:int_reduce"; }

 private:
  std::vector<std::int64_t> dims_, out_strides_;
  std::int64_t out_count_ = 1;
  int kind_ = 0;
};

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  auto src_dims = dims_of(ctx.in[0].shape);
  if (ctx.in[0].dtype != DType::f32) {
    std::set<std::int64_t> axes;
    for (auto a : ctx.node.attr_ints("axes")) axes.insert(a < 0 ? a + static_cast<std::int64_t>(src_dims.size()) : a);
    if (ctx.in[0].dtype == DType::i64)
      return std::make_unique<IntReduceKernel<std::int64_t>>(src_dims, axes, ctx.node.op);
    return std::make_unique<IntReduceKernel<std::int32_t>>(src_dims, axes, ctx.node.op);
  }
  {
    std::set<std::int64_t> axes;
    for (auto a : ctx.node.attr_ints("axes")) axes.insert(a < 0 ? a + static_cast<std::int64_t>(src_dims.size()) : a);
    bool contiguous = *axes.rbegin() - *axes.begin() + 1 == static_cast<std::int64_t>(axes.size());
    std::int64_t reduced_count = 1;
    for (auto a : axes) reduced_count *= src_dims[static_cast<std::size_t>(a)];
    if (contiguous && *axes.rbegin() + 1 < static_cast<std::int64_t>(src_dims.size()) &&
        (reduced_count > 0 || ctx.node.op == "reduce_sum" || ctx.node.op == "reduce_mean")) {
      std::int64_t outer = 1, reduced = 1, inner = 1;
      for (std::int64_t i = 0; i < static_cast<std::int64_t>(src_dims.size()); ++i)
        (i < *axes.begin() ? outer : i <= *axes.rbegin() ? reduced : inner) *= src_dims[i];
      using K = ContiguousReduceKernel::Kind;
      const K kind = ctx.node.op == "reduce_max"    ? K::Max
                     : ctx.node.op == "reduce_min"  ? K::Min
                     : ctx.node.op == "reduce_prod" ? K::Prod
                                                    : K::Sum;
      return std::make_unique<ContiguousReduceKernel>(outer, reduced, inner, ctx.node.op == "reduce_mean", kind);
    }
  }
  auto dst_dims = src_dims;
  for (auto a : ctx.node.attr_ints("axes")) dst_dims[a < 0 ? a + src_dims.size() : a] = 1;
  auto src = plain_md(src_dims), dst = plain_md(dst_dims);
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
  if (dst_dims == src_dims) {
    // Every reduced axis has size 1 (e.g. seq = 1 at run time): the result is a copy, and oneDNN
    // rejects a reduction descriptor that reduces nothing.
    dnnl::reorder::primitive_desc pd(ctx.engine, src, ctx.engine, dst, user_scratchpad_attr());
    int s = kernel->add(pd);
    kernel->input(s, DNNL_ARG_FROM, src, 0);
    kernel->output(s, DNNL_ARG_TO, dst, 0);
    return kernel;
  }
  auto alg = algorithm_of(ctx.node.op);
  dnnl::reduction::primitive_desc pd(dnnl::reduction::desc(alg, src, dst, 0.f, 0.f), user_scratchpad_attr(),
                                     ctx.engine);
  int s = kernel->add(pd);
  kernel->input(s, DNNL_ARG_SRC, src, 0);
  kernel->output(s, DNNL_ARG_DST, dst, 0);
  return kernel;
}

OpSchema reduce_schema(const char* name, const char* doc) {
  return OpSchema{
      .name = name,
      .doc = doc,
      .inputs = {{"src"}},
      .attrs = {AttrSpec{"axes", AttrType::Ints, std::nullopt, "axes to reduce"},
                AttrSpec{"keepdims", AttrType::Bool, Attr{false}, "keep reduced axes as size 1"}},
      .infer = infer,
      .make_kernel = make,
  };
}

}  // namespace

const OpSchema& op_reduce_mean() {
  static const OpSchema s = reduce_schema("reduce_mean", "mean over `axes`");
  return s;
}
const OpSchema& op_reduce_sum() {
  static const OpSchema s = reduce_schema("reduce_sum", "sum over `axes`");
  return s;
}
const OpSchema& op_reduce_max() {
  static const OpSchema s = reduce_schema("reduce_max", "maximum over `axes`");
  return s;
}
const OpSchema& op_reduce_min() {
  static const OpSchema s = reduce_schema("reduce_min", "minimum over `axes`");
  return s;
}
const OpSchema& op_reduce_prod() {
  static const OpSchema s = reduce_schema("reduce_prod", "product over `axes`");
  return s;
}

}  // namespace kiln
