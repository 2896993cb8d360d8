#include "frontends/onnx/onnx_frontend.hpp"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string_view>

#include "graph/checked.hpp"
#include "graph/schema.hpp"

namespace kiln {
namespace {

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

const std::vector<OpRow>& op_table();

std::string domain_name(const std::string& d) { return d.empty() ? "ai.onnx" : d; }
bool is_default_domain(const std::string& d) { return d.empty() || d == "ai.onnx"; }

// Symbols are identifiers (letters, digits, '_'); ONNX dim_params are free text ("p2o.DynamicDimension.0").
std::string sanitize_symbol(const std::string& s) {
  std::string out;
  for (char c : s) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  if (out.empty() || std::isdigit(static_cast<unsigned char>(out[0]))) out = "d_" + out;
  return out;
}

// Value names are kept when they print unambiguously in the IR: non-empty, printable, no spaces.
bool legal_value_name(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isgraph(static_cast<unsigned char>(c))) return false;
  return true;
}

bool dtype_of(int onnx_type, DType* out) {
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

std::string onnx_type_name(int t) {
  return onnx::TensorProto_DataType_IsValid(t)
             ? onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(t))
             : "type " + std::to_string(t);
}

/// A 64-byte aligned buffer for `bytes` that the caller fills; the padding after them is zeroed.
std::shared_ptr<void> aligned_buffer(std::size_t bytes) {
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
    }
  }

  void read_outputs() {
    for (const auto& o : model_.graph().output()) {
      auto it = values_.find(o.name());
      if (it == values_.end() || it->second->is_constant())
        fail_file("graph output '" + o.name() + "' is a constant (expected a value the model computes)");
      graph_->outputs.push_back(it->second);
    }
  }

  std::string path_;
  onnx::ModelProto model_;
  std::unique_ptr<Graph> graph_;
  std::map<std::string, ConstTensor> constants_;  // ONNX name -> initializer or Constant value
  std::map<std::string, Value*> values_;          // ONNX name -> graph value
  std::set<std::string> used_;                    // ONNX names some node or the graph's outputs read
  std::set<std::string> names_, node_names_;
};

// ---- tensors ----

