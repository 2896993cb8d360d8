// slice: a strided window along some axes (x[a:b:s] in NumPy; ONNX Slice). Per axis, `starts` and `ends`
// are clamped as ONNX does: negative values count from the end, out-of-range values are clamped to the
// dim (to [-1, dim-1] for a negative step); the result is empty when the window is.
//   %k = slice(%qkv) {axes=[2], starts=[64], ends=[128], steps=[1]} : (f32[seq,batch,192]) -> f32[seq,batch,64]
// A symbolic dim may be sliced only whole (start 0, end past it, step 1). Kernel: a strided copy.

#include <cstring>
#include <limits>

#include "ops/common.hpp"

namespace kiln {
namespace {

struct Window {
  std::int64_t start = 0, step = 1, count = 0;
};

// The window of one axis of concrete size `dim`.
Window window(std::int64_t dim, std::int64_t start, std::int64_t end, std::int64_t step) {
  auto norm = [&](std::int64_t v, std::int64_t lo, std::int64_t hi) {
    if (v < 0) v = v < -dim ? lo : v + dim;  // avoid overflow for INT64_MIN
    return std::clamp(v, lo, hi);
  };
  Window w{0, step, 0};
  if (step > 0) {
    w.start = norm(start, 0, dim);
    const std::int64_t e = norm(end, 0, dim);
    w.count = e > w.start ? (e - w.start - 1) / step + 1 : 0;  // no overflow for any step
  } else {
    w.start = norm(start, -1, dim - 1);
    const std::int64_t e = norm(end, -1, dim - 1);
    w.count =
        w.start > e
            ? static_cast<std::int64_t>((static_cast<__int128>(w.start) - e - 1) / -static_cast<__int128>(step) + 1)
            : 0;
  }
  return w;
}

struct Params {
  std::vector<std::int64_t> axes, starts, ends, steps;
};

Params params_of(const ShapeCtx& ctx, int rank) {
  const Node& n = ctx.node();
  Params p{n.attr_ints("axes"), n.attr_ints("starts"), n.attr_ints("ends"), n.attr_ints("steps")};
  if (p.starts.size() != p.axes.size() || p.ends.size() != p.axes.size() ||
      (!p.steps.empty() && p.steps.size() != p.axes.size()))
    ctx.fail("attributes 'axes', 'starts', 'ends' and 'steps' must have the same length (steps may be empty)");
  if (p.steps.empty()) p.steps.assign(p.axes.size(), 1);
  std::vector<bool> seen(static_cast<std::size_t>(rank), false);
  for (auto& a : p.axes) {
    a = normalize_axis(ctx, a, rank, "axes");
    if (seen[static_cast<std::size_t>(a)]) ctx.fail("axis " + std::to_string(a) + " is sliced twice");
    seen[static_cast<std::size_t>(a)] = true;
  }
  for (auto s : p.steps)
    if (s == 0) ctx.fail("a step is 0");
  return p;
}

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  const TensorType& x = ctx.in(0);
  Params p = params_of(ctx, x.rank());
  Shape out = x.shape;
  for (std::size_t i = 0; i < p.axes.size(); ++i) {
    const Dim& d = x.shape[static_cast<std::size_t>(p.axes[i])];
    if (!d.concrete()) {
      if (p.starts[i] == 0 && p.steps[i] == 1 && p.ends[i] >= std::numeric_limits<std::int32_t>::max()) continue;
      ctx.fail("axis " + std::to_string(p.axes[i]) + " of " + x.str() +
               " is symbolic: only a whole-axis slice (start 0, end past the dim, step 1) has a size valid for "
               "every binding");
    }
    out[static_cast<std::size_t>(p.axes[i])] = Dim::of(window(d.value, p.starts[i], p.ends[i], p.steps[i]).count);
  }
  return {TensorType{x.dtype, out}};
}

class SliceKernel : public Kernel {
 public:
  explicit SliceKernel(const KernelCtx& ctx) : esize_(dtype_size(ctx.in[0].dtype)) {
    const auto in = dims_of(ctx.in[0].shape);
    const int rank = static_cast<int>(in.size());
    const Node& n = ctx.node;
    std::vector<Window> w(in.size());
    for (std::size_t d = 0; d < in.size(); ++d) w[d] = Window{0, 1, in[d]};
    const auto& axes = n.attr_ints("axes");
    const auto& steps = n.attr_ints("steps");
    for (std::size_t i = 0; i < axes.size(); ++i) {
      const auto a = static_cast<std::size_t>(axes[i] < 0 ? axes[i] + rank : axes[i]);
      w[a] = window(in[a], n.attr_ints("starts")[i], n.attr_ints("ends")[i], steps.empty() ? 1 : steps[i]);
    }
    std::vector<std::int64_t> stride(in.size(), 1);
    for (int d = rank - 2; d >= 0; --d) stride[d] = stride[d + 1] * in[d + 1];
    for (std::size_t d = 0; d < in.size(); ++d) {
      count_.push_back(w[d].count);
      src_step_.push_back(w[d].step * stride[d]);
      base_ += w[d].start * stride[d];
    }
    total_ = 1;
    for (auto c : count_) total_ *= c;
  }

  void execute(dnnl::stream&, const KernelArgs& args) override {
    if (total_ == 0) return;
    const auto* src = static_cast<const unsigned char*>(args.in[0]);
    auto* dst = static_cast<unsigned char*>(args.out[0]);
    const std::size_t rank = count_.size();
    if (rank == 0) {
      std::memcpy(dst, src, esize_);
      return;
    }
    std::vector<std::int64_t> idx(rank, 0);
    const std::int64_t inner = count_[rank - 1], inner_step = src_step_[rank - 1];
    const bool contiguous = inner_step == 1;
    for (std::int64_t o = 0; o < total_; o += inner) {
      std::int64_t off = base_;
      for (std::size_t d = 0; d + 1 < rank; ++d) off += idx[d] * src_step_[d];
      if (contiguous) {
        std::memcpy(dst, src + off * static_cast<std::int64_t>(esize_), static_cast<std::size_t>(inner) * esize_);
        dst += inner * static_cast<std::int64_t>(esize_);
      } else {
        for (std::int64_t i = 0; i < inner; ++i, dst += esize_)
          std::memcpy(dst, src + (off + i * inner_step) * static_cast<std::int64_t>(esize_), esize_);
      }
      for (std::size_t d = rank - 1; d-- > 0;) {
        if (++idx[d] < count_[d]) break;
        idx[d] = 0;
      }
    }
  }
  std::string impl() const override { return "kiln:strided_copy"; }

 private:
  std::size_t esize_;
  std::vector<std::int64_t> count_, src_step_;
  std::int64_t base_ = 0, total_ = 0;
};

std::unique_ptr<Kernel> make(const KernelCtx& ctx) { return std::make_unique<SliceKernel>(ctx); }

}  // namespace

const OpSchema& op_slice() {
  static const OpSchema s{
      .name = "slice",
      .doc = "a strided window along axes (ONNX Slice: negative and out-of-range bounds clamped)",
      .inputs = {{"src"}},
      .attrs = {AttrSpec{"axes", AttrType::Ints, std::nullopt, "the axes sliced"},
                AttrSpec{"starts", AttrType::Ints, std::nullopt, "first index per axis (negative: from the end)"},
                AttrSpec{"ends", AttrType::Ints, std::nullopt, "end index per axis, exclusive (clamped)"},
                AttrSpec{"steps", AttrType::Ints, Attr{std::vector<std::int64_t>{}}, "step per axis (default 1)"}},
      .infer = infer,
      .make_kernel = make,
  };
  return s;
}

}  // namespace kiln
