// lstm, gru and rnn against PyTorch nn.LSTM / nn.GRU / nn.RNN outputs written by tools/reference/make_rnn_fixtures.py:
// layers 1 and 2, uni- and bidirectional, seq 1 (a decoder step) and seq > 1, with and without initial
// states, batch_first true and false, no biases. Every output (y, h_n, c_n) is compared.
// Tolerance 1e-4 (fp32): the script checks PyTorch against a float64 numpy implementation (< 1e-5), and
// these are dot products of at most 14 terms per gate through sigmoid/tanh; measured errors are ~1e-7.
// Then bad inputs: wrong weight shapes and ranks, missing and unexpected weights, bad states and
// attributes, each error naming the file, line, node and tensor.

#include <cstdio>
#include <filesystem>

#include "frontends/yaml/yaml_frontend.hpp"
#include "runtime/npy.hpp"
#include "tests/test_util.hpp"

namespace {

using kiln::test::contains;
using kiln::test::error_of;
using kiln::test::max_abs_diff;
using kiln::test::source_path;

bool exists(const std::string& path) { return std::filesystem::exists(path); }

void check_fixture(const std::string& name, bool lstm) {
  const std::string dir = source_path("tests/fixtures/rnn/" + name + "/");
  for (int level : {0, 2}) {
    kiln::LoadOptions options;
    options.opt_level = level;
    kiln::Session session(kiln::Model::load(dir + "model.yaml", options));
    std::map<std::string, kiln::Tensor> inputs{{"x", kiln::read_npy(dir + "x.npy")}};
    for (const char* s : {"h0", "c0"})
      if (exists(dir + s + ".npy")) inputs.emplace(s, kiln::read_npy(dir + s + ".npy"));
    auto out = session.run(inputs);
    std::vector<const char*> names = {"y", "h_n"};
    if (lstm) names.push_back("c_n");
    for (const char* o : names) {
      double err = max_abs_diff(out.at(o), kiln::read_npy(dir + o + ".npy"));
      std::printf("rnn %s -O%d %s: max abs error %.3g\n", name.c_str(), level, o, err);
      CHECK_MESSAGE(err <= 1e-4, name << " -O" << level << " " << o << " max abs error " << err);
    }
    // Running again on the same plan (weights packed once, at plan creation) gives the same result.
    auto again = session.run(inputs);
    CHECK(max_abs_diff(again.at("y"), out.at("y")) == 0.0);
    CHECK(session.plan_count() == 1);
  }
}

}  // namespace

TEST_CASE("lstm matches nn.LSTM") {
  for (const char* name : {"lstm_l1_s1_state", "lstm_l1_s7", "lstm_l2_bi_s5_state", "lstm_l2_s4_seqfirst_state",
                           "lstm_l1_bi_s1", "lstm_l1_nobias_s3", "lstm_l2_s1_state", "lstm_l1_nobias_s1_state_seqfirst"})
    check_fixture(name, true);
}

TEST_CASE("gru matches nn.GRU") {
  for (const char* name : {"gru_l1_s1_state", "gru_l1_s7", "gru_l2_bi_s5_state", "gru_l2_s4_seqfirst_state", "gru_l1_bi_s1",
                           "gru_l2_s1_state", "gru_l1_nobias_s1_state"})
    check_fixture(name, false);
}

TEST_CASE("rnn matches nn.RNN (tanh and relu)") {
  for (const char* name : {"rnn_tanh_l2_bi_s5_state", "rnn_relu_l1_s4_seqfirst", "rnn_tanh_l1_nobias_s1_state"})
    check_fixture(name, false);
}

TEST_CASE("lstm: other batch sizes and lengths get their own plans") {
  // Symbolic batch and seq: other input shapes compile plans of their own, with outputs shaped to match.
  const std::string dir = source_path("tests/fixtures/rnn/lstm_l2_bi_s5_state/");
  kiln::Session session(kiln::Model::load(dir + "model.yaml"));
  auto x = kiln::Tensor::empty(kiln::DType::f32, {3, 9, 6});
  auto h = kiln::Tensor::empty(kiln::DType::f32, {4, 3, 7});
  for (auto* t : {&x, &h})
    for (std::int64_t i = 0; i < t->numel(); ++i) t->data_as<float>()[i] = static_cast<float>(i % 7) * 0.1f - 0.3f;
  auto out = session.run({{"x", x}, {"h0", h}, {"c0", h}});
  CHECK(out.at("y").shape() == std::vector<std::int64_t>{3, 9, 14});
  CHECK(out.at("h_n").shape() == std::vector<std::int64_t>{4, 3, 7});
  CHECK(out.at("c_n").shape() == std::vector<std::int64_t>{4, 3, 7});
}

