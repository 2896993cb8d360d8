// ONNX LSTM/GRU/RNN import (frontends/onnx/map_rnn.cpp) and models exported by torch.onnx.export:
// - tests/fixtures/onnx_rnn: single LSTM/GRU nodes built with onnx.helper (tools/reference/
//   make_onnx_rnn_fixtures.py), against PyTorch's nn.LSTM/nn.GRU holding the same weights;
// - tests/fixtures/onnx_torch/NAME: resnet_tiny, mobilenet_tiny, lstm_tagger, gru_bi exported at opset 14
//   (tools/reference/make_onnx_torch_models.py), against PyTorch's outputs at batch 2 and batch 1;
// - the LSTM/GRU attributes and inputs Kiln cannot map, each refused naming the file and the node.

#include <onnx/onnx_pb.h>

#include <cstring>
#include <fstream>
#include <map>
#include <string>

#include "frontends/onnx/onnx_frontend.hpp"
#include "runtime/npy.hpp"
#include "test_util.hpp"

using kiln::test::contains;
using kiln::test::error_of;
using kiln::test::source_path;

namespace {

std::string rnn_fixture(const std::string& name) { return source_path("tests/fixtures/onnx_rnn/" + name); }
std::string torch_fixture(const std::string& name) { return source_path("tests/fixtures/onnx_torch/" + name); }

/// The first `k` entries of `t` along `axis` (a copy).
kiln::Tensor first_along(const kiln::Tensor& t, int axis, std::int64_t k) {
  std::vector<std::int64_t> shape = t.shape();
  std::int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= shape[static_cast<std::size_t>(i)];
  for (std::size_t i = static_cast<std::size_t>(axis) + 1; i < shape.size(); ++i) inner *= shape[i];
  const std::int64_t n = shape[static_cast<std::size_t>(axis)];
  shape[static_cast<std::size_t>(axis)] = k;
  kiln::Tensor out = kiln::Tensor::empty(t.dtype(), shape);
  const std::size_t es = kiln::dtype_size(t.dtype());
  const auto* src = static_cast<const unsigned char*>(t.data());
  auto* dst = static_cast<unsigned char*>(out.data());
  for (std::int64_t o = 0; o < outer; ++o)
    std::memcpy(dst + static_cast<std::size_t>(o * k * inner) * es, src + static_cast<std::size_t>(o * n * inner) * es,
                static_cast<std::size_t>(k * inner) * es);
  return out;
}

struct Io {
  std::string name;
  int batch_axis;
};

/// Runs the model on the inputs `ins` (NAME.npy under `folder`, or PREFIX.NAME.npy) and compares every
/// output in `outs` with its .npy at <= 1e-5; with `batch` > 0 only the first `batch` entries of each along
/// its batch axis.
void check_against_reference(const std::string& model_path, const std::string& file_prefix,
                             const std::vector<Io>& ins, const std::vector<Io>& outs, std::int64_t batch = 0) {
  kiln::Model model = kiln::Model::load(model_path);
  kiln::Session session(model);
  std::map<std::string, kiln::Tensor> feed;
  for (const Io& i : ins) {
    kiln::Tensor t = kiln::read_npy(file_prefix + i.name + ".npy");
    feed[i.name] = batch ? first_along(t, i.batch_axis, batch) : t;
  }
  auto got = session.run(feed);
  for (const Io& o : outs) {
    kiln::Tensor want = kiln::read_npy(file_prefix + o.name + ".npy");
    if (batch) want = first_along(want, o.batch_axis, batch);
    INFO(model_path << " output " << o.name << " batch " << batch);
    REQUIRE(got.count(o.name));
    REQUIRE(got.at(o.name).shape() == want.shape());
    CHECK(kiln::test::max_abs_diff(got.at(o.name), want) <= 1e-5);
  }
}

onnx::ModelProto read_model(const std::string& path) {
  onnx::ModelProto m;
  std::ifstream in(path, std::ios::binary);
  REQUIRE(m.ParseFromIstream(&in));
  return m;
}

std::string save(const kiln::test::TempDir& dir, const std::string& name, const onnx::ModelProto& m) {
  std::string bytes;
  REQUIRE(m.SerializeToString(&bytes));
  return dir.write(name, bytes);
}

void set_attr(onnx::NodeProto* n, const std::string& key, std::int64_t v) {
  for (auto& a : *n->mutable_attribute())
    if (a.name() == key) return a.set_i(v);
  auto* a = n->add_attribute();
  a->set_name(key);
  a->set_type(onnx::AttributeProto_AttributeType_INT);
  a->set_i(v);
}

/// The error of loading fixture `base` (one LSTM/GRU node) after `edit` changed it.
template <class Edit>
std::string rnn_error(const std::string& base, Edit edit, std::string* path_out) {
  kiln::test::TempDir dir;
  onnx::ModelProto m = read_model(rnn_fixture(base + ".onnx"));
  edit(m, m.mutable_graph()->mutable_node(0));
  *path_out = save(dir, base + ".onnx", m);
  return error_of([&] { kiln::Model::load(*path_out); });
}

}  // namespace