ConstTensor Importer::read_tensor(const onnx::TensorProto& t, const std::string& what) {
  ConstTensor c;
  if (!dtype_of(t.data_type(), &c.dtype))
    fail_file(what + ": element type " + onnx_type_name(t.data_type()) +
              " is not supported (expected float, float16, bfloat16, double, int64, int32, int8, uint8 or bool)");
  for (auto d : t.dims()) {
    if (d < 0) fail_file(what + ": dim " + std::to_string(d) + " is negative");
    c.dims.push_back(d);
  }
  const std::size_t esize = dtype_size(c.dtype);
  auto bytes_opt = checked::tensor_bytes(c.dims, esize);
  if (!bytes_opt) fail_file(what + ": its size in bytes exceeds " + std::to_string(checked::kMaxSize));
  const auto bytes = static_cast<std::size_t>(*bytes_opt);
  const auto n = static_cast<std::size_t>(c.numel());
  // Allocated only once the source is known to hold the bytes: dims may promise more than the file has.
  std::shared_ptr<void> buf;
  auto alloc = [&] {
    buf = aligned_buffer(bytes);
    return static_cast<unsigned char*>(buf.get());
  };
  auto expect_count = [&](std::size_t got, const char* field) {
    if (got != n)
      fail_file(what + ": " + field + " holds " + std::to_string(got) + " values, expected " + std::to_string(n) +
                " for dims " + shape_str(concrete_shape(c.dims)));
  };

  if (t.data_location() == onnx::TensorProto_DataLocation_EXTERNAL) {
    std::string location;
    std::uint64_t offset = 0, length = bytes;
    bool has_length = false;
    for (const auto& kv : t.external_data()) {
      char* end = nullptr;
      if (kv.key() == "location") location = kv.value();
      if (kv.key() == "offset") offset = std::strtoull(kv.value().c_str(), &end, 10);
      if (kv.key() == "length") {
        length = std::strtoull(kv.value().c_str(), &end, 10);
        has_length = true;
      }
      if (end && *end) fail_file(what + ": external data " + kv.key() + " '" + kv.value() + "' is not a number");
    }
    if (location.empty()) fail_file(what + ": external data without a 'location'");
    std::filesystem::path rel(location);
    if (rel.is_absolute() || std::find(rel.begin(), rel.end(), std::filesystem::path("..")) != rel.end())
      fail_file(what + ": external data location '" + location + "' must be a relative path inside the model's folder");
    const std::filesystem::path file = std::filesystem::path(path_).parent_path() / rel;
    if (has_length && length != bytes)
      fail_file(what + ": external data length " + std::to_string(length) + " differs from the " +
                std::to_string(bytes) + " bytes its dims and type need");
    std::error_code ec;
    const std::uint64_t size = std::filesystem::file_size(file, ec);
    if (ec) fail_file(what + ": cannot open external data file '" + file.string() + "' (" + ec.message() + ")");
    auto end = checked::add_u64(offset, bytes);
    if (!end || *end > size)
      fail_file(what + ": external data [" + std::to_string(offset) + ", " +
                (end ? std::to_string(*end) : "past 2^63") + ") lies outside '" + file.string() + "' of " +
                std::to_string(size) + " bytes");
    unsigned char* out = alloc();
    std::ifstream in(file, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(offset));
    if (!in.read(reinterpret_cast<char*>(out), static_cast<std::streamsize>(bytes)))
      fail_file(what + ": cannot read external data from '" + file.string() + "'");
  } else if (t.has_raw_data()) {
    if (t.raw_data().size() != bytes)
      fail_file(what + ": raw_data holds " + std::to_string(t.raw_data().size()) + " bytes, expected " +
                std::to_string(bytes) + " for " + std::string(dtype_name(c.dtype)) + shape_str(concrete_shape(c.dims)));
    std::memcpy(alloc(), t.raw_data().data(), bytes);
  } else {
    // memcpy from an empty repeated field would read a null pointer: zero-sized tensors copy nothing.
    switch (c.dtype) {
      case DType::f32:
        expect_count(static_cast<std::size_t>(t.float_data_size()), "float_data");
        if (bytes) std::memcpy(alloc(), t.float_data().data(), bytes);
        break;
      case DType::f64:
        expect_count(static_cast<std::size_t>(t.double_data_size()), "double_data");
        if (bytes) std::memcpy(alloc(), t.double_data().data(), bytes);
        break;
      case DType::i64:
        expect_count(static_cast<std::size_t>(t.int64_data_size()), "int64_data");
        if (bytes) std::memcpy(alloc(), t.int64_data().data(), bytes);
        break;
      case DType::i32:
        expect_count(static_cast<std::size_t>(t.int32_data_size()), "int32_data");
        if (bytes) std::memcpy(alloc(), t.int32_data().data(), bytes);
        break;
      default: {  // int8, uint8, bool: one value per int32; float16, bfloat16: the bits in the low 16
        expect_count(static_cast<std::size_t>(t.int32_data_size()), "int32_data");
        unsigned char* out = alloc();
        for (std::size_t i = 0; i < n; ++i) {
          const auto v = static_cast<std::uint32_t>(t.int32_data(static_cast<int>(i)));
          if (esize == 1) out[i] = static_cast<unsigned char>(v);
          else {
            const auto h = static_cast<std::uint16_t>(v);
            std::memcpy(out + 2 * i, &h, 2);
          }
        }
      }
    }
  }
  if (!buf) alloc();  // a zero-sized tensor still needs an owner: Value::is_constant() looks for one
  c.data = ConstData{buf.get(), bytes, std::shared_ptr<const void>(buf)};
  return c;
}

// The values of a constant as int64 (shapes, axes) or as doubles (scalars); fails unless integer/float.
std::vector<std::int64_t> const_ints(Importer& im, const OnnxNode& n, const ConstTensor& c, const std::string& what) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(c.numel()));
  if (c.dtype == DType::i64) std::memcpy(v.data(), c.data.data, c.data.bytes);
  else if (c.dtype == DType::i32)
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<const std::int32_t*>(c.data.data)[i];
  else im.fail(n, "expected " + what + " of type int64 or int32, got " + std::string(dtype_name(c.dtype)));
  return v;
}

