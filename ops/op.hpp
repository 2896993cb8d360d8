#pragma once
// An operator is declared once: its schema (inputs, attributes with defaults, a one-line doc), its shape
// rule, and its kernel factory. See ops/op_list.inc for the op set; `kilnc ops` lists each op's inputs
// and attributes, and docs/yaml-format.md documents them for model authors.

#include <algorithm>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "graph/graph.hpp"
#include "ops/activation.hpp"

namespace kiln {

/// One input of an op. `weight` names the tensor under a node's `weights:` prefix in a model file
/// (e.g. linear's input `weight` is `<prefix>.weight`); empty for activations.
struct InputSpec {
  std::string name;
  bool optional = false;
  std::string weight;
};

struct AttrSpec {
  std::string name;
  AttrType type = AttrType::Int;
  std::optional<Attr> default_value;  // absent: the attribute is required
  std::string doc;
};

/// What a shape rule sees: the node (attributes, location) and its input types (null for an absent
/// optional input). Shapes may hold symbolic dims.
class ShapeCtx {
 public:
  ShapeCtx(const Node& node, std::vector<const TensorType*> inputs) : node_(node), inputs_(std::move(inputs)) {}
  const Node& node() const { return node_; }
  std::size_t num_inputs() const { return inputs_.size(); }
  bool has(std::size_t i) const { return i < inputs_.size() && inputs_[i] != nullptr; }
  const TensorType& in(std::size_t i) const { return *inputs_.at(i); }
  [[noreturn]] void fail(const std::string& message) const { node_.fail(message); }
  /// Fails unless input i has the dtype.
  void expect_dtype(std::size_t i, DType t) const;
  /// Fails unless input i has the rank.
  void expect_rank(std::size_t i, int rank) const;

 private:
  const Node& node_;
  std::vector<const TensorType*> inputs_;
};

using InferFn = std::vector<TensorType> (*)(const ShapeCtx&);

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

using KernelFn = std::unique_ptr<Kernel> (*)(const KernelCtx&);

/// The layout a node's kernel needs for all of its inputs, given their current types (the output's
/// layout then follows from the shape rule). Null in a schema means plain row-major.
using LayoutFn = std::string (*)(const Node&);

/// Bytes a node's kernel allocates outside the plan's arena while it runs (per-thread working buffers),
/// from the node and its inputs' concrete types (null entries for absent optional inputs). Plans check
/// them against physical memory before making any kernel (docs/errors.md).
using WorkingBytesFn = std::size_t (*)(const Node& node, const std::vector<const TensorType*>& inputs);

struct OpSchema {
  std::string name;
  std::string doc;
  std::vector<InputSpec> inputs;
  bool variadic = false;  // the last input repeats (at least once)
  int num_outputs = 1;
  std::vector<AttrSpec> attrs;
  InferFn infer = nullptr;
  KernelFn make_kernel = nullptr;  // null for view ops
  /// For a view op (reshape): output 0 is input `view_of`'s bytes reinterpreted; no kernel runs.
  int view_of = -1;
  /// Inputs whose buffer output 0 may take over when nothing reads that input afterwards (the kernel
  /// reads each element before writing the same element of the output).
  std::vector<int> in_place;
  /// See LayoutFn; null: plain inputs only. Constant inputs with a weight suffix (InputSpec::weight) are
  /// exempt: their kernel packs them into the layout its primitive wants once, when it is created.
  LayoutFn layout = nullptr;
  /// For ops that can run in more than one activation layout (conv2d): the layout this node runs fastest
  /// in. The assign-layouts pass stores it in the node's `layout` attribute, which `layout` and the shape
  /// rule then read. Null: the op has no choice.
  LayoutFn preferred_layout = nullptr;
  /// See WorkingBytesFn; null: the kernel needs nothing outside the arena.
  WorkingBytesFn working_bytes = nullptr;
  /// What the op can fold into itself (an activation, a residual input); see PostOps in
  /// ops/activation.hpp. Default: nothing.
  PostOps post_ops;

  /// The layout this node needs its inputs in (plain unless the schema says otherwise).
  std::string required_layout(const Node& node) const { return layout ? layout(node) : std::string(); }
  /// Whether input i is a weight (read in whatever layout it has; see `layout`).
  bool is_weight_input(std::size_t i) const {
    return !inputs.empty() && !inputs[std::min(i, inputs.size() - 1)].weight.empty();
  }

  const AttrSpec* find_attr(std::string_view attr) const;
  const InputSpec* find_weight(std::string_view suffix) const;
};

/// The registry: every op compiled in, from ops/op_list.inc.
const OpSchema* find_op(std::string_view name);
std::vector<const OpSchema*> all_ops();

}  // namespace kiln
