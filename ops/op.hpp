#pragma once
// An operator is declared once: its schema (graph/schema.hpp: inputs, attributes with defaults, a
// one-line doc, its shape rule) and its kernel factory, declared here with what kernels see. See
// ops/op_list.inc for the op set.

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "graph/schema.hpp"

namespace kiln {

/// Buffers a kernel runs on: one pointer per node input (null for an absent optional input) and output,
/// plus the scratch memory it asked for.
struct KernelArgs {
  const void* const* in = nullptr;
  void* const* out = nullptr;
  void* scratch = nullptr;
};

/// A kernel is created once per plan for concrete shapes (oneDNN primitives built then), and executed
/// many times. Executing may not allocate.
class Kernel {
 public:
  virtual ~Kernel() = default;
  virtual void execute(dnnl::stream& stream, const KernelArgs& args) = 0;
  /// Scratch bytes needed during execute (carved out of the plan's arena).
  virtual std::size_t scratch_bytes() const { return 0; }
  /// The implementation(s) used, e.g. oneDNN's impl_info_str: "brg:avx2".
  virtual std::string impl() const = 0;
  /// Bytes of weights this kernel holds in a packed copy of its own (Kiln's GEMM panels), which plans
  /// made from the same weights share.
  virtual std::size_t packed_weight_bytes() const { return 0; }
};

struct KernelCtx {
  const Node& node;
  std::vector<TensorType> in;   // concrete
  std::vector<TensorType> out;  // concrete
  const dnnl::engine& engine;
  bool has(std::size_t i) const { return i < node.inputs.size() && node.inputs[i] != nullptr; }
  /// The constant data of input i, or null when it is computed at run time.
  const ConstData* constant(std::size_t i) const {
    return has(i) && node.inputs[i]->is_constant() ? &node.inputs[i]->constant : nullptr;
  }
};

namespace detail {
/// The one oneDNN CPU engine every kernel is made on; the ISA cap (ops/isa.hpp) reaches oneDNN before it
/// is created.
const dnnl::engine& cpu_engine();
}  // namespace detail

}  // namespace kiln
