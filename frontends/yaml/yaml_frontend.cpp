#include "frontends/yaml/yaml_frontend.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "frontends/safetensors.hpp"
#include "frontends/yaml/seq2seq.hpp"
#include "graph/checked.hpp"
#include "graph/schema.hpp"

namespace kiln {

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

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

struct BlockDef {
  std::vector<std::string> args, params, returns;
  YAML::Node nodes;
  YAML::Node where;
};

// Values visible by local name, and the `{param}` substitutions in force.
struct Scope {
  std::map<std::string, Value*> values;
  std::map<std::string, std::string> params;
  std::string prefix;  // prepended to the names of values created in this scope
  std::string called_at;  // location of the block call that made this scope ("" at the top level)
  int depth = 0;
};

class Parser {
 public:
  Parser(std::string filename, std::string base_dir, std::shared_ptr<WeightsFile> preset = nullptr)
      : file_(std::move(filename)), base_dir_(std::move(base_dir)), weights_(std::move(preset)) {}

  std::unique_ptr<Graph> parse(const std::string& text) {
    YAML::Node root;
    try {
      root.reset(YAML::Load(text));  // reset rebinds; operator= on a bound node assigns into it
    } catch (const YAML::ParserException& e) {
      fail_at(SourceLoc{file_, e.mark.line + 1, e.mark.column + 1}, "invalid YAML: " + e.msg);
    }
    if (!root.IsMap())
      fail_at(SourceLoc{file_, 1, 1}, std::string("expected a mapping with keys kiln, name, inputs, outputs, nodes, got ") +
                                          (root.IsSequence() ? "a list" : root.IsScalar() ? "a scalar" : "an empty document"));
    static const std::set<std::string> known = {"kiln", "name", "doc", "weights", "inputs", "outputs", "blocks", "nodes"};
    for (const auto& kv : root) {
      std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
      if (key == "encoder" || key == "decoder" || key == "generate")
        error(kv.first, "this is a sequence-to-sequence model (it has '" + key +
                            "'): run it with 'kilnc generate' or kiln::Generator (include/kiln/generate.hpp)");
    }
    for (const auto& kv : root) {
      std::string key = scalar(kv.first, "a top-level key");
      if (!known.count(key))
        error(kv.first, "unknown top-level key '" + key + "' (expected one of: kiln, name, doc, weights, inputs, outputs, blocks, nodes)");
    }
    const YAML::Node version = require(root, "kiln", root);
    if (int_of(version, "the format version") != 1)
      error(version, "unsupported format version " + scalar(version, "") + " (this Kiln reads version 1)");

    graph_ = std::make_unique<Graph>();
    graph_->name = root["name"] ? scalar(root["name"], "a model name") : "model";
    if (root["weights"] && !weights_) open_weights(root["weights"]);  // preset weights (from memory) win
    if (root["blocks"]) parse_blocks(root["blocks"]);

    Scope top;
    parse_inputs(require(root, "inputs", root), top);
    const YAML::Node nodes = require(root, "nodes", root);
    if (!nodes.IsSequence()) error(nodes, "'nodes' must be a list of nodes");
    for (const auto& n : nodes) parse_node(n, top);
    parse_outputs(require(root, "outputs", root), top);

    graph_->verify();
    graph_->infer_shapes();
    return std::move(graph_);
  }

  std::unique_ptr<Seq2SeqSpec> parse_seq2seq(const std::string& text) {
    YAML::Node root;
    try {
      root.reset(YAML::Load(text));  // reset rebinds; operator= on a bound node assigns into it
    } catch (const YAML::ParserException& e) {
      fail_at(SourceLoc{file_, e.mark.line + 1, e.mark.column + 1}, "invalid YAML: " + e.msg);
    }
    if (!root.IsMap())
      fail_at(SourceLoc{file_, 1, 1}, "expected a mapping with keys kiln, weights, tokenizer, encoder, decoder, generate");
    static const std::set<std::string> known = {"kiln", "name", "doc", "weights", "blocks", "tokenizer", "encoder", "decoder", "generate"};
    for (const auto& kv : root) {
      std::string key = scalar(kv.first, "a top-level key");
      if (key == "inputs" || key == "outputs" || key == "nodes")
        error(kv.first, "a sequence-to-sequence model declares '" + key + "' inside its 'encoder' and 'decoder' sections, not at the top level");
      if (!known.count(key))
        error(kv.first, "unknown top-level key '" + key + "' (expected one of: kiln, name, doc, weights, blocks, tokenizer, encoder, decoder, generate)");
    }
    const YAML::Node version = require(root, "kiln", root);
    if (int_of(version, "the format version") != 1)
      error(version, "unsupported format version " + scalar(version, "") + " (this Kiln reads version 1)");
    auto spec = std::make_unique<Seq2SeqSpec>();
    spec->name = root["name"] ? scalar(root["name"], "a model name") : "model";
    spec->path = file_;
    if (root["weights"]) open_weights(root["weights"]);
    if (root["blocks"]) parse_blocks(root["blocks"]);

    const YAML::Node enc = require(root, "encoder", root);
    const YAML::Node dec = require(root, "decoder", root);
    spec->encoder = parse_section(enc, spec->name + ".encoder", nullptr);
    std::vector<std::pair<StateSpec, YAML::Node>> states;
    spec->decoder = parse_section(dec, spec->name + ".decoder", &states);
    for (auto& [s, where] : states) spec->states.push_back(s);
    parse_tokenizer(require(root, "tokenizer", root), *spec);
    generate_node_.reset(root["generate"]);  // rebind (operator= would assign into the node)
    parse_generate(require(root, "generate", root), *spec);
    check_seq2seq(*spec, dec, states);
    return spec;
  }

