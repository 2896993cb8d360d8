#pragma once
// Selection over one row of scores, shared by the argmax/topk ops and the generation loop
// (runtime/generate.cpp), so that both break ties the same way: the lower index wins.

#include <cstdint>

namespace kiln {

/// Index of the largest of x[0..n) (the first on ties; NaN never wins).
inline std::int64_t arg_max(const float* x, std::int64_t n) {
  std::int64_t best = 0;
  for (std::int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

/// The k largest of x[0..n), largest first, ties to the lower index, by insertion into a sorted list of
/// k (k is small: a beam width). Writes k values and indices; allocates nothing.
inline void top_k(const float* x, std::int64_t n, std::int64_t k, float* values, std::int64_t* indices) {
  std::int64_t size = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (size == k && !(v > values[k - 1])) continue;
    std::int64_t at = size < k ? size++ : k - 1;
    while (at > 0 && v > values[at - 1]) {
      values[at] = values[at - 1];
      indices[at] = indices[at - 1];
      --at;
    }
    values[at] = v;
    indices[at] = i;
  }
}

}  // namespace kiln