double const_scalar(Importer& im, const OnnxNode& n, const ConstTensor& c, const std::string& what) {
  if (c.numel() != 1) im.fail(n, "expected " + what + " to hold one value, got " + std::to_string(c.numel()));
  switch (c.dtype) {
    case DType::f32: return *static_cast<const float*>(c.data.data);
    case DType::f64: return *static_cast<const double*>(c.data.data);
    case DType::i64: return static_cast<double>(*static_cast<const std::int64_t*>(c.data.data));
    case DType::i32: return *static_cast<const std::int32_t*>(c.data.data);
    default: im.fail(n, "expected " + what + " of type float, double, int64 or int32");
  }
}

// ---- mappings, one per row of the op table ----

int rank_of(Value* v) { return v->type.rank(); }

// Every input of the node, in order (each required).
std::vector<Value*> all_inputs(Importer& im, const OnnxNode& n) {
  std::vector<Value*> ins;
  ins.reserve(static_cast<std::size_t>(n.proto.input_size()));
  for (int i = 0; i < n.proto.input_size(); ++i) ins.push_back(im.input(n, i));
  return ins;
}

void map_same(Importer& im, const OnnxNode& n, const std::string& op) {
  im.only_attrs(n, {});
  im.emit(n, op, all_inputs(im, n), {});
}

void map_add(Importer& im, const OnnxNode& n) { map_same(im, n, "add"); }
void map_sub(Importer& im, const OnnxNode& n) { map_same(im, n, "sub"); }
void map_mul(Importer& im, const OnnxNode& n) { map_same(im, n, "mul"); }
void map_div(Importer& im, const OnnxNode& n) { map_same(im, n, "div"); }
void map_relu(Importer& im, const OnnxNode& n) { map_same(im, n, "relu"); }
void map_sigmoid(Importer& im, const OnnxNode& n) { map_same(im, n, "sigmoid"); }
void map_tanh(Importer& im, const OnnxNode& n) { map_same(im, n, "tanh"); }
void map_exp(Importer& im, const OnnxNode& n) { map_same(im, n, "exp"); }
void map_sqrt(Importer& im, const OnnxNode& n) { map_same(im, n, "sqrt"); }
void map_erf(Importer& im, const OnnxNode& n) { map_same(im, n, "erf"); }

void map_pow(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {});
  Value* x = im.input(n, 0);
  const ConstTensor* y = im.constant(n, 1);
  if (!y) im.fail(n, "expected a constant exponent (Kiln's pow takes the exponent as an attribute)");
  if (static_cast<int>(y->dims.size()) > rank_of(x))
    im.fail(n, "expected an exponent of rank at most the base's " + std::to_string(rank_of(x)));
  im.emit(n, "pow", {x}, {{"exponent", const_scalar(im, n, *y, "the exponent")}});
}

void map_matmul(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {});
  Value* a = im.input(n, 0);
  Value* b = im.input(n, 1);
  if (rank_of(a) < 2 || rank_of(b) < 2)
    im.fail(n, "expected operands of rank >= 2, got " + a->type.str() + " and " + b->type.str() +
                   " (1-D operands are not supported)");
  im.emit(n, "matmul", {a, b}, {});
}

