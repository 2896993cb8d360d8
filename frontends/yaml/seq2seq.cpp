// Seq2seq model files (frontends/yaml/seq2seq.hpp): the encoder and decoder sections are graphs read by
// the graph parser (graph_parser.hpp); this file reads the rest (decoder state, tokenizer, generate) and
// checks every cross-reference between the sections.

#include "frontends/yaml/seq2seq.hpp"

#include <algorithm>
#include <set>

#include "frontends/yaml/graph_parser.hpp"

namespace kiln::yaml_detail {

namespace {

const std::vector<std::string> kTopKeys = {"kiln",   "name",      "doc",     "weights", "quantize",
                                           "blocks", "tokenizer", "encoder", "decoder", "generate"};

// The decoder's state entries, each with the node that declares it (for locations in cross-checks).
using States = std::vector<std::pair<StateSpec, YAML::Node>>;

const Value* find_input(const Graph& graph, const std::string& name) {
  for (const Value* v : graph.inputs)
    if (v->name == name) return v;
  return nullptr;
}

const Value* find_output(const Graph& graph, const std::string& name) {
  for (const Value* v : graph.outputs)
    if (v->name == name) return v;
  return nullptr;
}

// The key that declares `name` in the mapping `map`, or the mapping itself when none does.
YAML::Node declared_at(const YAML::Node& map, const std::string& name) {
  for (const auto& kv : map)
    if (kv.first.IsScalar() && kv.first.Scalar() == name) return kv.first;
  return map;
}

class Seq2SeqParser : public NodeReader {
 public:
  Seq2SeqParser(const std::string& filename, std::string base_dir)
      : NodeReader(filename), graphs_(filename, std::move(base_dir)) {}

  std::unique_ptr<Seq2SeqSpec> parse(const std::string& text) {
    const YAML::Node root = load(text);
    if (!root.IsMap())
      fail_at(SourceLoc{file_, 1, 1},
              "expected a mapping with keys kiln, weights, tokenizer, encoder, decoder, generate");
    // The keys of a plain model get their own message; the first key that is wrong either way is reported.
    for (const auto& kv : root) {
      std::string key = scalar(kv.first, "a top-level key");
      if (key == "inputs" || key == "outputs" || key == "nodes")
        error(kv.first, "a sequence-to-sequence model declares '" + key +
                            "' inside its 'encoder' and 'decoder' sections, not at the top level");
      if (std::find(kTopKeys.begin(), kTopKeys.end(), key) == kTopKeys.end()) break;
    }
    check_keys(root, kTopKeys, "");
    check_version(root);
    auto spec = std::make_unique<Seq2SeqSpec>();
    spec->name = root["name"] ? scalar(root["name"], "a model name") : "model";
    spec->path = file_;
    if (root["weights"]) graphs_.open_weights(root["weights"]);
    if (root["blocks"]) graphs_.parse_blocks(root["blocks"]);

    const YAML::Node enc = require(root, "encoder", root);
    const YAML::Node dec = require(root, "decoder", root);
    spec->encoder = parse_section(enc, spec->name + ".encoder", nullptr);
    States states;
    spec->decoder = parse_section(dec, spec->name + ".decoder", &states);
    graphs_.read_quantize(root, *spec->encoder);  // the encoder and decoder quantize alike
    graphs_.read_quantize(root, *spec->decoder);
    for (auto& [s, where] : states) spec->states.push_back(s);
    parse_tokenizer(require(root, "tokenizer", root), *spec);
    generate_node_.reset(root["generate"]);  // rebind (operator= would assign into the node)
    parse_generate(require(root, "generate", root), *spec);
    check_generate(*spec);
    check_states(*spec, states);
    check_decoder_inputs(*spec, dec, states);
    return spec;
  }

