#include "tests/ops/cnn_ref.hpp"

#include <algorithm>
#include <cmath>

namespace kiln::test {

Tensor ref_conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, const ConvParams& p) {
  const auto& xs = x.shape();
  const auto& ws = w.shape();
  const std::int64_t n = xs[0], c = xs[1], h = xs[2], wd = xs[3], o = ws[0], kh = ws[2], kw = ws[3];
  const std::int64_t cg = c / p.groups, og = o / p.groups;
  const std::int64_t oh = (h + p.padding[0] + p.padding[2] - p.dilation[0] * (kh - 1) - 1) / p.stride[0] + 1;
  const std::int64_t ow = (wd + p.padding[1] + p.padding[3] - p.dilation[1] * (kw - 1) - 1) / p.stride[1] + 1;
  Tensor y = Tensor::empty(DType::f32, {n, o, oh, ow});
  const float* X = x.data_as<float>();
  const float* W = w.data_as<float>();
  float* Y = y.data_as<float>();
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t oc = 0; oc < o; ++oc) {
      const std::int64_t g = oc / og;
      for (std::int64_t i = 0; i < oh; ++i)
        for (std::int64_t j = 0; j < ow; ++j) {
          double acc = bias ? bias->data_as<float>()[oc] : 0.0;
          for (std::int64_t ic = 0; ic < cg; ++ic)
            for (std::int64_t a = 0; a < kh; ++a) {
              const std::int64_t yi = i * p.stride[0] - p.padding[0] + a * p.dilation[0];
              if (yi < 0 || yi >= h) continue;
              for (std::int64_t e = 0; e < kw; ++e) {
                const std::int64_t xj = j * p.stride[1] - p.padding[1] + e * p.dilation[1];
                if (xj < 0 || xj >= wd) continue;
                acc += static_cast<double>(X[((b * c + g * cg + ic) * h + yi) * wd + xj]) * W[((oc * cg + ic) * kh + a) * kw + e];
              }
            }
          Y[((b * o + oc) * oh + i) * ow + j] = static_cast<float>(acc);
        }
    }
  return y;
}

Tensor ref_batch_norm(const Tensor& x, const Tensor* w, const Tensor* b, const Tensor& mean, const Tensor& var, double eps) {
  const auto& s = x.shape();
  std::int64_t inner = 1;
  for (std::size_t i = 2; i < s.size(); ++i) inner *= s[i];
  Tensor y = Tensor::empty(DType::f32, s);
  for (std::int64_t n = 0; n < s[0]; ++n)
    for (std::int64_t c = 0; c < s[1]; ++c) {
      double scale = 1.0 / std::sqrt(static_cast<double>(var.data_as<float>()[c]) + eps);
      double g = w ? w->data_as<float>()[c] : 1.0, sh = b ? b->data_as<float>()[c] : 0.0, m = mean.data_as<float>()[c];
      for (std::int64_t i = 0; i < inner; ++i) {
        std::int64_t k = (n * s[1] + c) * inner + i;
        y.data_as<float>()[k] = static_cast<float>((x.data_as<float>()[k] - m) * scale * g + sh);
      }
    }
  return y;
}

Tensor ref_pool(const Tensor& x, const std::string& kind, const std::vector<std::int64_t>& k,
                const std::vector<std::int64_t>& st, const std::vector<std::int64_t>& pad, bool count_include_pad) {
  const auto& s = x.shape();
  const std::int64_t h = s[2], w = s[3];
  const std::int64_t oh = (h + pad[0] + pad[2] - k[0]) / st[0] + 1, ow = (w + pad[1] + pad[3] - k[1]) / st[1] + 1;
  Tensor y = Tensor::empty(DType::f32, {s[0], s[1], oh, ow});
  for (std::int64_t nc = 0; nc < s[0] * s[1]; ++nc)
    for (std::int64_t i = 0; i < oh; ++i)
      for (std::int64_t j = 0; j < ow; ++j) {
        double acc = kind == "max" ? -INFINITY : 0.0;
        std::int64_t count = 0;
        for (std::int64_t a = 0; a < k[0]; ++a)
          for (std::int64_t b = 0; b < k[1]; ++b) {
            std::int64_t yi = i * st[0] - pad[0] + a, xj = j * st[1] - pad[1] + b;
            // PyTorch's include-pad divisor counts window positions inside the padded input.
            bool in_padded = yi < h + pad[2] && xj < w + pad[3];
            if (yi < 0 || yi >= h || xj < 0 || xj >= w) {
              count += count_include_pad && in_padded;
              continue;
            }
            double v = x.data_as<float>()[(nc * h + yi) * w + xj];
            acc = kind == "max" ? std::max(acc, v) : acc + v;
            ++count;
          }
        y.data_as<float>()[(nc * oh + i) * ow + j] = static_cast<float>(kind == "max" ? acc : acc / static_cast<double>(count));
      }
  return y;
}