// ---- bad inputs ----

namespace {

// Weights: tests/fixtures/rnn/lstm_l2_bi_s5_state (nn.LSTM(6, 7, num_layers=2, bidirectional=True) as
// `rnn.*`) and gru_l1_s7 (nn.GRU(5, 8) as `rnn.*`).
std::string parse_error(const std::string& fixture, const std::string& text) {
  return error_of([&] { kiln::parse_yaml_model(text, "model.yaml", source_path("tests/fixtures/rnn/" + fixture)); });
}

std::string lstm_model(const std::string& x_shape, const std::string& node, const std::string& extra_inputs = "") {
  return "kiln: 1\nweights: weights.safetensors\ninputs:\n  x: {dtype: f32, shape: " + x_shape + "}\n" + extra_inputs +
         "outputs: [y]\nnodes:\n  - " + node + "\n";
}

}  // namespace

TEST_CASE("rnn error: wrong input rank and feature size") {
  CHECK(parse_error("lstm_l2_bi_s5_state",
                    lstm_model("[batch, 6]", "{op: lstm, in: [x], weights: rnn, num_layers: 2, bidirectional: true, out: [y, h, c]}")) ==
        "model.yaml:7:5: error: lstm 'y': expected input 'src' of rank 3, got f32[batch,6]");
  CHECK(parse_error("lstm_l2_bi_s5_state",
                    lstm_model("[batch, seq, 5]", "{op: lstm, in: [x], weights: rnn, num_layers: 2, bidirectional: true, out: [y, h, c]}")) ==
        "model.yaml:7:5: error: lstm 'y': expected weight_ih_l0 of shape [28,5], got [28,6] ('rnn.weight_ih_l0')");
  CHECK(parse_error("lstm_l2_bi_s5_state",
                    lstm_model("[batch, seq, f]", "{op: lstm, in: [x], weights: rnn, num_layers: 2, bidirectional: true, out: [y, h, c]}")) ==
        "model.yaml:7:5: error: lstm 'y': the input's feature dim (last axis) must be concrete, got f32[batch,seq,f]");
}

TEST_CASE("rnn error: weights that do not match num_layers / bidirectional") {
  // The file has two bidirectional layers: asking for one layer leaves layer 1's weights unexplained.
  CHECK(parse_error("lstm_l2_bi_s5_state",
                    lstm_model("[batch, seq, 6]", "{op: lstm, in: [x], weights: rnn, bidirectional: true, out: [y, h, c]}")) ==
        "model.yaml:7:5: error: lstm 'y': weight weight_ih_l1 ('rnn.weight_ih_l1') is given but the node has "
        "num_layers = 1, bidirectional = true");
  CHECK(parse_error("lstm_l2_bi_s5_state",
                    lstm_model("[batch, seq, 6]", "{op: lstm, in: [x], weights: rnn, num_layers: 2, out: [y, h, c]}")) ==
        "model.yaml:7:5: error: lstm 'y': weight weight_ih_l0_reverse ('rnn.weight_ih_l0_reverse') is given but the node "
        "has num_layers = 2, bidirectional = false");
  // A single-layer unidirectional GRU file asked for two layers.
  CHECK(parse_error("gru_l1_s7", lstm_model("[batch, seq, 5]", "{op: gru, in: [x], weights: rnn, num_layers: 2, out: [y, h]}")) ==
        "model.yaml:7:5: error: gru 'y': missing weight weight_ih_l1 (num_layers = 2 needs weight_ih/weight_hh for every layer)");
  CHECK(parse_error("gru_l1_s7", lstm_model("[batch, seq, 5]", "{op: gru, in: [x], weights: rnn, num_layers: 5, out: [y, h]}")) ==
        "model.yaml:7:5: error: gru 'y': attribute 'num_layers' = 5 must be in 1..4");
  // LSTM weights given to a GRU: the gate count differs ([4H, in] vs [3H, in]).
  CHECK(parse_error("lstm_l2_bi_s5_state",
                    lstm_model("[batch, seq, 6]", "{op: gru, in: [x], weights: rnn, num_layers: 2, bidirectional: true, out: [y, h]}")) ==
        "model.yaml:7:5: error: gru 'y': expected weight_ih_l0 of shape [21,6], got [28,6] ('rnn.weight_ih_l0')");
}

