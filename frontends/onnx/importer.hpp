#pragma once
// The ONNX importer's shared parts (docs/onnx.md): the Importer that reads a ModelProto into a Graph, the
// constants it keeps, and the op table's row type. The mappings live in map_*.cpp, one file per family
// (math, nn, tensor, ...); each exports its rows, and importer.cpp joins them into the op table.

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string_view>

#include "frontends/onnx/onnx_frontend.hpp"
#include "graph/checked.hpp"
#include "graph/schema.hpp"

namespace kiln::onnx_import {

// The opsets this importer reads (ONNX 1.12, Debian 12's libonnx, knows opsets up to 17; opset 7 is where
// the binary ops' NumPy broadcasting, which Kiln's binary ops share, begins).
constexpr int kMinOpset = 7;
constexpr int kMaxOpset = 17;

// A constant tensor (an initializer or a Constant node's value): its bytes in one 64-byte aligned buffer.
struct ConstTensor {
  DType dtype = DType::f32;
  std::vector<std::int64_t> dims;
  ConstData data;
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (auto d : dims) n *= d;
    return n;
  }
};

// An import-time integer value (docs/onnx.md "Shape arithmetic"): a shape, or what exporters compute from
// one (Shape -> Gather -> Unsqueeze -> Concat, int64 scalars). Each element is a Kiln Dim: concrete, or
// symbolic (`batch`, `seq`, `batch*seq`). The ops of map_shape.cpp fold on these without emitting kernels.
struct IntValue {
  std::vector<std::int64_t> dims;  // its own shape: {} for a scalar, {n} for a shape vector
  std::vector<Dim> elems;          // row-major, numel(dims) of them
  DType dtype = DType::i64;        // i64 or i32, or boolean for Equal's result
  bool concrete() const {
    for (const Dim& d : elems)
      if (!d.concrete()) return false;
    return true;
  }
  std::string str() const {  // "[batch,seq,64]" or "seq" for a scalar
    return dims.empty() && elems.size() == 1 ? elems[0].str() : shape_str(elems);
  }
};

/// A dim as a product: a concrete factor times sorted symbols ("4*batch" -> {4, [batch]}), so that
/// `batch*4`, `4*batch` and a shape rule's products compare equal.
struct DimProduct {
  std::int64_t coef = 1;
  std::vector<std::string> syms;
  static DimProduct of(const Dim& d);
  Dim dim() const;  // canonical: "4*batch*seq"
};
/// Whether two dims are the same size for every binding of their symbols.
bool same_dim(const Dim& a, const Dim& b);

// One ONNX node as a mapping function sees it.
struct OnnxNode {
  const onnx::NodeProto& proto;
  int index = 0;
  int opset = 0;
  SourceLoc loc;
  std::string name;  // the node's name, or one made from its op type and index when it has none

  const std::string& op() const { return proto.op_type(); }
  /// "node 'fc1' (Gemm)": how messages name it.
  std::string label() const { return "node '" + name + "' (" + op() + ")"; }
};

class Importer;
using MapFn = void (*)(Importer&, const OnnxNode&);

// One row of the op table: an ONNX op (default domain), the opsets whose semantics the mapping matches
// exactly, and the mapping.
struct OpRow {
  std::string_view op;
  int min_opset;
  int max_opset;
  MapFn map;
};

/// The op table: every row of every map_*.cpp, in one list (importer.cpp).
const std::vector<OpRow>& op_table();

// The rows each family of mappings adds (one function per map_*.cpp).
std::vector<OpRow> math_rows();
std::vector<OpRow> nn_rows();
std::vector<OpRow> tensor_rows();
std::vector<OpRow> logic_rows();
std::vector<OpRow> shape_rows();
std::vector<OpRow> rnn_rows();

/// Folds node `n` at import when it computes an IntValue from IntValues (map_shape.cpp); false when the
/// node must be mapped onto Kiln ops instead.
bool fold_node(Importer& im, const OnnxNode& n);
/// Ops the importer folds on shape values but does not map on data (Equal, Where): consulted after the op
/// table, so a family that maps them on data takes precedence, and not claimed in onnx_supported_ops().
const std::vector<OpRow>& fold_only_rows();

inline std::string domain_name(const std::string& d) { return d.empty() ? "ai.onnx" : d; }
inline bool is_default_domain(const std::string& d) { return d.empty() || d == "ai.onnx"; }

