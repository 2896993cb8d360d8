// pad: each dim widened by pads before and after it (F.pad; ONNX Pad): "constant" fills with `value`,
// "edge" repeats the border element, "reflect" mirrors without repeating it. Any element type.
//   %y = pad(%x) {pads=[0,0,1,1,0,0,1,1], mode="constant"} : (f32[batch,3,h,w]) -> f32[batch,3,h+2,w+2]
// `pads` is ONNX's order: every dim's begin, then every dim's end. Kernel: per output row (the last dim),
// the source row the outer indices map to, copied between its two pads; parallel over rows.

#include <tbb/parallel_for.h>

#include <cmath>
#include <limits>

#include "ops/movement.hpp"

namespace kiln {
namespace {

enum class Mode { constant, edge, reflect };

Mode mode_of(const Node& n) {
  const std::string& m = n.attr_string("mode");
  return m == "edge" ? Mode::edge : m == "reflect" ? Mode::reflect : Mode::constant;
}

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  const Node& n = ctx.node();
  const TensorType& x = ctx.in(0);
  const std::string& mode = n.attr_string("mode");
  if (mode != "constant" && mode != "edge" && mode != "reflect")
    ctx.fail(R"(attribute 'mode' must be "constant", "edge" or "reflect", got ")" + mode + "\"");
  const auto& pads = n.attr_ints("pads");
  const int r = x.rank();
  // The fill value must be one the element type holds (converting any other to an integer is undefined).
  const double v = n.attr_float("value");
  auto holds = [&](double lo, double hi) { return v >= lo && v <= hi; };
  bool ok = true;
  switch (x.dtype) {
    case DType::i64: ok = holds(-9.2e18, 9.2e18); break;
    case DType::i32: ok = holds(-2147483648.0, 2147483647.0); break;
    case DType::i8: ok = holds(-128, 127); break;
    case DType::u8: ok = holds(0, 255); break;
    case DType::f32:
      ok = !std::isfinite(v) || std::fabs(v) <= static_cast<double>(std::numeric_limits<float>::max());
      break;
    case DType::f64:
    case DType::boolean: break;
    default: ok = v == 0;  // f16, bf16: only zeros, whose bits are zero
  }
  if (!ok)
    ctx.fail("attribute 'value' " + std::to_string(v) + " is not a value of " + std::string(dtype_name(x.dtype)));
  if (static_cast<int>(pads.size()) != 2 * r)
    ctx.fail("attribute 'pads' must have 2 entries per dim (" + std::to_string(2 * r) + " for " + x.str() + "), got " +
             attr_str(Attr{pads}));
  Shape out = x.shape;
  for (int d = 0; d < r; ++d) {
    const std::int64_t b = pads[d], e = pads[d + r];
    if (b < 0 || e < 0 || b > kMaxPad || e > kMaxPad)
      ctx.fail("attribute 'pads' entries must be between 0 and " + std::to_string(kMaxPad) + ", got " +
               attr_str(Attr{pads}));
    if (b == 0 && e == 0) continue;
    const Dim& in = x.shape[d];
    if (!in.concrete()) ctx.fail("expected a concrete size in padded dim " + std::to_string(d) + ", got " + x.str());
    if (mode == "edge" && in.value == 0) ctx.fail("edge padding of the empty dim " + std::to_string(d));
    if (mode == "reflect" && (b >= in.value || e >= in.value))
      ctx.fail("reflect padding must be smaller than the dim it pads (dim " + std::to_string(d) + " of " + x.str() +
               "), got " + attr_str(Attr{pads}));
    out[d] = Dim::of(in.value + b + e);
  }
  return {TensorType{x.dtype, out}};
}

