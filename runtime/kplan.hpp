#pragma once
// Plan files (.kplan): a model compiled ahead of time — the graph after the pass pipeline, its constants
// (weights, including those the passes packed) aligned for memory mapping, the dims it was compiled for,
// the instruction set it targets and a summary of its memory plan — in one versioned, checksummed binary
// file. The format is described in docs/compiler.md.

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graph/graph.hpp"
#include "passes/pass.hpp"

namespace kiln {

namespace detail {
struct ModelImpl;
}

/// The format version this build writes and reads.
inline constexpr std::uint32_t kKplanVersion = 2;  // 2: Kiln GEMM weight panels after the nodes
/// Bytes of the fixed header at the start of every plan file.
inline constexpr std::size_t kKplanHeaderBytes = 128;
/// Offsets of header fields (used by tests that corrupt files on purpose).
inline constexpr std::size_t kKplanVersionOffset = 8;
inline constexpr std::size_t kKplanChecksumOffset = 24;
inline constexpr std::size_t kKplanIsaOffset = 64;

/// A symbolic dim bound at compile time: fixed when min == max, else the range min..max (inclusive).
struct DimRange {
  std::int64_t min = 1;
  std::int64_t max = 1;
  bool fixed() const { return min == max; }
  std::string str() const;  // "32" or "1..512"
};
using DimRanges = std::map<std::string, DimRange>;

/// Parses `--shape` arguments (NAME=DIM or NAME=MIN..MAX); throws kiln::Error naming the bad argument.
DimRanges parse_shape_args(const std::vector<std::string>& args);

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
  std::uint32_t isa = 0;       // dnnl_cpu_isa_t bits the plan was built for
  std::string source;          // the model file it was compiled from
  int opt_level = 2;
  DimRanges dims;              // the --shape bindings (fixed ones are already concrete in the graph)
  std::vector<PlanSummary> plans;
  std::uint64_t file_bytes = 0;
  std::uint64_t checksum = 0;
  std::uint64_t constant_bytes = 0;
  std::uint32_t constants = 0;
  std::uint64_t packed_bytes = 0;  // Kiln GEMM panels carried by the file (ops/gemm.hpp)
  std::uint32_t packs = 0;
};

/// The instruction set oneDNN uses on this CPU, as dnnl_cpu_isa_t bits.
std::uint32_t host_isa();
/// "avx2", "avx512_core", ... (or the bits in hex when unknown).
std::string isa_name(std::uint32_t isa);
/// Parses an ISA name as `isa_name` prints it; false when unknown.
bool parse_isa(const std::string& name, std::uint32_t* out);

/// The checksum stored in a plan file: a 64-bit hash of the whole file with the checksum field taken as
/// zero (computed over 1 MiB blocks in parallel). Not cryptographic: it detects corruption.
std::uint64_t kplan_checksum(const void* data, std::size_t size);

namespace detail {

/// Loads a YAML model, binds the fixed dims of `dims` in its inputs, checks ranges name real dims, and
/// runs the pass pipeline. The ranges are kept in the returned model (sessions reject dims outside them).
/// `stage`, when set, is told when each phase starts (for kilnc's progress line).
std::shared_ptr<ModelImpl> compile_model_with_dims(const std::string& path, const PipelineOptions& options,
                                                   const DimRanges& dims, void (*stage)(const char*) = nullptr);

/// Compiles plans at compile time for the fixed dims and both ends of each range (when every input dim
/// is then known), checking that kernels can be built, and returns their memory-plan summaries.
std::vector<PlanSummary> summarize_plans(const ModelImpl& model);

/// The bytes of a plan file for `model`. `info` supplies isa, source, opt_level and plans.
std::vector<unsigned char> serialize_kplan(const ModelImpl& model, const KplanInfo& info);

/// Reads a plan file image. `bytes` must stay valid while `owner` lives (the model's constants point
/// into it). Throws kiln::Error naming `name` when the image is truncated, corrupt, of another format
/// version, built for an ISA this CPU lacks, or uses an op this build does not know.
std::shared_ptr<ModelImpl> load_kplan(const std::string& name, const void* bytes, std::size_t size,
                                      std::shared_ptr<const void> owner, KplanInfo* info = nullptr);
/// Memory-maps and loads a plan file.
std::shared_ptr<ModelImpl> load_kplan_file(const std::string& path, KplanInfo* info = nullptr);

/// Writes `bytes` to `path` atomically: a temporary file beside it, flushed, then renamed over `path`.
/// On failure (or SIGINT/SIGTERM in kilnc) no partial file is left at `path` and the temporary is removed.
void write_file_atomic(const std::string& path, const void* bytes, std::size_t size);
/// Installs SIGINT/SIGTERM handlers that remove a temporary file being written, then exit by the signal.
void remove_temp_files_on_signal();

}  // namespace detail

}  // namespace kiln