TEST_CASE("rnn error: weights by position with wrong shapes or ranks") {
  // Without `weights:`, inputs fill in order: x, h0, then weight_ih_l0, weight_hh_l0, ...
  CHECK(parse_error("gru_l1_s7",
                    lstm_model("[batch, seq, 5]", "{op: gru, in: [x, hs, rnn.weight_hh_l0, rnn.weight_hh_l0], out: [y, h]}",
                               "  hs: {dtype: f32, shape: [1, batch, 8]}\n")) ==
        "model.yaml:8:5: error: gru 'y': expected weight_ih_l0 of shape [24,5], got [24,8] ('rnn.weight_hh_l0')");
  CHECK(parse_error("gru_l1_s7",
                    lstm_model("[batch, seq, 5]", "{op: gru, in: [x, hs, rnn.weight_ih_l0, rnn.bias_hh_l0], out: [y, h]}",
                               "  hs: {dtype: f32, shape: [1, batch, 8]}\n")) ==
        "model.yaml:8:5: error: gru 'y': expected weight_hh_l0 of rank 2 ([gates*hidden, hidden]), got f32[24] "
        "('rnn.bias_hh_l0')");
  CHECK(parse_error("gru_l1_s7",
                    lstm_model("[batch, seq, 5]", "{op: gru, in: [x, hs, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0], out: [y, h]}",
                               "  hs: {dtype: f32, shape: [1, batch, 8]}\n")) ==
        "model.yaml:8:5: error: gru 'y': missing bias bias_hh_l0 (biases are all present or all absent, as with nn.GRU(bias=...))");
}

TEST_CASE("rnn error: initial states") {
  const std::string node = "{op: lstm, in: [x, h0, c0], weights: rnn, num_layers: 2, bidirectional: true, out: [y, h, c]}";
  CHECK(parse_error("lstm_l2_bi_s5_state",
                    lstm_model("[batch, seq, 6]", node,
                               "  h0: {dtype: f32, shape: [2, batch, 7]}\n  c0: {dtype: f32, shape: [4, batch, 7]}\n")) ==
        "model.yaml:9:5: error: lstm 'y': expected initial state h0 of shape [4,batch,7] ([num_layers*directions, batch, "
        "hidden]), got f32[2,batch,7]");
  CHECK(parse_error("lstm_l2_bi_s5_state",
                    lstm_model("[batch, seq, 6]", "{op: lstm, in: [x, h0], weights: rnn, num_layers: 2, bidirectional: true, out: [y, h, c]}",
                               "  h0: {dtype: f32, shape: [4, batch, 7]}\n")) ==
        "model.yaml:8:5: error: lstm 'y': initial states h0 and c0 must be given together");
  CHECK(parse_error("lstm_l2_bi_s5_state",
                    lstm_model("[seq, 6]", "{op: lstm, in: [x], weights: rnn, num_layers: 2, bidirectional: true, out: [y, h]}")) ==
        "model.yaml:7:80: error: lstm has 3 output(s), 'out' names 2");
}

TEST_CASE("rnn error: a batch that differs between input and state is caught when the plan is made") {
  const std::string dir = source_path("tests/fixtures/rnn/gru_l1_s1_state/");
  kiln::Session session(kiln::Model::load(dir + "model.yaml"));
  auto x = kiln::Tensor::empty(kiln::DType::f32, {2, 1, 6});
  auto h = kiln::Tensor::empty(kiln::DType::f32, {1, 3, 8});
  std::string msg = error_of([&] { session.run({{"x", x}, {"h0", h}}); });
  CHECK(contains(msg, "batch"));
}

namespace kiln {
std::size_t rnn_weight_packs_made();  // ops/rnn.cpp
}

TEST_CASE("lstm: plans for other shapes share the packed weights") {
  // An encoder compiles one plan per source length; the weights are packed for the first plan only.
  const std::string dir = source_path("tests/fixtures/rnn/lstm_l2_bi_s5_state/");
  kiln::Session session(kiln::Model::load(dir + "model.yaml"));
  auto run = [&](std::int64_t batch, std::int64_t seq) {
    auto x = kiln::Tensor::empty(kiln::DType::f32, {batch, seq, 6});
    auto h = kiln::Tensor::empty(kiln::DType::f32, {4, batch, 7});
    for (auto* t : {&x, &h})
      for (std::int64_t i = 0; i < t->numel(); ++i) t->data_as<float>()[i] = static_cast<float>(i % 7) * 0.1f - 0.3f;
    session.run({{"x", x}, {"h0", h}, {"c0", h}});
  };
  run(1, 3);
  const std::size_t after_first = kiln::rnn_weight_packs_made();
  run(1, 11);
  run(2, 4);
  CHECK(session.plan_count() == 3);
  CHECK(kiln::rnn_weight_packs_made() == after_first);
}