// Gemm: A·B(ᵀ) + C with alpha = beta = 1 and A not transposed. B transposed ([N,K], torch's Linear export)
// is linear's weight as it is; a constant B [K,N] is transposed once here; a computed B [K,N] is a matmul.
void map_gemm(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"alpha", "beta", "transA", "transB"});
  if (im.attr_float(n, "alpha", 1.0) != 1.0 || im.attr_float(n, "beta", 1.0) != 1.0)
    im.fail(n, "expected alpha = beta = 1, got alpha = " + std::to_string(im.attr_float(n, "alpha", 1.0)) +
                   ", beta = " + std::to_string(im.attr_float(n, "beta", 1.0)));
  if (im.attr_int(n, "transA", 0) != 0) im.fail(n, "expected transA = 0 (a transposed A is not supported)");
  Value* a = im.input(n, 0);
  const bool trans_b = im.attr_int(n, "transB", 0) != 0;
  const ConstTensor* bc = im.constant(n, 1);
  Value* weight = nullptr;
  if (!trans_b && bc && bc->dtype == DType::f32 && bc->dims.size() == 2) {
    const std::int64_t k = bc->dims[0], cols = bc->dims[1];
    auto buf = aligned_buffer(bc->data.bytes);
    const auto* src = static_cast<const float*>(bc->data.data);
    auto* dst = static_cast<float*>(buf.get());
    for (std::int64_t i = 0; i < k; ++i)
      for (std::int64_t j = 0; j < cols; ++j) dst[j * k + i] = src[i * cols + j];
    weight = im.add_constant(n.proto.input(1) + "/transposed", TensorType{DType::f32, concrete_shape({cols, k})},
                             ConstData{buf.get(), bc->data.bytes, std::shared_ptr<const void>(buf)});
  } else if (trans_b) {
    weight = im.input(n, 1);
  }
  // C as linear's bias when it is a constant [N] or [1,N]; any other C (computed, [M,N], a scalar) is added.
  Value* bias = nullptr;
  if (weight && im.has_input(n, 2)) {
    const ConstTensor* cc = im.constant(n, 2);
    const Dim cols = weight->type.rank() == 2 ? weight->type.shape[0] : Dim::of(-1);
    if (cc && cc->dtype == DType::f32 && cols.concrete() &&
        ((cc->dims.size() == 1 && cc->dims[0] == cols.value) ||
         (cc->dims.size() == 2 && cc->dims[0] == 1 && cc->dims[1] == cols.value)))
      bias = cc->dims.size() == 1
                 ? im.input(n, 2)
                 : im.add_constant(n.proto.input(2) + "/bias", TensorType{DType::f32, {cols}}, cc->data);
  }
  if (!im.has_input(n, 2) || bias) {
    if (weight) im.emit(n, "linear", {a, weight, bias, nullptr}, {});
    else im.emit(n, "matmul", {a, im.input(n, 1)}, {});
    return;
  }
  Value* prod = weight ? im.emit_temp(n, "linear", "product", {a, weight, nullptr, nullptr}, {})
                       : im.emit_temp(n, "matmul", "product", {a, im.input(n, 1)}, {});
  im.emit(n, "add", {prod, im.input(n, 2)}, {});
}

// Softmax and LogSoftmax: from opset 13 along `axis` (default -1); before 13 over the input coerced to 2-D
// at `axis` (default 1), which is the same only when `axis` is the last axis.
void map_softmax_like(Importer& im, const OnnxNode& n, const std::string& op) {
  im.only_attrs(n, {"axis"});
  Value* x = im.input(n, 0);
  std::int64_t axis = im.attr_int(n, "axis", n.opset >= 13 ? -1 : 1);
  if (n.opset < 13) {
    const int r = rank_of(x);
    if ((axis < 0 ? axis + r : axis) != r - 1)
      im.fail(n, "before opset 13, " + n.op() + " flattens the dims from axis " + std::to_string(axis) +
                     " on into one; only the last axis (" + std::to_string(r - 1) + " for " + x->type.str() +
                     ") maps onto Kiln's " + op);
    axis = -1;
  }
  im.emit(n, op, {x}, {{"axis", axis}});
}
void map_softmax(Importer& im, const OnnxNode& n) { map_softmax_like(im, n, "softmax"); }
void map_log_softmax(Importer& im, const OnnxNode& n) { map_softmax_like(im, n, "log_softmax"); }

void map_transpose(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"perm"});
  Value* x = im.input(n, 0);
  std::vector<std::int64_t> perm = im.attr_ints(n, "perm");
  if (!im.attr(n, "perm"))  // default: the axes reversed
    for (int i = rank_of(x); i-- > 0;) perm.push_back(i);
  im.emit(n, "transpose", {x}, {{"perm", perm}});
}

void map_reshape(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"allowzero"});
  Value* x = im.input(n, 0);
  const ConstTensor* s = im.constant(n, 1);
  if (!s) im.fail(n, "expected a constant shape (input 1 is computed; Kiln's reshape takes the shape as an attribute)");
  std::vector<std::int64_t> shape = const_ints(im, n, *s, "the shape");
  if (im.attr_int(n, "allowzero", 0) != 0 && std::find(shape.begin(), shape.end(), 0) != shape.end())
    im.fail(n, "allowzero = 1 with a 0 in the shape (a zero-sized dim) is not supported");
  im.emit(n, "reshape", {x}, {{"shape", shape}});
}

