#pragma once
// The IR: values, nodes and graphs. See docs/ARCHITECTURE.md.

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "graph/types.hpp"
#include "kiln/model.hpp"

namespace kiln {

struct OpSchema;
class Node;

/// Bytes a constant value holds, possibly a view into a memory-mapped weights file; `owner` keeps the
/// mapping (or the heap buffer) alive as long as any graph refers to it.
struct ConstData {
  const void* data = nullptr;
  std::size_t bytes = 0;
  std::shared_ptr<const void> owner;
};

/// A buffer for a constant that a pass or a frontend computes: `bytes` (at least 64) bytes, 64-byte aligned so
/// that kernels and plan files can use it as they use mapped weights; the padding after `bytes` is zeroed, the
/// caller fills the rest. Null when memory runs out (the caller says what it was making).
std::shared_ptr<void> allocate_constant_bytes(std::size_t bytes);

/// One tensor in the graph.
class Value {
 public:
  std::string name;
  TensorType type;
  Node* producer = nullptr;  // null for graph inputs and constants
  std::vector<Node*> users;  // one entry per use (a node using it twice appears twice)
  ConstData constant;        // set for weights and folded constants
  int id = -1;               // dense index, stable until the graph is compacted

  bool is_constant() const { return constant.data != nullptr || (constant.bytes == 0 && constant.owner); }
};

/// One operation. `schema` is resolved from `op` by the registry when the node is created.
class Node {
 public:
  std::string op;
  std::string name;
  const OpSchema* schema = nullptr;
  std::vector<Value*> inputs;  // a null entry is an optional input that is absent
  std::vector<Value*> outputs;
  AttrMap attrs;
  SourceLoc loc;

  /// Reads an attribute the schema declares; the schema's default applies when it is not set.
  std::int64_t attr_int(const std::string& key) const;
  double attr_float(const std::string& key) const;
  const std::string& attr_string(const std::string& key) const;
  const std::vector<std::int64_t>& attr_ints(const std::string& key) const;
  bool attr_bool(const std::string& key) const;
  const Attr& attr(const std::string& key) const;

  /// "layer_norm 'n1'" — how diagnostics name this node.
  std::string label() const;
  /// Throws kiln::Error at this node's location, prefixed with its label.
  [[noreturn]] void fail(const std::string& message) const;
};

/// A graph: nodes in topological order, inputs, outputs, constants.
class Graph {
 public:
  std::string name;
  std::vector<Value*> inputs;
  std::vector<Value*> outputs;
  /// The weight quantization the model file asks for (YAML's top-level `quantize:`), and where; unset when
  /// it says nothing. LoadOptions::quantize overrides it (docs/quantization.md).
  std::optional<Quantize> quantize;
  SourceLoc quantize_loc;

  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  Value* add_value(const std::string& name, TensorType type);
  Value* add_constant(const std::string& name, TensorType type, ConstData data);
  /// Appends a node (topological order is the caller's responsibility; verify() checks it). Resolves the
  /// schema through the op registry; throws at `loc` when the op is unknown.
  Node* add_node(const std::string& op, const std::string& name, std::vector<Value*> inputs,
                 std::vector<Value*> outputs, AttrMap attrs, SourceLoc loc);
  /// Removes a node; its outputs stay as values without producer (callers rewire users first).
  void remove_node(Node* node);

  // ---- rewriting (passes) ----
  /// Sets input i of `node` (null clears an optional input), keeping user lists right; i may equal the
  /// current input count to append.
  void set_input(Node* node, std::size_t i, Value* v);
  /// Makes `node` the producer of `v` as its output i (the previous output value loses its producer).
  void set_output(Node* node, std::size_t i, Value* v);
  /// Points every use of `from` (node inputs and graph outputs) at `to`.
  void replace_uses(Value* from, Value* to);
  /// Restores topological order after rewrites, keeping the existing order wherever it is valid.
  void toposort();
  /// Whether `v` is one of the graph's outputs.
  bool is_output(const Value* v) const;
  /// Drops values that no node, input or output refers to and renumbers ids densely.
  void compact();

  Value* find_value(const std::string& name) const;
  const std::vector<std::unique_ptr<Node>>& nodes() const { return nodes_; }
  const std::vector<std::unique_ptr<Value>>& values() const { return values_; }
  std::size_t num_values() const { return values_.size(); }

  /// Checks structure: every input defined before use, names unique, producers/users consistent,
  /// arities and attribute types as the schema says. Throws kiln::Error at the offending node.
  void verify() const;
  /// Runs each node's shape rule in order, setting output types. Throws at the offending node.
  void infer_shapes();
  /// Stable text form. `with_locations` appends `loc(file:line:col)` to each node.
  std::string print(bool with_locations = false) const;
  /// Graphviz DOT: one box per node (op, name, attributes), one edge per value use labelled with its
  /// type; graph inputs and outputs as ellipses; weights summarized inside the node that reads them.
  std::string to_dot() const;

 private:
  std::vector<std::unique_ptr<Value>> values_;
  std::vector<std::unique_ptr<Node>> nodes_;
};

}  // namespace kiln
