// Carry state (the LSTM h/c kind) in the generation loop, on a toy recurrent decoder built from the date
// example's weights: h starts from an encoder output, is replaced by the decoder's output every step,
// and follows its beam's parent in beam search. Checked against a reference loop written here with two
// plain Sessions (teacher forcing each hypothesis' tokens to re-score it).

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "frontends/yaml/seq2seq.hpp"
#include "kiln/generate.hpp"
#include "test_util.hpp"

using kiln::test::source_path;

namespace {

const char* kToy = R"(kiln: 1
name: toy_rnn
weights: transformer.safetensors
tokenizer:
  kind: characters
  vocab: VOCAB
generate: {source: source, token: token, step: step, scores: log_probs, start_token: 1, end_token: 2, max_length: 12, length_penalty: 0.7}
encoder:
  inputs:
    source: {dtype: i64, shape: [batch, src]}
  outputs: [h0]
  nodes:
    - {op: embedding, in: [source], weights: src_embed, out: x}
    - {op: reduce_mean, in: [x], axes: [1], out: h0}
decoder:
  inputs:
    token: {dtype: i64, shape: [batch, 1]}
    step: {dtype: i64, shape: [1]}
    h: {dtype: f32, shape: [batch, 64]}
  state:
    - {in: h, out: h_next, kind: carry, init: h0}
  outputs: [log_probs]
  nodes:
    - {op: embedding, in: [token], weights: tgt_embed, out: e3}
    - {op: reshape, in: [e3], shape: [-1, 64], out: e}
    - {op: linear, in: [h], weights: transformer.decoder.layers.0.self_attn.out_proj, out: hh}
    - {op: add, in: [hh, e], out: pre}
    - {op: tanh, in: [pre], out: h_next}
    - {op: linear, in: [h_next], weights: generator, out: logits}
    - {op: log_softmax, in: [logits], out: log_probs}
)";

std::string toy_path(kiln::test::TempDir& tmp) {
  std::ifstream in(source_path("examples/date_translation/transformer.yaml"));
  std::string line, vocab;
  while (std::getline(in, line))
    if (line.rfind("  vocab: ", 0) == 0) vocab = line.substr(9);
  std::string text = kToy;
  text.replace(text.find("VOCAB"), 5, vocab);
  text.replace(text.find("transformer.safetensors"), 23, source_path("examples/date_translation/transformer.safetensors"));
  return tmp.write("toy.yaml", text);
}

// Sum of log-probabilities of `tokens` after the start token, feeding h by hand.
float rescore(kiln::Seq2SeqModel& m, const std::vector<std::int64_t>& source, const std::vector<std::int64_t>& tokens) {
  kiln::Session enc(m.encoder()), dec(m.decoder());
  auto h0 = enc.run({{"source", kiln::Tensor::from_i64({1, static_cast<std::int64_t>(source.size())}, source)}}).at("h0");
  std::vector<float> h(h0.data_as<float>(), h0.data_as<float>() + 64);
  std::int64_t prev = 1;
  float score = 0;
  for (std::size_t t = 0; t < tokens.size(); ++t) {
    auto out = dec.run({{"token", kiln::Tensor::from_i64({1, 1}, {prev})},
                        {"step", kiln::Tensor::from_i64({1}, {static_cast<std::int64_t>(t)})},
                        {"h", kiln::Tensor::from_f32({1, 64}, h)}});
    score += out.at("log_probs").data_as<float>()[tokens[t]];
    const float* next = out.at("h_next").data_as<float>();
    h.assign(next, next + 64);
    prev = tokens[t];
  }
  return score;
}

}  // namespace

TEST_CASE("carry state: greedy equals a hand-fed loop, beam hypotheses re-score to their scores") {
  kiln::test::TempDir tmp;
  kiln::Seq2SeqModel m = kiln::Seq2SeqModel::load(toy_path(tmp));
  kiln::Generator gen(m);
  // Sources of one length: this toy encoder (a mean over embeddings) has no padding mask.
  const std::vector<std::vector<std::int64_t>> sources = {m.encode("nov 26 2026"), m.encode("1999.12.31."), m.encode("7 jan 1950.")};
  auto greedy = gen.generate(sources);
  for (std::size_t i = 0; i < sources.size(); ++i) {
    // Reference greedy: arg-max step by step with h fed by hand.
    kiln::Session enc(m.encoder()), dec(m.decoder());
    auto h0 = enc.run({{"source", kiln::Tensor::from_i64({1, static_cast<std::int64_t>(sources[i].size())}, sources[i])}}).at("h0");
    std::vector<float> h(h0.data_as<float>(), h0.data_as<float>() + 64);
    std::vector<std::int64_t> want;
    std::int64_t prev = 1;
    for (int t = 0; t < 12 && prev != 2; ++t) {
      auto out = dec.run({{"token", kiln::Tensor::from_i64({1, 1}, {prev})},
                          {"step", kiln::Tensor::from_i64({1}, {t})},
                          {"h", kiln::Tensor::from_f32({1, 64}, h)}});
      const float* lp = out.at("log_probs").data_as<float>();
      prev = std::max_element(lp, lp + 70) - lp;
      want.push_back(prev);
      const float* next = out.at("h_next").data_as<float>();
      h.assign(next, next + 64);
    }
    INFO("source " << i);
    CHECK(greedy[i][0].tokens == want);
    CHECK(std::abs(greedy[i][0].score - rescore(m, sources[i], want)) <= 1e-4);
  }
  kiln::GenerateOptions beam;
  beam.strategy = "beam";
  beam.beam_width = 4;
  beam.n_best = 4;
  auto hyps = gen.generate(sources, beam);
  int checked = 0;
  for (std::size_t i = 0; i < sources.size(); ++i) {
    REQUIRE(!hyps[i].empty());
    for (std::size_t r = 1; r < hyps[i].size(); ++r) CHECK(hyps[i][r - 1].normalized_score >= hyps[i][r].normalized_score);
    for (const auto& h : hyps[i]) {
      INFO("source " << i << " hypothesis of " << h.tokens.size() << " tokens");
      CHECK(std::abs(h.score - rescore(m, sources[i], h.tokens)) <= 1e-4);  // h followed its own beam's history
      CHECK(std::abs(h.normalized_score - h.score / std::pow(static_cast<float>(h.tokens.size()), 0.7f)) <= 1e-5);
      ++checked;
    }
  }
  CHECK(checked >= 6);
  beam.beam_width = 1;
  beam.n_best = 1;
  auto one = gen.generate(sources, beam);
  for (std::size_t i = 0; i < sources.size(); ++i) CHECK(one[i][0].tokens == greedy[i][0].tokens);
}
