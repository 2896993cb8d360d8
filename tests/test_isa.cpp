// The instruction-set cap (ops/isa.hpp): Kiln's kernels and oneDNN agree on what this process may use.
// Run natively and under KILN_MAX_ISA=avx2/sse41 by scripts/test.sh, so every answer below is checked at
// several levels on one host.

#include <oneapi/dnnl/dnnl.hpp>

#include "ops/gemm.hpp"
#include "ops/isa.hpp"
#include "ops/spatial.hpp"
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
  isa::apply();
  const auto onednn = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto avx512_core = static_cast<unsigned>(dnnl::cpu_isa::avx512_core);
  const auto avx2 = static_cast<unsigned>(dnnl::cpu_isa::avx2);
  CHECK(((onednn & avx512_core) == avx512_core) == isa::has(isa::Level::avx512));
  CHECK(((onednn & avx2) == avx2) == isa::has(isa::Level::avx2));
  // The blocked layout the passes pick follows oneDNN's level, hence the cap.
  CHECK(kiln::channel_block(kiln::blocked_channel_layout()) == (isa::has(isa::Level::avx512) ? 16 : 8));
}

TEST_CASE("isa: Kiln's GEMM runs where the cap allows AVX2, and names its variant") {
  CHECK(kiln::gemm::available() == isa::has(isa::Level::avx2));
  const std::string variant = kiln::gemm::variant();
  CHECK(variant.rfind("kiln:gemm_", 0) == 0);
}