Tensor ref_concat(const std::vector<Tensor>& xs, int axis) {
  auto shape = xs[0].shape();
  shape[axis] = 0;
  for (const auto& t : xs) shape[axis] += t.shape()[axis];
  std::int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= shape[i];
  for (std::size_t i = axis + 1; i < shape.size(); ++i) inner *= shape[i];
  Tensor y = Tensor::empty(DType::f32, shape);
  float* Y = y.data_as<float>();
  for (std::int64_t o = 0; o < outer; ++o)
    for (const auto& t : xs) {
      std::int64_t chunk = t.shape()[axis] * inner;
      std::copy_n(t.data_as<float>() + o * chunk, chunk, Y);
      Y += chunk;
    }
  return y;
}

Tensor ref_resize(const Tensor& x, const std::string& mode, std::int64_t oh, std::int64_t ow) {
  const auto& s = x.shape();
  const std::int64_t h = s[2], w = s[3];
  Tensor y = Tensor::empty(DType::f32, {s[0], s[1], oh, ow});
  auto src = [](std::int64_t d, std::int64_t in, std::int64_t out) { return (static_cast<double>(d) + 0.5) * in / out - 0.5; };
  for (std::int64_t nc = 0; nc < s[0] * s[1]; ++nc) {
    const float* X = x.data_as<float>() + nc * h * w;
    for (std::int64_t i = 0; i < oh; ++i)
      for (std::int64_t j = 0; j < ow; ++j) {
        double v;
        double fy = src(i, h, oh), fx = src(j, w, ow);
        if (mode == "nearest") {
          auto near = [](double f, std::int64_t n) { return std::clamp<std::int64_t>(static_cast<std::int64_t>(std::floor(f + 0.5)), 0, n - 1); };
          v = X[near(fy, h) * w + near(fx, w)];
        } else {
          fy = std::max(fy, 0.0);
          fx = std::max(fx, 0.0);
          std::int64_t y0 = std::min<std::int64_t>(static_cast<std::int64_t>(fy), h - 1), x0 = std::min<std::int64_t>(static_cast<std::int64_t>(fx), w - 1);
          std::int64_t y1 = std::min(y0 + 1, h - 1), x1 = std::min(x0 + 1, w - 1);
          double ly = fy - y0, lx = fx - x0;
          v = (1 - ly) * ((1 - lx) * X[y0 * w + x0] + lx * X[y0 * w + x1]) + ly * ((1 - lx) * X[y1 * w + x0] + lx * X[y1 * w + x1]);
        }
        y.data_as<float>()[(nc * oh + i) * ow + j] = static_cast<float>(v);
      }
  }
  return y;
}

Tensor ref_activation(const Tensor& x, const std::string& act, double lo, double hi) {
  Tensor y = clone(x);
  float* p = y.data_as<float>();
  for (std::int64_t i = 0; i < y.numel(); ++i) {
    double v = p[i];
    if (act == "relu") v = std::max(v, 0.0);
    else if (act == "clip") v = std::clamp(v, lo, hi);
    else if (act == "silu") v = v / (1 + std::exp(-v));
    else if (act == "sigmoid") v = 1 / (1 + std::exp(-v));
    else if (act == "tanh") v = std::tanh(v);
    p[i] = static_cast<float>(v);
  }
  return y;
}

}  // namespace kiln::test