// Symbols are identifiers (letters, digits, '_'); ONNX dim_params are free text ("p2o.DynamicDimension.0").
inline std::string sanitize_symbol(const std::string& s) {
  std::string out;
  for (char c : s) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  if (out.empty() || std::isdigit(static_cast<unsigned char>(out[0]))) out = "d_" + out;
  return out;
}

// Value names are kept when they print unambiguously in the IR: non-empty, printable, no spaces.
inline bool legal_value_name(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isgraph(static_cast<unsigned char>(c))) return false;
  return true;
}

inline bool dtype_of(int onnx_type, DType* out) {
  switch (onnx_type) {
    case onnx::TensorProto_DataType_FLOAT: *out = DType::f32; return true;
    case onnx::TensorProto_DataType_FLOAT16: *out = DType::f16; return true;
    case onnx::TensorProto_DataType_BFLOAT16: *out = DType::bf16; return true;
    case onnx::TensorProto_DataType_DOUBLE: *out = DType::f64; return true;
    case onnx::TensorProto_DataType_INT64: *out = DType::i64; return true;
    case onnx::TensorProto_DataType_INT32: *out = DType::i32; return true;
    case onnx::TensorProto_DataType_INT8: *out = DType::i8; return true;
    case onnx::TensorProto_DataType_UINT8: *out = DType::u8; return true;
    case onnx::TensorProto_DataType_BOOL: *out = DType::boolean; return true;
    default: return false;
  }
}

inline std::string onnx_type_name(int t) {
  return onnx::TensorProto_DataType_IsValid(t)
             ? onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(t))
             : "type " + std::to_string(t);
}

/// A 64-byte aligned buffer for `bytes` that the caller fills; the padding after them is zeroed.
inline std::shared_ptr<void> aligned_buffer(std::size_t bytes) {
  std::shared_ptr<void> mem = allocate_constant_bytes(bytes);
  if (!mem) throw std::bad_alloc();
  return mem;
}

class Importer {
 public:
  explicit Importer(std::string path) : path_(std::move(path)) {}

  std::unique_ptr<Graph> run() {
    read_model();
    check_structure();
    check_ops();
    check_with_library();
    graph_ = std::make_unique<Graph>();
    graph_->name = model_.graph().name().empty() ? "model" : model_.graph().name();
    read_initializers();
    read_inputs();
    const auto& nodes = model_.graph().node();
    for (int i = 0; i < nodes.size(); ++i) {
      OnnxNode n = describe(nodes[i], i);
      if (fold_node(*this, n)) continue;
      row_of(n)->map(*this, n);
    }
    read_outputs();
    graph_->verify();
    graph_->infer_shapes();
    return std::move(graph_);
  }

  // ---- what mapping functions use ----

  /// Fails at the node, naming it: "model.onnx:4:0: error: node 'fc' (Gemm): MESSAGE".
  [[noreturn]] void fail(const OnnxNode& n, const std::string& message) const {
    fail_at(n.loc, n.label() + ": " + message);
  }

  bool has_input(const OnnxNode& n, int i) const { return i < n.proto.input_size() && !n.proto.input(i).empty(); }

  /// Input i as a graph value (constants become Kiln constants on first use); null when absent.
  Value* input(const OnnxNode& n, int i, bool required = true) {
    if (!has_input(n, i)) {
      if (required) fail(n, "expected input " + std::to_string(i) + ", which is absent");
      return nullptr;
    }
    const std::string& name = n.proto.input(i);
    if (auto it = values_.find(name); it != values_.end()) return it->second;
    if (auto it = known_.find(name); it != known_.end() && !constants_.count(name))
      fail(n, "input '" + name + "' is the shape value " + it->second.str() +
                  ", computed at import from symbolic dims; it is used here as tensor data, which would make the "
                  "computation depend on the shape binding (expected it to end in a Reshape, Expand, Slice, "
                  "ConstantOfShape or Range input)");
    if (auto it = constants_.find(name); it != constants_.end()) {
      const ConstTensor& c = it->second;
      Value* v = graph_->add_constant(value_name(name), TensorType{c.dtype, concrete_shape(c.dims)}, c.data);
      values_.emplace(name, v);
      return v;
    }
    fail(n, "input '" + name + "' is not a graph input, an initializer or an earlier node's output");
  }

