#pragma once
// Kiln's kernels for quantized weights (docs/gemm.md, "Quantized weights"): C[M,N] = epilogue(A[M,K] · Wᵀ)
// with A in f32 and W [N,K] (nn.Linear's layout) stored, once, at compile time, in one of two packed forms:
//
//   - s8   ("s8panels16"): per-output-channel symmetric int8, w ≈ scale[n]·q[n,k], q in [-127, 127].
//          A is quantized per row at each call (symmetric, dynamic: a ≈ sa[m]·qa[m,k], qa in [-L, L] with
//          L = activation_levels(): 127 (8-bit) on the VNNI variant and the portable reference, 63 (7-bit) on
//          the AVX2 variant, whose vpmaddubsw would saturate 8-bit pair sums), the products accumulate
//          exactly in s32, and c = sa[m]·scale[n]·Σ qa·q goes through the epilogue.
//   - bf16 ("bf16panels16"): W rounded to bfloat16 (round to nearest even); A is rounded to bf16 at each
//          call; products accumulate in f32.
//
// Both forms are made of panels of kPanel (16) output columns, each panel self-contained (its scales
// inside it), so the rows row0.. of a packed weight (row0 a multiple of 16: attention's q/k/v thirds) start
// at packed + row0 / 16 · panel_bytes(k). The layout inside a panel belongs to this file (qgemm.cpp): it is
// the same for every variant, so a plan file made on one CPU runs on any other that runs the format.
//
// Variants are chosen at each call from gemm::variant_level() (isa::effective(), or the level tests force
// with gemm::override_variant) and the CPU's features (isa::has(Feature), under the KILN_MAX_ISA cap):
// s8 runs "kiln:qgemm_s8_vnni" where AVX512_VNNI is allowed, else "kiln:qgemm_s8_avx2"; bf16 runs
// "kiln:qgemm_bf16_avx512" where AVX512_BF16 is allowed, else "kiln:qgemm_bf16_avx2" (emulated); variant(f)
// names the one that runs. docs/gemm.md "Quantized weights" has the measurements.

#include <cstddef>
#include <cstdint>

#include "ops/gemm.hpp"

namespace kiln::qgemm {

enum class Format : std::uint8_t { s8, bf16 };

inline constexpr std::int64_t kPanel = gemm::kPanel;
inline constexpr const char* kS8Layout = "s8panels16";
inline constexpr const char* kBf16Layout = "bf16panels16";

/// The layout name of a format (kS8Layout, kBf16Layout).
const char* layout_name(Format f);

/// Bytes one panel of 16 columns over k inputs takes in format f (a multiple of 64).
std::size_t panel_bytes(Format f, std::int64_t k);
/// Bytes the packed form of an [n,k] weight takes: whole panels.
std::size_t packed_bytes(Format f, std::int64_t n, std::int64_t k);

/// Packs f32 w [n,k] (row-major) into `out` (packed_bytes(f,n,k) bytes, 64-byte aligned).
void pack(Format f, const float* w, std::int64_t n, std::int64_t k, void* out);
/// The f32 values the packed weights stand for (dequantized), w [n,k] row-major: for oneDNN where Kiln's
/// kernel cannot run, and for error reports.
void unpack(Format f, const void* packed, std::int64_t n, std::int64_t k, float* w);

/// Whether this CPU, under the cap, runs format f at all (s8: AVX2; bf16: AVX2, emulated or native).
bool available(Format f);
/// The name of the kernel that runs format f now, as kernels report it in impl(), e.g. "kiln:qgemm_s8_vnni".
const char* variant(Format f);

/// c[m, 0..n) = epilogue(a[m, 0..k) · Wᵀ) for m in [0, rows), W packed in format f starting at `packed`
/// (rows row0.. of a larger packed weight: packed + row0/16·panel_bytes). `lda`, `ldc`: row strides in
/// floats. Threads as gemm::multiply. Allocates only on a thread's first call (its buffers).
void multiply(Format f, const float* a, std::int64_t lda, const void* packed, float* c, std::int64_t ldc,
              std::int64_t rows, std::int64_t n, std::int64_t k, const gemm::Epilogue& epilogue, int threads = 0);

/// The largest |qa| s8 activations are quantized to by the variant that runs now: kS8Levels8 (127: VNNI, and
/// the scalar reference where no vector variant runs) or kS8Levels7 (63: AVX2). bf16: 0 (not quantized).
inline constexpr int kS8Levels8 = 127;
inline constexpr int kS8Levels7 = 63;
int activation_levels(Format f);

/// The portable reference of multiply (one thread, scalar, exact s32 sums): what the vector variants are
/// tested against. s8: the activations are quantized to [-levels, levels] (kS8Levels8 or kS8Levels7: pass
/// activation_levels(f) to compute exactly what multiply does now); bf16 ignores `levels`.
void multiply_reference(Format f, const float* a, std::int64_t lda, const void* packed, float* c, std::int64_t ldc,
                        std::int64_t rows, std::int64_t n, std::int64_t k, const gemm::Epilogue& epilogue,
                        int levels = kS8Levels8);

}  // namespace kiln::qgemm