 private:
  // One graph of a seq2seq file: inputs, nodes, outputs (and, for the decoder, state).
  std::unique_ptr<Graph> parse_section(const YAML::Node& sec, const std::string& name, States* states) {
    const std::string section = name.substr(name.rfind('.') + 1);
    if (!sec.IsMap()) error(sec, "'" + section + "' must be a mapping with inputs, outputs and nodes");
    if (states) check_keys(sec, {"inputs", "outputs", "nodes", "state", "doc"}, "'" + section + "'");
    else check_keys(sec, {"inputs", "outputs", "nodes", "doc"}, "'" + section + "'");
    graphs_.begin_graph(name);
    Scope top;
    graphs_.parse_body(sec, top);
    if (states && sec["state"]) {
      const YAML::Node list = sec["state"];
      if (!list.IsSequence()) error(list, "'state' must be a list of {in, out, kind} entries");
      for (const auto& st : list) parse_state(st, top, *states);
    }
    return graphs_.finish_graph();
  }

  // One entry of the decoder's `state`; its output becomes a decoder output (the runtime reads it back).
  void parse_state(const YAML::Node& st, const Scope& top, States& states) {
    if (!st.IsMap()) error(st, "expected a state entry {in: INPUT, out: VALUE, kind: cache|carry}");
    check_keys(st, {"in", "out", "kind", "init"}, "a state entry");
    StateSpec s;
    s.input = scalar(require(st, "in", st), "a decoder input name");
    s.output = scalar(require(st, "out", st), "a decoder value name");
    std::string kind = scalar(require(st, "kind", st), "a state kind");
    if (kind == "cache") s.kind = StateSpec::Kind::Cache;
    else if (kind == "carry") s.kind = StateSpec::Kind::Carry;
    else error(st["kind"], "unknown state kind '" + kind + "' (expected cache or carry)");
    if (st["init"]) {
      if (s.kind != StateSpec::Kind::Carry)
        error(st["init"], "'init' applies to carry state only (a cache starts empty)");
      s.init = scalar(st["init"], "an encoder output name or 'zeros'");
      if (s.init == "zeros") s.init.clear();
    }
    Graph& graph = graphs_.graph();
    if (!find_input(graph, s.input)) error(st["in"], "state input '" + s.input + "' is not a decoder input");
    auto out = top.values.find(s.output);
    if (out == top.values.end())
      error(st["out"], "state output '" + s.output + "' is not a value computed by the decoder");
    for (const auto& [other, w] : states)
      if (other.input == s.input) error(st["in"], "decoder input '" + s.input + "' is declared as state twice");
    if (!graph.is_output(out->second)) graph.outputs.push_back(out->second);
    states.emplace_back(s, st);
  }