  /// Input i's constant value (initializer or Constant output); null when it is computed or absent.
  const ConstTensor* constant(const OnnxNode& n, int i) const {
    if (!has_input(n, i)) return nullptr;
    auto it = constants_.find(n.proto.input(i));
    return it == constants_.end() ? nullptr : &it->second;
  }

  /// Input i as an import-time integer value: a folded shape value, or an int64/int32 constant; null when
  /// it is computed at run time or absent.
  const IntValue* known(const OnnxNode& n, int i) {
    if (!has_input(n, i)) return nullptr;
    const std::string& name = n.proto.input(i);
    if (auto it = known_.find(name); it != known_.end()) return &it->second;
    auto c = constants_.find(name);
    if (c == constants_.end()) return nullptr;
    const ConstTensor& t = c->second;
    if (t.dtype != DType::i64 && t.dtype != DType::i32 && t.dtype != DType::boolean) return nullptr;
    if (t.numel() > kMaxKnownElems) return nullptr;
    IntValue v;
    v.dims = t.dims;
    v.dtype = t.dtype;
    for (std::int64_t k = 0; k < t.numel(); ++k) {
      std::int64_t e = t.dtype == DType::i64   ? static_cast<const std::int64_t*>(t.data.data)[k]
                       : t.dtype == DType::i32 ? static_cast<const std::int32_t*>(t.data.data)[k]
                                               : static_cast<const unsigned char*>(t.data.data)[k] != 0;
      v.elems.push_back(Dim::of(e));
    }
    return &known_.emplace(name, std::move(v)).first->second;
  }
  /// Whether input i is a graph value computed at run time (not a constant, not a folded shape value).
  bool computed(const OnnxNode& n, int i) const {
    return has_input(n, i) && values_.count(n.proto.input(i)) && !values_.at(n.proto.input(i))->is_constant();
  }
  /// The graph value of input i when it is one (a graph input or a node's output), without making constants.
  Value* value_of(const OnnxNode& n, int i) const {
    if (!has_input(n, i)) return nullptr;
    auto it = values_.find(n.proto.input(i));
    return it == values_.end() ? nullptr : it->second;
  }

  /// The graph value output `i` of `n` became (after emit); null when none.
  Value* output_value(const OnnxNode& n, int i) const {
    if (i >= n.proto.output_size()) return nullptr;
    auto it = values_.find(n.proto.output(i));
    return it == values_.end() ? nullptr : it->second;
  }

  /// Records output `out` of `n` as an import-time value; a concrete one is also a constant (int64, or
  /// the dtype it has), so that mappings reading constants and tensor inputs see it.
  void define_known(const OnnxNode& n, int out, IntValue v) {
    if (out >= n.proto.output_size() || n.proto.output(out).empty()) return;
    const std::string& name = n.proto.output(out);
    if (values_.count(name) || constants_.count(name) || known_.count(name))
      fail(n, "output '" + name + "' is defined twice");
    if (v.concrete()) {
      ConstTensor c;
      c.dtype = v.dtype == DType::i32 || v.dtype == DType::boolean ? v.dtype : DType::i64;
      c.dims = v.dims;
      const std::size_t bytes = v.elems.size() * dtype_size(c.dtype);
      auto buf = aligned_buffer(bytes);
      for (std::size_t k = 0; k < v.elems.size(); ++k) {
        const std::int64_t e = v.elems[k].value;
        if (c.dtype == DType::i64) static_cast<std::int64_t*>(buf.get())[k] = e;
        else if (c.dtype == DType::i32) static_cast<std::int32_t*>(buf.get())[k] = static_cast<std::int32_t>(e);
        else static_cast<unsigned char*>(buf.get())[k] = e != 0;
      }
      c.data = ConstData{buf.get(), bytes, std::shared_ptr<const void>(buf)};
      constants_.emplace(name, std::move(c));
    }
    known_.emplace(name, std::move(v));
  }

  /// Output `out` of `n` names the same thing as input `in` (Identity, a Cast that changes nothing).
  void alias(const OnnxNode& n, int out, int in) {
    const std::string& name = n.proto.output(out);
    const std::string& src = n.proto.input(in);
    if (values_.count(name) || constants_.count(name) || known_.count(name))
      fail(n, "output '" + name + "' is defined twice");
    if (auto it = known_.find(src); it != known_.end()) known_.emplace(name, it->second);
    if (auto it = constants_.find(src); it != constants_.end()) constants_.emplace(name, it->second);
    if (auto it = values_.find(src); it != values_.end()) values_.emplace(name, it->second);
  }