// Identity and Dropout at inference: Kiln's dropout, a view that the remove-noops pass removes.
void map_identity(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {});
  im.emit(n, "dropout", {im.input(n, 0)}, {{"p", 0.0}});
}

void map_dropout(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"ratio", "seed"});
  double ratio = im.attr_float(n, "ratio", 0.5);
  if (const ConstTensor* r = im.constant(n, 1)) ratio = const_scalar(im, n, *r, "the ratio");
  if (im.has_input(n, 2)) {
    const ConstTensor* t = im.constant(n, 2);
    if (!t || t->numel() != 1 || t->dtype != DType::boolean || *static_cast<const unsigned char*>(t->data.data))
      im.fail(n, "expected training_mode absent or a constant false (Kiln runs inference only)");
  }
  im.emit(n, "dropout", {im.input(n, 0)}, {{"p", std::clamp(ratio, 0.0, 1.0)}});
}

// ONNX Flatten always gives 2-D [d0*..*d(axis-1), d(axis)*..]; Kiln's flatten keeps the leading dims, so it
// matches at axis 1; other axes become a reshape when one side's dims are concrete.
void map_flatten(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"axis"});
  Value* x = im.input(n, 0);
  const int r = rank_of(x);
  std::int64_t axis = im.attr_int(n, "axis", 1);
  if (axis < 0) axis += r;
  if (axis < 0 || axis > r) im.fail(n, "axis " + std::to_string(axis) + " is outside " + x->type.str());
  if (axis == 1 && r >= 2) return im.emit(n, "flatten", {x}, {{"axis", std::int64_t{1}}});
  auto product = [&](int from, int to) -> std::int64_t {
    std::int64_t p = 1;
    for (int i = from; i < to; ++i) {
      if (!x->type.shape[i].concrete()) return -1;
      p *= x->type.shape[i].value;
    }
    return p;
  };
  const std::int64_t head = product(0, static_cast<int>(axis)), tail = product(static_cast<int>(axis), r);
  std::vector<std::int64_t> shape;
  if (tail > 0) shape = {-1, tail};
  else if (head > 0) shape = {head, -1};
  else
    im.fail(n, "flattening " + x->type.str() + " at axis " + std::to_string(axis) +
                   " needs the dims on one side of the axis concrete and non-zero");
  if (axis == 0) shape = {1, -1};
  im.emit(n, "reshape", {x}, {{"shape", shape}});
}

void map_concat(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"axis"});
  if (!im.attr(n, "axis")) im.fail(n, "expected attribute 'axis'");
  im.emit(n, "concat", all_inputs(im, n), {{"axis", im.attr_int(n, "axis", 1)}});
}

void map_layer_norm(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"axis", "epsilon", "stash_type"});
  Value* x = im.input(n, 0);
  const std::int64_t axis = im.attr_int(n, "axis", -1);
  if (axis != -1 && axis != rank_of(x) - 1)
    im.fail(n, "expected axis -1 (normalizing over the last axis only), got " + std::to_string(axis) + " for " +
                   x->type.str());
  if (im.attr_int(n, "stash_type", 1) != 1) im.fail(n, "expected stash_type 1 (float statistics)");
  im.emit(n, "layer_norm", {x, im.input(n, 1), im.input(n, 2, false), nullptr},
          {{"eps", im.attr_float(n, "epsilon", 1e-5)}});
}

// The 2-D window attributes shared by Conv and the pools: kernel_shape must match, strides, pads
// ([top, left, bottom, right] in both), no auto_pad other than NOTSET or VALID, no dilation (pools).
std::vector<std::int64_t> pads_of(Importer& im, const OnnxNode& n) {
  const std::string auto_pad = im.attr_string(n, "auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID")
    im.fail(n, "expected auto_pad NOTSET or VALID, got " + auto_pad + " (pads computed from the input size)");
  std::vector<std::int64_t> pads = im.attr_ints(n, "pads", {0, 0, 0, 0});
  if (auto_pad == "VALID") pads = {0, 0, 0, 0};
  if (pads.size() != 4) im.fail(n, "expected 4 pads for a 2-D window, got " + std::to_string(pads.size()));
  return pads;
}

