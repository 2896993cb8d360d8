// The instruction-set cap (ops/isa.hpp): Kiln's kernels and oneDNN agree on what this process may use.
// Run natively and under KILN_MAX_ISA=avx2/sse41 by scripts/test.sh, so every answer below is checked at
// several levels on one host.

#include "ops/gemm.hpp"
#include "ops/isa.hpp"
#include "test_util.hpp"

namespace isa = kiln::isa;

TEST_CASE("isa: names round-trip and unknown names are refused") {
  for (isa::Level l : {isa::Level::sse41, isa::Level::avx2, isa::Level::avx512}) CHECK(isa::parse(isa::name(l)) == l);
  CHECK(!isa::parse("avx3").has_value());
  CHECK(!isa::parse("").has_value());
  CHECK(!isa::parse("AVX2").has_value());  // KILN_MAX_ISA takes the lower-case names docs/portability.md lists
}

TEST_CASE("isa: the effective level is the CPU's, lowered to the cap, and describe() says why") {
  const int cpu = static_cast<int>(isa::cpu()), eff = static_cast<int>(isa::effective());
  CHECK(eff <= cpu);
  if (auto cap = isa::cap()) {
    CHECK(eff == std::min(cpu, static_cast<int>(*cap)));
  } else {
    CHECK(eff == cpu);
  }
  const std::string d = isa::describe();
  CHECK(d.rfind(isa::name(isa::effective()), 0) == 0);
  CHECK((d.find("(capped by ") != std::string::npos) == (eff < cpu));
}

TEST_CASE("isa: oneDNN runs under the same cap as Kiln's kernels") {
  // Whichever cap is set (KILN_MAX_ISA, ONEDNN_MAX_CPU_ISA, both or none), the level oneDNN dispatches at
  // is the level Kiln's kernels use; the blocked CNN layout follows it (ops/spatial.hpp).
  CHECK(isa::onednn_level() == isa::effective());
  CHECK(static_cast<int>(isa::onednn_level()) <= static_cast<int>(isa::cpu()));
}

TEST_CASE("isa: Kiln's GEMM runs where the cap allows AVX2, and names its variant") {
  CHECK(kiln::gemm::available() == isa::has(isa::Level::avx2));
  const std::string variant = kiln::gemm::variant();
  CHECK(variant.rfind("kiln:gemm_", 0) == 0);
}