  /// A graph value and axis whose size is the symbolic dim `d` (the first seen: graph inputs, then the
  /// inputs of Shape nodes); null when none is known.
  std::pair<Value*, int> dim_source(const Dim& d) const {
    auto it = dim_sources_.find(d.sym);
    return it == dim_sources_.end() ? std::pair<Value*, int>{nullptr, -1} : it->second;
  }
  void note_dims_of(Value* v) {
    for (int a = 0; a < v->type.rank(); ++a)
      if (!v->type.shape[a].concrete()) dim_sources_.emplace(v->type.shape[a].sym, std::pair<Value*, int>{v, a});
  }

  /// Shape values larger than this are not tracked (they are data, not shapes).
  static constexpr std::int64_t kMaxKnownElems = 4096;

  const onnx::AttributeProto* attr(const OnnxNode& n, const std::string& key) const {
    for (const auto& a : n.proto.attribute())
      if (a.name() == key) return &a;
    return nullptr;
  }
  std::int64_t attr_int(const OnnxNode& n, const std::string& key, std::int64_t dflt) const {
    const auto* a = attr(n, key);
    if (!a) return dflt;
    if (a->type() != onnx::AttributeProto_AttributeType_INT) fail(n, "expected attribute '" + key + "' to be an int");
    return a->i();
  }
  double attr_float(const OnnxNode& n, const std::string& key, double dflt) const {
    const auto* a = attr(n, key);
    if (!a) return dflt;
    if (a->type() != onnx::AttributeProto_AttributeType_FLOAT)
      fail(n, "expected attribute '" + key + "' to be a float");
    return a->f();
  }
  std::vector<std::int64_t> attr_ints(const OnnxNode& n, const std::string& key,
                                      std::vector<std::int64_t> dflt = {}) const {
    const auto* a = attr(n, key);
    if (!a) return dflt;
    if (a->type() != onnx::AttributeProto_AttributeType_INTS)
      fail(n, "expected attribute '" + key + "' to be a list of ints");
    return {a->ints().begin(), a->ints().end()};
  }
  std::string attr_string(const OnnxNode& n, const std::string& key, const std::string& dflt) const {
    const auto* a = attr(n, key);
    if (!a) return dflt;
    if (a->type() != onnx::AttributeProto_AttributeType_STRING)
      fail(n, "expected attribute '" + key + "' to be a string");
    return a->s();
  }
  /// Fails on any attribute outside `known`: an attribute the mapping does not read could change the result.
  void only_attrs(const OnnxNode& n, std::initializer_list<std::string_view> known) const {
    for (const auto& a : n.proto.attribute())
      if (std::find(known.begin(), known.end(), a.name()) == known.end())
        fail(n, "attribute '" + a.name() + "' is not supported (this importer reads: " + join(known) + ")");
  }
  /// Outputs from `count` on must be absent or unused (Dropout's mask, MaxPool's indices, ...).
  void unused_outputs_from(const OnnxNode& n, int count) const {
    for (int i = count; i < n.proto.output_size(); ++i) {
      const std::string& o = n.proto.output(i);
      if (!o.empty() && used_.count(o))
        fail(n, "output " + std::to_string(i) + " ('" + o + "') is used, but Kiln computes only the first " +
                    std::to_string(count));
    }
  }

  /// Adds the Kiln node for ONNX node `n`: its outputs are n's first outputs, under their ONNX names.
  void emit(const OnnxNode& n, const std::string& op, std::vector<Value*> inputs, AttrMap attrs) {
    const OpSchema* schema = find_op(op);
    if (!schema) fail(n, "internal: Kiln has no op '" + op + "'");
    unused_outputs_from(n, schema->num_outputs);
    std::vector<Value*> outputs;
    for (int i = 0; i < schema->num_outputs; ++i) {
      if (i >= n.proto.output_size() || n.proto.output(i).empty()) fail(n, "expected output " + std::to_string(i));
      outputs.push_back(define(n, n.proto.output(i)));
    }
    add(n, op, n.name, std::move(inputs), std::move(outputs), std::move(attrs));
  }

