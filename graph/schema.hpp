#pragma once
// The schema interface of an operator, as the IR and the passes see it: its inputs, attributes with
// defaults, a one-line doc, its shape rule and layout rules. Kernels (ops/op.hpp) are declared apart, so
// that graph/ and everything that only rewrites graphs stays free of oneDNN. The registry that resolves
// an op's name (find_op) is filled from ops/op_list.inc (ops/registry.cpp); `kilnc ops` lists each op's
// inputs and attributes, and docs/yaml-format.md documents them for model authors.

#include <algorithm>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "graph/activation.hpp"
#include "graph/graph.hpp"

namespace kiln {

class Kernel;
struct KernelCtx;
/// Makes a node's kernel for concrete shapes (ops/op.hpp declares Kernel and KernelCtx).
using KernelFn = std::unique_ptr<Kernel> (*)(const KernelCtx&);

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

/// The layout a node's kernel needs for all of its inputs, given their current types (the output's
/// layout then follows from the shape rule). Null in a schema means plain row-major.
using LayoutFn = std::string (*)(const Node&);

/// Bytes a node's kernel allocates outside the plan's arena while it runs (per-thread working buffers),
/// from the node and its inputs' concrete types (null entries for absent optional inputs). Plans check
/// them against physical memory before making any kernel (docs/errors.md).
using WorkingBytesFn = std::size_t (*)(const Node& node, const std::vector<const TensorType*>& inputs);

/// One input a pack rule replaces: the new constant's type (the same shape; `layout` names the packed form,
/// e.g. "panels16") and where its bytes lie in the buffer the rule fills.
struct PackedInput {
  std::size_t input = 0;
  TensorType type;
  std::size_t offset = 0;
  std::size_t bytes = 0;
};

/// What a schema's pack rule (OpSchema::pack) sees, from the pack-weights pass: the node, and a way to
/// replace constant inputs by a transformed copy that the graph owns, so that every plan made from the
/// graph (one per input shape) and every plan file reads the same bytes.
class PackCtx {
 public:
  virtual ~PackCtx() = default;
  virtual const Node& node() const = 0;
  /// The weight quantization the model is compiled with: GEMM weights go into qgemm's s8 or bf16 panels
  /// instead of f32 ones (docs/quantization.md).
  virtual Quantize quantize() const = 0;
  /// Replaces `parts` (constant inputs) by views into one new buffer of `bytes` (64-byte aligned, zeroed)
  /// that `fill` writes. The first part's constant spans the whole buffer, so that the others stay inside
  /// it (a plan file keeps them together). Packing the same source constants into the same types again
  /// (another node reading the same weights) reuses the first result instead of calling `fill`.
  virtual void replace(const std::vector<PackedInput>& parts, std::size_t bytes,
                       const std::function<void(void* out)>& fill) = 0;
  /// Notes why input i stays as it is (a remark of the pass).
  virtual void keep(std::size_t i, const std::string& why) = 0;
  /// Adds a remark of the pass on this node (e.g. what quantizing a weight did).
  virtual void note(const std::string& message) = 0;
};

/// Transforms a node's constant weights, once, at compile time, into the layout its kernel reads (Kiln's
/// GEMM panels, oneDNN's RNN layouts). Kernels also accept the weights as written (at -O0, or when the
/// rule kept them), packing a private copy when they are made.
using PackFn = void (*)(PackCtx& ctx);

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
  /// exempt: the pack-weights pass (`pack`) or their kernel puts them into the layout the kernel reads.
  LayoutFn layout = nullptr;
  /// For ops that can run in more than one activation layout (conv2d): the layout this node runs fastest
  /// in. The assign-layouts pass stores it in the node's `layout` attribute, which `layout` and the shape
  /// rule then read. Null: the op has no choice.
  LayoutFn preferred_layout = nullptr;
  /// See WorkingBytesFn; null: the kernel needs nothing outside the arena.
  WorkingBytesFn working_bytes = nullptr;
  /// What the op can fold into itself (an activation, a residual input); see PostOps in
  /// graph/activation.hpp. Default: nothing.
  PostOps post_ops;
  /// See PackFn; null: the kernel reads its weights as they are.
  PackFn pack = nullptr;

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
