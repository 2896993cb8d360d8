#pragma once
// Kiln's own kernels for Transformers, in an AVX-512 and an AVX2+FMA variant chosen at run time from
// isa::effective() (variant_level()): an f32 GEMM C[M,N] = A[M,K] · Wᵀ with W stored [N,K] (nn.Linear's
// layout) and packed once, in the same panels for both variants, and a row softmax. `linear` (and the projections of every
// attention op, via add_linear), the per-head steps of `attention`, and `softmax`/`log_softmax` over the
// last axis run on them; oneDNN keeps everything else, and all of this where the CPU lacks AVX2/FMA or
// the environment sets KILN_GEMM=onednn.
//
// Why not oneDNN's matmul: oneDNN 2.6's gemm:jit copies blocks of both operands into its own buffers on
// every call (for a 512x2048 layer that is 4 MB of weights, every inference) and allocates on the heap
// inside each primitive execution. Here the weights are packed once, at compile time (the pack-weights pass), into
// panels of 16 columns, and a call streams them through a 6x16 (AVX2) or 12x32 (AVX-512: two panels at
// once) register-blocked FMA kernel. On the
// d512/6-layer classifier at batch 1 x seq 128 that made each linear ~10% and each attention ~17%
// faster on an AVX2 Zen 3 host, and a warm run of a Transformer plan now makes no heap allocation at all. docs/gemm.md has
// the measurements.
//
// Threads: the calling thread's OpenMP team (omp_get_max_threads), the same team oneDNN's primitives
// use, so a plan mixing both never has two thread pools competing for the cores. The columns are split
// between the threads, so each reads only its share of the weights.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "ops/isa.hpp"