  /// Adds a Kiln node computing an intermediate value (a mapping of several Kiln nodes); returns it.
  Value* emit_temp(const OnnxNode& n, const std::string& op, const std::string& suffix, std::vector<Value*> inputs,
                   AttrMap attrs) {
    Value* out = graph_->add_value(unique_name(n.proto.output(0) + "/" + suffix), TensorType{});
    add(n, op, n.name + "/" + suffix, std::move(inputs), {out}, std::move(attrs));
    return out;
  }

  /// For mappings whose Kiln node has several outputs that are not n's outputs as they are (LSTM's y is
  /// reshaped, its states transposed): an intermediate value named after the node, ONNX output i as a graph
  /// value (each defined once), and a Kiln node with those outputs.
  Value* temp_value(const OnnxNode& n, const std::string& suffix) {
    return graph_->add_value(unique_name(n.name + "/" + suffix), TensorType{});
  }
  Value* define_output(const OnnxNode& n, int i) { return define(n, n.proto.output(i)); }
  void emit_node(const OnnxNode& n, const std::string& op, const std::string& suffix, std::vector<Value*> inputs,
                 std::vector<Value*> outputs, AttrMap attrs) {
    add(n, op, suffix.empty() ? n.name : n.name + "/" + suffix, std::move(inputs), std::move(outputs),
        std::move(attrs));
  }

  /// A new constant the importer computed (a transposed weight, a reshaped bias).
  Value* add_constant(const std::string& name, TensorType type, ConstData data) {
    return graph_->add_constant(unique_name(name), std::move(type), std::move(data));
  }

  /// Records a Constant node's value under its output name.
  void define_constant(const OnnxNode& n, ConstTensor c) {
    const std::string& name = n.proto.output(0);
    if (values_.count(name) || constants_.count(name)) fail(n, "output '" + name + "' is defined twice");
    constants_.emplace(name, std::move(c));
  }

  ConstTensor read_tensor(const onnx::TensorProto& t, const std::string& what);

  static std::string join(std::initializer_list<std::string_view> items) {
    std::string s;
    for (auto i : items) s += (s.empty() ? "" : ", ") + std::string(i);
    return s;
  }

 private:
  void add(const OnnxNode& n, const std::string& op, const std::string& name, std::vector<Value*> inputs,
           std::vector<Value*> outputs, AttrMap attrs) {
    Node* node =
        graph_->add_node(op, unique_node_name(name), std::move(inputs), std::move(outputs), std::move(attrs), n.loc);
    // Shapes as each node is added, so that later mappings can read their inputs' ranks (Softmax < 13,
    // Flatten, Transpose's default permutation).
    std::vector<const TensorType*> in;
    for (Value* v : node->inputs) in.push_back(v ? &v->type : nullptr);
    std::vector<TensorType> out = node->schema->infer(ShapeCtx(*node, std::move(in)));
    for (std::size_t i = 0; i < out.size() && i < node->outputs.size(); ++i) node->outputs[i]->type = out[i];
  }

  Value* define(const OnnxNode& n, const std::string& name) {
    if (values_.count(name) || constants_.count(name)) fail(n, "output '" + name + "' is defined twice");
    Value* v = graph_->add_value(value_name(name), TensorType{});
    values_.emplace(name, v);
    return v;
  }

  std::string value_name(const std::string& onnx_name) {
    return unique_name(legal_value_name(onnx_name) ? onnx_name : "v" + std::to_string(graph_->num_values()));
  }
  std::string unique_name(const std::string& want) {
    std::string name = want;
    for (int k = 1; !names_.insert(name).second; ++k) name = want + "." + std::to_string(k);
    return name;
  }
  std::string unique_node_name(const std::string& want) {
    std::string name = want;
    for (int k = 1; !node_names_.insert(name).second; ++k) name = want + "." + std::to_string(k);
    return name;
  }

  [[noreturn]] void fail_file(const std::string& message) const { throw Error(path_ + ": error: " + message); }

  OnnxNode describe(const onnx::NodeProto& p, int index) const {
    OnnxNode n{p, index, opset_of(p.domain()), SourceLoc{path_, index + 1, 0}, p.name()};
    if (n.name.empty()) n.name = p.op_type() + "_" + std::to_string(index);
    return n;
  }

