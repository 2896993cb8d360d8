#pragma once
// Naive references for the CNN ops (plain loops over [N,C,H,W], double accumulation), written from the
// PyTorch definitions, to check the oneDNN kernels in every layout.

#include <string>
#include <vector>

#include "tests/ops/op_test_util.hpp"

namespace kiln::test {

struct ConvParams {
  std::vector<std::int64_t> stride{1, 1}, padding{0, 0, 0, 0}, dilation{1, 1};  // padding: top, left, bottom, right
  std::int64_t groups = 1;
};
/// nn.Conv2d: x [N,C,H,W], w [O,C/groups,kh,kw], bias [O] or null.
Tensor ref_conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, const ConvParams& p);
/// Eval-mode batch norm over dim 1; weight/bias may be null.
Tensor ref_batch_norm(const Tensor& x, const Tensor* w, const Tensor* b, const Tensor& mean, const Tensor& var, double eps);
/// "max" or "avg" (count_include_pad as given) over [kh,kw] windows; padding top, left, bottom, right.
Tensor ref_pool(const Tensor& x, const std::string& kind, const std::vector<std::int64_t>& kernel,
                const std::vector<std::int64_t>& stride, const std::vector<std::int64_t>& padding, bool count_include_pad);
/// torch.cat along `axis`.
Tensor ref_concat(const std::vector<Tensor>& xs, int axis);
/// Resampling to [oh, ow] with half-pixel centres: "nearest" (round to the nearest source centre) or
/// "linear" (bilinear, align_corners=False).
Tensor ref_resize(const Tensor& x, const std::string& mode, std::int64_t oh, std::int64_t ow);
/// Elementwise activation: relu, clip (lo, hi), silu, sigmoid, tanh, none.
Tensor ref_activation(const Tensor& x, const std::string& act, double lo = 0, double hi = 6);

}  // namespace kiln::test
