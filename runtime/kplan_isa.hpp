#pragma once
// The instruction set a plan file is compiled for, as oneDNN's dnnl_cpu_isa_t bits: what this CPU offers,
// and the names kilnc prints and accepts (`kilnc compile --isa`, `kilnc inspect`).

#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

/// The instruction set oneDNN uses on this CPU, as dnnl_cpu_isa_t bits.
std::uint32_t host_isa();
/// "avx2", "avx512_core", ... (or the bits in hex when unknown).
std::string isa_name(std::uint32_t isa);
/// Every instruction set isa_name names, as dnnl_cpu_isa_t bits, from the oldest to the newest.
std::vector<std::uint32_t> known_isas();
/// Parses an ISA name as `isa_name` prints it; false when unknown.
bool parse_isa(const std::string& name, std::uint32_t* out);

}  // namespace kiln