 private:
  // One graph of a seq2seq file: inputs, nodes, outputs (and, for the decoder, state).
  std::unique_ptr<Graph> parse_section(const YAML::Node& sec, const std::string& name,
                                       std::vector<std::pair<StateSpec, YAML::Node>>* states) {
    if (!sec.IsMap()) error(sec, "'" + name.substr(name.rfind('.') + 1) + "' must be a mapping with inputs, outputs and nodes");
    for (const auto& kv : sec) {
      std::string key = scalar(kv.first, "a key");
      bool ok = key == "inputs" || key == "outputs" || key == "nodes" || key == "doc" || (states && key == "state");
      if (!ok)
        error(kv.first, "unknown key '" + key + "' in '" + name.substr(name.rfind('.') + 1) + "' (expected inputs, outputs, nodes" +
                            (states ? ", state" : "") + ", doc)");
    }
    graph_ = std::make_unique<Graph>();
    graph_->name = name;
    constants_.clear();
    value_names_.clear();
    Scope top;
    parse_inputs(require(sec, "inputs", sec), top);
    const YAML::Node nodes = require(sec, "nodes", sec);
    if (!nodes.IsSequence()) error(nodes, "'nodes' must be a list of nodes");
    for (const auto& n : nodes) parse_node(n, top);
    parse_outputs(require(sec, "outputs", sec), top);
    if (states && sec["state"]) {
      const YAML::Node list = sec["state"];
      if (!list.IsSequence()) error(list, "'state' must be a list of {in, out, kind} entries");
      for (const auto& st : list) {
        if (!st.IsMap()) error(st, "expected a state entry {in: INPUT, out: VALUE, kind: cache|carry}");
        for (const auto& kv : st) {
          std::string key = scalar(kv.first, "a key");
          if (key != "in" && key != "out" && key != "kind" && key != "init")
            error(kv.first, "unknown key '" + key + "' in a state entry (expected in, out, kind, init)");
        }
        StateSpec s;
        s.input = scalar(require(st, "in", st), "a decoder input name");
        s.output = scalar(require(st, "out", st), "a decoder value name");
        std::string kind = scalar(require(st, "kind", st), "a state kind");
        if (kind == "cache") s.kind = StateSpec::Kind::Cache;
        else if (kind == "carry") s.kind = StateSpec::Kind::Carry;
        else error(st["kind"], "unknown state kind '" + kind + "' (expected cache or carry)");
        if (st["init"]) {
          if (s.kind != StateSpec::Kind::Carry) error(st["init"], "'init' applies to carry state only (a cache starts empty)");
          s.init = scalar(st["init"], "an encoder output name or 'zeros'");
          if (s.init == "zeros") s.init.clear();
        }
        Value* in = nullptr;
        for (Value* v : graph_->inputs)
          if (v->name == s.input) in = v;
        if (!in) error(st["in"], "state input '" + s.input + "' is not a decoder input");
        auto out = top.values.find(s.output);
        if (out == top.values.end()) error(st["out"], "state output '" + s.output + "' is not a value computed by the decoder");
        for (const auto& [other, w] : *states)
          if (other.input == s.input) error(st["in"], "decoder input '" + s.input + "' is declared as state twice");
        if (!graph_->is_output(out->second)) graph_->outputs.push_back(out->second);
        states->emplace_back(s, st);
      }
    }
    graph_->verify();
    graph_->infer_shapes();
    return std::move(graph_);
  }