// ---- single nodes against PyTorch ----

TEST_CASE("onnx rnn: a bidirectional LSTM in layout 0 with initial states gives Y, Y_h and Y_c as PyTorch") {
  check_against_reference(rnn_fixture("lstm_bi_layout0_states.onnx"), rnn_fixture("lstm_bi_layout0_states."),
                          {{"X", 1}, {"initial_h", 1}, {"initial_c", 1}}, {{"Y", 2}, {"Y_h", 1}, {"Y_c", 1}});
}

TEST_CASE("onnx rnn: a bidirectional LSTM in layout 1 (batch first) with initial states equals PyTorch") {
  check_against_reference(rnn_fixture("lstm_bi_layout1_states.onnx"), rnn_fixture("lstm_bi_layout1_states."),
                          {{"X", 0}, {"initial_h", 0}, {"initial_c", 0}}, {{"Y", 0}, {"Y_h", 0}, {"Y_c", 0}});
  // Batch-first: Kiln's lstm reads X as it is (batch_first=true) and Y is a reshape of its y, no transpose.
  const std::string ir = kiln::Model::load(rnn_fixture("lstm_bi_layout1_states.onnx")).ir();
  CHECK(contains(ir, "batch_first=true"));
  CHECK(contains(ir, "bidirectional=true"));
}

TEST_CASE("onnx rnn: an opset-7 LSTM without B, and an opset-7 GRU (linear_before_reset 1), equal PyTorch") {
  check_against_reference(rnn_fixture("lstm_fwd_opset7_nobias.onnx"), rnn_fixture("lstm_fwd_opset7_nobias."),
                          {{"X", 1}}, {{"Y", 2}, {"Y_h", 1}});
  check_against_reference(rnn_fixture("gru_fwd_opset7.onnx"), rnn_fixture("gru_fwd_opset7."), {{"X", 1}},
                          {{"Y_h", 1}});
}

TEST_CASE("onnx rnn: a bidirectional GRU in layout 1 with an initial state equals PyTorch at batch 3 and 1") {
  for (std::int64_t batch : {0, 1})
    check_against_reference(rnn_fixture("gru_bi_layout1_state.onnx"), rnn_fixture("gru_bi_layout1_state."),
                            {{"X", 0}, {"initial_h", 0}}, {{"Y", 0}, {"Y_h", 0}}, batch);
}

TEST_CASE("onnx rnn: RNN (bidirectional Relu in layout 1, Tanh at opset 7) equals PyTorch's nn.RNN") {
  check_against_reference(rnn_fixture("rnn_relu_bi_layout1_state.onnx"), rnn_fixture("rnn_relu_bi_layout1_state."),
                          {{"X", 0}, {"initial_h", 0}}, {{"Y", 0}, {"Y_h", 0}});
  check_against_reference(rnn_fixture("rnn_tanh_fwd_opset7.onnx"), rnn_fixture("rnn_tanh_fwd_opset7."), {{"X", 1}},
                          {{"Y", 2}, {"Y_h", 1}});
}

