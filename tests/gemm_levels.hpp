#pragma once
// For the tests of Kiln's GEMM kernels (ops/gemm, ops/qgemm): the instruction-set levels whose variants this
// CPU runs under the cap, and a guard that forces one of them. Tests name no level they expect: they run
// every level gemm_levels() gives and ask the library (gemm::variant(), qgemm::variant()) what ran.

#include <optional>
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

}  // namespace kiln::test