namespace kiln::gemm {

/// Columns per packed panel and rows per register block of the kernel.
inline constexpr std::int64_t kPanel = 16;
inline constexpr std::int64_t kRows = 6;

/// Whether this CPU runs the kernel (AVX2 and FMA). When false, callers use oneDNN.
bool available();
/// Whether Kiln's kernels run the linear products and attention: available(), unless the environment has
/// KILN_GEMM=onednn (read once), which sends that work to oneDNN instead, for comparison or as a way out.
bool enabled();
/// The name of the GEMM variant multiply() runs on this CPU under the ISA cap (ops/isa.hpp), as kernels
/// report it in their impl(): "kiln:gemm_avx512" where isa::effective() is avx512, else "kiln:gemm_avx2".
/// Meaningful only where available().
const char* variant();
/// The instruction set of that variant (avx512 or avx2): isa::effective(), or override_variant's level.
/// multiply(), softmax_rows() and the attention row kernels dispatch on it at each call.
isa::Level variant_level();
/// For tests: runs the variant of `level` instead of isa::effective()'s (nullopt: back to it). A level above
/// isa::effective() is clamped to it (a kernel the CPU or the cap does not allow never runs), one below avx2
/// to avx2. Returns variant_level() as it now is.
isa::Level override_variant(std::optional<isa::Level> level);
/// For tests: forces enabled() to `use` (still false where !available()) for kernels made from now on;
/// nullopt returns to the environment's choice.
void override_enabled(std::optional<bool> use);

/// Floats the packed form of an [n,k] weight takes: n rounded up to whole panels, times k.
std::size_t packed_floats(std::int64_t n, std::int64_t k);

/// Packs w [n,k] (row-major, nn.Linear's layout) into `out` (packed_floats(n,k) floats, 32-byte aligned):
/// panel p holds columns 16p..16p+15 as k consecutive groups of 16 floats; columns past n are zero.
/// Counted by packs_made().
void pack_weights(const float* w, std::int64_t n, std::int64_t k, float* out);
/// The inverse of pack_weights: w [n,k] (row-major) from its panels (a packed weight for oneDNN, where Kiln's
/// GEMM does not run).
void unpack_weights(const float* packed, std::int64_t n, std::int64_t k, float* w);
/// The same with rows of w `ldw` floats apart (a head's keys inside a [S, 3E] projection).
void pack_weights(const float* w, std::int64_t ldw, std::int64_t n, std::int64_t k, float* out);
/// Packs b [k,n] (row-major, rows `ldb` floats apart: the right operand written the usual way round) into
/// the same panel form.
void pack_columns(const float* b, std::int64_t ldb, std::int64_t k, std::int64_t n, float* out);

/// The layout name of a constant weight [n,k] packed whole by pack_weights (TensorType::layout): the
/// pack-weights pass makes such constants (ops' pack rules, pack_gemm_weight in ops/common.hpp) and plan files
/// store them. Rows row0.. of it start at packed + row0·k floats when row0 is a multiple of kPanel.
inline constexpr const char* kPackedLayout = "panels16";
/// How many whole weights pack_weights(w, n, k, out) has packed in this process: tests check that plans
/// made from one graph, and plans loaded from a file, pack nothing.
std::size_t packs_made();

/// The activation an Epilogue applies: the activations of the table (ops/activation.cpp) that have a
/// `gemm` column, resolved from linear's `activation` attribute once, when its kernel is made.
enum class Activation : std::uint8_t { None, Relu, Gelu, GeluTanh, Tanh, Sigmoid };

/// What is applied to each result before it is stored: · scale, + bias[n], then the activation, then
/// + residual[m,n]. gelu uses erf by the Abramowitz-Stegun 7.1.26 rational form (|error| <= ~3e-7 in f32),
/// tanh, gelu_tanh and sigmoid the vector exponential (relative error ~2e-7).
struct Epilogue {
  float scale = 1.0f;
  const float* bias = nullptr;  // [n], or null
  Activation activation = Activation::None;
  const float* residual = nullptr;  // [m, ldr], or null; must not overlap c
  std::int64_t ldr = 0;
};

/// When multiply() with threads = 0 uses the whole OpenMP team rather than the calling thread alone: from
/// kSplitFlops multiply-adds x 2 (below that a parallel region costs more than it saves), or from
/// kSplitWeightBytes of weights whatever the rows. A product of few rows is bound by how fast one core
/// streams the weights (a decoding step's 1 x 256 x 1024 linear is 0.5 MFLOP but reads 1 MB): split by
/// columns, each thread reads only its share, so a second core pays even at 0.1 MFLOP. docs/threading.md
/// ("Decoding at batch 1") has the measurements.
inline constexpr double kSplitFlops = 2e6;
inline constexpr double kSplitWeightBytes = 256.0 * 1024;
bool worth_splitting(std::int64_t rows, std::int64_t n, std::int64_t k);

/// c[m, 0..n) = epilogue(a[m, 0..k) · packed) for m in [0, rows). `lda`, `ldc`: row strides in floats.
/// Runs on `threads` threads of the calling thread's OpenMP team (0: omp_get_max_threads where
/// worth_splitting, else 1; 1 inside a parallel region of the caller's own). Each column is computed by one
/// thread with the same instructions whatever the split, so the result does not depend on the thread
/// count. Allocates only on a thread's first call (its row buffer).
void multiply(const float* a, std::int64_t lda, const float* packed, float* c, std::int64_t ldc, std::int64_t rows,
              std::int64_t n, std::int64_t k, const Epilogue& epilogue, int threads = 0);

/// y = softmax (or log_softmax, `log`) of each of `rows` rows of n floats of x; y may be x. AVX-512 or AVX2
/// as variant_level() says; the
/// exponential is a degree-6 polynomial with relative error ~2e-7, and inputs more than 87 below their
/// row's max count as e^-87 (1.6e-38) rather than 0.
void softmax_rows(const float* x, float* y, std::int64_t rows, std::int64_t n, bool log = false);

/// A buffer of at least `floats` floats (64-byte aligned) owned by the calling thread, one per `slot`
/// (0 is multiply's own); it grows when asked for more and is kept for the thread's life, so warm calls
/// allocate nothing. Slots 1..3 are free for callers (the attention kernel).
float* thread_buffer(int slot, std::size_t floats);

}  // namespace kiln::gemm