TEST_CASE("onnx rnn: direction reverse (LSTM in layout 1 with states, GRU in layout 0) equals PyTorch on the "
          "reversed sequence") {
  check_against_reference(rnn_fixture("lstm_reverse_layout1_states.onnx"),
                          rnn_fixture("lstm_reverse_layout1_states."), {{"X", 0}, {"initial_h", 0}, {"initial_c", 0}},
                          {{"Y", 0}, {"Y_h", 0}, {"Y_c", 0}});
  check_against_reference(rnn_fixture("gru_reverse_layout0.onnx"), rnn_fixture("gru_reverse_layout0."), {{"X", 1}},
                          {{"Y", 2}, {"Y_h", 1}});
  CHECK(contains(kiln::load_onnx_model(rnn_fixture("gru_reverse_layout0.onnx"))->print(), "reverse=true"));
}

TEST_CASE("onnx rnn: a bidirectional GRU with linear_before_reset 0 equals a numpy implementation of the spec") {
  // PyTorch has no such GRU: the reference is float64 numpy of ONNX's equations on the ONNX weights (it
  // equals the backend node tests' expected outputs to 1.5e-8).
  check_against_reference(rnn_fixture("gru_lbr0_bi_layout0_state.onnx"), rnn_fixture("gru_lbr0_bi_layout0_state."),
                          {{"X", 1}, {"initial_h", 1}}, {{"Y", 2}, {"Y_h", 1}});
}

TEST_CASE("onnx rnn: a bidirectional LSTM with peepholes equals a numpy implementation of the spec") {
  // PyTorch has no peepholes: float64 numpy of ONNX's equations (P = [Pi, Po, Pf]); the same numpy with
  // P = 0 equals PyTorch, and with the backend test's P equals its expected output.
  check_against_reference(rnn_fixture("lstm_peephole_bi_layout0_states.onnx"),
                          rnn_fixture("lstm_peephole_bi_layout0_states."),
                          {{"X", 1}, {"initial_h", 1}, {"initial_c", 1}}, {{"Y", 2}, {"Y_h", 1}, {"Y_c", 1}});
  const std::string ir = kiln::load_onnx_model(rnn_fixture("lstm_peephole_bi_layout0_states.onnx"))->print();
  CHECK(contains(ir, "%P/l0 = const : f32[12]"));
  CHECK(contains(ir, "%P/l0_reverse = const : f32[12]"));
}

TEST_CASE("onnx rnn: the weights are reordered once at import into PyTorch-layout constants") {
  auto g = kiln::load_onnx_model(rnn_fixture("lstm_bi_layout0_states.onnx"));
  const std::string ir = g->print();
  INFO(ir);
  // W [2, 4*6, 5] becomes weight_ih_l0 and weight_ih_l0_reverse [24, 5]; B [2, 48] the four biases [24].
  CHECK(contains(ir, "%W/l0 = const : f32[24,5]"));
  CHECK(contains(ir, "%W/l0_reverse = const : f32[24,5]"));
  CHECK(contains(ir, "%B/l0_reverse_hh = const : f32[24]"));
  CHECK(contains(ir, "%Y_h, %Y_c = lstm(%X, %initial_h, %initial_c, %W/l0, %R/l0, %B/l0_ih, %B/l0_hh, %W/l0_reverse"));
}

// ---- torch.onnx.export models ----

TEST_CASE("onnx torch: resnet_tiny exported at opset 14 equals PyTorch at batch 2 and 1") {
  for (std::int64_t batch : {0, 1})
    check_against_reference(torch_fixture("resnet_tiny/model.onnx"), torch_fixture("resnet_tiny/"), {{"image", 0}},
                            {{"logits", 0}}, batch);
}

TEST_CASE("onnx torch: gru_bi (Transpose, bidirectional GRU, Transpose, Reshape, MatMul) equals PyTorch at batch 2 "
          "and 1") {
  for (std::int64_t batch : {0, 1})
    check_against_reference(torch_fixture("gru_bi/model.onnx"), torch_fixture("gru_bi/"),
                            {{"features", 0}, {"h0", 1}}, {{"out", 0}, {"h_n", 1}}, batch);
}