Value* input_nchw(Importer& im, const OnnxNode& n) {
  Value* x = im.input(n, 0);
  if (rank_of(x) != 4) im.fail(n, "expected a 2-D input [N,C,H,W], got " + x->type.str() + " (only 2-D is supported)");
  return x;
}

std::vector<std::int64_t> pair_attr(Importer& im, const OnnxNode& n, const std::string& key) {
  std::vector<std::int64_t> v = im.attr_ints(n, key, {1, 1});
  if (v.size() != 2) im.fail(n, "expected 2 " + key + " for a 2-D window, got " + std::to_string(v.size()));
  return v;
}

void map_conv(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"});
  Value* x = input_nchw(im, n);
  Value* w = im.input(n, 1);
  if (auto k = im.attr_ints(n, "kernel_shape");
      !k.empty() && w->type.rank() == 4 && (!w->type.shape[2].is(k[0]) || !w->type.shape[3].is(k[1])))
    im.fail(n, "kernel_shape differs from the weight's " + w->type.str());
  im.emit(n, "conv2d", {x, w, im.input(n, 2, false), nullptr},
          {{"stride", pair_attr(im, n, "strides")},
           {"padding", pads_of(im, n)},
           {"dilation", pair_attr(im, n, "dilations")},
           {"groups", im.attr_int(n, "group", 1)}});
}

void map_batch_norm(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"epsilon", "momentum", "spatial", "training_mode"});
  if (im.attr_int(n, "training_mode", 0) != 0) im.fail(n, "expected training_mode 0 (Kiln runs inference only)");
  // Opsets 7 and 8: spatial = 0 keeps statistics per (channel, position); 1, the default, per channel.
  if (im.attr_int(n, "spatial", 1) != 1) im.fail(n, "expected spatial 1 (statistics per channel)");
  im.emit(n, "batch_norm", {im.input(n, 0), im.input(n, 1), im.input(n, 2), im.input(n, 3), im.input(n, 4)},
          {{"eps", im.attr_float(n, "epsilon", 1e-5)}});
}

AttrMap pool_attrs(Importer& im, const OnnxNode& n) {
  if (im.attr_int(n, "ceil_mode", 0) != 0) im.fail(n, "expected ceil_mode 0");
  const auto d = im.attr_ints(n, "dilations", {1, 1});
  if (std::any_of(d.begin(), d.end(), [](std::int64_t v) { return v != 1; }))
    im.fail(n, "expected dilations of 1 (dilated pooling is not supported)");
  std::vector<std::int64_t> kernel = im.attr_ints(n, "kernel_shape");
  if (kernel.size() != 2) im.fail(n, "expected kernel_shape of 2 entries (2-D pooling)");
  return {{"kernel", kernel}, {"stride", pair_attr(im, n, "strides")}, {"padding", pads_of(im, n)}};
}

void map_max_pool(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"});
  if (im.attr_int(n, "storage_order", 0) != 0) im.fail(n, "expected storage_order 0");
  Value* x = input_nchw(im, n);
  im.emit(n, "max_pool", {x}, pool_attrs(im, n));
}

void map_avg_pool(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads", "strides"});
  Value* x = input_nchw(im, n);
  AttrMap attrs = pool_attrs(im, n);
  attrs["count_include_pad"] = im.attr_int(n, "count_include_pad", 0) != 0;
  im.emit(n, "avg_pool", {x}, std::move(attrs));
}

void map_global_avg_pool(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {});
  im.emit(n, "global_avg_pool", {input_nchw(im, n)}, {});
}

