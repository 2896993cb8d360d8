// Graph -> YAML model + safetensors image (yaml_writer.hpp), for `kilnc import`.

#include "frontends/yaml/yaml_writer.hpp"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <map>
#include <set>

#include "frontends/safetensors.hpp"
#include "graph/schema.hpp"

namespace kiln {
namespace {

// Names the YAML frontend reads back unchanged: no '{' (block parameters), no spaces or quotes, and not
// starting like a number (`in: [0.5]` is a literal). Other characters become '_'.
bool keep_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == ':' || c == '/' || c == '-';
}

std::string legal_name(const std::string& s) {
  std::string out;
  for (char c : s) out += keep_char(c) ? c : '_';
  if (out.empty() || std::isdigit(static_cast<unsigned char>(out[0])) || out[0] == '-' || out[0] == '.')
    out = "v_" + out;
  return out;
}

// The shortest text that reads back as the same double.
std::string number(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

class Writer {
 public:
  explicit Writer(const Graph& g) : g_(g) {}

  YamlExport run(const std::string& weights_file, const std::string& doc) {
    for (const auto& v : g_.values())
      if (!v->type.plain())
        fail("cannot write value '" + v->name + "' of type " + v->type.str() +
             " as YAML: only plain row-major layouts have a YAML form (write the graph before the layout pass)");
    YAML::Emitter e;
    e << YAML::BeginMap;
    e << YAML::Key << "kiln" << YAML::Value << 1;
    e << YAML::Key << "name" << YAML::Value << legal_name(g_.name.empty() ? "model" : g_.name);
    if (!doc.empty()) e << YAML::Key << "doc" << YAML::Value << doc;
    bool any_constant = false;
    for (const auto& v : g_.values()) any_constant = any_constant || (v->is_constant() && !v->users.empty());
    if (any_constant) e << YAML::Key << "weights" << YAML::Value << weights_file;
    inputs(e);
    e << YAML::Key << "outputs" << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const Value* o : g_.outputs) e << name_of(o);
    e << YAML::EndSeq;
    e << YAML::Key << "nodes" << YAML::Value << YAML::BeginSeq;
    for (const auto& n : g_.nodes()) node(e, *n);
    e << YAML::EndSeq << YAML::EndMap;
    if (!e.good()) fail("internal: cannot emit YAML: " + e.GetLastError());
    YamlExport out;
    out.yaml = std::string(e.c_str()) + "\n";
    out.weights = safetensors_image(tensors_);
    out.renamed = renamed_;
    return out;
  }

 private:
  void inputs(YAML::Emitter& e) {
    e << YAML::Key << "inputs" << YAML::Value << YAML::BeginMap;
    for (const Value* in : g_.inputs) {
      e << YAML::Key << name_of(in) << YAML::Value << YAML::Flow << YAML::BeginMap;
      e << YAML::Key << "dtype" << YAML::Value << std::string(dtype_name(in->type.dtype));
      e << YAML::Key << "shape" << YAML::Value << YAML::Flow << YAML::BeginSeq;
      for (const Dim& d : in->type.shape) {
        if (d.concrete()) e << d.value;
        else e << d.sym;
      }
      e << YAML::EndSeq << YAML::EndMap;
    }
    e << YAML::EndMap;
  }

  void node(YAML::Emitter& e, const Node& n) {
    e << YAML::Flow << YAML::BeginMap;
    e << YAML::Key << "op" << YAML::Value << n.op;
    // Trailing absent inputs are left out; absent ones before a present one are written as ~.
    std::size_t count = n.inputs.size();
    while (count > 0 && !n.inputs[count - 1]) --count;
    e << YAML::Key << "in" << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (std::size_t i = 0; i < count; ++i) {
      if (n.inputs[i]) e << name_of(n.inputs[i]);
      else e << YAML::Null;
    }
    e << YAML::EndSeq;
    e << YAML::Key << "out" << YAML::Value;
    if (n.outputs.size() == 1) {
      e << name_of(n.outputs[0]);
    } else {
      e << YAML::Flow << YAML::BeginSeq;
      for (const Value* o : n.outputs) e << name_of(o);
      e << YAML::EndSeq;
    }
    const std::string node_name = unique(legal_name(n.name), node_names_, n.name);
    if (node_name != name_of(n.outputs.at(0))) e << YAML::Key << "name" << YAML::Value << node_name;
    for (const auto& [key, value] : n.attrs) {
      const AttrSpec* spec = n.schema ? n.schema->find_attr(key) : nullptr;
      if (spec && spec->default_value && *spec->default_value == value) continue;  // the default: not written
      e << YAML::Key << key << YAML::Value;
      attr(e, value);
    }
    e << YAML::EndMap;
  }

  static void attr(YAML::Emitter& e, const Attr& a) {
    switch (attr_type_of(a)) {
      case AttrType::Int: e << std::get<std::int64_t>(a); break;
      case AttrType::Float: e << number(std::get<double>(a)); break;
      case AttrType::String: e << YAML::DoubleQuoted << std::get<std::string>(a); break;
      case AttrType::Bool: e << std::get<bool>(a); break;
      case AttrType::Ints:
        e << YAML::Flow << YAML::BeginSeq;
        for (auto v : std::get<std::vector<std::int64_t>>(a)) e << v;
        e << YAML::EndSeq;
        break;
      case AttrType::Floats:
        e << YAML::Flow << YAML::BeginSeq;
        for (auto v : std::get<std::vector<double>>(a)) e << number(v);
        e << YAML::EndSeq;
        break;
    }
  }

  // A value's name in the file, chosen once; a constant is added to the weights under that name.
  const std::string& name_of(const Value* v) {
    auto it = names_.find(v);
    if (it != names_.end()) return it->second;
    std::string name = unique(legal_name(v->name), value_names_, v->name);
    if (v->is_constant())
      tensors_.push_back(NamedTensor{name, v->type.dtype, dims_of(v->type.shape), v->constant.data, v->constant.bytes});
    return names_.emplace(v, std::move(name)).first->second;
  }

  std::string unique(const std::string& want, std::set<std::string>& taken, const std::string& original) {
    std::string name = want;
    for (int k = 1; !taken.insert(name).second; ++k) name = want + "_" + std::to_string(k);
    if (name != original) ++renamed_;
    return name;
  }

  const Graph& g_;
  std::map<const Value*, std::string> names_;
  std::set<std::string> value_names_, node_names_;
  std::vector<NamedTensor> tensors_;
  int renamed_ = 0;
};

}  // namespace

YamlExport export_yaml(const Graph& g, const std::string& weights_file, const std::string& doc) {
  return Writer(g).run(weights_file, doc);
}

}  // namespace kiln
