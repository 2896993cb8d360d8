// resize: spatial resampling of [N, C, H, W] to `size` or by `scale` (F.interpolate; ONNX Resize).
//   %u = resize(%x) {mode="nearest", scale=[2.0,2.0]} : (f32[batch,16,h,w]) -> f32[batch,16,h*2,w*2]
// By default coordinates map by half-pixel centres with the ratio of the sizes: "linear" is PyTorch's
// bilinear (align_corners=False); "nearest" takes the source pixel whose centre is nearest, ties rounding
// up (PyTorch's "nearest-exact", the same as its "nearest" for integer upscaling). That case runs as one
// oneDNN resampling, in whatever layout src has.
// The other attributes give ONNX Resize's other semantics, computed by a Kiln kernel on plain data:
// `coordinate_mode` (half_pixel, pytorch_half_pixel, align_corners, asymmetric, tf_half_pixel_for_nn,
// tf_crop_and_resize with `roi` and `extrapolation_value`), `coordinate_scale` (the scale coordinates map
// by, when it is not the ratio of the sizes), `nearest_mode`, and mode "cubic" (`cubic_coeff_a`,
// `exclude_outside`). Its per-axis source indices and weights are computed once, when the kernel is made;
// each output pixel is a weighted sum of 1, 4 or 16 source pixels; parallel over output rows.

#include <tbb/parallel_for.h>

#include <cmath>

#include "ops/spatial.hpp"

namespace kiln {
namespace {

const std::vector<double>& floats(const Node& n, const char* key) { return std::get<std::vector<double>>(n.attr(key)); }

// Whether the node asks for the default semantics oneDNN's resampling computes.
bool onednn_semantics(const Node& n) {
  return n.attr_string("mode") != "cubic" && n.attr_string("coordinate_mode") == "half_pixel" &&
         n.attr_string("nearest_mode") == "round_prefer_ceil" && floats(n, "coordinate_scale").empty();
}

std::string required(const Node& n) { return onednn_semantics(n) ? layout_of_src(n) : std::string(); }

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  const Node& n = ctx.node();
  expect_nchw(ctx, 0);
  const TensorType& x = ctx.in(0);
  const std::string& mode = n.attr_string("mode");
  if (mode != "nearest" && mode != "linear" && mode != "cubic")
    ctx.fail(R"(attribute 'mode' must be "nearest", "linear" or "cubic", got ")" + mode + "\"");
  const std::string& coord = n.attr_string("coordinate_mode");
  if (coord != "half_pixel" && coord != "pytorch_half_pixel" && coord != "align_corners" && coord != "asymmetric" &&
      coord != "tf_half_pixel_for_nn" && coord != "tf_crop_and_resize")
    ctx.fail(
        "attribute 'coordinate_mode' must be half_pixel, pytorch_half_pixel, align_corners, asymmetric, "
        "tf_half_pixel_for_nn or tf_crop_and_resize, got \"" +
        coord + "\"");
  const std::string& nearest = n.attr_string("nearest_mode");
  if (nearest != "round_prefer_floor" && nearest != "round_prefer_ceil" && nearest != "floor" && nearest != "ceil")
    ctx.fail("attribute 'nearest_mode' must be round_prefer_floor, round_prefer_ceil, floor or ceil, got \"" + nearest +
             "\"");
  const auto& cscale = floats(n, "coordinate_scale");
  if (!cscale.empty() && (cscale.size() != 2 || !(cscale[0] > 0) || !(cscale[1] > 0)))
    ctx.fail("attribute 'coordinate_scale' must be empty or 2 entries [h, w] > 0, got " + attr_str(Attr{cscale}));
  if (coord == "tf_crop_and_resize" && floats(n, "roi").size() != 4)
    ctx.fail("coordinate_mode tf_crop_and_resize needs attribute 'roi' [h_start, w_start, h_end, w_end], got " +
             attr_str(Attr{floats(n, "roi")}));
  const auto& size = n.attr_ints("size");
  const auto& scale = floats(n, "scale");
  if (size.empty() == scale.empty()) ctx.fail("expected exactly one of the attributes 'size' and 'scale'");
  Shape out = x.shape;
  for (int i = 0; i < 2; ++i) {
    const Dim& in = x.shape[2 + i];
    if (!size.empty()) {
      if (size.size() != 2 || size[i] < 1)
        ctx.fail("attribute 'size' must be 2 entries [h, w] >= 1, got " + attr_str(Attr{size}));
      out[2 + i] = Dim::of(size[i]);
    } else {
      if (scale.size() != 2 || !(scale[i] > 0))
        ctx.fail("attribute 'scale' must be 2 entries [h, w] > 0, got " + attr_str(Attr{scale}));
      if (in.concrete()) {
        out[2 + i] = Dim::of(static_cast<std::int64_t>(std::floor(static_cast<double>(in.value) * scale[i])));
        if (out[2 + i].value < 1) ctx.fail("scaling " + x.str() + " by " + attr_str(Attr{scale}) + " leaves no pixels");
      } else if (scale[i] == std::floor(scale[i])) {
        // Parenthesized when the size is already an expression: "((h-1)/2+1)*2".
        bool plain_symbol = in.sym.find_first_of("()+-*/") == std::string::npos;
        out[2 + i] = Dim::symbol((plain_symbol ? in.sym : "(" + in.sym + ")") + "*" +
                                 std::to_string(static_cast<std::int64_t>(scale[i])));
        if (scale[i] == 1) out[2 + i] = in;
      } else {
        ctx.fail("a fractional 'scale' needs a concrete size, got " + x.str());
      }
    }
  }
  return {TensorType{DType::f32, out, x.layout}};
}