class PadKernel : public Kernel {
 public:
  explicit PadKernel(const KernelCtx& ctx)
      : in_(dims_of(ctx.in[0].shape)),
        out_(dims_of(ctx.out[0].shape)),
        pads_(ctx.node.attr_ints("pads")),
        mode_(mode_of(ctx.node)),
        esize_(dtype_size(ctx.in[0].dtype)) {
    if (in_.empty()) {  // a scalar: nothing to pad
      in_ = out_ = {1};
      pads_ = {0, 0};
    }
    in_strides_ = row_strides(in_);
    fill_.resize(esize_);
    // The fill value in the element type, once.
    const double v = ctx.node.attr_float("value");
    switch (ctx.in[0].dtype) {
      case DType::f32: store(static_cast<float>(v)); break;
      case DType::f64: store(v); break;
      case DType::i64: store(static_cast<std::int64_t>(v)); break;
      case DType::i32: store(static_cast<std::int32_t>(v)); break;
      case DType::i8: store(static_cast<std::int8_t>(v)); break;
      case DType::u8: store(static_cast<std::uint8_t>(v)); break;
      case DType::boolean: store(static_cast<std::uint8_t>(v != 0)); break;
      default:
        if (v != 0) ctx.node.fail("a non-zero constant 'value' for " + std::string(dtype_name(ctx.in[0].dtype)));
    }
    // Each output row's first byte is filled from the fill pattern: a row of fill values, once.
    const std::int64_t w = out_.back();
    fill_row_.resize(static_cast<std::size_t>(w) * esize_);
    for (std::int64_t i = 0; i < w; ++i) std::memcpy(fill_row_.data() + i * esize_, fill_.data(), esize_);
  }

  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* src = static_cast<const unsigned char*>(args.in[0]);
    auto* dst = static_cast<unsigned char*>(args.out[0]);
    const int r = static_cast<int>(out_.size());
    const std::int64_t w = out_.back(), iw = in_.back(), b = pads_[r - 1];
    std::int64_t rows = 1;
    for (int d = 0; d < r - 1; ++d) rows *= out_[d];
    if (rows == 0 || w == 0) return;
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, rows, 16), [&](const tbb::blocked_range<std::int64_t>& rr) {
      for (std::int64_t row = rr.begin(); row < rr.end(); ++row) {
        unsigned char* out = dst + row * w * esize_;
        // The source row: each outer output index mapped into the input (or -1: a padded row).
        std::int64_t src_row = 0, rest = row;
        bool padded = false;
        for (int d = r - 2; d >= 0; --d) {
          const std::int64_t o = rest % out_[d];
          rest /= out_[d];
          const std::int64_t i = map(o - pads_[d], in_[d]);
          if (i < 0) padded = true;
          else src_row += i * in_strides_[d];
        }
        if (padded || iw == 0) {
          if (mode_ == Mode::constant || iw == 0) {
            std::memcpy(out, fill_row_.data(), static_cast<std::size_t>(w) * esize_);
            continue;
          }
        }
        const unsigned char* in = src + src_row * esize_;  // src_row: an element offset
        if (mode_ == Mode::constant) {
          std::memcpy(out, fill_row_.data(), static_cast<std::size_t>(b) * esize_);
          std::memcpy(out + b * esize_, in, static_cast<std::size_t>(iw) * esize_);
          std::memcpy(out + (b + iw) * esize_, fill_row_.data(), static_cast<std::size_t>(w - b - iw) * esize_);
          continue;
        }
        for (std::int64_t o = 0; o < w; ++o) std::memcpy(out + o * esize_, in + map(o - b, iw) * esize_, esize_);
      }
    });
  }
  std::string impl() const override { return "kiln:pad"; }

 private:
  template <class T>
  void store(T v) {
    std::memcpy(fill_.data(), &v, sizeof(T));
  }
  // The input index that output index i (already shifted by the begin pad) reads; -1 for the fill value.
  std::int64_t map(std::int64_t i, std::int64_t n) const {
    if (i >= 0 && i < n) return i;
    switch (mode_) {
      case Mode::constant: return -1;
      case Mode::edge: return i < 0 ? 0 : n - 1;
      case Mode::reflect: return i < 0 ? -i : 2 * (n - 1) - i;  // pads < n (the shape rule)
    }
    return -1;
  }

  std::vector<std::int64_t> in_, out_, pads_, in_strides_;
  Mode mode_;
  std::size_t esize_;
  std::vector<unsigned char> fill_, fill_row_;
};

std::unique_ptr<Kernel> make(const KernelCtx& ctx) { return std::make_unique<PadKernel>(ctx); }

}  // namespace

const OpSchema& op_pad() {
  static const OpSchema s{
      .name = "pad",
      .doc = "each dim widened by pads (begins, then ends): constant value, edge or reflect (F.pad); any type",
      .inputs = {{"src"}},
      .attrs = {AttrSpec{"pads", AttrType::Ints, std::nullopt, "[begin of each dim..., end of each dim...] >= 0"},
                AttrSpec{"mode", AttrType::String, Attr{std::string("constant")}, "constant, edge or reflect"},
                AttrSpec{"value", AttrType::Float, Attr{0.0}, "the fill value of constant mode"}},
      .infer = infer,
      .make_kernel = make,
  };
  return s;
}

}  // namespace kiln
