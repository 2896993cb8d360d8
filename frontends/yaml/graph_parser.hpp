#pragma once
// Internal to the YAML frontend: the parser that turns the graph sections of a model file (inputs, nodes,
// outputs, blocks) into a Graph. yaml_frontend.cpp uses it for a whole model file, seq2seq.cpp once for
// the encoder and once for the decoder, sharing one weights file and one set of blocks.

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "frontends/yaml/parse_util.hpp"
#include "graph/graph.hpp"
#include "graph/schema.hpp"

namespace kiln {
class WeightsFile;
}

namespace kiln::yaml_detail {

struct BlockDef {
  std::vector<std::string> args, params, returns;
  YAML::Node nodes;
  YAML::Node where;
};

// Values visible by local name, and the `{param}` substitutions in force.
struct Scope {
  std::map<std::string, Value*> values;
  std::map<std::string, std::string> params;
  std::string prefix;     // prepended to the names of values created in this scope
  std::string called_at;  // location of the block call that made this scope ("" at the top level)
  int depth = 0;
};

class Parser : public NodeReader {
 public:
  Parser(std::string filename, std::string base_dir, std::shared_ptr<WeightsFile> preset = nullptr);

  /// A whole model file: kiln, name, weights, blocks, inputs, nodes, outputs.
  std::unique_ptr<Graph> parse(const std::string& text);

  // The pieces parse() is made of, for files with several graphs (seq2seq.cpp).
  void open_weights(const YAML::Node& n);
  void parse_blocks(const YAML::Node& blocks);
  /// Starts a new graph; weights and blocks stay, value names start over.
  void begin_graph(const std::string& name);
  /// The inputs, nodes and outputs of the mapping `sec` into the current graph; `top` gets the values.
  void parse_body(const YAML::Node& sec, Scope& top);
  Graph& graph() { return *graph_; }
  /// Verifies and shape-infers the current graph and hands it over.
  std::unique_ptr<Graph> finish_graph();

 private:
  std::string substitute(const YAML::Node& where, const std::string& s, const Scope& scope) const;

  // ---- weights and value names ----
  Value* weight_value(const YAML::Node& where, const std::string& name);
  void claim_name(const YAML::Node& where, const std::string& name, const std::string& what,
                  const Scope* scope = nullptr);
  std::string weights_name() const;

  // ---- inputs, outputs ----
  void parse_inputs(const YAML::Node& inputs, Scope& scope);
  TensorType input_type(const std::string& name, const YAML::Node& spec);
  void parse_outputs(const YAML::Node& outputs, const Scope& scope);

  // ---- nodes ----
  Value* lookup(const YAML::Node& where, const std::string& name, const Scope& scope);
  Value* lookup_or_absent(const std::pair<std::string, YAML::Node>& in, const Scope& scope);
  Value* literal(const std::string& text);
  void define(const YAML::Node& where, Scope& scope, const std::string& local, Value* v);
  void parse_node(const YAML::Node& n, Scope& scope);
  std::vector<Value*> node_inputs(const YAML::Node& n, const OpSchema& schema, const std::string& label, Scope& scope);
  AttrMap node_attrs(const YAML::Node& n, const OpSchema& schema, const std::string& label, const Scope& scope) const;
  Attr attribute(const YAML::Node& v, const AttrSpec& spec, const std::string& label, const Scope& scope) const;

  // ---- block calls ----
  void parse_block_call(const YAML::Node& n, Scope& scope);
  void check_expansion(const YAML::Node& n, const std::string& name, std::int64_t repeat);
  std::map<std::string, std::pair<std::string, YAML::Node>> block_params(const YAML::Node& n, const std::string& name,
                                                                         const BlockDef& def) const;
  std::int64_t block_nodes(const std::string& name);

  std::string base_dir_;
  std::unique_ptr<Graph> graph_;
  std::shared_ptr<WeightsFile> weights_;
  std::map<std::string, Value*> constants_;
  std::map<std::string, std::string> value_names_;  // full value name -> where it was defined
  std::map<std::string, BlockDef> blocks_;
  std::map<std::string, std::int64_t> block_sizes_;  // block_nodes() results
  std::set<std::string> counting_;                   // blocks block_nodes() is inside (cycle guard)
};

}  // namespace kiln::yaml_detail
