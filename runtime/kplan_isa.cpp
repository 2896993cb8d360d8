#include "runtime/kplan_isa.hpp"

#include <cstdio>
#include <utility>

#include <oneapi/dnnl/dnnl.hpp>

#include "ops/isa.hpp"

namespace kiln {

namespace {
const std::pair<const char*, dnnl_cpu_isa_t> kIsas[] = {
    {"sse41", dnnl_cpu_isa_sse41},
    {"avx", dnnl_cpu_isa_avx},
    {"avx2", dnnl_cpu_isa_avx2},
    {"avx2_vnni", dnnl_cpu_isa_avx2_vnni},
    {"avx512_mic", dnnl_cpu_isa_avx512_mic},
    {"avx512_mic_4ops", dnnl_cpu_isa_avx512_mic_4ops},
    {"avx512_core", dnnl_cpu_isa_avx512_core},
    {"avx512_core_vnni", dnnl_cpu_isa_avx512_core_vnni},
    {"avx512_core_bf16", dnnl_cpu_isa_avx512_core_bf16},
    {"avx512_core_amx", dnnl_cpu_isa_avx512_core_amx},
};
}  // namespace

std::uint32_t host_isa() {
  isa::apply();
  return static_cast<std::uint32_t>(dnnl::get_effective_cpu_isa());
}

std::string isa_name(std::uint32_t isa) {
  for (const auto& [name, bits] : kIsas)
    if (static_cast<std::uint32_t>(bits) == isa) return name;
  char buf[32];
  std::snprintf(buf, sizeof buf, "isa 0x%x", isa);
  return buf;
}

std::vector<std::uint32_t> known_isas() {
  std::vector<std::uint32_t> out;
  for (const auto& entry : kIsas) out.push_back(static_cast<std::uint32_t>(entry.second));
  return out;
}

bool parse_isa(const std::string& name, std::uint32_t* out) {
  for (const auto& [n, bits] : kIsas)
    if (name == n) {
      *out = static_cast<std::uint32_t>(bits);
      return true;
    }
  return false;
}

}  // namespace kiln
