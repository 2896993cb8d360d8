#pragma once
/// \file
/// Loading a model and running it.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/tensor.hpp"

namespace kiln {

namespace detail {
struct ModelImpl;
struct SessionImpl;
}  // namespace detail

/// A graph input or output as declared by the model. Symbolic dims (e.g. `batch`) appear in `dims` as
/// their names; concrete dims as decimal numbers.
struct IoInfo {
  std::string name;
  DType dtype = DType::f32;
  std::vector<std::string> dims;
};

/// How a Session uses the CPU (docs/threading.md).
enum class ThreadingMode : std::uint8_t {
  /// One request at a time gets all `intra_op_threads` (oneDNN's OpenMP team and Kiln's TBB kernels);
  /// concurrent callers wait their turn, blocked (not spinning). Lowest latency per request.
  latency,
  /// Up to `intra_op_threads` requests run side by side, each on its calling thread only (oneDNN and TBB
  /// kernels single-threaded); further callers wait, blocked. Highest throughput with many callers.
  throughput,
};

/// Per-session threading and memory settings. Threads used by one session at any moment never exceed
/// `intra_op_threads` (see docs/threading.md).
struct SessionOptions {
  ThreadingMode mode = ThreadingMode::latency;
  /// Cores this session may use at once; 0 means all the cores the process may run on.
  int intra_op_threads = 0;
  /// Compiled plans (one per distinct set of input shapes) kept; the least recently used beyond this is
  /// dropped once no call is using it.
  std::size_t max_plans = 16;
  /// Cap in bytes on the activation arenas this session holds (all plans and all concurrent calls
  /// together); 0 means no cap. A run that would need more fails with kiln::Error (after dropping idle
  /// plans), leaving the session usable.
  std::size_t memory_limit = 0;
};

/// Memory a session holds, as reported by Session::memory().
struct MemoryStats {
  std::size_t weight_bytes = 0;      ///< the model's weights, shared by every session of the model (not per session)
  std::size_t arena_bytes = 0;       ///< activation arenas held now (every plan instance, idle or running)
  std::size_t peak_arena_bytes = 0;  ///< highest arena_bytes so far
  std::size_t plans = 0;             ///< input-shape sets with a compiled plan now (<= max_plans)
  std::size_t contexts = 0;          ///< plan instances now (one per shape set per concurrently running call)
  std::size_t memory_limit = 0;      ///< the cap (0: none)
};

/// Post-training weight quantization, chosen when a model is loaded or compiled (docs/quantization.md).
enum class Quantize : std::uint8_t {
  /// f32 weights, as the model has them.
  none,
  /// int8: the weights of linear, the attention projections and the generator as symmetric s8 with one
  /// scale per output channel; activations quantized per row at each call; s32 sums.
  int8,
  /// bf16: those weights rounded to bfloat16; products summed in f32 (CPUs with AVX2 or AVX512_BF16).
  bf16,
};
/// "none", "int8" or "bf16".
const char* quantize_name(Quantize q);
/// Parses "none", "int8" or "bf16"; returns false for any other name.
bool parse_quantize(std::string_view name, Quantize* out);

/// Options for loading a model.
struct LoadOptions {
  /// Optimization level: 0 runs the graph as written; 1 removes dead code; 2 (default) also fuses
  /// (see `kilnc passes`).
  int opt_level = 2;
  /// Names of passes not to run.
  std::vector<std::string> disabled_passes;
  /// Weight quantization (docs/quantization.md); unset: what the model file asks (YAML's top-level
  /// `quantize:`, else none). Set, it overrides the file. Loading fails with kiln::Error where this CPU
  /// cannot run the format. Does not apply to `.kplan` files (their weights were quantized when compiled).
  std::optional<Quantize> quantize;
  /// Settings for sessions created with Session(model) (a Session may override them).
  SessionOptions session;
};

/// A loaded, verified model: the graph with its weights (memory-mapped from the weights file, which stays
/// mapped while any Model or Session copy refers to it). Cheap to copy: copies share the same graph.
class Model {
 public:
  Model() = default;
  /// Wraps an already compiled model (used by tools inside Kiln).
  explicit Model(std::shared_ptr<const detail::ModelImpl> impl) : impl_(std::move(impl)) {}