  void parse_tokenizer(const YAML::Node& t, Seq2SeqSpec& spec) const {
    if (!t.IsMap()) error(t, "'tokenizer' must be a mapping {kind: characters, vocab: [...]}");
    for (const auto& kv : t) {
      std::string key = scalar(kv.first, "a key");
      if (key != "kind" && key != "vocab" && key != "doc") error(kv.first, "unknown key '" + key + "' in 'tokenizer' (expected kind, vocab, doc)");
    }
    std::string kind = scalar(require(t, "kind", t), "a tokenizer kind");
    if (kind != "characters") error(t["kind"], "unknown tokenizer kind '" + kind + "' (expected characters)");
    const YAML::Node vocab = require(t, "vocab", t);
    if (!vocab.IsSequence() || vocab.size() == 0) error(vocab, "'vocab' must be a non-empty list of token strings (id = position)");
    std::set<std::string> seen;
    for (const auto& v : vocab) {
      std::string tok = scalar(v, "a token string");
      if (tok.empty()) error(v, "a token string is empty");
      if (!seen.insert(tok).second) error(v, "token '" + tok + "' appears twice in 'vocab'");
      spec.vocab.push_back(tok);
    }
  }

  void parse_generate(const YAML::Node& g, Seq2SeqSpec& spec) const {
    if (!g.IsMap()) error(g, "'generate' must be a mapping");
    static const std::set<std::string> known = {"source", "token", "step", "cache_rows", "scores", "start_token", "end_token",
                                                "pad_token", "max_length", "strategy", "beam_width", "length_penalty", "doc"};
    for (const auto& kv : g) {
      std::string key = scalar(kv.first, "a key");
      if (!known.count(key))
        error(kv.first, "unknown key '" + key + "' in 'generate' (expected one of: source, token, step, cache_rows, scores, "
                        "start_token, end_token, pad_token, max_length, strategy, beam_width, length_penalty)");
    }
    GenerateSpec& gen = spec.generate;
    gen.source = scalar(require(g, "source", g), "an encoder input name");
    gen.token = scalar(require(g, "token", g), "a decoder input name");
    gen.step = scalar(require(g, "step", g), "a decoder input name");
    if (g["cache_rows"]) gen.cache_rows = scalar(g["cache_rows"], "a decoder input name");
    gen.scores = scalar(require(g, "scores", g), "a decoder output name");
    const auto vocab = static_cast<std::int64_t>(spec.vocab.size());
    auto token_id = [&](const char* key) {
      const YAML::Node n = require(g, key, g);
      std::int64_t id = int_of(n, std::string("'") + key + "'");
      if (id < 0 || id >= vocab)
        error(n, std::string("'") + key + "' = " + std::to_string(id) + " is not a token id of the tokenizer (0.." + std::to_string(vocab - 1) + ")");
      return id;
    };
    gen.start_token = token_id("start_token");
    gen.end_token = token_id("end_token");
    gen.pad_token = g["pad_token"] ? token_id("pad_token") : 0;
    gen.max_length = int_of(require(g, "max_length", g), "'max_length'");
    if (gen.max_length < 1 || gen.max_length > 65536) error(g["max_length"], "'max_length' must be between 1 and 65536");
    if (g["strategy"]) {
      gen.strategy = scalar(g["strategy"], "a strategy");
      if (gen.strategy != "greedy" && gen.strategy != "beam")
        error(g["strategy"], "unknown strategy '" + gen.strategy + "' (expected greedy or beam)");
    }
    if (g["beam_width"]) {
      gen.beam_width = int_of(g["beam_width"], "'beam_width'");
      if (gen.beam_width < 1 || gen.beam_width > 256) error(g["beam_width"], "'beam_width' must be between 1 and 256");
    }
    if (g["length_penalty"]) {
      try {
        gen.length_penalty = g["length_penalty"].as<double>();
      } catch (const YAML::Exception&) {
        error(g["length_penalty"], "expected 'length_penalty' to be a number, got '" + scalar(g["length_penalty"], "a number") + "'");
      }
    }
  }

