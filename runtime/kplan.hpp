#pragma once
// Plan files (.kplan): a model compiled ahead of time — the graph after the pass pipeline, its constants
// (weights, including those the passes packed) aligned for memory mapping, the dims it was compiled for,
// the instruction set it targets and a summary of its memory plan — in one versioned, checksummed binary
// file. The format is described in docs/compiler.md; runtime/kplan_format.cpp reads and writes it.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/dims.hpp"
#include "runtime/kplan_isa.hpp"

namespace kiln {

namespace detail {
struct ModelImpl;
}

/// The format version this build writes and reads.
/// 2: Kiln GEMM weight panels after the nodes. 3: the checksum is XXH3-64 (xxHash); packed weights are
/// ordinary constants (the pack-weights pass), no panel list.
inline constexpr std::uint32_t kKplanVersion = 3;
/// Bytes of the fixed header at the start of every plan file.
inline constexpr std::size_t kKplanHeaderBytes = 128;
/// Offsets of header fields (used by tests that corrupt files on purpose).
inline constexpr std::size_t kKplanVersionOffset = 8;
inline constexpr std::size_t kKplanChecksumOffset = 24;
inline constexpr std::size_t kKplanIsaOffset = 64;

/// The memory plan compiled for one set of concrete input dims (at compile time, for the fixed dims and
/// for both ends of each range).
struct PlanSummary {
  std::vector<std::vector<std::int64_t>> input_dims;  // per graph input
  std::uint64_t arena_bytes = 0;
  std::uint32_t kernels = 0;
};

/// What a plan file says about itself, besides the graph.
struct KplanInfo {
  std::uint32_t version = kKplanVersion;
  std::uint32_t isa = 0;  // dnnl_cpu_isa_t bits the plan was built for
  std::string source;     // the model file it was compiled from
  int opt_level = 2;
  DimRanges dims;  // the --shape bindings (fixed ones are already concrete in the graph)
  std::vector<PlanSummary> plans;
  std::uint64_t file_bytes = 0;
  std::uint64_t checksum = 0;
  std::uint64_t constant_bytes = 0;
  std::uint32_t constants = 0;
  std::uint64_t packed_bytes = 0;  // Kiln GEMM panels carried by the file (ops/gemm.hpp)
  std::uint32_t packs = 0;
  std::uint64_t quantized_bytes = 0;  // quantized weights (qgemm's s8/bf16 panels; docs/quantization.md)
  std::uint32_t quantized = 0;
};

/// The checksum stored in a plan file: XXH3-64 (xxHash) of the whole file with the checksum field taken as
/// zero. Not cryptographic: it detects corruption.
std::uint64_t kplan_checksum(const void* data, std::size_t size);

namespace detail {

/// The bytes of a plan file for `model`. `info` supplies isa, source, opt_level, dims and plans.
std::vector<unsigned char> serialize_kplan(const ModelImpl& model, const KplanInfo& info);

/// Reads a plan file image. `bytes` must stay valid while `owner` lives (the model's constants point
/// into it). Throws kiln::Error naming `name` when the image is truncated, corrupt, of another format
/// version, built for an ISA this CPU lacks, or uses an op this build does not know.
std::shared_ptr<ModelImpl> load_kplan(const std::string& name, const void* bytes, std::size_t size,
                                      const std::shared_ptr<const void>& owner, KplanInfo* info = nullptr);
/// Memory-maps and loads a plan file.
std::shared_ptr<ModelImpl> load_kplan_file(const std::string& path, KplanInfo* info = nullptr);

}  // namespace detail

}  // namespace kiln