  int opset_of(const std::string& domain) const {
    for (const auto& o : model_.opset_import())
      if (is_default_domain(o.domain()) == is_default_domain(domain) &&
          (is_default_domain(domain) || o.domain() == domain))
        return static_cast<int>(o.version());
    return 0;
  }

  const OpRow* row_of(const OnnxNode& n) const {
    if (!is_default_domain(n.proto.domain())) return nullptr;
    for (const auto& r : op_table())
      if (r.op == n.op() && n.opset >= r.min_opset && n.opset <= r.max_opset) return &r;
    for (const auto& r : fold_only_rows())
      if (r.op == n.op() && n.opset >= r.min_opset && n.opset <= r.max_opset) return &r;
    return nullptr;
  }

  void read_model() {
    std::ifstream in(path_, std::ios::binary);
    if (!in) fail_file("cannot open the file (" + std::string(std::strerror(errno)) + ")");
    std::error_code ec;
    const auto size = std::filesystem::file_size(path_, ec);
    if (!model_.ParseFromIstream(&in)) {
      if (!ec && size > (std::uintmax_t{2} << 30))  // protobuf's limit for one message
        fail_file("cannot parse the file: at " + std::to_string(size) +
                  " bytes it exceeds protobuf's 2 GiB limit (store the weights as external data)");
      fail_file(
          "cannot parse the file as an ONNX model (a serialized onnx.ModelProto): truncated, or not an "
          "ONNX file");
    }
    if (!model_.has_graph()) fail_file("not an ONNX model: it has no graph (expected an onnx.ModelProto)");
  }

  // Every node input defined before use, each value defined once: checked here, before the ONNX checker,
  // so that the message names the node by its position.
  void check_structure() {
    const auto& g = model_.graph();
    std::set<std::string> defined;
    for (const auto& i : g.input()) defined.insert(i.name());
    for (const auto& t : g.initializer()) defined.insert(t.name());
    for (int i = 0; i < g.node_size(); ++i) {
      OnnxNode n = describe(g.node(i), i);
      for (const auto& in : n.proto.input()) {
        if (!in.empty() && !defined.count(in))
          fail(n, "input '" + in +
                      "' is not a graph input, an initializer or an output of an earlier node (expected each input "
                      "defined before the node that uses it)");
        used_.insert(in);
      }
      for (const auto& out : n.proto.output())
        if (!out.empty() && !defined.insert(out).second) fail(n, "output '" + out + "' is defined twice");
    }
    for (const auto& o : g.output()) {
      if (!defined.count(o.name()))
        fail_file("graph output '" + o.name() + "' is computed by no node and is not an input or initializer");
      used_.insert(o.name());
    }
  }

  // Every node whose op has no mapping, listed at once.
  void check_ops() {
    std::string list;
    int count = 0;
    const auto& nodes = model_.graph().node();
    for (int i = 0; i < nodes.size(); ++i) {
      OnnxNode n = describe(nodes[i], i);
      if (row_of(n)) continue;
      std::string why;
      if (is_default_domain(n.proto.domain()))
        for (const auto& r : op_table())
          if (r.op == n.op())
            why = "; supported in opsets " + std::to_string(r.min_opset) + " to " + std::to_string(r.max_opset);
      list += "\n  " + n.loc.str() + ": node '" + n.name + "': " + n.op() + " (domain " +
              domain_name(n.proto.domain()) + ", opset " + std::to_string(n.opset) + why + ")";
      ++count;
    }
    if (count)
      fail_file(std::to_string(count) +
                " node(s) use ops that Kiln cannot import (docs/onnx.md lists those it can):" + list);
  }

  void check_with_library() {
    try {
      // With external data the checker must know the model's folder, which only its by-path form sets (it
      // reads the file again; such files are small, their tensors lie outside).
      bool external = false;
      for (const auto& t : model_.graph().initializer())
        external = external || t.data_location() == onnx::TensorProto_DataLocation_EXTERNAL;
      if (external) onnx::checker::check_model(path_);
      else onnx::checker::check_model(model_);
    } catch (const std::exception& e) {
      std::string what = e.what();
      while (!what.empty() && std::isspace(static_cast<unsigned char>(what.back()))) what.pop_back();
      fail_file("not a valid ONNX model (the ONNX checker says: " + what + ")");
    }
  }