// One axis of the Kiln kernel: for each output index, `taps` source indices (clamped to the input) and
// their weights; `outside` marks outputs that take the extrapolation value (tf_crop_and_resize).
struct AxisTable {
  int taps = 1;
  std::vector<std::int64_t> index;
  std::vector<float> weight;
  std::vector<std::uint8_t> outside;
};

// ONNX Resize's reference (onnx/backend/test/case/node/resize.py): the source coordinate of output x, then
// the nearest pixel, the two linear taps or the four cubic ones around it (edge pixels repeated).
AxisTable axis_table(const Node& n, int axis, std::int64_t in, std::int64_t out) {
  const std::string& mode = n.attr_string("mode");
  const std::string& coord = n.attr_string("coordinate_mode");
  const std::string& nearest = n.attr_string("nearest_mode");
  const auto& cscale = floats(n, "coordinate_scale");
  const double scale = cscale.empty() ? static_cast<double>(out) / static_cast<double>(in) : cscale[axis];
  const double width = scale * static_cast<double>(in);  // ONNX's output_width: unrounded
  const double a = n.attr_float("cubic_coeff_a");
  const bool exclude = n.attr_bool("exclude_outside");
  AxisTable t;
  t.taps = mode == "nearest" ? 1 : mode == "linear" ? 2 : 4;
  t.index.resize(static_cast<std::size_t>(out * t.taps));
  t.weight.resize(t.index.size());
  t.outside.assign(static_cast<std::size_t>(out), 0);
  for (std::int64_t o = 0; o < out; ++o) {
    const auto x = static_cast<double>(o);
    double src = 0;
    if (coord == "half_pixel") src = (x + 0.5) / scale - 0.5;
    else if (coord == "pytorch_half_pixel") src = width == 1 ? -0.5 : (x + 0.5) / scale - 0.5;
    else if (coord == "align_corners") src = width == 1 ? 0 : x * static_cast<double>(in - 1) / (width - 1);
    else if (coord == "asymmetric") src = x / scale;
    else if (coord == "tf_half_pixel_for_nn") src = (x + 0.5) / scale;
    else {  // tf_crop_and_resize
      const auto& roi = floats(n, "roi");
      const double start = roi[static_cast<std::size_t>(axis)], end = roi[static_cast<std::size_t>(axis) + 2];
      const auto last = static_cast<double>(in - 1);
      src = width == 1 ? (end - start) * last / 2 : x * (end - start) * last / (width - 1);
      src += start * last;
      if (!(src >= 0 && src <= last)) t.outside[static_cast<std::size_t>(o)] = 1;  // NaN too
    }
    const double base = std::floor(src);
    const double r = src - base;  // in [0, 1); ONNX's ratio 1 at integers picks the same pixels
    // Clamped as doubles first: a NaN or huge coordinate (from a plan file's attributes) stays in range.
    auto clamp = [&](double i) {
      return !(i > 0) ? std::int64_t{0} : i >= static_cast<double>(in - 1) ? in - 1 : static_cast<std::int64_t>(i);
    };
    std::int64_t* idx = t.index.data() + o * t.taps;
    float* w = t.weight.data() + o * t.taps;
    if (t.taps == 1) {
      bool up = false;  // round r (0 < r < 1) up to base + 1?
      if (r > 0) {
        if (nearest == "round_prefer_floor") up = r > 0.5;
        else if (nearest == "round_prefer_ceil") up = r >= 0.5;
        else up = nearest == "ceil";
      }
      idx[0] = clamp(base + (up ? 1 : 0));
      w[0] = 1;
    } else if (t.taps == 2) {
      idx[0] = clamp(base);
      idx[1] = clamp(base + 1);
      w[0] = static_cast<float>(1 - r);
      w[1] = static_cast<float>(r);
    } else {
      const double c[4] = {((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
                           ((a + 2) * r - (a + 3)) * r * r + 1, ((a + 2) * (1 - r) - (a + 3)) * (1 - r) * (1 - r) + 1,
                           ((a * ((1 - r) + 1) - 5 * a) * ((1 - r) + 1) + 8 * a) * ((1 - r) + 1) - 4 * a};
      double kept[4], sum = 0;
      for (int k = 0; k < 4; ++k) {
        const double i = base - 1 + k;
        kept[k] = exclude && (i < 0 || i >= static_cast<double>(in)) ? 0 : c[k];
        sum += kept[k];
        idx[k] = clamp(i);
      }
      for (int k = 0; k < 4; ++k) w[k] = static_cast<float>(exclude && sum != 0 ? kept[k] / sum : kept[k]);
    }
  }
  return t;
}

class ResizeKernel : public Kernel {
 public:
  explicit ResizeKernel(const KernelCtx& ctx) {
    const auto in = dims_of(ctx.in[0].shape);
    const auto out = dims_of(ctx.out[0].shape);
    planes_ = in[0] * in[1];
    ih_ = in[2];
    iw_ = in[3];
    oh_ = out[2];
    ow_ = out[3];
    if (ih_ == 0 || iw_ == 0) ctx.node.fail("cannot resample the empty input " + ctx.in[0].str());
    rows_ = axis_table(ctx.node, 0, ih_, oh_);
    cols_ = axis_table(ctx.node, 1, iw_, ow_);
    extrapolation_ = static_cast<float>(ctx.node.attr_float("extrapolation_value"));
  }
  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* src = static_cast<const float*>(args.in[0]);
    auto* dst = static_cast<float*>(args.out[0]);
    tbb::parallel_for(
        tbb::blocked_range<std::int64_t>(0, planes_ * oh_, 4), [&](const tbb::blocked_range<std::int64_t>& r) {
          for (std::int64_t row = r.begin(); row < r.end(); ++row) {
            const std::int64_t p = row / oh_, oy = row % oh_;
            const float* plane = src + p * ih_ * iw_;
            float* y = dst + row * ow_;
            const std::int64_t* ry = rows_.index.data() + oy * rows_.taps;
            const float* wy = rows_.weight.data() + oy * rows_.taps;
            for (std::int64_t ox = 0; ox < ow_; ++ox) {
              if (rows_.outside[static_cast<std::size_t>(oy)] || cols_.outside[static_cast<std::size_t>(ox)]) {
                y[ox] = extrapolation_;
                continue;
              }
              const std::int64_t* rx = cols_.index.data() + ox * cols_.taps;
              const float* wx = cols_.weight.data() + ox * cols_.taps;
              float sum = 0;
              for (int ty = 0; ty < rows_.taps; ++ty) {
                const float* line = plane + ry[ty] * iw_;
                float s = 0;
                for (int tx = 0; tx < cols_.taps; ++tx) s += wx[tx] * line[rx[tx]];
                sum += wy[ty] * s;
              }
              y[ox] = sum;
            }
          }
        });
  }
  std::string impl() const override { return "kiln:resize"; }

 private:
  std::int64_t planes_ = 0, ih_ = 0, iw_ = 0, oh_ = 0, ow_ = 0;
  AxisTable rows_, cols_;
  float extrapolation_ = 0;
};

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  if (!onednn_semantics(ctx.node)) return std::make_unique<ResizeKernel>(ctx);
  auto src = md_of(ctx.in[0]);
  auto dst = md_of(ctx.out[0]);
  auto alg = ctx.node.attr_string("mode") == "linear" ? dnnl::algorithm::resampling_linear
                                                      : dnnl::algorithm::resampling_nearest;
  dnnl::resampling_forward::primitive_desc pd(
      dnnl::resampling_forward::desc(dnnl::prop_kind::forward_inference, alg, src, dst), user_scratchpad_attr(),
      ctx.engine);
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
  int s = kernel->add(pd);
  kernel->input(s, DNNL_ARG_SRC, src, 0);
  kernel->output(s, DNNL_ARG_DST, dst, 0);
  return kernel;
}

}  // namespace

