#pragma once
// Seq2seq model files (docs/yaml-format.md, "Sequence-to-sequence models"): an `encoder` graph, a
// `decoder` step graph with declared state, a `generate` section and a character `tokenizer`, all in
// one YAML file sharing one weights file and one set of blocks. The frontend checks every cross-reference
// (which decoder input is fed by what, state shapes, token ids) with locations, so the generation loop
// can trust the spec.

#include <memory>
#include <string>
#include <vector>

#include "graph/graph.hpp"

namespace kiln {

/// A decoder state: a decoder input the runtime owns and feeds back from a decoder output every step.
struct StateSpec {
  enum class Kind { Cache, Carry };
  std::string input, output;
  /// Cache: input [batch, L, ...] preallocated to the maximum length L, output [batch, 1, ...]: the
  /// runtime stores the output at position `step` along axis 1 (a KV cache). Carry: output replaces the
  /// input for the next step (LSTM h/c).
  Kind kind = Kind::Cache;
  /// Carry only: an encoder output the state starts from; empty: zeros.
  std::string init;
};

struct GenerateSpec {
  std::string source;      // encoder input receiving the source token ids [batch, len]
  std::string token;       // decoder input receiving the previous token [batch, 1]
  std::string step;        // decoder input receiving the position being generated, i64[1]
  std::string cache_rows;  // optional decoder input i64[batch, L]: which row holds each cached position
  std::string scores;      // decoder output [batch, vocab]: log-probabilities of the next token
  std::int64_t start_token = 1, end_token = 2, pad_token = 0;
  std::int64_t max_length = 0;
  std::string strategy = "greedy";  // greedy | beam
  std::int64_t beam_width = 1;
  double length_penalty = 1.0;
};

struct Seq2SeqSpec {
  std::string name, path;
  std::unique_ptr<Graph> encoder, decoder;
  std::vector<StateSpec> states;
  GenerateSpec generate;
  /// Token strings by id. One-character entries are text; longer ones (<s>, </s>, <pad>) are special.
  std::vector<std::string> vocab;
};

/// Whether `key` at the top of a YAML model file makes it a seq2seq one: encoder, decoder or generate.
inline bool is_seq2seq_key(const std::string& key) { return key == "encoder" || key == "decoder" || key == "generate"; }
/// Whether the model file at `path` is a YAML seq2seq one: named .yaml or .yml, and a mapping with an
/// 'encoder', 'decoder' or 'generate' key at the top. Reads and parses the file, no more; a file that
/// cannot be read or parsed gives false (loading it then reports the error with its location).
bool is_yaml_seq2seq(const std::string& path);
/// Loads a seq2seq model file and the weights file it names.
std::unique_ptr<Seq2SeqSpec> load_yaml_seq2seq(const std::string& path);
/// Parses seq2seq model text; `filename` is used in messages, `base_dir` to find the weights file.
std::unique_ptr<Seq2SeqSpec> parse_yaml_seq2seq(const std::string& text, const std::string& filename,
                                                const std::string& base_dir);

}  // namespace kiln
