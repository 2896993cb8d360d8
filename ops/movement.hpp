#pragma once
// Helpers shared by the data-movement ops that work on any element type (pad, tile, split, trilu,
// gather_elements): they move elements of `dtype_size` bytes and never look at their values.

#include <cstdint>
#include <cstring>
#include <vector>

#include "ops/common.hpp"

namespace kiln {

/// Largest pad or repeat count accepted (sizes computed from them stay far from overflowing).
inline constexpr std::int64_t kMaxPad = 2147483647;

/// Row-major strides (in elements) of concrete dims.
inline std::vector<std::int64_t> row_strides(const std::vector<std::int64_t>& dims) {
  std::vector<std::int64_t> s(dims.size(), 1);
  for (std::size_t i = dims.size(); i-- > 1;) s[i - 1] = s[i] * dims[i];
  return s;
}

}  // namespace kiln
