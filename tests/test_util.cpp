#include "test_util.hpp"

#include <algorithm>
#include <cmath>

namespace kiln::test {

double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.dtype() == DType::f32);
  REQUIRE(b.dtype() == DType::f32);
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    double d = std::fabs(static_cast<double>(a.data_as<float>()[i]) - b.data_as<float>()[i]);
    if (std::isnan(d)) return INFINITY;
    m = std::max(m, d);
  }
  return m;
}

}  // namespace kiln::test