  // Cross-references between the sections: every decoder input is fed by something, shapes agree.
  void check_seq2seq(const Seq2SeqSpec& spec, const YAML::Node& dec, const std::vector<std::pair<StateSpec, YAML::Node>>& states) const {
    const Graph& e = *spec.encoder;
    const Graph& d = *spec.decoder;
    const GenerateSpec& gen = spec.generate;
    auto find_in = [](const Graph& graph, const std::string& name) -> const Value* {
      for (const Value* v : graph.inputs)
        if (v->name == name) return v;
      return nullptr;
    };
    auto find_out = [](const Graph& graph, const std::string& name) -> const Value* {
      for (const Value* v : graph.outputs)
        if (v->name == name) return v;
      return nullptr;
    };
    const YAML::Node gnode = generate_node_;
    auto where = [&](const char* key) { return gnode[key] ? gnode[key] : gnode; };
    const Value* src = find_in(e, gen.source);
    if (!src) error(where("source"), "'source' = '" + gen.source + "' is not an encoder input");
    if ((src->type.dtype != DType::i64 && src->type.dtype != DType::i32) || src->type.rank() != 2)
      error(where("source"), "encoder input '" + gen.source + "' must be token ids i64[batch,len], got " + src->type.str());
    const Value* tok = find_in(d, gen.token);
    if (!tok) error(where("token"), "'token' = '" + gen.token + "' is not a decoder input");
    if (tok->type.dtype != DType::i64 || tok->type.rank() != 2 || !tok->type.shape[1].is(1))
      error(where("token"), "decoder input '" + gen.token + "' must be i64[batch,1], got " + tok->type.str());
    const Value* step = find_in(d, gen.step);
    if (!step) error(where("step"), "'step' = '" + gen.step + "' is not a decoder input");
    if (step->type.dtype != DType::i64 || step->type.rank() != 1 || !step->type.shape[0].is(1))
      error(where("step"), "decoder input '" + gen.step + "' must be i64[1], got " + step->type.str());
    if (!gen.cache_rows.empty()) {
      const Value* rows = find_in(d, gen.cache_rows);
      if (!rows) error(where("cache_rows"), "'cache_rows' = '" + gen.cache_rows + "' is not a decoder input");
      if (rows->type.dtype != DType::i64 || rows->type.rank() != 2)
        error(where("cache_rows"), "decoder input '" + gen.cache_rows + "' must be i64[batch,L], got " + rows->type.str());
    }
    const Value* scores = find_out(d, gen.scores);
    if (!scores) error(where("scores"), "'scores' = '" + gen.scores + "' is not a decoder output");
    if (scores->type.dtype != DType::f32 || scores->type.rank() != 2)
      error(where("scores"), "decoder output '" + gen.scores + "' must be f32[batch,vocab] log-probabilities, got " + scores->type.str());
    const Dim& v = scores->type.shape[1];
    if (v.concrete() && v.value != static_cast<std::int64_t>(spec.vocab.size()))
      error(where("scores"), "decoder output '" + gen.scores + "' scores " + v.str() + " tokens but the tokenizer has " +
                                 std::to_string(spec.vocab.size()));
    for (const auto& [s, st] : states) {
      const Value* in = find_in(d, s.input);
      const Value* out = find_out(d, s.output);
      const Shape& a = in->type.shape;
      const Shape& b = out->type.shape;
      if (s.kind == StateSpec::Kind::Cache) {
        bool ok = a.size() >= 3 && b.size() == a.size() && !a[1].concrete() && b[1].is(1) && a[0] == b[0];
        for (std::size_t i = 2; ok && i < a.size(); ++i) ok = a[i].concrete() && a[i] == b[i];
        if (!ok || in->type.dtype != out->type.dtype)
          error(st, "cache state: expected input [batch,L,...] (L a symbol: the runtime sets it to the maximum length) and output "
                    "[batch,1,...] with the same concrete trailing dims, got input '" + s.input + "' " + in->type.str() +
                    " and output '" + s.output + "' " + out->type.str());
      } else {
        if (in->type.dtype != out->type.dtype || a.size() != b.size() || a.empty())
          error(st, "carry state: input '" + s.input + "' " + in->type.str() + " and output '" + s.output + "' " + out->type.str() +
                    " must have the same type, batch first");
        for (std::size_t i = 1; i < a.size(); ++i)
          if (!a[i].concrete() || a[i] != b[i])
            error(st, "carry state '" + s.input + "': dims after the batch must be concrete and equal, got " + in->type.str() + " and " + out->type.str());
        if (!s.init.empty()) {
          const Value* init = find_out(e, s.init);
          if (!init) error(st["init"], "'init' = '" + s.init + "' is not an encoder output");
          if (init->type.dtype != in->type.dtype || init->type.rank() != in->type.rank())
            error(st["init"], "encoder output '" + s.init + "' " + init->type.str() + " cannot start state '" + s.input + "' " + in->type.str());
        }
      }
    }
    // Every other decoder input must be an encoder output of the same name (computed once per source).
    const YAML::Node inputs = dec["inputs"];
    for (const Value* in : d.inputs) {
      if (in->name == gen.token || in->name == gen.step || in->name == gen.cache_rows) continue;
      bool state = false;
      for (const auto& [s, st] : states) state = state || s.input == in->name;
      if (state) continue;
      // A fresh node per lookup: YAML::Node::operator= on a bound node assigns *into* the node it refers
      // to, so `at = kv.first` on a copy of `inputs` rewrote the map being iterated (a use after free).
      const YAML::Node at = declared_at(inputs, in->name);
      const Value* from = find_out(e, in->name);
      if (!from)
        error(at, "decoder input '" + in->name + "' is fed by nothing: it must be an encoder output of the same name, a state "
                  "input, or generate's token, step or cache_rows");
      if (from->type.dtype != in->type.dtype || from->type.rank() != in->type.rank() || from->type.rank() < 1)
        error(at, "decoder input '" + in->name + "' " + in->type.str() + " does not match encoder output " + from->type.str());
    }
  }

