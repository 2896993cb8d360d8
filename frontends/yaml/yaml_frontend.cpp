#include "frontends/yaml/yaml_frontend.hpp"

#include <algorithm>
#include <filesystem>

#include "frontends/safetensors.hpp"
#include "frontends/yaml/graph_parser.hpp"
#include "frontends/yaml/seq2seq.hpp"
#include "graph/checked.hpp"
#include "graph/schema.hpp"

namespace kiln::yaml_detail {

namespace {

constexpr int kMaxBlockDepth = 16;
constexpr std::int64_t kMaxRepeat = 4096;
// Nodes a model may have once its block calls are expanded. Repeat and depth limits alone allow
// 4096^16; three nested calls of `repeat: 4096` are 6.9e10 nodes from 600 bytes of YAML. Real models
// have hundreds to a few thousand nodes.
constexpr std::int64_t kMaxNodes = 100000;

bool is_identifier(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

}  // namespace

Parser::Parser(std::string filename, std::string base_dir, std::shared_ptr<WeightsFile> preset)
    : NodeReader(std::move(filename)), base_dir_(std::move(base_dir)), weights_(std::move(preset)) {}

std::unique_ptr<Graph> Parser::parse(const std::string& text) {
  const YAML::Node root = load(text);
  if (!root.IsMap())
    fail_at(SourceLoc{file_, 1, 1},
            std::string("expected a mapping with keys kiln, name, inputs, outputs, nodes, got ") +
                (root.IsSequence() ? "a list"
                 : root.IsScalar() ? "a scalar"
                                   : "an empty document"));
  for (const auto& kv : root) {
    std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
    if (is_seq2seq_key(key))
      error(kv.first, "this is a sequence-to-sequence model (it has '" + key +
                          "'): run it with 'kilnc generate' or kiln::Generator (include/kiln/generate.hpp)");
  }
  check_keys(root, {"kiln", "name", "doc", "weights", "quantize", "inputs", "outputs", "blocks", "nodes"}, "");
  check_version(root);

  begin_graph(root["name"] ? scalar(root["name"], "a model name") : "model");
  if (root["weights"] && !weights_) open_weights(root["weights"]);  // preset weights (from memory) win
  if (root["blocks"]) parse_blocks(root["blocks"]);
  Scope top;
  parse_body(root, top);
  read_quantize(root, *graph_);
  return finish_graph();
}

void Parser::begin_graph(const std::string& name) {
  graph_ = std::make_unique<Graph>();
  graph_->name = name;
  constants_.clear();
  value_names_.clear();
}

void Parser::parse_body(const YAML::Node& sec, Scope& top) {
  parse_inputs(require(sec, "inputs", sec), top);
  const YAML::Node nodes = require(sec, "nodes", sec);
  if (!nodes.IsSequence()) error(nodes, "'nodes' must be a list of nodes");
  for (const auto& n : nodes) parse_node(n, top);
  parse_outputs(require(sec, "outputs", sec), top);
}

std::unique_ptr<Graph> Parser::finish_graph() {
  graph_->verify();
  graph_->infer_shapes();
  return std::move(graph_);
}

// `{param}` substitution inside blocks.
std::string Parser::substitute(const YAML::Node& where, const std::string& s, const Scope& scope) const {
  if (scope.params.empty()) return s;
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    if (s[i] != '{') {
      out += s[i++];
      continue;
    }
    std::size_t close = s.find('}', i);
    if (close == std::string::npos) error(where, "unclosed '{' in '" + s + "'");
    std::string key = s.substr(i + 1, close - i - 1);
    auto it = scope.params.find(key);
    if (it == scope.params.end()) {
      std::vector<std::string> known;
      for (const auto& [k, v] : scope.params) known.push_back(k);
      error(where, "unknown parameter '{" + key + "}' (this block has: " + join(known) + ")");
    }
    out += it->second;
    i = close + 1;
  }
  return out;
}

void Parser::open_weights(const YAML::Node& n) {
  std::string rel = scalar(n, "a weights file path");
  std::filesystem::path p(rel);
  if (p.is_relative()) p = std::filesystem::path(base_dir_) / p;
  try {
    weights_ = WeightsFile::open(p.string());
  } catch (const Error& e) {
    // e.what() is "PATH: error: WHAT"; keep one "error:" in the combined message.
    std::string what = e.what();
    std::size_t tag = what.find(": error: ");
    if (tag != std::string::npos) what.replace(tag, 9, ": ");
    error(n, "cannot load weights: " + what);
  }
}

// The constant value for a weight, created once per name.
Value* Parser::weight_value(const YAML::Node& where, const std::string& name) {
  auto it = constants_.find(name);
  if (it != constants_.end()) return it->second;
  if (!weights_) return nullptr;
  const WeightTensor* w = weights_->find(name);
  if (!w) return nullptr;
  claim_name(where, name, "weight '" + name + "'");
  Value* v = graph_->add_constant(name, TensorType{w->dtype, concrete_shape(w->shape)}, w->data);
  constants_.emplace(name, v);
  return v;
}

// Value names are unique across the graph (blocks prefix theirs with "CALL/"); a clash is reported here,
// with a location, rather than by Graph::verify without one.
void Parser::claim_name(const YAML::Node& where, const std::string& name, const std::string& what, const Scope* scope) {
  std::string at = loc(where).str();
  if (scope && !scope->called_at.empty()) at += " (in the block call at " + scope->called_at + ")";
  auto [it, fresh] = value_names_.emplace(name, at);
  if (!fresh)
    error(where, what + " has the same name as the value defined at " + it->second +
                     (name.find('/') != std::string::npos ? "; give each call of a block a distinct 'name'" : ""));
}

std::string Parser::weights_name() const {
  return weights_ ? "'" + weights_->path() + "'" : "the weights file (none is named: add 'weights:')";
}

void Parser::parse_inputs(const YAML::Node& inputs, Scope& scope) {
  if (!inputs.IsMap()) error(inputs, "'inputs' must map each input name to {dtype, shape}");
  for (const auto& kv : inputs) {
    std::string name = scalar(kv.first, "an input name");
    TensorType type = input_type(name, kv.second);
    if (scope.values.count(name)) error(kv.first, "input '" + name + "' is declared twice");
    claim_name(kv.first, name, "input '" + name + "'");
    Value* v = graph_->add_value(name, type);
    graph_->inputs.push_back(v);
    scope.values[name] = v;
  }
}

// The {dtype, shape} of input `name`; dims are non-negative integers or symbols.
TensorType Parser::input_type(const std::string& name, const YAML::Node& spec) {
  if (!spec.IsMap()) error(spec, "input '" + name + "' must be a mapping {dtype: ..., shape: [...]}");
  check_keys(spec, {"dtype", "shape"}, "input '" + name + "'");
  std::string dt = scalar(require(spec, "dtype", spec), "a dtype");
  TensorType type;
  if (!parse_dtype(dt, &type.dtype))
    error(spec["dtype"], "unknown dtype '" + dt + "' (expected f32, f16, bf16, f64, i64, i32, i8, u8 or bool)");
  const YAML::Node shape = require(spec, "shape", spec);
  if (!shape.IsSequence()) error(shape, "the shape of input '" + name + "' must be a list of dims");
  for (const auto& d : shape) {
    std::string s = scalar(d, "a dim");
    if (is_identifier(s)) {
      type.shape.push_back(Dim::symbol(s));
    } else {
      std::int64_t v = -1;
      try {
        v = d.as<std::int64_t>();
      } catch (const YAML::Exception&) {}
      if (v < 0) error(d, "expected a dim: a non-negative integer or a symbol name such as 'batch', got '" + s + "'");
      type.shape.push_back(Dim::of(v));
    }
  }
  // Concrete dims whose product overflows would make every later size computation overflow.
  std::vector<std::int64_t> dims;
  for (const Dim& d : type.shape)
    if (d.concrete()) dims.push_back(d.value);
  if (!checked::tensor_bytes(dims, dtype_size(type.dtype)))
    error(shape, "input '" + name + "': shape " + shape_str(type.shape) + " of " + dt +
                     " is too large: its size in bytes exceeds " + std::to_string(checked::kMaxSize));
  return type;
}

void Parser::parse_outputs(const YAML::Node& outputs, const Scope& scope) {
  if (!outputs.IsSequence() || outputs.size() == 0) error(outputs, "'outputs' must be a non-empty list of value names");
  for (const auto& o : outputs) {
    std::string name = scalar(o, "an output name");
    auto it = scope.values.find(name);
    if (it == scope.values.end()) error(o, "output '" + name + "' is not a value computed by the model");
    graph_->outputs.push_back(it->second);
  }
}

void Parser::parse_blocks(const YAML::Node& blocks) {
  if (!blocks.IsMap()) error(blocks, "'blocks' must map block names to {args, params, returns, nodes}");
  for (const auto& kv : blocks) {
    std::string name = scalar(kv.first, "a block name");
    const YAML::Node& b = kv.second;
    if (!b.IsMap()) error(b, "block '" + name + "' must be a mapping with args, returns and nodes");
    check_keys(b, {"args", "params", "returns", "nodes", "doc"}, "block '" + name + "'");
    BlockDef def;
    def.args = names(require(b, "args", b), "block args");
    def.returns = names(require(b, "returns", b), "block returns");
    if (b["params"]) def.params = names(b["params"], "block params");
    for (const auto& p : def.params)
      if (p == "i") error(b["params"], "block param 'i' is reserved for the repeat index");
    def.nodes.reset(require(b, "nodes", b));
    if (!def.nodes.IsSequence()) error(def.nodes, "the nodes of block '" + name + "' must be a list");
    def.where.reset(kv.first);
    blocks_.emplace(name, def);
  }
}

Value* Parser::lookup(const YAML::Node& where, const std::string& name, const Scope& scope) {
  auto it = scope.values.find(name);
  if (it != scope.values.end()) return it->second;
  if (Value* w = weight_value(where, name)) return w;
  if (Value* c = literal(name)) return c;
  error(where,
        "undefined value '" + name + "' (not an input, an earlier output, or a weight in " + weights_name() + ")");
}

// An entry of `in`: null (`~`) for an input left out, else the value it names.
Value* Parser::lookup_or_absent(const std::pair<std::string, YAML::Node>& in, const Scope& scope) {
  if (in.second.IsNull()) return nullptr;
  return lookup(in.second, in.first, scope);
}

// A number in `in` is a scalar f32 constant (rank 0), created once per spelling.
Value* Parser::literal(const std::string& text) {
  if (text.empty() ||
      !(std::isdigit(static_cast<unsigned char>(text[0])) || text[0] == '-' || text[0] == '+' || text[0] == '.'))
    return nullptr;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return nullptr;
  std::string name = "const(" + text + ")";
  auto it = constants_.find(name);
  if (it != constants_.end()) return it->second;
  auto data = std::make_shared<float>(static_cast<float>(v));
  Value* c = graph_->add_constant(name, TensorType{DType::f32, {}}, ConstData{data.get(), sizeof(float), data});
  constants_.emplace(name, c);
  return c;
}

void Parser::define(const YAML::Node& where, Scope& scope, const std::string& local, Value* v) {
  if (scope.values.count(local) || (scope.depth == 0 && constants_.count(local)))
    error(where, "value '" + local + "' is defined twice");
  scope.values[local] = v;
}

void Parser::parse_node(const YAML::Node& n, Scope& scope) {
  if (!n.IsMap()) error(n, "expected a node: a mapping with 'op' (or 'block'), 'in' and 'out'");
  if (n["block"]) return parse_block_call(n, scope);
  if (!n["op"]) error(n, "node has neither 'op' nor 'block'");
  std::string op = scalar(n["op"], "an op name");
  const OpSchema* schema = find_op(op);
  if (!schema) {
    std::vector<std::string> known;
    for (const auto* s : all_ops()) known.push_back(s->name);
    error(n["op"], "unknown op '" + op + "' (known ops: " + join(known) + ")");
  }
  std::vector<std::string> outs = names(require(n, "out", n), "'out'");
  if (static_cast<int>(outs.size()) != schema->num_outputs)
    error(n["out"], op + " has " + std::to_string(schema->num_outputs) + " output(s), 'out' names " +
                        std::to_string(outs.size()));
  std::string node_name = n["name"] ? substitute(n["name"], scalar(n["name"], "a node name"), scope) : outs[0];
  std::string label = op + " '" + scope.prefix + node_name + "'";

  std::vector<Value*> inputs = node_inputs(n, *schema, label, scope);
  AttrMap attrs = node_attrs(n, *schema, label, scope);

  std::vector<Value*> outputs;
  for (const auto& o : outs) {
    Value* v = graph_->add_value(scope.prefix + o, TensorType{});
    define(n["out"], scope, o, v);
    claim_name(
        n["out"], v->name,
        "value '" + v->name + "'" + (scope.called_at.empty() ? "" : " (in the block call at " + scope.called_at + ")"),
        &scope);
    outputs.push_back(v);
  }
  graph_->add_node(op, scope.prefix + node_name, std::move(inputs), std::move(outputs), std::move(attrs), loc(n));
}

// A node's inputs in schema order: activations from `in`, weights from the `weights` prefix (or all
// positionally from `in`); null for an optional input left out.
std::vector<Value*> Parser::node_inputs(const YAML::Node& n, const OpSchema& schema, const std::string& label,
                                        Scope& scope) {
  std::vector<std::pair<std::string, YAML::Node>> ins;
  if (n["in"]) {
    YAML::Node in = n["in"];
    if (in.IsScalar()) ins.emplace_back(substitute(in, in.Scalar(), scope), in);
    else if (in.IsSequence())
      for (const auto& i : in)  // `~` (null) leaves an optional input out: `in: [x, w, ~, r]`
        ins.emplace_back(i.IsNull() ? std::string() : substitute(i, scalar(i, "an input name"), scope), i);
    else error(in, "'in' must be a value name or a list of value names");
  }
  std::vector<Value*> inputs(schema.inputs.size(), nullptr);
  std::size_t next = 0;
  if (n["weights"]) {
    std::string prefix = substitute(n["weights"], scalar(n["weights"], "a weight-name prefix"), scope);
    std::vector<std::size_t> act;
    for (std::size_t i = 0; i < schema.inputs.size(); ++i)
      if (schema.inputs[i].weight.empty()) act.push_back(i);
    if (ins.size() > act.size())
      error(n["in"], label + ": takes " + std::to_string(act.size()) + " input(s) besides its weights, 'in' names " +
                         std::to_string(ins.size()));
    for (; next < ins.size(); ++next) inputs[act[next]] = lookup_or_absent(ins[next], scope);
    for (std::size_t i = 0; i < schema.inputs.size(); ++i) {
      const InputSpec& spec = schema.inputs[i];
      if (spec.weight.empty()) continue;
      std::string wname = prefix + "." + spec.weight;
      Value* w = weight_value(n["weights"], wname);
      if (!w && !spec.optional) error(n["weights"], label + ": missing weight '" + wname + "' in " + weights_name());
      inputs[i] = w;
    }
  } else {
    if (schema.variadic && ins.size() > inputs.size()) inputs.resize(ins.size(), nullptr);  // the last input repeats
    if (ins.size() > inputs.size())
      error(n["in"], label + ": takes at most " + std::to_string(schema.inputs.size()) + " input(s), 'in' names " +
                         std::to_string(ins.size()));
    for (; next < ins.size(); ++next) inputs[next] = lookup_or_absent(ins[next], scope);
  }
  for (std::size_t i = 0; i < schema.inputs.size(); ++i)
    if (!inputs[i] && !schema.inputs[i].optional)
      error(n, label + ": missing input '" + schema.inputs[i].name + "'" +
                   (schema.inputs[i].weight.empty()
                        ? ""
                        : " (a weight: give 'weights: PREFIX' for PREFIX." + schema.inputs[i].weight + ")"));
  return inputs;
}

// Every key of node `n` that is not part of the node syntax is an attribute, typed by the schema.
AttrMap Parser::node_attrs(const YAML::Node& n, const OpSchema& schema, const std::string& label,
                           const Scope& scope) const {
  AttrMap attrs;
  static const std::set<std::string> reserved = {"op", "in", "out", "name", "weights", "doc"};
  for (const auto& kv : n) {
    std::string key = scalar(kv.first, "a key");
    if (reserved.count(key)) continue;
    const AttrSpec* spec = schema.find_attr(key);
    if (!spec) {
      std::vector<std::string> known;
      for (const auto& a : schema.attrs) known.push_back(a.name);
      error(kv.first, label + ": unknown attribute '" + key + "'" +
                          (known.empty() ? " (it takes none)" : " (expected one of: " + join(known) + ")"));
    }
    attrs.emplace(key, attribute(kv.second, *spec, label, scope));
  }
  return attrs;
}

Attr Parser::attribute(const YAML::Node& v, const AttrSpec& spec, const std::string& label, const Scope& scope) const {
  auto mistyped = [&](const std::string& got) {
    error(v, label + ": attribute '" + spec.name + "' expects " + attr_type_name(spec.type) + ", got " + got);
  };
  auto text = [&](const YAML::Node& s) {
    return s.IsScalar() ? "'" + s.Scalar() + "'"
                        : std::string(s.IsSequence() ? "a list"
                                      : s.IsMap()    ? "a mapping"
                                                     : "null");
  };
  try {
    switch (spec.type) {
      case AttrType::Int:
        if (!v.IsScalar()) mistyped(text(v));
        return v.as<std::int64_t>();
      case AttrType::Float:
        if (!v.IsScalar()) mistyped(text(v));
        return v.as<double>();
      case AttrType::String:
        if (!v.IsScalar()) mistyped(text(v));
        return substitute(v, v.Scalar(), scope);
      case AttrType::Bool:
        if (!v.IsScalar()) mistyped(text(v));
        return v.as<bool>();
      case AttrType::Ints: {
        if (!v.IsSequence()) mistyped(text(v));
        std::vector<std::int64_t> out;
        for (const auto& e : v) {
          if (!e.IsScalar() || !YAML::convert<std::int64_t>::decode(e, out.emplace_back()))
            mistyped("a list holding " + text(e));
        }
        return out;
      }
      case AttrType::Floats: {
        if (!v.IsSequence()) mistyped(text(v));
        std::vector<double> out;
        for (const auto& e : v) {
          if (!e.IsScalar() || !YAML::convert<double>::decode(e, out.emplace_back()))
            mistyped("a list holding " + text(e));
        }
        return out;
      }
    }
  } catch (const YAML::BadConversion&) {}
  error(v, label + ": attribute '" + spec.name + "' expects " + attr_type_name(spec.type) + ", got " + text(v));
}

void Parser::parse_block_call(const YAML::Node& n, Scope& scope) {
  std::string name = scalar(n["block"], "a block name");
  auto it = blocks_.find(name);
  if (it == blocks_.end()) {
    std::vector<std::string> known;
    for (const auto& [k, v] : blocks_) known.push_back(k);
    error(n["block"], "unknown block '" + name + "'" +
                          (known.empty() ? " (the model defines no blocks)" : " (defined: " + join(known) + ")"));
  }
  const BlockDef& def = it->second;
  if (scope.depth >= kMaxBlockDepth)
    error(n, "blocks nest deeper than " + std::to_string(kMaxBlockDepth) + " levels (a block that calls itself?)");
  std::int64_t repeat = n["repeat"] ? int_of(n["repeat"], "'repeat'") : 1;
  if (repeat < 1 || repeat > kMaxRepeat)
    error(n["repeat"], "'repeat' must be between 1 and " + std::to_string(kMaxRepeat));
  check_expansion(n, name, repeat);
  if (repeat > 1 && def.args.size() != def.returns.size())
    error(n["repeat"], "block '" + name + "' is repeated, so it must return as many values as it takes (" +
                           std::to_string(def.args.size()) + " args, " + std::to_string(def.returns.size()) +
                           " returns)");
  std::vector<std::pair<std::string, YAML::Node>> ins;
  if (!n["in"]) error(n, "block call needs 'in'");
  for (const auto& i : n["in"].IsSequence() ? n["in"] : YAML::Node(YAML::NodeType::Sequence))
    ins.emplace_back(substitute(i, scalar(i, "an input name"), scope), i);
  if (n["in"].IsScalar()) ins.emplace_back(substitute(n["in"], n["in"].Scalar(), scope), n["in"]);
  if (ins.size() != def.args.size())
    error(n["in"], "block '" + name + "' takes " + std::to_string(def.args.size()) + " input(s) (" + join(def.args) +
                       "), 'in' names " + std::to_string(ins.size()));
  std::vector<std::string> outs = names(require(n, "out", n), "'out'");
  if (outs.size() != def.returns.size())
    error(n["out"], "block '" + name + "' returns " + std::to_string(def.returns.size()) + " value(s) (" +
                        join(def.returns) + "), 'out' names " + std::to_string(outs.size()));

  const auto given = block_params(n, name, def);
  std::string call = n["name"] ? scalar(n["name"], "a call name") : name;
  std::vector<Value*> current;
  current.reserve(ins.size());
  for (const auto& [v, where] : ins) current.push_back(lookup(where, v, scope));
  for (std::int64_t i = 0; i < repeat; ++i) {
    Scope inner;
    inner.depth = scope.depth + 1;
    inner.called_at = loc(n).str();
    inner.prefix = scope.prefix + call + (repeat > 1 ? "." + std::to_string(i) : std::string()) + "/";
    inner.params = scope.params;  // outer params stay visible
    inner.params["i"] = std::to_string(i);
    for (const auto& [k, v] : given) {
      Scope outer_for_subst = scope;
      outer_for_subst.params["i"] = std::to_string(i);
      inner.params[k] = substitute(v.second, v.first, outer_for_subst);
    }
    for (std::size_t a = 0; a < def.args.size(); ++a) inner.values[def.args[a]] = current[a];
    for (const auto& node : def.nodes) parse_node(node, inner);
    current.clear();
    for (const auto& r : def.returns) {
      auto rv = inner.values.find(r);
      if (rv == inner.values.end())
        error(def.where, "block '" + name + "' returns '" + r + "', which none of its nodes defines");
      current.push_back(rv->second);
    }
  }
  for (std::size_t o = 0; o < outs.size(); ++o) {
    Value* v = current[o];
    // Name the returned value after the call's output, unless it is one of the call's own inputs.
    define(n["out"], scope, outs[o], v);
    if (v->producer && v->name.rfind(scope.prefix + call, 0) == 0) {
      value_names_.erase(v->name);
      v->name = scope.prefix + outs[o];
      claim_name(n["out"], v->name, "value '" + v->name + "'", &scope);
    }
  }
}

// Counted before expanding anything, so that a bomb fails at once instead of running out of memory.
void Parser::check_expansion(const YAML::Node& n, const std::string& name, std::int64_t repeat) {
  const std::int64_t each = block_nodes(name);
  const std::int64_t total = checked::mul(repeat, each).value_or(checked::kMaxSize);
  const auto before = static_cast<std::int64_t>(graph_->nodes().size());
  if (total > kMaxNodes - before)
    error(n, "block call '" + name + "' expands to " +
                 (total == checked::kMaxSize ? "more than " + std::to_string(total) : std::to_string(total)) +
                 " nodes (" + std::to_string(repeat) + " x " + std::to_string(each) + "), more than the " +
                 std::to_string(kMaxNodes) + " nodes a model may have" +
                 (before > 0 ? " (with the " + std::to_string(before) + " before it)" : std::string()));
}

// The params of a block call, each with its node: every key that is not part of the call syntax.
std::map<std::string, std::pair<std::string, YAML::Node>> Parser::block_params(const YAML::Node& n,
                                                                               const std::string& name,
                                                                               const BlockDef& def) const {
  std::map<std::string, std::pair<std::string, YAML::Node>> given;
  static const std::set<std::string> reserved = {"block", "in", "out", "name", "repeat", "doc"};
  for (const auto& kv : n) {
    std::string key = scalar(kv.first, "a key");
    if (reserved.count(key)) continue;
    if (std::find(def.params.begin(), def.params.end(), key) == def.params.end())
      error(kv.first, "block '" + name + "' has no parameter '" + key + "'" +
                          (def.params.empty() ? "" : " (its params: " + join(def.params) + ")"));
    given[key] = {scalar(kv.second, "a parameter value"), kv.second};
  }
  for (const auto& p : def.params)
    if (!given.count(p)) error(n, "block '" + name + "': missing parameter '" + p + "'");
  return given;
}

// Nodes one call of block `name` expands to (nested calls and their repeats included), saturating at
// checked::kMaxSize. Unknown blocks, bad repeats and cycles count as one node here: the expansion
// reports them with their location.
std::int64_t Parser::block_nodes(const std::string& name) {
  if (auto m = block_sizes_.find(name); m != block_sizes_.end()) return m->second;
  auto it = blocks_.find(name);
  if (it == blocks_.end() || !counting_.insert(name).second) return 1;
  std::int64_t total = 0;
  for (const auto& node : it->second.nodes) {
    std::int64_t add = 1;
    if (node.IsMap() && node["block"] && node["block"].IsScalar()) {
      std::int64_t repeat = 1;
      if (node["repeat"] && !YAML::convert<std::int64_t>::decode(node["repeat"], repeat)) repeat = 1;
      if (repeat < 1 || repeat > kMaxRepeat) repeat = 1;
      add = checked::mul(repeat, block_nodes(node["block"].Scalar())).value_or(checked::kMaxSize);
    }
    total = checked::add(total, add).value_or(checked::kMaxSize);
  }
  counting_.erase(name);
  block_sizes_.emplace(name, total);
  return total;
}

}  // namespace kiln::yaml_detail

namespace kiln {

std::unique_ptr<Graph> parse_yaml_model(const std::string& text, const std::string& filename,
                                        const std::string& base_dir) {
  return yaml_detail::Parser(filename, base_dir).parse(text);
}

std::unique_ptr<Graph> parse_yaml_model(const std::string& text, const std::string& filename,
                                        std::shared_ptr<WeightsFile> weights) {
  return yaml_detail::Parser(filename, ".", std::move(weights)).parse(text);
}

std::unique_ptr<Graph> load_yaml_model(const std::string& path) {
  return parse_yaml_model(yaml_detail::read_model_file(path), path, yaml_detail::folder_of(path));
}

}  // namespace kiln