const OpSchema& op_resize() {
  static const OpSchema s{
      .name = "resize",
      .doc = "spatial resampling to size or by scale, nearest, bilinear or bicubic (F.interpolate; ONNX Resize)",
      .inputs = {{"src"}},
      .attrs = {AttrSpec{"mode", AttrType::String, Attr{std::string("nearest")}, "nearest, linear or cubic"},
                AttrSpec{"size", AttrType::Ints, Attr{std::vector<std::int64_t>{}}, "output [h, w]"},
                AttrSpec{"scale", AttrType::Floats, Attr{std::vector<double>{}},
                         "[h, w] factors (output = floor(in * scale))"},
                AttrSpec{"coordinate_mode", AttrType::String, Attr{std::string("half_pixel")},
                         "ONNX's coordinate_transformation_mode"},
                AttrSpec{"coordinate_scale", AttrType::Floats, Attr{std::vector<double>{}},
                         "[h, w] scale coordinates map by; empty: the ratio of the sizes"},
                AttrSpec{"nearest_mode", AttrType::String, Attr{std::string("round_prefer_ceil")},
                         "round_prefer_ceil, round_prefer_floor, floor or ceil"},
                AttrSpec{"cubic_coeff_a", AttrType::Float, Attr{-0.75}, "cubic: the kernel's a"},
                AttrSpec{"exclude_outside", AttrType::Bool, Attr{false}, "cubic: drop taps outside the input"},
                AttrSpec{"roi", AttrType::Floats, Attr{std::vector<double>{}},
                         "tf_crop_and_resize: [h_start, w_start, h_end, w_end], normalized"},
                AttrSpec{"extrapolation_value", AttrType::Float, Attr{0.0},
                         "tf_crop_and_resize: the value outside the roi"}},
      .infer = infer,
      .make_kernel = make,
      .layout = required,
  };
  return s;
}

}  // namespace kiln