  // The key that declares `name` in the mapping `map`, or the mapping itself when none does.
  static YAML::Node declared_at(const YAML::Node& map, const std::string& name) {
    for (const auto& kv : map)
      if (kv.first.IsScalar() && kv.first.Scalar() == name) return kv.first;
    return map;
  }

  YAML::Node generate_node_;  // the 'generate' section, for locations in cross-checks

  // ---- diagnostics and scalar helpers ----
  SourceLoc loc(const YAML::Node& n) const { return SourceLoc{file_, n.Mark().line + 1, n.Mark().column + 1}; }
  [[noreturn]] void error(const YAML::Node& n, const std::string& message) const {
    if (n.Mark().is_null()) fail_at(SourceLoc{file_, 0, 0}, message);
    fail_at(loc(n), message);
  }
  YAML::Node require(const YAML::Node& map, const char* key, const YAML::Node& where) const {
    YAML::Node v = map[key];
    if (!v) error(where, std::string("missing required key '") + key + "'");
    return v;
  }
  std::string scalar(const YAML::Node& n, const std::string& what) const {
    if (!n.IsScalar()) error(n, "expected " + what + " (a scalar), got a " + (n.IsSequence() ? "list" : n.IsMap() ? "mapping" : "null"));
    return n.Scalar();
  }
  std::int64_t int_of(const YAML::Node& n, const std::string& what) const {
    std::string s = scalar(n, what);
    try {
      return n.as<std::int64_t>();
    } catch (const YAML::Exception&) {
      error(n, "expected " + what + " to be an integer, got '" + s + "'");
    }
  }
  std::vector<std::string> names(const YAML::Node& n, const std::string& what) const {
    std::vector<std::string> out;
    if (n.IsScalar()) return {n.Scalar()};
    if (!n.IsSequence()) error(n, "expected " + what + " as a name or a list of names");
    for (const auto& item : n) out.push_back(scalar(item, "a name in " + what));
    return out;
  }

  // `{param}` substitution inside blocks.
  std::string substitute(const YAML::Node& where, const std::string& s, const Scope& scope) const {
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

  // ---- weights ----
  void open_weights(const YAML::Node& n) {
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
  Value* weight_value(const YAML::Node& where, const std::string& name) {
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
  void claim_name(const YAML::Node& where, const std::string& name, const std::string& what, const Scope* scope = nullptr) {
    std::string at = loc(where).str();
    if (scope && !scope->called_at.empty()) at += " (in the block call at " + scope->called_at + ")";
    auto [it, fresh] = value_names_.emplace(name, at);
    if (!fresh)
      error(where, what + " has the same name as the value defined at " + it->second +
                       (name.find('/') != std::string::npos ? "; give each call of a block a distinct 'name'" : ""));
  }

  std::string weights_name() const { return weights_ ? "'" + weights_->path() + "'" : "the weights file (none is named: add 'weights:')"; }

  // ---- inputs, outputs, blocks ----
  void parse_inputs(const YAML::Node& inputs, Scope& scope) {
    if (!inputs.IsMap()) error(inputs, "'inputs' must map each input name to {dtype, shape}");
    for (const auto& kv : inputs) {
      std::string name = scalar(kv.first, "an input name");
      const YAML::Node& spec = kv.second;
      if (!spec.IsMap()) error(spec, "input '" + name + "' must be a mapping {dtype: ..., shape: [...]}");
      for (const auto& f : spec) {
        std::string key = scalar(f.first, "a key");
        if (key != "dtype" && key != "shape") error(f.first, "unknown key '" + key + "' in input '" + name + "' (expected dtype, shape)");
      }
      std::string dt = scalar(require(spec, "dtype", spec), "a dtype");
      TensorType type;
      if (!parse_dtype(dt, &type.dtype)) error(spec["dtype"], "unknown dtype '" + dt + "' (expected f32, f16, bf16, f64, i64, i32, i8, u8 or bool)");
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
          } catch (const YAML::Exception&) {
          }
          if (v < 0) error(d, "expected a dim: a non-negative integer or a symbol name such as 'batch', got '" + s + "'");
          type.shape.push_back(Dim::of(v));
        }
      }
      {
        // Concrete dims whose product overflows would make every later size computation overflow.
        std::vector<std::int64_t> dims;
        for (const Dim& d : type.shape)
          if (d.concrete()) dims.push_back(d.value);
        if (!checked::tensor_bytes(dims, dtype_size(type.dtype)))
          error(shape, "input '" + name + "': shape " + shape_str(type.shape) + " of " + dt +
                           " is too large: its size in bytes exceeds " + std::to_string(checked::kMaxSize));
      }
      if (scope.values.count(name)) error(kv.first, "input '" + name + "' is declared twice");
      claim_name(kv.first, name, "input '" + name + "'");
      Value* v = graph_->add_value(name, type);
      graph_->inputs.push_back(v);
      scope.values[name] = v;
    }
  }

