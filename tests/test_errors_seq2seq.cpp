// Bad seq2seq model files (the encoder/decoder/generate/tokenizer sections) and bad `kilnc generate`
// calls: each fails with FILE:LINE:COL and what was expected. Also `kilnc check` on seq2seq files. Cases are one edit each of the shipped
// example examples/date_translation/transformer.yaml.

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "frontends/yaml/seq2seq.hpp"
#include "ops/qgemm.hpp"
#include "test_util.hpp"

using kiln::test::contains;
using kiln::test::error_of;
using kiln::test::source_path;

namespace {

const char* kDir = "examples/date_translation";

std::string example_text() {
  std::ifstream in(source_path(std::string(kDir) + "/transformer.yaml"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The example with `from` replaced by `to` (which must occur), parsed as model.yaml.
std::string error_with(const std::string& from, const std::string& to) {
  std::string text = example_text();
  auto at = text.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, "the example has no '" << from << "'");
  text.replace(at, from.size(), to);
  return error_of([&] { kiln::parse_yaml_seq2seq(text, "model.yaml", source_path(kDir)); });
}

struct Case {
  const char* from;
  const char* to;
  const char* location;  // FILE:LINE:COL expected at the start of the message
  const char* message;
};

std::string run_kilnc(const std::string& args) {
  std::string cmd = std::string("cd '") + KILN_SOURCE_DIR + "' && '" + KILNC_PATH + "' " + args + " 2>&1";
  std::string out;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  int status = ::pclose(pipe);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return std::to_string(code) + ":" + out;
}

}  // namespace

TEST_CASE("the example parses") {
  auto spec = kiln::parse_yaml_seq2seq(example_text(), "model.yaml", source_path(kDir));
  CHECK(spec->states.size() == 4);
  CHECK(spec->vocab.size() == 70);
  CHECK(spec->generate.max_length == 16);
}

TEST_CASE("bad seq2seq model files fail with a location and what was expected") {
  const Case cases[] = {
      {"generate:\n", "generat:\n", "model.yaml:9:1", "unknown top-level key 'generat'"},
      {"  token: token\n", "  token: tok\n", "model.yaml:11:10", "'token' = 'tok' is not a decoder input"},
      {"  step: step\n", "  step: token\n", "model.yaml:12:9", "decoder input 'token' must be i64[1], got i64[batch,1]"},
      {"  scores: log_probs\n", "  scores: logits\n", "model.yaml:14:11", "'scores' = 'logits' is not a decoder output"},
      {"  source: source\n", "  source: src_mask\n", "model.yaml:10:11", "'source' = 'src_mask' is not an encoder input"},
      {"  end_token: 2\n", "  end_token: 70\n", "model.yaml:16:14", "'end_token' = 70 is not a token id of the tokenizer (0..69)"},
      {"  strategy: greedy\n", "  strategy: sample\n", "model.yaml:19:13", "unknown strategy 'sample' (expected greedy or beam)"},
      {"  beam_width: 4\n", "  beam_width: 0\n", "model.yaml:20:15", "'beam_width' must be between 1 and 256"},
      {"  max_length: 16\n", "  max_length: sixteen\n", "model.yaml:18:15", "expected 'max_length' to be an integer, got 'sixteen'"},
      {"  length_penalty: 1.0\n", "  length_penalty: 1.0\n  temperature: 2\n", "model.yaml:22:3", "unknown key 'temperature' in 'generate'"},
      {"  kind: characters\n", "  kind: bpe\n", "model.yaml:7:9", "unknown tokenizer kind 'bpe' (expected characters)"},
      {"\"<pad>\", \"<s>\"", "\"<pad>\", \"<pad>\"", "model.yaml:8:20", "token '<pad>' appears twice in 'vocab'"},
      {"    - {in: k_cache0, out: k_new0, kind: cache}", "    - {in: k_cache0, out: k_new0, kind: append}", "model.yaml:81:41",
       "unknown state kind 'append' (expected cache or carry)"},
      {"    - {in: k_cache0, out: k_new0, kind: cache}", "    - {in: k_cachex, out: k_new0, kind: cache}", "model.yaml:81:12",
       "state input 'k_cachex' is not a decoder input"},
      {"    - {in: k_cache0, out: k_new0, kind: cache}", "    - {in: k_cache0, out: k_newx, kind: cache}", "model.yaml:81:27",
       "state output 'k_newx' is not a value computed by the decoder"},
      {"    - {in: k_cache0, out: k_new0, kind: cache}", "    - {in: k_cache0, out: k_new0, kind: cache, init: src_mask}",
       "model.yaml:81:54", "'init' applies to carry state only"},
      {"    - {in: k_cache0, out: k_new0, kind: cache}", "    - {in: k_cache0, out: k_new0, kind: carry}", "model.yaml:81:7",
       "carry state 'k_cache0': dims after the batch must be concrete and equal, got f32[batch,len,64] and f32[batch,1,64]"},
      {"    - {in: k_cache0, out: k_new0, kind: cache}", "    - {in: k_cache0, out: log_probs, kind: cache}", "model.yaml:81:7",
       "cache state: expected input [batch,L,...] (L a symbol: the runtime sets it to the maximum length) and output [batch,1,...]"},
      {"    k_cache0: {dtype: f32, shape: [batch, len, 64]}", "    k_cache0: {dtype: f32, shape: [batch, 16, 64]}", "model.yaml:41:9",
       "cached_attention 'dec0/sa': k_cache and v_cache must have the same length: f32[batch,16,64] vs f32[batch,len,64]"},
      {"    token: {dtype: i64, shape: [batch, 1]}\n", "    token: {dtype: i64, shape: [batch, 1]}\n    extra: {dtype: f32, shape: [batch, 4]}\n",
       "model.yaml:69:5", "decoder input 'extra' is fed by nothing: it must be an encoder output of the same name"},
      {"    src_mask: {dtype: f32, shape: [batch, src]}", "    src_mask: {dtype: i64, shape: [batch, src]}", "model.yaml:44:9",
       "cross_attention 'dec0/ca': expected input 'key_padding_mask' of type f32, got i64[batch,src]"},
      {"  outputs: [log_probs]\n", "  outputs: [log_probs]\n  initial: zeros\n", "model.yaml:86:3",
       "unknown key 'initial' in 'decoder' (expected inputs, outputs, nodes, state, doc)"},
      {"encoder:\n", "inputs: {}\nencoder:\n", "model.yaml:52:1", "a sequence-to-sequence model declares 'inputs' inside its 'encoder'"},
  };
  for (const Case& c : cases) {
    std::string msg = error_with(c.from, c.to);
    INFO("edit '" << c.from << "' -> '" << c.to << "': " << msg);
    CHECK(msg.rfind(std::string(c.location) + ": error: ", 0) == 0);
    CHECK(contains(msg, c.message));
  }
  // A decoder input whose encoder output has another type.
  {
    std::string text = example_text();
    text.replace(text.find("  outputs: [src_mask, "), 22, "  outputs: [src_mask, source, ");
    text.replace(text.find("    token: {dtype: i64, shape: [batch, 1]}\n"), 0, "    source: {dtype: f32, shape: [batch, src]}\n");
    std::string msg = error_of([&] { kiln::parse_yaml_seq2seq(text, "model.yaml", source_path(kDir)); });
    CHECK(msg.rfind("model.yaml:68:5: error: decoder input 'source' f32[batch,src] does not match encoder output i64[batch,src]", 0) == 0);
  }
  // A section missing altogether.
  std::string text = example_text();
  text.replace(text.find("generate:\n"), 9, "unused_x:");
  std::string msg = error_of([&] { kiln::parse_yaml_seq2seq(text, "model.yaml", source_path(kDir)); });
  CHECK(contains(msg, "unknown top-level key 'unused_x'"));
}

TEST_CASE("single-graph and seq2seq loaders point at each other") {
  std::string msg = error_of([] { kiln::Model::load(source_path(std::string(kDir) + "/transformer.yaml")); });
  CHECK(contains(msg, "transformer.yaml:9:1: error: this is a sequence-to-sequence model (it has 'generate'): run it with "
                      "'kilnc generate'"));
  msg = error_of([] { kiln::load_yaml_seq2seq(source_path("examples/transformer_classifier/transformer_classifier.yaml")); });
  CHECK(contains(msg, "transformer_classifier.yaml:"));
  CHECK(contains(msg, "declares 'inputs' inside its 'encoder' and 'decoder' sections"));
  msg = error_of([] { kiln::load_yaml_seq2seq("/nonexistent/model.yaml"); });
  CHECK(contains(msg, "/nonexistent/model.yaml: error: cannot open model file"));
}

TEST_CASE("kilnc generate: translations, accuracy and bad calls") {
  std::string ok = run_kilnc("generate examples/date_translation/transformer.yaml 'Thursday, November 26, 2026' 'nov 26 2026'");
  CHECK(ok.rfind("0:", 0) == 0);
  CHECK(contains(ok, "Thursday, November 26, 2026 -> 2026-11-26"));
  CHECK(contains(ok, "nov 26 2026 -> 2026-11-26"));
  std::string beam = run_kilnc("generate examples/date_translation/transformer.yaml '26/11/26' --strategy beam --beam-width 3 --n-best 2");
  CHECK(contains(beam, "  1. 2026-11-26  (score "));
  CHECK(contains(beam, "  2. "));
  kiln::test::TempDir tmp;
  std::string tsv = tmp.path("dates.tsv");
  {
    std::ofstream f(tsv);
    f << "nov 26 2026\t2026-11-26\n26/11/26\t2026-11-27\n";
  }
  std::string acc = run_kilnc("generate examples/date_translation/transformer.yaml -q -f '" + tsv + "'");
  CHECK(contains(acc, "exact match: 1/2 (50.00%)"));
  {
    std::ofstream f(tsv);
    f << "nov 26 2026\t2026-11-26\n26/11/26\n";
  }
  CHECK(contains(run_kilnc("generate examples/date_translation/transformer.yaml -f '" + tsv + "'"),
                 "dates.tsv:2: error: expected SOURCE<TAB>REFERENCE like the lines above"));
  CHECK(run_kilnc("generate examples/date_translation/transformer.yaml") ==
        "1:error: generate: no sources (give texts or --input-file FILE)\n");
  CHECK(contains(run_kilnc("generate examples/date_translation/transformer.yaml 'é 26'"), "character 'é' at byte 0 is not in the vocabulary"));
  CHECK(contains(run_kilnc("generate examples/date_translation/transformer.yaml x -f /nonexistent.tsv"),
                 "/nonexistent.tsv: error: cannot open the input file"));
  CHECK(contains(run_kilnc("generate examples/date_translation/transformer.yaml x --n-best 3"),
                 "n_best = 3 must be between 1 and the beam width 1"));
  CHECK(contains(run_kilnc("generate examples/transformer_classifier/transformer_classifier.yaml x"),
                 "declares 'inputs' inside its 'encoder'"));
  CHECK(contains(run_kilnc("run examples/date_translation/transformer.yaml -i x=y.npy"), "this is a sequence-to-sequence model"));
}

TEST_CASE("kilnc check on a seq2seq model prints its encoder and decoder, and each quantized weight's error") {
  std::string out = run_kilnc("check examples/date_translation/transformer.yaml");
  CHECK(out.rfind("0:", 0) == 0);
  CHECK(contains(out, "# encoder\ngraph "));
  CHECK(contains(out, "# decoder\ngraph "));
  CHECK(out.find("# encoder") < out.find("# decoder"));  // both found above, so neither is npos
  out = run_kilnc("check examples/date_translation/lstm.yaml --locations");
  CHECK(out.rfind("0:", 0) == 0);
  CHECK(contains(out, "# decoder\ngraph "));
  CHECK(contains(out, "examples/date_translation/lstm.yaml:"));  // --locations reaches both graphs
  out = run_kilnc("check examples/date_translation/transformer.yaml --quantize int8 --explain");
  if (!kiln::qgemm::available(kiln::qgemm::Format::s8)) {  // KILN_MAX_ISA=sse41: int8 is refused, saying why
    CHECK(out.rfind("1:", 0) == 0);
    CHECK(contains(out, "error: quantize int8 (--quantize, LoadOptions::quantize): int8 weights need AVX2"));
    return;
  }
  CHECK(out.rfind("0:", 0) == 0);
  CHECK(contains(out, "passes on the encoder at -O2:"));
  CHECK(contains(out, "passes on the decoder at -O2:"));
  // The per-layer error report of the decoder's weights (the ones a decoding step streams), in its part.
  const auto decoder = out.find("passes on the decoder at -O2:");
  const auto weight = out.find("quantized 'transformer.decoder.layers.0.linear1.weight' to s8 per output channel");
  REQUIRE(weight != std::string::npos);
  CHECK(weight > decoder);
  CHECK(contains(out, "error vs f32: relative "));
}

TEST_CASE("kilnc check on a bad seq2seq model names the file, line and column, and refuses --print-after") {
  kiln::test::TempDir tmp;
  const std::string model = tmp.path("model.yaml");
  std::string text = example_text();
  const std::string from = "  end_token: 2\n";
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  text.replace(at, from.size(), "  end_token: two\n");
  // The weights file the model names, next to it.
  std::filesystem::create_symlink(source_path(std::string(kDir) + "/transformer.safetensors"),
                                  tmp.path("transformer.safetensors"));
  {
    std::ofstream out(model);
    out << text;
  }
  std::string out = run_kilnc("check '" + model + "'");
  CHECK(out.rfind("0:", 0) != 0);
  CHECK(contains(out, model + ":16:14: error:"));
  out = run_kilnc("check examples/date_translation/transformer.yaml --print-after all");
  CHECK(out.rfind("1:", 0) == 0);
  CHECK(contains(out, "--print-after is not available for a sequence-to-sequence model "
                      "(examples/date_translation/transformer.yaml)"));
}

TEST_CASE("is_yaml_seq2seq tells seq2seq YAML files from the rest without failing") {
  CHECK(kiln::is_yaml_seq2seq(source_path(std::string(kDir) + "/transformer.yaml")));
  CHECK(kiln::is_yaml_seq2seq(source_path(std::string(kDir) + "/lstm.yaml")));
  CHECK_FALSE(kiln::is_yaml_seq2seq(source_path("tests/fixtures/classifier_d64_l2/model.yaml")));
  CHECK_FALSE(kiln::is_yaml_seq2seq(source_path("tests/fixtures/onnx/external.onnx")));  // not named .yaml
  CHECK_FALSE(kiln::is_yaml_seq2seq("/nonexistent/model.yaml"));
  kiln::test::TempDir tmp;
  const std::string broken = tmp.path("broken.yaml");
  {
    std::ofstream out(broken);
    out << "generate: {source: [\n";  // not YAML: loading it reports the error, this only says no
  }
  CHECK_FALSE(kiln::is_yaml_seq2seq(broken));
  const std::string list = tmp.path("list.yml");
  {
    std::ofstream out(list);
    out << "- encoder\n- decoder\n";  // a list, not a mapping with those keys
  }
  CHECK_FALSE(kiln::is_yaml_seq2seq(list));
}