// ReLU6 exports as Clip(0, 6).
TEST_CASE("onnx torch: mobilenet_tiny exported at opset 14 equals PyTorch at batch 2 and 1") {
  for (std::int64_t batch : {0, 1})
    check_against_reference(torch_fixture("mobilenet_tiny/model.onnx"), torch_fixture("mobilenet_tiny/"),
                            {{"image", 0}}, {{"logits", 0}}, batch);
}

// nn.Embedding exports as Gather; the LSTM's Y [seq, 1, batch, hidden] is squeezed (Squeeze, axes a constant
// input at opset 13+) and transposed back to batch-first.
TEST_CASE("onnx torch: lstm_tagger (Embedding, LSTM with h0/c0, Linear) equals PyTorch at batch 2 and 1") {
  for (std::int64_t batch : {0, 1})
    check_against_reference(torch_fixture("lstm_tagger/model.onnx"), torch_fixture("lstm_tagger/"),
                            {{"tokens", 0}, {"h0", 1}, {"c0", 1}}, {{"logits", 0}, {"h_n", 1}, {"c_n", 1}}, batch);
}

// ---- what is refused ----

TEST_CASE("onnx rnn: GRU's linear_before_reset picks Kiln's gru variant, RNN's activations its nonlinearity") {
  std::string path;
  kiln::test::TempDir dir;
  onnx::ModelProto m = read_model(rnn_fixture("gru_fwd_opset7.onnx"));
  set_attr(m.mutable_graph()->mutable_node(0), "linear_before_reset", 0);  // ONNX's default
  CHECK(contains(kiln::load_onnx_model(save(dir, "gru0.onnx", m))->print(), "linear_before_reset=false"));
  CHECK(contains(kiln::load_onnx_model(rnn_fixture("gru_fwd_opset7.onnx"))->print(), "linear_before_reset=true"));
  CHECK(contains(kiln::load_onnx_model(rnn_fixture("rnn_relu_bi_layout1_state.onnx"))->print(),
                 "nonlinearity=\"relu\""));
  std::string e = rnn_error("gru_fwd_opset7", [](onnx::ModelProto&, onnx::NodeProto* n) {
    set_attr(n, "linear_before_reset", 2);
  }, &path);
  CHECK(contains(e, path + ":1:0: error: node 'gru_fwd_opset7' (GRU): expected linear_before_reset 0 or 1, got 2"));
  e = rnn_error("rnn_tanh_fwd_opset7", [](onnx::ModelProto&, onnx::NodeProto* n) {
    auto* a = n->add_attribute();
    a->set_name("activations");
    a->set_type(onnx::AttributeProto_AttributeType_STRINGS);
    a->add_strings("Sigmoid");
  }, &path);
  INFO(e);
  CHECK(contains(e, "(RNN): expected the default activations (Tanh) or (Relu), got (Sigmoid)"));
}

TEST_CASE("onnx rnn error: LSTM attributes Kiln does not map (clip, input_forget, direction reverse, "
          "activations)") {
  std::string path;
  std::string e = rnn_error("lstm_fwd_opset7_nobias", [](onnx::ModelProto&, onnx::NodeProto* n) {
    auto* a = n->add_attribute();
    a->set_name("clip");
    a->set_type(onnx::AttributeProto_AttributeType_FLOAT);
    a->set_f(3.0f);
  }, &path);
  CHECK(contains(e, path + ":1:0: error: node 'lstm_fwd_opset7_nobias' (LSTM): attribute 'clip'"));
  e = rnn_error("lstm_fwd_opset7_nobias", [](onnx::ModelProto&, onnx::NodeProto* n) { set_attr(n, "input_forget", 1); },
                &path);
  CHECK(contains(e, "(LSTM): input_forget = 1 (coupled input and forget gates) is not supported"));
  e = rnn_error("lstm_fwd_opset7_nobias", [](onnx::ModelProto&, onnx::NodeProto* n) {
    for (auto& a : *n->mutable_attribute())
      if (a.name() == "direction") a.set_s("backward");
  }, &path);
  CHECK(contains(e, "(LSTM): expected direction forward, reverse or bidirectional, got 'backward'"));
  e = rnn_error("lstm_fwd_opset7_nobias", [](onnx::ModelProto&, onnx::NodeProto* n) {
    auto* a = n->add_attribute();
    a->set_name("activations");
    a->set_type(onnx::AttributeProto_AttributeType_STRINGS);
    for (const char* s : {"Sigmoid", "Relu", "Tanh"}) a->add_strings(s);
  }, &path);
  INFO(e);
  CHECK(contains(e, "expected the default activations (Sigmoid, Tanh, Tanh), got (Sigmoid, Relu, Tanh)"));
}