  void parse_outputs(const YAML::Node& outputs, const Scope& scope) {
    if (!outputs.IsSequence() || outputs.size() == 0) error(outputs, "'outputs' must be a non-empty list of value names");
    for (const auto& o : outputs) {
      std::string name = scalar(o, "an output name");
      auto it = scope.values.find(name);
      if (it == scope.values.end()) error(o, "output '" + name + "' is not a value computed by the model");
      graph_->outputs.push_back(it->second);
    }
  }

  void parse_blocks(const YAML::Node& blocks) {
    if (!blocks.IsMap()) error(blocks, "'blocks' must map block names to {args, params, returns, nodes}");
    for (const auto& kv : blocks) {
      std::string name = scalar(kv.first, "a block name");
      const YAML::Node& b = kv.second;
      if (!b.IsMap()) error(b, "block '" + name + "' must be a mapping with args, returns and nodes");
      for (const auto& f : b) {
        std::string key = scalar(f.first, "a key");
        if (key != "args" && key != "params" && key != "returns" && key != "nodes" && key != "doc")
          error(f.first, "unknown key '" + key + "' in block '" + name + "' (expected args, params, returns, nodes, doc)");
      }
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

  // ---- nodes ----
  Value* lookup(const YAML::Node& where, const std::string& name, const Scope& scope) {
    auto it = scope.values.find(name);
    if (it != scope.values.end()) return it->second;
    if (Value* w = weight_value(where, name)) return w;
    if (Value* c = literal(name)) return c;
    error(where, "undefined value '" + name + "' (not an input, an earlier output, or a weight in " + weights_name() + ")");
  }

  // A number in `in` is a scalar f32 constant (rank 0), created once per spelling.
  Value* literal(const std::string& text) {
    if (text.empty() || !(std::isdigit(static_cast<unsigned char>(text[0])) || text[0] == '-' || text[0] == '+' || text[0] == '.'))
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

  void define(const YAML::Node& where, Scope& scope, const std::string& local, Value* v) {
    if (scope.values.count(local) || (scope.depth == 0 && constants_.count(local)))
      error(where, "value '" + local + "' is defined twice");
    scope.values[local] = v;
  }

  void parse_node(const YAML::Node& n, Scope& scope) {
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
      error(n["out"], op + " has " + std::to_string(schema->num_outputs) + " output(s), 'out' names " + std::to_string(outs.size()));
    std::string node_name = n["name"] ? substitute(n["name"], scalar(n["name"], "a node name"), scope) : outs[0];
    std::string label = op + " '" + scope.prefix + node_name + "'";

    // Inputs: activations from `in`, weights from the `weights` prefix (or all positionally from `in`).
    std::vector<std::pair<std::string, YAML::Node>> ins;
    if (n["in"]) {
      YAML::Node in = n["in"];
      if (in.IsScalar()) ins.emplace_back(substitute(in, in.Scalar(), scope), in);
      else if (in.IsSequence())
        for (const auto& i : in) ins.emplace_back(substitute(i, scalar(i, "an input name"), scope), i);
      else error(in, "'in' must be a value name or a list of value names");
    }
    std::vector<Value*> inputs(schema->inputs.size(), nullptr);
    std::size_t next = 0;
    if (n["weights"]) {
      std::string prefix = substitute(n["weights"], scalar(n["weights"], "a weight-name prefix"), scope);
      std::vector<std::size_t> act;
      for (std::size_t i = 0; i < schema->inputs.size(); ++i)
        if (schema->inputs[i].weight.empty()) act.push_back(i);
      if (ins.size() > act.size())
        error(n["in"], label + ": takes " + std::to_string(act.size()) + " input(s) besides its weights, 'in' names " + std::to_string(ins.size()));
      for (; next < ins.size(); ++next) inputs[act[next]] = lookup(ins[next].second, ins[next].first, scope);
      bool any = false;
      for (std::size_t i = 0; i < schema->inputs.size(); ++i) {
        const InputSpec& spec = schema->inputs[i];
        if (spec.weight.empty()) continue;
        std::string wname = prefix + "." + spec.weight;
        Value* w = weight_value(n["weights"], wname);
        if (!w && !spec.optional)
          error(n["weights"], label + ": missing weight '" + wname + "' in " + weights_name());
        inputs[i] = w;
        any = any || w;
      }
      (void)any;
    } else {
      if (schema->variadic && ins.size() > inputs.size()) inputs.resize(ins.size(), nullptr);  // the last input repeats
      if (ins.size() > inputs.size())
        error(n["in"], label + ": takes at most " + std::to_string(schema->inputs.size()) + " input(s), 'in' names " + std::to_string(ins.size()));
      for (; next < ins.size(); ++next) inputs[next] = lookup(ins[next].second, ins[next].first, scope);
    }
    for (std::size_t i = 0; i < schema->inputs.size(); ++i)
      if (!inputs[i] && !schema->inputs[i].optional)
        error(n, label + ": missing input '" + schema->inputs[i].name + "'" +
                     (schema->inputs[i].weight.empty() ? "" : " (a weight: give 'weights: PREFIX' for PREFIX." + schema->inputs[i].weight + ")"));

    // Attributes: every other key, typed by the schema.
    AttrMap attrs;
    static const std::set<std::string> reserved = {"op", "in", "out", "name", "weights", "doc"};
    for (const auto& kv : n) {
      std::string key = scalar(kv.first, "a key");
      if (reserved.count(key)) continue;
      const AttrSpec* spec = schema->find_attr(key);
      if (!spec) {
        std::vector<std::string> known;
        for (const auto& a : schema->attrs) known.push_back(a.name);
        error(kv.first, label + ": unknown attribute '" + key + "'" +
                            (known.empty() ? " (it takes none)" : " (expected one of: " + join(known) + ")"));
      }
      attrs.emplace(key, attribute(kv.second, *spec, label, scope));
    }

    std::vector<Value*> outputs;
    for (const auto& o : outs) {
      Value* v = graph_->add_value(scope.prefix + o, TensorType{});
      define(n["out"], scope, o, v);
      claim_name(n["out"], v->name,
                 "value '" + v->name + "'" + (scope.called_at.empty() ? "" : " (in the block call at " + scope.called_at + ")"),
                 &scope);
      outputs.push_back(v);
    }
    graph_->add_node(op, scope.prefix + node_name, std::move(inputs), std::move(outputs), std::move(attrs), loc(n));
  }

  Attr attribute(const YAML::Node& v, const AttrSpec& spec, const std::string& label, const Scope& scope) const {
    auto mistyped = [&](const std::string& got) {
      error(v, label + ": attribute '" + spec.name + "' expects " + attr_type_name(spec.type) + ", got " + got);
    };
    auto text = [&](const YAML::Node& s) {
      return s.IsScalar() ? "'" + s.Scalar() + "'" : std::string(s.IsSequence() ? "a list" : s.IsMap() ? "a mapping" : "null");
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
            if (!e.IsScalar() || !YAML::convert<std::int64_t>::decode(e, out.emplace_back())) mistyped("a list holding " + text(e));
          }
          return out;
        }
        case AttrType::Floats: {
          if (!v.IsSequence()) mistyped(text(v));
          std::vector<double> out;
          for (const auto& e : v) {
            if (!e.IsScalar() || !YAML::convert<double>::decode(e, out.emplace_back())) mistyped("a list holding " + text(e));
          }
          return out;
        }
      }
    } catch (const YAML::BadConversion&) {
    }
    error(v, label + ": attribute '" + spec.name + "' expects " + attr_type_name(spec.type) + ", got " + text(v));
  }

