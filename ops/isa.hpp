#pragma once
// Which instruction sets Kiln's own kernels may use, and the one switch that caps them.
//
// Kiln's kernels come in variants by instruction set (AVX-512, AVX2+FMA, and none: oneDNN then does the
// work). The variant is chosen at run time from CPUID, capped by KILN_MAX_ISA=avx512|avx2|sse41 (read
// once). oneDNN is capped to the same level (dnnl::set_max_cpu_isa, before its first primitive), so
// Kiln's kernels and oneDNN's never disagree about the CPU: with KILN_MAX_ISA=avx2 an AVX-512 host runs
// the same code as an AVX2-only host, blocked layouts included (nChw8c instead of nChw16c).
// ONEDNN_MAX_CPU_ISA, oneDNN's own switch, caps Kiln too when it is the lower of the two.
// docs/portability.md says how to reproduce another host's behaviour with it.

#include <optional>
#include <string>
#include <string_view>

namespace kiln::isa {

/// Instruction-set levels Kiln's kernels are written for, in increasing order.
/// sse41: no Kiln kernel (oneDNN runs everything); avx2: AVX2 + FMA; avx512: AVX-512 F, BW, DQ, VL.
enum class Level : int { sse41 = 0, avx2 = 1, avx512 = 2 };

/// "sse41", "avx2", "avx512".
const char* name(Level level);
/// The level a name denotes (as KILN_MAX_ISA takes it, lower case), or nullopt.
std::optional<Level> parse(std::string_view name);

/// What this CPU supports (CPUID), whatever the cap.
Level cpu();
/// The cap in force: the lower of KILN_MAX_ISA and ONEDNN_MAX_CPU_ISA (read once), nullopt when neither
/// is set.
std::optional<Level> cap();
/// What Kiln's kernels use: cpu(), lowered to cap().
Level effective();
/// effective() >= level.
inline bool has(Level level) { return static_cast<int>(effective()) >= static_cast<int>(level); }

/// The level oneDNN runs at (its effective ISA, after apply()): what its primitives and the blocked layouts
/// they want are chosen for. Equal to effective() unless ONEDNN_MAX_CPU_ISA names a level between ours.
Level onednn_level();

/// Extensions of AVX-512 that some kernels use (the quantized-weight GEMMs, ops/qgemm.hpp).
enum class Feature : int { avx512_vnni, avx512_bf16 };
/// "avx512_vnni", "avx512_bf16".
const char* name(Feature feature);
/// Whether this CPU has `feature` (CPUID, with the AVX-512 state enabled by the OS: cpu() is avx512),
/// whatever the cap.
bool cpu_has(Feature feature);
/// What Kiln's kernels may use: cpu_has(feature) and effective() is avx512 (a cap to avx2 or below
/// excludes every AVX-512 extension).
bool has(Feature feature);

/// "avx512", or "avx2 (capped by KILN_MAX_ISA=avx2; CPU: avx512)" when capped below the CPU.
std::string describe();

/// Applies the cap to oneDNN (once; every engine creation and ISA query in Kiln calls it first, and it runs
/// when the library loads). Throws kiln::Error when KILN_MAX_ISA holds an unknown value, naming the
/// variable, the value and the accepted ones.
void apply();

}  // namespace kiln::isa