  void parse_tokenizer(const YAML::Node& t, Seq2SeqSpec& spec) const {
    if (!t.IsMap()) error(t, "'tokenizer' must be a mapping {kind: characters, vocab: [...]}");
    check_keys(t, {"kind", "vocab", "doc"}, "'tokenizer'");
    std::string kind = scalar(require(t, "kind", t), "a tokenizer kind");
    if (kind != "characters") error(t["kind"], "unknown tokenizer kind '" + kind + "' (expected characters)");
    const YAML::Node vocab = require(t, "vocab", t);
    if (!vocab.IsSequence() || vocab.size() == 0)
      error(vocab, "'vocab' must be a non-empty list of token strings (id = position)");
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
    check_keys(g,
               {"source", "token", "step", "cache_rows", "scores", "start_token", "end_token", "pad_token",
                "max_length", "strategy", "beam_width", "length_penalty", "doc"},
               "'generate'");
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
        error(n, std::string("'") + key + "' = " + std::to_string(id) + " is not a token id of the tokenizer (0.." +
                     std::to_string(vocab - 1) + ")");
      return id;
    };
    gen.start_token = token_id("start_token");
    gen.end_token = token_id("end_token");
    gen.pad_token = g["pad_token"] ? token_id("pad_token") : 0;
    gen.max_length = int_of(require(g, "max_length", g), "'max_length'");
    if (gen.max_length < 1 || gen.max_length > 65536)
      error(g["max_length"], "'max_length' must be between 1 and 65536");
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
        error(g["length_penalty"],
              "expected 'length_penalty' to be a number, got '" + scalar(g["length_penalty"], "a number") + "'");
      }
    }
  }

  // The 'generate' key `key` when given, else the section (for locations).
  YAML::Node where(const char* key) const { return generate_node_[key] ? generate_node_[key] : generate_node_; }

  // Cross-references between the sections, part 1: what 'generate' names exists with the right type.
  void check_generate(const Seq2SeqSpec& spec) const {
    const Graph& e = *spec.encoder;
    const Graph& d = *spec.decoder;
    const GenerateSpec& gen = spec.generate;
    const Value* src = find_input(e, gen.source);
    if (!src) error(where("source"), "'source' = '" + gen.source + "' is not an encoder input");
    if ((src->type.dtype != DType::i64 && src->type.dtype != DType::i32) || src->type.rank() != 2)
      error(where("source"),
            "encoder input '" + gen.source + "' must be token ids i64[batch,len], got " + src->type.str());
    const Value* tok = find_input(d, gen.token);
    if (!tok) error(where("token"), "'token' = '" + gen.token + "' is not a decoder input");
    if (tok->type.dtype != DType::i64 || tok->type.rank() != 2 || !tok->type.shape[1].is(1))
      error(where("token"), "decoder input '" + gen.token + "' must be i64[batch,1], got " + tok->type.str());
    const Value* step = find_input(d, gen.step);
    if (!step) error(where("step"), "'step' = '" + gen.step + "' is not a decoder input");
    if (step->type.dtype != DType::i64 || step->type.rank() != 1 || !step->type.shape[0].is(1))
      error(where("step"), "decoder input '" + gen.step + "' must be i64[1], got " + step->type.str());
    if (!gen.cache_rows.empty()) {
      const Value* rows = find_input(d, gen.cache_rows);
      if (!rows) error(where("cache_rows"), "'cache_rows' = '" + gen.cache_rows + "' is not a decoder input");
      if (rows->type.dtype != DType::i64 || rows->type.rank() != 2)
        error(where("cache_rows"),
              "decoder input '" + gen.cache_rows + "' must be i64[batch,L], got " + rows->type.str());
    }
    const Value* scores = find_output(d, gen.scores);
    if (!scores) error(where("scores"), "'scores' = '" + gen.scores + "' is not a decoder output");
    if (scores->type.dtype != DType::f32 || scores->type.rank() != 2)
      error(where("scores"), "decoder output '" + gen.scores + "' must be f32[batch,vocab] log-probabilities, got " +
                                 scores->type.str());
    const Dim& v = scores->type.shape[1];
    if (v.concrete() && v.value != static_cast<std::int64_t>(spec.vocab.size()))
      error(where("scores"), "decoder output '" + gen.scores + "' scores " + v.str() +
                                 " tokens but the tokenizer has " + std::to_string(spec.vocab.size()));
  }

  // Part 2: each state's input and output agree (cache: [batch,L,...] and [batch,1,...]; carry: same type).
  void check_states(const Seq2SeqSpec& spec, const States& states) const {
    const Graph& e = *spec.encoder;
    const Graph& d = *spec.decoder;
    for (const auto& [s, st] : states) {
      const Value* in = find_input(d, s.input);
      const Value* out = find_output(d, s.output);
      const Shape& a = in->type.shape;
      const Shape& b = out->type.shape;
      if (s.kind == StateSpec::Kind::Cache) {
        bool ok = a.size() >= 3 && b.size() == a.size() && !a[1].concrete() && b[1].is(1) && a[0] == b[0];
        for (std::size_t i = 2; ok && i < a.size(); ++i) ok = a[i].concrete() && a[i] == b[i];
        if (!ok || in->type.dtype != out->type.dtype)
          error(st,
                "cache state: expected input [batch,L,...] (L a symbol: the runtime sets it to the maximum length) and "
                "output "
                "[batch,1,...] with the same concrete trailing dims, got input '" +
                    s.input + "' " + in->type.str() + " and output '" + s.output + "' " + out->type.str());
      } else {
        if (in->type.dtype != out->type.dtype || a.size() != b.size() || a.empty())
          error(st, "carry state: input '" + s.input + "' " + in->type.str() + " and output '" + s.output + "' " +
                        out->type.str() + " must have the same type, batch first");
        for (std::size_t i = 1; i < a.size(); ++i)
          if (!a[i].concrete() || a[i] != b[i])
            error(st, "carry state '" + s.input + "': dims after the batch must be concrete and equal, got " +
                          in->type.str() + " and " + out->type.str());
        if (!s.init.empty()) {
          const Value* init = find_output(e, s.init);
          if (!init) error(st["init"], "'init' = '" + s.init + "' is not an encoder output");
          if (init->type.dtype != in->type.dtype || init->type.rank() != in->type.rank())
            error(st["init"], "encoder output '" + s.init + "' " + init->type.str() + " cannot start state '" +
                                  s.input + "' " + in->type.str());
        }
      }
    }
  }

  // Part 3: every other decoder input must be an encoder output of the same name (computed once per source).
  void check_decoder_inputs(const Seq2SeqSpec& spec, const YAML::Node& dec, const States& states) const {
    const Graph& e = *spec.encoder;
    const Graph& d = *spec.decoder;
    const GenerateSpec& gen = spec.generate;
    const YAML::Node inputs = dec["inputs"];
    for (const Value* in : d.inputs) {
      if (in->name == gen.token || in->name == gen.step || in->name == gen.cache_rows) continue;
      bool state = false;
      for (const auto& [s, st] : states) state = state || s.input == in->name;
      if (state) continue;
      // A fresh node per lookup: YAML::Node::operator= on a bound node assigns *into* the node it refers
      // to, so `at = kv.first` on a copy of `inputs` rewrote the map being iterated (a use after free).
      const YAML::Node at = declared_at(inputs, in->name);
      const Value* from = find_output(e, in->name);
      if (!from)
        error(at, "decoder input '" + in->name +
                      "' is fed by nothing: it must be an encoder output of the same name, a state "
                      "input, or generate's token, step or cache_rows");
      if (from->type.dtype != in->type.dtype || from->type.rank() != in->type.rank() || from->type.rank() < 1)
        error(at, "decoder input '" + in->name + "' " + in->type.str() + " does not match encoder output " +
                      from->type.str());
    }
  }

  Parser graphs_;             // reads the encoder and decoder; holds the weights and blocks they share
  YAML::Node generate_node_;  // the 'generate' section, for locations in cross-checks
};

}  // namespace

}  // namespace kiln::yaml_detail

namespace kiln {

std::unique_ptr<Seq2SeqSpec> parse_yaml_seq2seq(const std::string& text, const std::string& filename,
                                                const std::string& base_dir) {
  return yaml_detail::Seq2SeqParser(filename, base_dir).parse(text);
}

bool is_yaml_seq2seq(const std::string& path) {
  const auto dot = path.find_last_of('.');
  const std::string ext = dot == std::string::npos ? std::string() : path.substr(dot);
  if (ext != ".yaml" && ext != ".yml") return false;  // the compile driver's rule: only these are YAML
  try {
    const YAML::Node root = YAML::Load(yaml_detail::read_model_file(path));
    if (!root.IsMap()) return false;
    for (const auto& kv : root) {
      if (kv.first.IsScalar() && is_seq2seq_key(kv.first.Scalar())) return true;
    }
  } catch (const std::exception&) {  // unreadable or not YAML: not a seq2seq file we can tell of
  }
  return false;
}

std::unique_ptr<Seq2SeqSpec> load_yaml_seq2seq(const std::string& path) {
  return parse_yaml_seq2seq(yaml_detail::read_model_file(path), path, yaml_detail::folder_of(path));
}

}  // namespace kiln