TEST_CASE("onnx rnn error: peepholes of the wrong size, computed weights, partial sequence_lens, one LSTM state of "
          "two") {
  std::string path;
  // P, input 7: three peephole vectors per direction, here 3*6 = 18 wide where hidden is 6... given 17.
  std::string e = rnn_error("lstm_bi_layout0_states", [](onnx::ModelProto& m, onnx::NodeProto* n) {
    auto* p = m.mutable_graph()->add_initializer();
    p->set_name("P");
    p->set_data_type(onnx::TensorProto_DataType_FLOAT);
    p->add_dims(2);
    p->add_dims(17);
    for (int i = 0; i < 34; ++i) p->add_float_data(0.f);
    n->add_input("P");
  }, &path);
  CHECK(contains(e, path + ":1:0: error: node 'lstm_bi_layout0_states' (LSTM): expected P of shape [2,18], got [2,17]"));
  // W a graph input (computed): Kiln's ops take their weights from the model.
  e = rnn_error("gru_fwd_opset7", [](onnx::ModelProto& m, onnx::NodeProto*) {
    auto* g = m.mutable_graph();
    for (int i = 0; i < g->initializer_size(); ++i)
      if (g->initializer(i).name() == "W") {
        auto* in = g->add_input();
        in->set_name("W");
        auto* tt = in->mutable_type()->mutable_tensor_type();
        tt->set_elem_type(onnx::TensorProto_DataType_FLOAT);
        for (auto d : g->initializer(i).dims()) tt->mutable_shape()->add_dim()->set_dim_value(d);
        g->mutable_initializer()->DeleteSubrange(i, 1);
        break;
      }
  }, &path);
  CHECK(contains(e, "(GRU): expected W (input 1) to be a constant (an initializer)"));
  // sequence_lens that are not all the full (here symbolic) length.
  e = rnn_error("gru_fwd_opset7", [](onnx::ModelProto& m, onnx::NodeProto* n) {
    auto* s = m.mutable_graph()->add_initializer();
    s->set_name("lens");
    s->set_data_type(onnx::TensorProto_DataType_INT32);
    s->add_dims(2);
    s->add_int32_data(3);
    s->add_int32_data(2);
    n->add_input("lens");
  }, &path);
  CHECK(contains(e, "(GRU): sequence_lens is supported only as a constant whose every entry is the (concrete) "
                    "sequence length"));
  // initial_h without initial_c.
  e = rnn_error("lstm_bi_layout0_states", [](onnx::ModelProto&, onnx::NodeProto* n) { n->mutable_input()->RemoveLast(); },
                &path);
  INFO(e);
  CHECK(contains(e, "(LSTM): expected initial_h and initial_c both given or both absent"));
}

TEST_CASE("onnx rnn error: W of the wrong shape and a hidden_size that differs from R's") {
  std::string path;
  std::string e = rnn_error("gru_fwd_opset7", [](onnx::ModelProto&, onnx::NodeProto* n) { set_attr(n, "hidden_size", 4); },
                            &path);
  CHECK(contains(e, path + ":1:0: error: node 'gru_fwd_opset7' (GRU): hidden_size 4 differs from R's [1,9,3]"));
  e = rnn_error("gru_fwd_opset7", [](onnx::ModelProto& m, onnx::NodeProto*) {
    auto* g = m.mutable_graph();
    for (auto& t : *g->mutable_initializer())
      if (t.name() == "W") {
        t.set_dims(2, 4);  // [1, 9, 5] -> [1, 9, 4] with 45 values: the checker or the reader refuses it
        t.clear_float_data();
        t.clear_raw_data();
        for (int i = 0; i < 36; ++i) t.add_float_data(0.f);
      }
  }, &path);
  INFO(e);
  CHECK(contains(e, "(GRU): expected W of shape [1,9,5] ([num_directions, 3*hidden_size, input_size]), got [1,9,4]"));
}

