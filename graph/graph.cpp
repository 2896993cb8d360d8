#include "graph/graph.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <unordered_set>

#include "graph/schema.hpp"

namespace kiln {

std::shared_ptr<void> allocate_constant_bytes(std::size_t bytes) {
  const std::size_t size = std::max<std::size_t>((bytes + 63) / 64 * 64, 64);
  void* p = std::aligned_alloc(64, size);
  if (!p) return nullptr;
  std::memset(static_cast<unsigned char*>(p) + bytes, 0, size - bytes);
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

const char* quantize_name(Quantize q) {
  switch (q) {
    case Quantize::none: return "none";
    case Quantize::int8: return "int8";
    case Quantize::bf16: return "bf16";
  }
  return "?";
}

bool parse_quantize(std::string_view name, Quantize* out) {
  for (Quantize q : {Quantize::none, Quantize::int8, Quantize::bf16})
    if (name == quantize_name(q)) {
      *out = q;
      return true;
    }
  return false;
}

// ---- Node ----

const Attr& Node::attr(const std::string& key) const {
  auto it = attrs.find(key);
  if (it != attrs.end()) return it->second;
  const AttrSpec* spec = schema ? schema->find_attr(key) : nullptr;
  if (spec && spec->default_value) return *spec->default_value;
  fail("internal: attribute '" + key + "' is not set and has no default");
}

namespace {
template <class T>
const T& attr_as(const Node& n, const std::string& key) {
  const Attr& a = n.attr(key);
  if (const T* v = std::get_if<T>(&a)) return *v;
  n.fail("internal: attribute '" + key + "' has type " + attr_type_name(attr_type_of(a)));
}
}  // namespace

std::int64_t Node::attr_int(const std::string& key) const { return attr_as<std::int64_t>(*this, key); }
double Node::attr_float(const std::string& key) const { return attr_as<double>(*this, key); }
const std::string& Node::attr_string(const std::string& key) const { return attr_as<std::string>(*this, key); }
const std::vector<std::int64_t>& Node::attr_ints(const std::string& key) const {
  return attr_as<std::vector<std::int64_t>>(*this, key);
}
bool Node::attr_bool(const std::string& key) const { return attr_as<bool>(*this, key); }

std::string Node::label() const { return op + " '" + name + "'"; }

void Node::fail(const std::string& message) const { fail_at(loc, label() + ": " + message); }

// ---- Graph ----

Value* Graph::add_value(const std::string& name, TensorType type) {
  auto v = std::make_unique<Value>();
  v->name = name;
  v->type = std::move(type);
  v->id = static_cast<int>(values_.size());
  values_.push_back(std::move(v));
  return values_.back().get();
}

Value* Graph::add_constant(const std::string& name, TensorType type, ConstData data) {
  Value* v = add_value(name, std::move(type));
  v->constant = std::move(data);
  return v;
}

Node* Graph::add_node(const std::string& op, const std::string& name, std::vector<Value*> inputs,
                      std::vector<Value*> outputs, AttrMap attrs, SourceLoc loc) {
  const OpSchema* schema = find_op(op);
  if (!schema) {
    std::string known;
    for (const auto* s : all_ops()) known += (known.empty() ? "" : ", ") + s->name;
    fail_at(loc, "unknown op '" + op + "' (known ops: " + known + ")");
  }
  auto n = std::make_unique<Node>();
  n->op = op;
  n->name = name;
  n->schema = schema;
  n->loc = std::move(loc);
  for (auto& [key, value] : attrs) {
    const AttrSpec* spec = schema->find_attr(key);
    if (!spec) {
      std::string known;
      for (const auto& a : schema->attrs) known += (known.empty() ? "" : ", ") + a.name;
      n->fail("unknown attribute '" + key + "'" +
              (known.empty() ? " (it takes none)" : " (expected one of: " + known + ")"));
    }
    if (attr_type_of(value) != spec->type)
      n->fail("attribute '" + key + "' expects " + attr_type_name(spec->type) + ", got " +
              attr_type_name(attr_type_of(value)));
  }
  for (const auto& spec : schema->attrs) {
    if (attrs.count(spec.name)) continue;
    if (!spec.default_value)
      n->fail("missing required attribute '" + spec.name + "' (" + attr_type_name(spec.type) + ")");
    attrs.emplace(spec.name, *spec.default_value);
  }
  n->attrs = std::move(attrs);
  n->inputs = std::move(inputs);
  n->outputs = std::move(outputs);
  for (Value* in : n->inputs)
    if (in) in->users.push_back(n.get());
  for (Value* out : n->outputs) out->producer = n.get();
  nodes_.push_back(std::move(n));
  return nodes_.back().get();
}

void Graph::remove_node(Node* node) {
  for (Value* in : node->inputs) {
    if (!in) continue;
    auto it = std::find(in->users.begin(), in->users.end(), node);
    if (it != in->users.end()) in->users.erase(it);
  }
  for (Value* out : node->outputs)
    if (out->producer == node) out->producer = nullptr;
  nodes_.erase(std::remove_if(nodes_.begin(), nodes_.end(), [&](const auto& p) { return p.get() == node; }),
               nodes_.end());
}

void Graph::set_input(Node* node, std::size_t i, Value* v) {
  if (i > node->inputs.size()) fail("internal: set_input past the end of " + node->label());
  if (i == node->inputs.size()) node->inputs.push_back(nullptr);
  if (Value* old = node->inputs[i]) {
    auto it = std::find(old->users.begin(), old->users.end(), node);
    if (it != old->users.end()) old->users.erase(it);
  }
  node->inputs[i] = v;
  if (v) v->users.push_back(node);
}

void Graph::set_output(Node* node, std::size_t i, Value* v) {
  Value* old = node->outputs.at(i);
  if (old->producer == node) old->producer = nullptr;
  node->outputs[i] = v;
  v->producer = node;
}

void Graph::replace_uses(Value* from, Value* to) {
  std::vector<Node*> users = from->users;
  for (Node* n : users)
    for (std::size_t i = 0; i < n->inputs.size(); ++i)
      if (n->inputs[i] == from) set_input(n, i, to);
  for (Value*& out : outputs)
    if (out == from) out = to;
}

bool Graph::is_output(const Value* v) const { return std::find(outputs.begin(), outputs.end(), v) != outputs.end(); }

void Graph::toposort() {
  // Repeatedly take the first node (in current order) whose inputs are all available.
  std::unordered_set<const Value*> ready(inputs.begin(), inputs.end());
  for (const auto& v : values_)
    if (v->is_constant() || !v->producer) ready.insert(v.get());
  std::vector<std::unique_ptr<Node>> pending = std::move(nodes_);
  nodes_.clear();
  while (!pending.empty()) {
    auto it = std::find_if(pending.begin(), pending.end(), [&](const auto& n) {
      return std::all_of(n->inputs.begin(), n->inputs.end(), [&](const Value* v) { return !v || ready.count(v); });
    });
    if (it == pending.end()) pending.front()->fail("internal: the graph has a cycle");
    for (Value* out : (*it)->outputs) ready.insert(out);
    nodes_.push_back(std::move(*it));
    pending.erase(it);
  }
}

void Graph::compact() {
  std::unordered_set<const Value*> keep(inputs.begin(), inputs.end());
  keep.insert(outputs.begin(), outputs.end());
  for (const auto& n : nodes_) {
    for (Value* v : n->inputs)
      if (v) keep.insert(v);
    for (Value* v : n->outputs) keep.insert(v);
  }
  values_.erase(std::remove_if(values_.begin(), values_.end(), [&](const auto& v) { return !keep.count(v.get()); }),
                values_.end());
  for (std::size_t i = 0; i < values_.size(); ++i) values_[i]->id = static_cast<int>(i);
}

Value* Graph::find_value(const std::string& name) const {
  for (const auto& v : values_)
    if (v->name == name) return v.get();
  return nullptr;
}

void Graph::verify() const {
  std::set<std::string> names;
  for (const auto& v : values_)
    if (!names.insert(v->name).second) fail("graph '" + name + "': value name '" + v->name + "' is defined twice");
  std::unordered_set<const Value*> defined(inputs.begin(), inputs.end());
  for (const auto& v : values_)
    if (v->is_constant()) defined.insert(v.get());
  for (const auto& n : nodes_) {
    const OpSchema& s = *n->schema;
    // Trailing optional inputs may be left out entirely.
    std::size_t want = s.inputs.size();
    while (want > 0 && s.inputs[want - 1].optional && n->inputs.size() < want) --want;
    if (s.variadic ? n->inputs.size() < want : n->inputs.size() < want || n->inputs.size() > s.inputs.size())
      n->fail("expected " + std::string(s.variadic ? "at least " : "") + std::to_string(want) + " inputs, got " +
              std::to_string(n->inputs.size()));
    for (std::size_t i = 0; i < n->inputs.size(); ++i) {
      const InputSpec& spec = s.inputs[std::min(i, s.inputs.size() - 1)];
      Value* in = n->inputs[i];
      if (!in) {
        if (!spec.optional) n->fail("required input '" + spec.name + "' is missing");
        continue;
      }
      if (!defined.count(in)) n->fail("input '" + spec.name + "' uses value '" + in->name + "' before it is defined");
      if (std::find(in->users.begin(), in->users.end(), n.get()) == in->users.end())
        n->fail("internal: value '" + in->name + "' does not list this node as a user");
    }
    if (static_cast<int>(n->outputs.size()) != s.num_outputs)
      n->fail("expected " + std::to_string(s.num_outputs) + " outputs, got " + std::to_string(n->outputs.size()));
    for (Value* out : n->outputs) {
      if (out->producer != n.get()) n->fail("internal: output '" + out->name + "' has another producer");
      if (!defined.insert(out).second) n->fail("value '" + out->name + "' is defined twice");
    }
    for (const auto& spec : s.attrs) {
      auto it = n->attrs.find(spec.name);
      if (it == n->attrs.end()) n->fail("missing attribute '" + spec.name + "'");
      if (attr_type_of(it->second) != spec.type) n->fail("attribute '" + spec.name + "' has the wrong type");
    }
  }
  for (Value* out : outputs)
    if (!defined.count(out)) fail("graph '" + name + "': output '" + out->name + "' is never computed");
}

void Graph::infer_shapes() {
  for (const auto& n : nodes_) {
    std::vector<const TensorType*> in;
    in.reserve(n->inputs.size());
    for (Value* v : n->inputs) in.push_back(v ? &v->type : nullptr);
    std::vector<TensorType> out = n->schema->infer(ShapeCtx(*n, std::move(in)));
    if (out.size() != n->outputs.size()) n->fail("internal: shape rule returned the wrong number of outputs");
    for (std::size_t i = 0; i < out.size(); ++i) n->outputs[i]->type = std::move(out[i]);
  }
}

std::string Graph::print(bool with_locations) const {
  std::ostringstream os;
  os << "graph " << name << "(";
  for (std::size_t i = 0; i < inputs.size(); ++i)
    os << (i ? ", " : "") << "%" << inputs[i]->name << ": " << inputs[i]->type.str();
  os << ") -> (";
  for (std::size_t i = 0; i < outputs.size(); ++i) os << (i ? ", " : "") << "%" << outputs[i]->name;
  os << ") {\n";
  for (const auto& v : values_)
    if (v->is_constant() && (!v->users.empty() || is_output(v.get())))
      os << "  %" << v->name << " = const : " << v->type.str() << "\n";
  for (const auto& n : nodes_) {
    os << "  ";
    for (std::size_t i = 0; i < n->outputs.size(); ++i) os << (i ? ", " : "") << "%" << n->outputs[i]->name;
    os << " = " << n->op << "(";
    for (std::size_t i = 0; i < n->inputs.size(); ++i)
      os << (i ? ", " : "") << (n->inputs[i] ? "%" + n->inputs[i]->name : std::string("_"));
    os << ")";
    if (!n->attrs.empty()) {
      os << " {";
      bool first = true;
      for (const auto& [k, v] : n->attrs) {
        os << (first ? "" : ", ") << k << "=" << attr_str(v);
        first = false;
      }
      os << "}";
    }
    os << " : (";
    for (std::size_t i = 0; i < n->inputs.size(); ++i)
      os << (i ? ", " : "") << (n->inputs[i] ? n->inputs[i]->type.str() : std::string("_"));
    os << ") -> ";
    if (n->outputs.size() == 1) {
      os << n->outputs[0]->type.str();
    } else {
      os << "(";
      for (std::size_t i = 0; i < n->outputs.size(); ++i) os << (i ? ", " : "") << n->outputs[i]->type.str();
      os << ")";
    }
    if (n->name != (n->outputs.empty() ? "" : n->outputs[0]->name)) os << "  name(\"" << n->name << "\")";
    if (with_locations && n->loc.known()) os << "  loc(" << n->loc.str() << ")";
    os << "\n";
  }
  os << "  return";
  for (std::size_t i = 0; i < outputs.size(); ++i) os << (i ? ", " : " ") << "%" << outputs[i]->name;
  os << "\n}\n";
  return os.str();
}

}  // namespace kiln

namespace kiln {

namespace {
// Quotes and backslashes escaped; line breaks become DOT's \n.
std::string dot_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}
}  // namespace

std::string Graph::to_dot() const {
  std::ostringstream os;
  os << "digraph \"" << dot_escape(name) << "\" {\n  rankdir=TB;\n  node [fontname=\"monospace\", fontsize=10];\n";
  for (std::size_t i = 0; i < inputs.size(); ++i)
    os << "  in" << i << " [shape=ellipse, label=\"" << dot_escape(inputs[i]->name + "\n" + inputs[i]->type.str())
       << "\"];\n";
  std::map<const Node*, std::size_t> index;
  for (std::size_t k = 0; k < nodes_.size(); ++k) {
    const Node& n = *nodes_[k];
    index[&n] = k;
    std::string label = n.op + " '" + n.name + "'";
    for (const auto& [key, v] : n.attrs) label += "\n" + key + "=" + attr_str(v);
    std::size_t weights = 0;
    std::size_t weight_bytes = 0;
    for (const Value* v : n.inputs)
      if (v && v->is_constant()) {
        ++weights;
        weight_bytes += v->constant.bytes;
      }
    if (weights) label += "\n(" + std::to_string(weights) + " weights, " + std::to_string(weight_bytes) + " bytes)";
    os << "  n" << k << " [shape=box, label=\"" << dot_escape(label) << "\"];\n";
  }
  for (std::size_t k = 0; k < nodes_.size(); ++k) {
    for (const Value* v : nodes_[k]->inputs) {
      if (!v || v->is_constant()) continue;
      std::string from;
      if (v->producer) from = "n" + std::to_string(index.at(v->producer));
      for (std::size_t i = 0; i < inputs.size() && from.empty(); ++i)
        if (inputs[i] == v) from = "in" + std::to_string(i);
      if (from.empty()) continue;
      os << "  " << from << " -> n" << k << " [label=\"" << dot_escape(v->type.str()) << "\"];\n";
    }
  }
  for (std::size_t j = 0; j < outputs.size(); ++j) {
    const Value* v = outputs[j];
    os << "  out" << j << " [shape=ellipse, label=\"" << dot_escape(v->name + "\n" + v->type.str()) << "\"];\n";
    if (v->producer) os << "  n" << index.at(v->producer) << " -> out" << j << ";\n";
  }
  os << "}\n";
  return os.str();
}

}  // namespace kiln
