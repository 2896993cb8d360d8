#pragma once
// A Plan is a graph compiled for concrete input shapes: concrete types for every value, one kernel per
// node (oneDNN primitives created here, once), and a memory plan placing every intermediate tensor and
// every kernel's scratch in one arena by liveness. Running a plan allocates nothing. A Plan instance is
// used by one thread at a time (kernels rebind their buffers on every run); a Session keeps one instance
// per concurrent call (docs/threading.md).

#include <memory>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "graph/graph.hpp"
#include "ops/op.hpp"

namespace kiln {

/// This machine's physical memory in bytes, or the cgroup memory limit when that is lower (0 if unknown).
std::size_t physical_memory_bytes();

class Plan {
 public:
  /// Compiles `graph` for the given concrete shapes of its inputs (in graph input order). Throws
  /// kiln::Error when a shape rule rejects them. With `allocate` false the activation arena is not
  /// allocated yet (arena_bytes() says how much it needs): call allocate_arena() before running.
  ///
  /// Memory is checked before the arena is allocated: the constructor throws kiln::Error, naming the
  /// inputs' shapes, the bytes needed and the limit, when the arena exceeds `memory_limit` (a session's
  /// cap on activation arenas; 0: none), or when the arena plus the working memory kernels allocate
  /// outside it (working_bytes()) exceeds this machine's physical memory (physical_memory_bytes()). A
  /// first physical check, before any kernel is made, uses the largest single tensor plus the working
  /// memory, so that hopeless shapes fail at once.
  Plan(const Graph& graph, const std::vector<std::vector<std::int64_t>>& input_dims, const dnnl::engine& engine,
       bool allocate = true, std::size_t memory_limit = 0);
  ~Plan();

  /// Runs on caller buffers: `inputs[i]` for graph input i, `outputs[j]` sized for output_type(j).
  void run(dnnl::stream& stream, const void* const* inputs, void* const* outputs);

  const TensorType& output_type(std::size_t j) const { return types_[graph_.outputs[j]->id]; }
  const TensorType& value_type(const Value* v) const { return types_[v->id]; }
  std::size_t arena_bytes() const { return arena_bytes_; }
  /// Bytes kernels allocate outside the arena while this plan runs (Kiln's attention keeps each
  /// thread's score rows and packed keys/values in per-thread buffers).
  std::size_t working_bytes() const { return working_bytes_; }
  /// The graph inputs with their concrete types, for messages: "tokens i64[1,200000]".
  std::string inputs_str() const;
  /// Allocates the activation arena (once); throws kiln::Error when out of memory.
  void allocate_arena();
  /// One line per node: name, op, implementation, output type.
  std::string describe() const;

  /// Runs like run(), timing each node (milliseconds, one entry per node; 0 for views).
  void profile(dnnl::stream& stream, const void* const* inputs, void* const* outputs, std::vector<double>& step_ms);
  struct StepInfo {
    const Node* node;
    std::string impl;  // the kernel's implementation, or "view"
  };
  std::vector<StepInfo> steps() const;

 private:
  enum class Where : std::uint8_t { None, Input, Output, Constant, Arena };
  struct Loc {
    Where where = Where::None;
    int index = 0;           // graph input / output index
    std::size_t offset = 0;  // bytes into the arena (or into the root buffer for views)
    const void* constant = nullptr;
  };
  struct Step {
    const Node* node;
    std::unique_ptr<Kernel> kernel;
    std::vector<int> in_values, out_values;  // value ids; -1 for an absent input
    std::vector<const void*> in_ptrs;        // filled per run
    std::vector<void*> out_ptrs;
    std::size_t scratch_offset = 0;
  };
  // What the constructor works out between its steps (runtime/plan.cpp): each value's root buffer, which
  // values are written straight into the caller's outputs, and the live interval of every buffer.
  struct Buffers;
  void bind_types(const std::vector<std::vector<std::int64_t>>& input_dims);
  void check_tensor_sizes(std::size_t physical);
  void check_layouts() const;
  void find_buffers(Buffers& b);
  void share_in_place(Buffers& b) const;
  void make_steps(const dnnl::engine& engine, Buffers& b);
  void place_arena(Buffers& b, std::size_t memory_limit, std::size_t physical);
  void* resolve(int value, const void* const* inputs, void* const* outputs) const;
  [[noreturn]] void refuse(bool at_least, std::size_t need, const std::string& detail, std::size_t physical) const;
  void run_steps(dnnl::stream& stream, const void* const* inputs, void* const* outputs, std::vector<double>* step_ms);

  const Graph& graph_;
  std::vector<TensorType> types_;
  std::vector<Loc> locs_;
  std::vector<Step> steps_;
  std::vector<int> copy_outputs_;  // graph outputs not produced in place (inputs, constants, views)
  std::size_t arena_bytes_ = 0;
  std::size_t working_bytes_ = 0;
  int in_place_ = 0;  // outputs computed in their input's buffer
  std::shared_ptr<char> arena_;
};

}  // namespace kiln