TEST_CASE("rnn error: a nonlinearity other than tanh or relu names the node") {
  auto g = kiln::load_onnx_model(rnn_fixture("rnn_tanh_fwd_opset7.onnx"));
  kiln::Node* rnn = nullptr;
  for (const auto& node : g->nodes())
    if (node->op == "rnn") rnn = node.get();
  REQUIRE(rnn);
  rnn->attrs["nonlinearity"] = std::string("sigmoid");
  std::string e = error_of([&] { g->infer_shapes(); });
  INFO(e);
  CHECK(contains(e, "rnn_tanh_fwd_opset7.onnx:1:0: error: rnn 'rnn_tanh_fwd_opset7'"));
  CHECK(contains(e, "attribute 'nonlinearity' must be tanh or relu, got 'sigmoid'"));
}

TEST_CASE("onnx rnn: sequence_lens holding the full (concrete) length everywhere is accepted and changes nothing") {
  kiln::test::TempDir dir;
  onnx::ModelProto m = read_model(rnn_fixture("gru_fwd_opset7.onnx"));
  auto* g = m.mutable_graph();
  g->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(0)->set_dim_value(3);
  auto* s = g->add_initializer();
  s->set_name("lens");
  s->set_data_type(onnx::TensorProto_DataType_INT32);
  s->add_dims(2);
  s->add_int32_data(3);
  s->add_int32_data(3);
  g->mutable_node(0)->add_input("lens");
  const std::string path = save(dir, "full_lens.onnx", m);
  check_against_reference(path, rnn_fixture("gru_fwd_opset7."), {{"X", 1}}, {{"Y_h", 1}});
}

TEST_CASE("onnx rnn error: an input size of 0") {
  std::string path;
  std::string e = rnn_error("rnn_tanh_fwd_opset7", [](onnx::ModelProto& m, onnx::NodeProto*) {
    auto* g = m.mutable_graph();
    g->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(2)->set_dim_value(0);
    for (auto& t : *g->mutable_initializer())
      if (t.name() == "W") {  // [1, 4, 3] -> [1, 4, 0]
        t.set_dims(2, 0);
        t.clear_float_data();
        t.clear_raw_data();
      }
  }, &path);
  INFO(e);
  CHECK(contains(e, path + ":1:0: error: node 'rnn_tanh_fwd_opset7' (RNN): expected X's last dim (input size) "
                           "concrete and at least 1, got f32[seq,batch,0]"));
}

TEST_CASE("rnn error: reverse together with bidirectional names the node") {
  auto g = kiln::load_onnx_model(rnn_fixture("lstm_bi_layout0_states.onnx"));
  kiln::Node* lstm = nullptr;
  for (const auto& node : g->nodes())
    if (node->op == "lstm") lstm = node.get();
  REQUIRE(lstm);
  lstm->attrs["reverse"] = true;
  std::string e = error_of([&] { g->infer_shapes(); });
  INFO(e);
  CHECK(contains(e, "lstm_bi_layout0_states.onnx:1:0: error: lstm 'lstm_bi_layout0_states': attributes 'reverse' "
                    "and 'bidirectional' exclude each other"));
}

TEST_CASE("lstm error: peepholes for some directions only name the missing weight") {
  auto g = kiln::load_onnx_model(rnn_fixture("lstm_peephole_bi_layout0_states.onnx"));
  kiln::Node* lstm = nullptr;
  for (const auto& node : g->nodes())
    if (node->op == "lstm") lstm = node.get();
  REQUIRE(lstm);
  lstm->inputs.pop_back();  // weight_peephole_l0_reverse
  std::string e = error_of([&] { g->infer_shapes(); });
  INFO(e);
  CHECK(contains(e, "lstm_peephole_bi_layout0_states.onnx:1:0: error: lstm 'lstm_peephole_bi_layout0_states': "
                    "missing weight weight_peephole_l0_reverse (peepholes are given for every layer and direction "
                    "or for none)"));
}