  void parse_block_call(const YAML::Node& n, Scope& scope) {
    std::string name = scalar(n["block"], "a block name");
    auto it = blocks_.find(name);
    if (it == blocks_.end()) {
      std::vector<std::string> known;
      for (const auto& [k, v] : blocks_) known.push_back(k);
      error(n["block"], "unknown block '" + name + "'" + (known.empty() ? " (the model defines no blocks)" : " (defined: " + join(known) + ")"));
    }
    const BlockDef& def = it->second;
    if (scope.depth >= kMaxBlockDepth) error(n, "blocks nest deeper than " + std::to_string(kMaxBlockDepth) + " levels (a block that calls itself?)");
    std::int64_t repeat = n["repeat"] ? int_of(n["repeat"], "'repeat'") : 1;
    if (repeat < 1 || repeat > kMaxRepeat) error(n["repeat"], "'repeat' must be between 1 and " + std::to_string(kMaxRepeat));
    {
      // Counted before expanding anything, so that a bomb fails at once instead of running out of memory.
      const std::int64_t each = block_nodes(name);
      const std::int64_t total = checked::mul(repeat, each).value_or(checked::kMaxSize);
      const auto before = static_cast<std::int64_t>(graph_->nodes().size());
      if (total > kMaxNodes - before)
        error(n, "block call '" + name + "' expands to " +
                     (total == checked::kMaxSize ? "more than " + std::to_string(total) : std::to_string(total)) + " nodes (" +
                     std::to_string(repeat) + " x " + std::to_string(each) + "), more than the " + std::to_string(kMaxNodes) +
                     " nodes a model may have" +
                     (before > 0 ? " (with the " + std::to_string(before) + " before it)" : std::string()));
    }
    if (repeat > 1 && def.args.size() != def.returns.size())
      error(n["repeat"], "block '" + name + "' is repeated, so it must return as many values as it takes (" +
                             std::to_string(def.args.size()) + " args, " + std::to_string(def.returns.size()) + " returns)");
    std::vector<std::pair<std::string, YAML::Node>> ins;
    if (!n["in"]) error(n, "block call needs 'in'");
    for (const auto& i : n["in"].IsSequence() ? n["in"] : YAML::Node(YAML::NodeType::Sequence)) ins.emplace_back(substitute(i, scalar(i, "an input name"), scope), i);
    if (n["in"].IsScalar()) ins.emplace_back(substitute(n["in"], n["in"].Scalar(), scope), n["in"]);
    if (ins.size() != def.args.size())
      error(n["in"], "block '" + name + "' takes " + std::to_string(def.args.size()) + " input(s) (" + join(def.args) + "), 'in' names " + std::to_string(ins.size()));
    std::vector<std::string> outs = names(require(n, "out", n), "'out'");
    if (outs.size() != def.returns.size())
      error(n["out"], "block '" + name + "' returns " + std::to_string(def.returns.size()) + " value(s) (" + join(def.returns) + "), 'out' names " + std::to_string(outs.size()));

    // Params: every key that is not part of the call syntax.
    std::map<std::string, std::pair<std::string, YAML::Node>> given;
    static const std::set<std::string> reserved = {"block", "in", "out", "name", "repeat", "doc"};
    for (const auto& kv : n) {
      std::string key = scalar(kv.first, "a key");
      if (reserved.count(key)) continue;
      if (std::find(def.params.begin(), def.params.end(), key) == def.params.end())
        error(kv.first, "block '" + name + "' has no parameter '" + key + "'" + (def.params.empty() ? "" : " (its params: " + join(def.params) + ")"));
      given[key] = {scalar(kv.second, "a parameter value"), kv.second};
    }
    for (const auto& p : def.params)
      if (!given.count(p)) error(n, "block '" + name + "': missing parameter '" + p + "'");

    std::string call = n["name"] ? scalar(n["name"], "a call name") : name;
    std::vector<Value*> current;
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
        if (rv == inner.values.end()) error(def.where, "block '" + name + "' returns '" + r + "', which none of its nodes defines");
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

  // Nodes one call of block `name` expands to (nested calls and their repeats included), saturating at
  // checked::kMaxSize. Unknown blocks, bad repeats and cycles count as one node here: the expansion
  // reports them with their location.
  std::int64_t block_nodes(const std::string& name) {
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

  std::string file_, base_dir_;
  std::unique_ptr<Graph> graph_;
  std::shared_ptr<WeightsFile> weights_;
  std::map<std::string, Value*> constants_;
  std::map<std::string, std::string> value_names_;  // full value name -> where it was defined
  std::map<std::string, BlockDef> blocks_;
  std::map<std::string, std::int64_t> block_sizes_;  // block_nodes() results
  std::set<std::string> counting_;                   // blocks block_nodes() is inside (cycle guard)
};

}  // namespace

std::unique_ptr<Graph> parse_yaml_model(const std::string& text, const std::string& filename, const std::string& base_dir) {
  return Parser(filename, base_dir).parse(text);
}

std::unique_ptr<Graph> parse_yaml_model(const std::string& text, const std::string& filename,
                                        std::shared_ptr<WeightsFile> weights) {
  return Parser(filename, ".", std::move(weights)).parse(text);
}

std::unique_ptr<Seq2SeqSpec> parse_yaml_seq2seq(const std::string& text, const std::string& filename, const std::string& base_dir) {
  return Parser(filename, base_dir).parse_seq2seq(text);
}

std::unique_ptr<Seq2SeqSpec> load_yaml_seq2seq(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_at(SourceLoc{path, 0, 0}, std::string("cannot open model file: ") + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string dir = std::filesystem::path(path).parent_path().string();
  return parse_yaml_seq2seq(ss.str(), path, dir.empty() ? "." : dir);
}

std::unique_ptr<Graph> load_yaml_model(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_at(SourceLoc{path, 0, 0}, std::string("cannot open model file: ") + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string dir = std::filesystem::path(path).parent_path().string();
  return parse_yaml_model(ss.str(), path, dir.empty() ? "." : dir);
}

}  // namespace kiln