  /// Loads a `.yaml` model file and the weights file it names, an `.onnx` model (docs/onnx.md), or a
  /// `.kplan` plan file compiled by
  /// `kilnc compile` (memory-mapped; `options` then do not apply: the passes ran at compile time).
  /// Throws kiln::Error with file, line and column on any problem in either file.
  static Model load(const std::string& path, const LoadOptions& options = {});
  /// Loads a plan file image already in memory (e.g. embedded by `kilnc compile --emit cpp`). No copy is
  /// made when `data` is 64-byte aligned: it must then stay valid and unchanged while any Model, Session
  /// or copy made from the result lives. `name` is used in error messages. Throws kiln::Error when the
  /// image is truncated, corrupt, of another format version or built for an ISA this CPU lacks.
  static Model load_plan(const void* data, std::size_t size, const std::string& name = "<memory>");

  /// Loads a model from memory: the YAML text of a model file and the bytes of its `.safetensors`
  /// weights (the model's `weights:` key, if present, is ignored). `name` stands for the file in error
  /// messages. The weights are copied once into memory the Model owns, so the caller's buffers may be
  /// freed when this returns.
  static Model load_from_memory(const std::string& yaml_text, const void* weights, std::size_t weights_size,
                                const LoadOptions& options = {}, const std::string& name = "<memory>");

  const std::string& name() const;
  std::vector<IoInfo> inputs() const;
  std::vector<IoInfo> outputs() const;
  /// The IR as text (stable; one node per line).
  std::string ir(bool with_locations = false) const;
  /// Bytes of weights the model holds (shared by all its sessions).
  std::size_t weight_bytes() const;
  const LoadOptions& options() const;

  std::shared_ptr<const detail::ModelImpl> impl() const { return impl_; }

 private:
  std::shared_ptr<const detail::ModelImpl> impl_;
};

/// Runs a model. A session compiles one execution plan per distinct set of input shapes (primitives,
/// buffers) on first use and reuses it afterwards; after that warm-up, `run` allocates only the output
/// tensors it returns (or nothing, with the overload that takes output tensors).
///
/// Thread safety: every member function may be called concurrently from any number of threads on one
/// Session (docs/threading.md). Concurrent calls for the same shapes each get their own execution context
/// (activation arena and bound buffers) from a pool; compiled primitives and weights are shared. Moving or
/// destroying a Session while another thread uses it is not allowed.
class Session {
 public:
  /// A session with the model's LoadOptions::session settings.
  explicit Session(const Model& model);
  Session(const Model& model, const SessionOptions& options);
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;

  /// Runs the model on named inputs; returns every declared output by name (owned tensors).
  std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& inputs);

  /// Runs the model writing into caller-provided output tensors (every declared output, by name, with
  /// the exact dtype and shape; a `Tensor::view` over the caller's memory works). Once the plan for
  /// these shapes exists, this call performs no heap allocation in Kiln's code.
  void run(const std::map<std::string, Tensor>& inputs, std::map<std::string, Tensor>& outputs);

  /// Runs independent requests side by side on TBB's threads (and the caller's): `outputs[i]` receives
  /// request `inputs[i]` exactly as `run(inputs[i], outputs[i])` would. In throughput mode up to
  /// max_concurrent_runs() requests run at once, each on one thread; in latency mode one after another,
  /// each on all threads. When requests fail, all the others still run, then the first error is thrown.
  void run_many(const std::vector<std::map<std::string, Tensor>>& inputs,
                std::vector<std::map<std::string, Tensor>>& outputs);

  /// The shape of every output for these inputs (their data is not read), compiling the plan if needed.
  std::map<std::string, std::vector<std::int64_t>> output_shapes(const std::map<std::string, Tensor>& inputs);

  /// Compiles (or finds) the plan for these input shapes without running it.
  void prepare(const std::map<std::string, Tensor>& inputs);

  /// Number of plans compiled so far (one per distinct input-shape set; counts recompiles after eviction).
  std::size_t plan_count() const;

  /// Memory held now (weights, arenas, plans, contexts) and the cap.
  MemoryStats memory() const;
  const SessionOptions& options() const;
  /// Threads one request uses in this session (1 in throughput mode) and requests run at once.
  int threads_per_run() const;
  int max_concurrent_runs() const;

  /// Describes the plan for these input shapes (compiling it if needed): one line per kernel with the
  /// implementation oneDNN or Kiln chose, then activation arena bytes and weight bytes.
  std::string explain(const std::map<std::string, Tensor>& inputs);

  /// Time per node, as a table sorted by total time: runs the model `runs` times (after one warm-up run)
  /// timing each kernel, and reports the median per node, its share, and its implementation.
  std::string profile(const std::map<std::string, Tensor>& inputs, int runs);

 private:
  std::unique_ptr<detail::SessionImpl> impl_;
};

}  // namespace kiln