// Constant: a value for later nodes' inputs (a Kiln constant where one is used as a tensor).
void map_constant(Importer& im, const OnnxNode& n) {
  if (n.proto.attribute_size() != 1) im.fail(n, "expected exactly one attribute holding the value");
  const auto& a = n.proto.attribute(0);
  ConstTensor c;
  auto scalars = [&](DType t, const void* src, std::size_t count, std::vector<std::int64_t> dims) {
    c.dtype = t;
    c.dims = std::move(dims);
    const std::size_t bytes = count * dtype_size(t);
    auto buf = aligned_buffer(bytes);
    if (bytes) std::memcpy(buf.get(), src, bytes);
    c.data = ConstData{buf.get(), bytes, std::shared_ptr<const void>(buf)};
  };
  if (a.name() == "value") {
    c = im.read_tensor(a.t(), n.label() + ": value");
  } else if (a.name() == "value_float") {
    const float f = a.f();
    scalars(DType::f32, &f, 1, {});
  } else if (a.name() == "value_floats") {
    scalars(DType::f32, a.floats().data(), static_cast<std::size_t>(a.floats_size()), {a.floats_size()});
  } else if (a.name() == "value_int") {
    const std::int64_t i = a.i();
    scalars(DType::i64, &i, 1, {});
  } else if (a.name() == "value_ints") {
    scalars(DType::i64, a.ints().data(), static_cast<std::size_t>(a.ints_size()), {a.ints_size()});
  } else {
    im.fail(n, "attribute '" + a.name() + "' is not supported (expected value, value_float(s) or value_int(s))");
  }
  im.define_constant(n, std::move(c));
}

// The op table: every ONNX op (default domain) the importer maps, with the opsets it maps exactly.
// docs/onnx.md is this table for readers.
const std::vector<OpRow>& op_table() {
  static const std::vector<OpRow> rows = {
      {"Add", kMinOpset, kMaxOpset, map_add},
      {"Sub", kMinOpset, kMaxOpset, map_sub},
      {"Mul", kMinOpset, kMaxOpset, map_mul},
      {"Div", kMinOpset, kMaxOpset, map_div},
      {"Relu", kMinOpset, kMaxOpset, map_relu},
      {"Sigmoid", kMinOpset, kMaxOpset, map_sigmoid},
      {"Tanh", kMinOpset, kMaxOpset, map_tanh},
      {"Exp", kMinOpset, kMaxOpset, map_exp},
      {"Sqrt", kMinOpset, kMaxOpset, map_sqrt},
      {"Erf", 9, kMaxOpset, map_erf},
      {"Pow", kMinOpset, kMaxOpset, map_pow},
      {"MatMul", kMinOpset, kMaxOpset, map_matmul},
      {"Gemm", kMinOpset, kMaxOpset, map_gemm},
      {"Softmax", kMinOpset, kMaxOpset, map_softmax},
      {"LogSoftmax", kMinOpset, kMaxOpset, map_log_softmax},
      {"Transpose", kMinOpset, kMaxOpset, map_transpose},
      {"Reshape", kMinOpset, kMaxOpset, map_reshape},
      {"Identity", kMinOpset, kMaxOpset, map_identity},
      {"Dropout", kMinOpset, kMaxOpset, map_dropout},
      {"Flatten", kMinOpset, kMaxOpset, map_flatten},
      {"Concat", kMinOpset, kMaxOpset, map_concat},
      {"LayerNormalization", 17, kMaxOpset, map_layer_norm},
      {"Conv", kMinOpset, kMaxOpset, map_conv},
      {"BatchNormalization", kMinOpset, kMaxOpset, map_batch_norm},
      {"MaxPool", kMinOpset, kMaxOpset, map_max_pool},
      {"AveragePool", kMinOpset, kMaxOpset, map_avg_pool},
      {"GlobalAveragePool", 1, kMaxOpset, map_global_avg_pool},  // unchanged since opset 1
      {"Constant", 9, kMaxOpset, map_constant},
  };
  return rows;
}

}  // namespace

std::unique_ptr<Graph> load_onnx_model(const std::string& path) {
  try {
    return Importer(path).run();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // the ONNX library and protobuf throw their own; callers see kiln::Error
    throw Error(path + ": error: " + e.what());
  }
}

std::vector<OnnxOpSupport> onnx_supported_ops() {
  std::vector<OnnxOpSupport> out;
  for (const auto& r : op_table()) out.push_back({std::string(r.op), r.min_opset, r.max_opset});
  return out;
}

}  // namespace kiln
