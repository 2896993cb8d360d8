#pragma once
// For the tests of Kiln's GEMM kernels (ops/gemm, ops/qgemm): the instruction-set levels whose variants this
// CPU runs under the cap, a guard that forces one of them, and random operands. Tests name no level they expect: they run
// every level gemm_levels() gives and ask the library (gemm::variant(), qgemm::variant()) what ran.

#include <cstddef>
#include <optional>
#include <random>
#include <vector>

#include "ops/gemm.hpp"
#include "ops/isa.hpp"

namespace kiln::test {

/// avx2, and avx512 where isa::effective() allows it (none below AVX2).
inline std::vector<isa::Level> gemm_levels() {
  std::vector<isa::Level> out;
  for (isa::Level l : {isa::Level::avx2, isa::Level::avx512})
    if (isa::has(l)) out.push_back(l);
  return out;
}

/// Runs the GEMM variants of `level` (gemm::override_variant) while it lives.
struct VariantChoice {
  explicit VariantChoice(isa::Level level) { gemm::override_variant(level); }
  ~VariantChoice() { gemm::override_variant(std::nullopt); }
  VariantChoice(const VariantChoice&) = delete;
  VariantChoice& operator=(const VariantChoice&) = delete;
};

/// n floats drawn uniformly from [lo, hi).
inline std::vector<float> random_floats(std::mt19937& rng, std::size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

}  // namespace kiln::test