  void read_initializers() {
    for (const auto& t : model_.graph().initializer()) {
      if (constants_.count(t.name())) fail_file("initializer '" + t.name() + "' is defined twice");
      constants_.emplace(t.name(), read_tensor(t, "initializer '" + t.name() + "'"));
    }
  }

  void read_inputs() {
    std::map<std::string, std::string> symbols;  // dim_param -> symbol
    std::set<std::string> taken;
    for (const auto& in : model_.graph().input()) {
      if (constants_.count(in.name())) continue;  // IR < 4 lists initializers as inputs too
      const std::string what = "graph input '" + in.name() + "'";
      if (!in.type().has_tensor_type()) fail_file(what + ": expected a tensor, got another kind of value");
      const auto& tt = in.type().tensor_type();
      TensorType type;
      if (!dtype_of(tt.elem_type(), &type.dtype))
        fail_file(what + ": element type " + onnx_type_name(tt.elem_type()) +
                  " is not supported (expected float, float16, bfloat16, double, int64, int32, int8, uint8 or bool)");
      if (!tt.has_shape()) fail_file(what + ": has no shape (expected its rank at least)");
      for (int d = 0; d < tt.shape().dim_size(); ++d) {
        const auto& dim = tt.shape().dim(d);
        if (dim.has_dim_value()) {
          if (dim.dim_value() < 0) fail_file(what + ": dim " + std::to_string(d) + " is negative");
          type.shape.push_back(Dim::of(dim.dim_value()));
          continue;
        }
        std::string param = dim.has_dim_param() && !dim.dim_param().empty()
                                ? dim.dim_param()
                                : in.name() + "_dim" + std::to_string(d);  // a dim with no name: its own symbol
        auto it = symbols.find(param);
        if (it == symbols.end()) {
          std::string sym = sanitize_symbol(param);
          for (int k = 1; taken.count(sym); ++k) sym = sanitize_symbol(param) + "_" + std::to_string(k);
          taken.insert(sym);
          it = symbols.emplace(param, sym).first;
        }
        type.shape.push_back(Dim::symbol(it->second));
      }
      // Concrete dims whose product overflows would make every later size computation overflow.
      std::vector<std::int64_t> dims;
      for (const Dim& d : type.shape)
        if (d.concrete()) dims.push_back(d.value);
      if (!checked::tensor_bytes(dims, dtype_size(type.dtype)))
        fail_file(what + ": shape " + shape_str(type.shape) + " is too large: its size in bytes exceeds " +
                  std::to_string(checked::kMaxSize));
      Value* v = graph_->add_value(value_name(in.name()), type);
      graph_->inputs.push_back(v);
      values_.emplace(in.name(), v);
      note_dims_of(v);
    }
  }

  void read_outputs() {
    for (const auto& o : model_.graph().output()) {
      auto it = values_.find(o.name());
      if (it == values_.end() || it->second->is_constant())
        fail_file("graph output '" + o.name() +
                  "' is a constant or a shape known at import (expected a value the model computes)");
      graph_->outputs.push_back(it->second);
    }
  }

  std::string path_;
  onnx::ModelProto model_;
  std::unique_ptr<Graph> graph_;
  std::map<std::string, ConstTensor> constants_;               // ONNX name -> initializer or Constant value
  std::map<std::string, Value*> values_;                       // ONNX name -> graph value
  std::map<std::string, IntValue> known_;                      // ONNX name -> import-time integer value (shapes)
  std::map<std::string, std::pair<Value*, int>> dim_sources_;  // symbolic dim -> a value and axis of that size
  std::set<std::string> used_;                                 // ONNX names some node or the graph's outputs read
  std::set<std::string> names_, node_names_;
};

// ---- helpers the mappings share (importer.cpp) ----

/// The values of a constant as int64 (shapes, axes) or as doubles (scalars); fails unless integer/float.
std::vector<std::int64_t> const_ints(Importer& im, const OnnxNode& n, const ConstTensor& c, const std::string& what);
double const_scalar(Importer& im, const OnnxNode& n, const ConstTensor& c, const std::string& what);
inline int rank_of(Value* v) { return v->type.rank(); }
/// Every input of the node, in order (each required).
std::vector<Value*> all_inputs(Importer& im, const OnnxNode& n);

}  // namespace kiln::onnx_import
