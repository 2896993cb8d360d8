// Transformers exported with torch.onnx.export (opset 14, dynamic batch and seq): the fixtures of
// tools/reference/make_onnx_torch_fixtures.py under tests/fixtures/onnx_torch/, against PyTorch's outputs at
// two batch/seq sizes through the symbolic dims; the fusions that fire on the imported classifier; and the
// errors of the shape-arithmetic paths (docs/onnx.md "Shape arithmetic"), on models built here.

#include <onnx/onnx_pb.h>

#include <map>
#include <string>

#include "frontends/onnx/onnx_frontend.hpp"
#include "frontends/yaml/yaml_frontend.hpp"
#include "passes/pass.hpp"
#include "runtime/npy.hpp"
#include "onnx_builder.hpp"
#include "test_util.hpp"

using kiln::test::contains;
using kiln::test::error_of;
using kiln::test::source_path;

namespace {

std::string torch_fixture(const std::string& model, const std::string& file) {
  return source_path("tests/fixtures/onnx_torch/" + model + "/" + file);
}

void check_against_torch_at(const std::string& name, std::initializer_list<std::string> outputs,
                            const kiln::LoadOptions& options) {
  kiln::Model model = kiln::Model::load(torch_fixture(name, "model.onnx"), options);
  kiln::Session session(model);
  for (const std::string size : {"b2_s7", "b3_s12"}) {
    auto out = session.run({{"tokens", kiln::read_npy(torch_fixture(name, "tokens_" + size + ".npy"))}});
    for (const auto& o : outputs) {
      INFO(name << " " << o << " " << size << " -O" << options.opt_level);
      kiln::Tensor expected = kiln::read_npy(torch_fixture(name, o + "_" + size + ".npy"));
      REQUIRE(out.at(o).shape() == expected.shape());
      CHECK(kiln::test::max_abs_diff(out.at(o), expected) <= 1e-5);
    }
  }
}

// Kiln's outputs against PyTorch's for the fixture sizes b2_s7 and b3_s12 (one session: the plan is made
// per shape from the same symbolic graph). ≤ 1e-5: the sums are over 64..128 terms of O(1) values.
// At -O2 (attention, layer norm, GELU fused) and -O0 (every imported node runs: slice, reshape_dims, gather,
// positions, ...).
void check_against_torch(const std::string& name, std::initializer_list<std::string> outputs) {
  for (int level : {2, 0}) {
    kiln::LoadOptions options;
    options.opt_level = level;
    check_against_torch_at(name, outputs, options);
  }
}

// ---- models built with ONNX's classes ----

using kiln::test::onnx_build::add_node;
using kiln::test::onnx_build::save;
using kiln::test::onnx_build::set_int_attr;
using kiln::test::onnx_build::set_ints_attr;
inline void add_ints(onnx::ModelProto& m, const std::string& name, const std::vector<std::int64_t>& dims,
                     const std::vector<std::int64_t>& values) {
  kiln::test::onnx_build::add_i64(m, name, dims, values);
}

onnx::ModelProto model_with(int opset, std::initializer_list<const char*> x_dims = {"batch", "4"},
                            int x_type = onnx::TensorProto_DataType_FLOAT) {
  onnx::ModelProto m = kiln::test::onnx_build::empty_model(opset);
  kiln::test::onnx_build::add_input(m, "x", x_type, std::vector<std::string>(x_dims.begin(), x_dims.end()));
  kiln::test::onnx_build::add_output(m, "y", onnx::TensorProto_DataType_FLOAT, {});  // Kiln infers the shape
  return m;
}






std::string load_error(const kiln::test::TempDir& dir, const onnx::ModelProto& m) {
  const std::string path = save(dir, "bad.onnx", m);
  return error_of([&] { kiln::load_onnx_model(path); });
}

// dim `i` of x as a 1-element shape value: Shape -> Gather(i) -> Unsqueeze.
std::string dim_of_x(onnx::ModelProto& m, int i) {
  const std::string s = "shape_x", idx = "i" + std::to_string(i), g = "d" + std::to_string(i),
                    u = "u" + std::to_string(i);
  if (i == 0 || m.graph().node_size() == 0) add_node(m, "Shape", "shape", {"x"}, {s});
  add_ints(m, idx, {}, {i});
  add_node(m, "Gather", "gather" + std::to_string(i), {s, idx}, {g});
  add_ints(m, "axes" + std::to_string(i), {1}, {0});
  add_node(m, "Unsqueeze", "unsqueeze" + std::to_string(i), {g, "axes" + std::to_string(i)}, {u});
  return u;
}

}  // namespace

TEST_CASE("onnx torch: the exported seed classifier equals PyTorch at two batch and seq sizes") {
  check_against_torch("classifier", {"logits", "probs"});
}

TEST_CASE("onnx torch: a pre-norm GELU encoder reading the CLS token equals PyTorch") {
  check_against_torch("encoder_cls", {"logits"});
}

TEST_CASE("onnx torch: the date Transformer's encoder (arange positions) equals PyTorch") {
  check_against_torch("date_encoder", {"memory"});
}

TEST_CASE("onnx torch: the shape arithmetic folds: no Shape, Gather or Concat of shapes reaches the graph") {
  auto g = kiln::load_onnx_model(torch_fixture("date_encoder", "model.onnx"));
  std::map<std::string, int> ops;
  for (const auto& n : g->nodes()) ++ops[n->op];
  // 5 Reshapes whose targets are shape values: 4 become reshape ([seq,batch,64] -> [0,-1,16], ...); one
  // ([seq*batch,64] -> [seq,batch,64]: two symbolic dims) takes seq from the tokens input.
  CHECK(ops["reshape"] + ops["reshape_dims"] == 5);
  CHECK(ops["reshape_dims"] == 1);
  CHECK(ops["slice"] == 3);       // the q/k/v split of in_proj's output
  CHECK(ops["positions"] == 1);   // torch.arange(src.shape[1])
  CHECK(ops["unsqueeze"] == 1);   // its unsqueeze(0); the 14 other Unsqueezes were of shape values
  CHECK(ops["embedding"] == 2);   // token and position tables
  CHECK(ops["gather"] == 0);      // the 8 other Gathers read shape values
  CHECK(ops["concat"] == 0);      // every Concat was one of shapes
  CHECK(g->nodes().size() <= 80);  // of 146 ONNX nodes, 40 Constants and the shape arithmetic fold
}

// Nodes per op in a model's optimized graph, linear counted per activation ("linear/relu").
std::map<std::string, int> fused_ops(const std::string& path) {
  auto g = path.ends_with(".onnx") ? kiln::load_onnx_model(path) : kiln::load_yaml_model(path);
  kiln::run_pipeline(*g, kiln::PipelineOptions{});
  std::map<std::string, int> ops;
  for (const auto& n : g->nodes()) {
    const bool residual = n->inputs.size() > 3 && n->inputs[3];
    ++ops[n->op == "linear" ? "linear/" + n->attr_string("activation") + (residual ? "+residual" : "") : n->op];
  }
  return ops;
}

TEST_CASE("onnx torch: fusions fire on the imported classifier as on the YAML model") {
  const auto onnx_ops = fused_ops(torch_fixture("classifier", "model.onnx"));
  const std::map<std::string, int> want{
      {"embedding", 1},
      {"attention", 2},             // the sequence-first MultiheadAttention export, 20 nodes each
      {"layer_norm", 4},            // ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add, residual add folded in
      {"linear/relu", 2},           // MatMul + Add(bias) + Relu
      {"linear/none+residual", 2},  // MatMul + Add(bias) + the residual add
      {"linear/none", 1},           // the head (Gemm)
      {"reduce_mean", 1},           // mean pooling
      {"softmax", 1},
  };
  CHECK(onnx_ops == want);
  // The YAML model of the same architecture fuses into the same ops.
  CHECK(fused_ops(source_path("tests/fixtures/classifier_d64_l2/model.yaml")) == want);
  // The pre-norm GELU encoder: the Erf form becomes linear's gelu activation.
  const auto gelu = fused_ops(torch_fixture("encoder_cls", "model.onnx"));
  CHECK(gelu.at("attention") == 2);
  CHECK(gelu.at("linear/gelu") == 2);
  CHECK(gelu.count("erf") == 0);
  CHECK(gelu.count("pow") == 0);
  CHECK(gelu.at("gather") == 1);  // the CLS token x[:, 0]
}

TEST_CASE("onnx: Reshape to a shape built from Shape, Gather, Unsqueeze and Concat runs at two batch sizes") {
  kiln::test::TempDir dir;
  onnx::ModelProto m = model_with(13, {"batch", "seq", "4"});
  const std::string b = dim_of_x(m, 0), s = dim_of_x(m, 1);
  add_ints(m, "two", {1}, {2});
  add_node(m, "Concat", "target", {s, b, "two", "two"}, {"t"})->add_attribute()->CopyFrom([] {
    onnx::AttributeProto axis;
    axis.set_name("axis");
    axis.set_type(onnx::AttributeProto_AttributeType_INT);
    axis.set_i(0);
    return axis;
  }());
  add_node(m, "Transpose", "swap", {"x"}, {"xt"});
  set_ints_attr(m.mutable_graph()->mutable_node(m.graph().node_size() - 1), "perm", {1, 0, 2});
  add_node(m, "Reshape", "split", {"xt", "t"}, {"y"});
  const std::string path = save(dir, "fold.onnx", m);
  kiln::LoadOptions o0;
  o0.opt_level = 0;
  const std::string ir = kiln::Model::load(path, o0).ir();
  INFO(ir);
  // [seq, batch, 2, 2] from xt [seq, batch, 4]: seq and batch are xt's dims at the same positions -> 0.
  CHECK(contains(ir, "%y = reshape(%xt) {shape=[0,0,2,2]} : (f32[seq,batch,4]) -> f32[seq,batch,2,2]"));
  CHECK_FALSE(contains(ir, "concat("));
  kiln::Model model = kiln::Model::load(path);
  kiln::Session session(model);
  for (std::int64_t batch : {1, 3}) {
    std::vector<float> data(static_cast<std::size_t>(batch * 2 * 4));
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i);
    kiln::Tensor y = session.run({{"x", kiln::Tensor::from_f32({batch, 2, 4}, data)}}).at("y");
    REQUIRE(y.shape() == std::vector<std::int64_t>{2, batch, 2, 2});
    // y[1][batch-1][1][1] = x[batch-1][1][3]
    CHECK(y.data_as<float>()[y.numel() - 1] == data[static_cast<std::size_t>((batch - 1) * 8 + 7)]);
  }
}

TEST_CASE("onnx: Shape with start and end, Size, Div, Slice and Cast of shapes, Range and ConstantOfShape fold") {
  kiln::test::TempDir dir;
  onnx::ModelProto m = model_with(15, {"batch", "seq", "4"});
  auto node = [&](const std::string& op, const std::string& name, std::initializer_list<std::string> ins,
                  const std::string& out) { return add_node(m, op, name, ins, {out}); };
  node("Shape", "shape", {"x"}, "s");                          // [batch,seq,4]
  set_int_attr(node("Shape", "tail", {"x"}, "tail"), "start", 1);  // [seq,4]
  set_int_attr(node("Shape", "head", {"x"}, "head"), "end", -2);   // [batch]
  node("Size", "size", {"x"}, "n");                            // 4*batch*seq
  add_ints(m, "four", {}, {4});
  node("Div", "per_row", {"n", "four"}, "bs");  // batch*seq
  add_ints(m, "ax0", {1}, {0});
  node("Unsqueeze", "u", {"bs", "ax0"}, "bs1");
  add_ints(m, "minus1", {1}, {-1});
  add_ints(m, "big", {1}, {100});
  node("Slice", "last", {"s", "minus1", "big"}, "last");  // [4]
  set_int_attr(node("Cast", "to32", {"last"}, "l32"), "to", onnx::TensorProto_DataType_INT32);
  set_int_attr(node("Cast", "to64", {"l32"}, "l64"), "to", onnx::TensorProto_DataType_INT64);
  set_int_attr(node("Concat", "rows", {"bs1", "l64"}, "t"), "axis", 0);  // [batch*seq,4]
  node("Reshape", "flat", {"x", "t"}, "r");
  add_ints(m, "zero", {}, {0});
  add_ints(m, "one", {}, {1});
  node("Range", "iota", {"zero", "four", "one"}, "idx");  // [0,1,2,3]
  set_int_attr(node("Gather", "cols", {"r", "idx"}, "g"), "axis", 1);
  set_int_attr(node("Concat", "back", {"head", "tail"}, "t2"), "axis", 0);  // [batch,seq,4]
  node("Reshape", "unflat", {"g", "t2"}, "y");
  const std::string path = save(dir, "fold15.onnx", m);
  kiln::LoadOptions o0;
  o0.opt_level = 0;
  const std::string ir = kiln::Model::load(path, o0).ir();
  INFO(ir);
  CHECK(contains(ir, "%r = reshape(%x) {shape=[-1,4]} : (f32[batch,seq,4]) -> f32[batch*seq,4]"));
  CHECK(contains(ir, "%g = gather(%r) {axis=1, indices=[0,1,2,3], scalar=false}"));
  // batch comes from x's axis 0; seq is inferred.
  CHECK(contains(ir, "%y = reshape_dims(%g, %x) {dims=[0,1,0], shape=[0,-1,4]} : (f32[batch*seq,4], f32[batch,seq,4]) "
                     "-> f32[batch,seq,4]"));
  kiln::Model model = kiln::Model::load(path);
  kiln::Session session(model);
  std::vector<float> data(2 * 3 * 4);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i) * 0.5f;
  kiln::Tensor x = kiln::Tensor::from_f32({2, 3, 4}, data);
  kiln::Tensor y = session.run({{"x", x}}).at("y");
  REQUIRE(y.shape() == std::vector<std::int64_t>{2, 3, 4});
  CHECK(kiln::test::max_abs_diff(y, x) == 0.0);
}

// torch's export of x.reshape(0-copying target): Where(Equal(t, 0), Shape(x), t).
TEST_CASE("onnx: Equal and Where on shape values fold (a 0 in the target replaced by the input's dim)") {
  kiln::test::TempDir dir;
  onnx::ModelProto m = model_with(13, {"batch", "seq", "4"});
  add_node(m, "Shape", "shape", {"x"}, {"s"});
  add_ints(m, "t", {3}, {0, -1, 2});
  add_ints(m, "zero", {}, {0});
  add_node(m, "Equal", "is_zero", {"t", "zero"}, {"z"});
  add_node(m, "Where", "pick", {"z", "s", "t"}, {"target"});
  add_node(m, "Reshape", "split", {"x", "target"}, {"y"});
  const std::string path = save(dir, "where.onnx", m);
  kiln::LoadOptions o0;
  o0.opt_level = 0;
  const std::string ir = kiln::Model::load(path, o0).ir();
  INFO(ir);
  CHECK(contains(ir, "%y = reshape(%x) {shape=[0,-1,2]} : (f32[batch,seq,4]) -> f32[batch,2*seq,2]"));
}

TEST_CASE("onnx error: Equal whose answer depends on the binding (on data it maps onto equal)") {
  kiln::test::TempDir dir;
  {
    onnx::ModelProto m = model_with(13);
    add_node(m, "Shape", "shape", {"x"}, {"s"});
    add_ints(m, "t", {2}, {1, 4});
    add_node(m, "Equal", "same", {"s", "t"}, {"z"});
    add_node(m, "Relu", "use", {"x"}, {"y"});
    const std::string e = load_error(dir, m);
    INFO(e);
    CHECK(contains(e, "bad.onnx:2:0: error: node 'same' (Equal): cannot decide at import whether batch equals 1 (the "
                      "answer depends on the shape binding)"));
  }
  {
    // On data, Equal is map_logic.cpp's `equal` (the fold-only row gives way to it).
    onnx::ModelProto m = model_with(13);
    add_node(m, "Equal", "data", {"x", "x"}, {"y"});
    m.mutable_graph()->mutable_output(0)->mutable_type()->mutable_tensor_type()->set_elem_type(
        onnx::TensorProto_DataType_BOOL);
    kiln::LoadOptions o0;
    o0.opt_level = 0;
    const std::string path = dir.write("data_equal.onnx", [&] {
      std::string bytes;
      REQUIRE(m.SerializeToString(&bytes));
      return bytes;
    }());
    CHECK(contains(kiln::Model::load(path, o0).ir(), "%y = equal(%x, %x)"));
  }
}

TEST_CASE("onnx: Slice, Unsqueeze and Squeeze with attributes before opset 10 and 13") {
  kiln::test::TempDir dir;
  onnx::ModelProto m = model_with(9, {"batch", "6"});
  auto* sl = add_node(m, "Slice", "cut", {"x"}, {"c"});
  set_ints_attr(sl, "starts", {-1});
  set_ints_attr(sl, "ends", {-100});  // clamped: a negative step walks back to the start
  set_ints_attr(sl, "axes", {1});
  set_ints_attr(add_node(m, "Unsqueeze", "u", {"x"}, {"u"}), "axes", {0});
  set_ints_attr(add_node(m, "Squeeze", "sq", {"u"}, {"q"}), "axes", {0});
  auto* s2 = add_node(m, "Slice", "pair", {"q"}, {"y"});
  set_ints_attr(s2, "starts", {1});
  set_ints_attr(s2, "ends", {3});
  set_ints_attr(s2, "axes", {1});
  const std::string path = save(dir, "opset9.onnx", m);
  kiln::LoadOptions o0;
  o0.opt_level = 0;
  const std::string ir = kiln::Model::load(path, o0).ir();
  INFO(ir);
  // Opset 9's Slice has no steps: step 1, so [-1, -100) is empty.
  CHECK(contains(ir, "%c = slice(%x) {axes=[1], ends=[-100], starts=[-1], steps=[1]} : (f32[batch,6]) -> f32[batch,0]"));
  CHECK(contains(ir, "%u = unsqueeze(%x) {axes=[0]} : (f32[batch,6]) -> f32[1,batch,6]"));
  CHECK(contains(ir, "%q = squeeze(%u) {axes=[0]} : (f32[1,batch,6]) -> f32[batch,6]"));
  kiln::Model model = kiln::Model::load(path);
  kiln::Session session(model);
  kiln::Tensor y = session.run({{"x", kiln::Tensor::from_f32({1, 6}, {0, 1, 2, 3, 4, 5})}}).at("y");
  REQUIRE(y.shape() == std::vector<std::int64_t>{1, 2});
  CHECK(y.data_as<float>()[0] == 1.0f);
  CHECK(y.data_as<float>()[1] == 2.0f);
}

TEST_CASE("onnx: Gather with a scalar index, Squeeze, Unsqueeze, Slice and Expand on data") {
  kiln::test::TempDir dir;
  onnx::ModelProto m = model_with(13, {"batch", "3", "4"});
  add_ints(m, "zero", {}, {0});
  add_node(m, "Gather", "cls", {"x", "zero"}, {"c"});  // x[:, 0] -> [batch, 4] (axis 1)
  set_int_attr(m.mutable_graph()->mutable_node(0), "axis", 1);
  add_ints(m, "ax1", {1}, {1});
  add_node(m, "Unsqueeze", "u", {"c", "ax1"}, {"cu"});  // [batch,1,4]
  add_ints(m, "st", {1}, {1});
  add_ints(m, "en", {1}, {100});  // clamped to 4
  add_ints(m, "axl", {1}, {-1});
  add_node(m, "Slice", "tail", {"cu", "st", "en", "axl"}, {"cs"});  // [batch,1,3]
  add_node(m, "Unsqueeze", "u2", {"cs", "ax1"}, {"cu2"});  // [batch,1,1,3]
  add_node(m, "Squeeze", "sq", {"cu2", "ax1"}, {"q"});      // [batch,1,3]
  add_ints(m, "shape121", {3}, {1, 2, 1});
  add_node(m, "Expand", "ex", {"q", "shape121"}, {"e"});  // [batch,2,3]
  add_node(m, "Identity", "out", {"e"}, {"y"});
  const std::string path = save(dir, "data.onnx", m);
  kiln::LoadOptions o0;
  o0.opt_level = 0;
  const std::string ir = kiln::Model::load(path, o0).ir();
  INFO(ir);
  CHECK(contains(ir, "gather(%x) {axis=1, indices=[0], scalar=true} : (f32[batch,3,4]) -> f32[batch,4]"));
  CHECK(contains(ir, "slice(%cu) {axes=[-1], ends=[100], starts=[1], steps=[1]} : (f32[batch,1,4]) -> f32[batch,1,3]"));
  CHECK(contains(ir, "squeeze(%cu2) {axes=[1]} : (f32[batch,1,1,3]) -> f32[batch,1,3]"));
  kiln::Model model = kiln::Model::load(path);
  kiln::Session session(model);
  std::vector<float> data(2 * 3 * 4);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i);
  kiln::Tensor y = session.run({{"x", kiln::Tensor::from_f32({2, 3, 4}, data)}}).at("y");
  REQUIRE(y.shape() == std::vector<std::int64_t>{2, 2, 3});  // y[b][j][k] = x[b][0][k+1]
  const float* p = y.data_as<float>();
  CHECK(p[0] == 1.0f);   // x[0,0,1]
  CHECK(p[2] == 3.0f);   // x[0,0,3]
  CHECK(p[3] == 1.0f);   // the copy along the expanded axis
  CHECK(p[6] == 13.0f);  // x[1,0,1]
}

TEST_CASE("onnx error: a Reshape whose target shape is computed from data") {
  kiln::test::TempDir dir;
  onnx::ModelProto m = model_with(13);
  auto* s = m.mutable_graph()->add_input();
  s->set_name("s");
  s->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto_DataType_INT64);
  s->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(2);
  add_node(m, "Reshape", "dyn", {"x", "s"}, {"y"});
  const std::string e = load_error(dir, m);
  INFO(e);
  CHECK(contains(e, "bad.onnx:1:0: error: node 'dyn' (Reshape): the target shape (input 1) is computed from data "
                    "at run time, a data-dependent shape"));
}

TEST_CASE("onnx error: a shape value with symbolic dims used as tensor data") {
  kiln::test::TempDir dir;
  onnx::ModelProto m = model_with(13);
  add_node(m, "Shape", "shape", {"x"}, {"s"});
  add_node(m, "Cast", "to_float", {"s"}, {"sf"});
  set_int_attr(m.mutable_graph()->mutable_node(1), "to", onnx::TensorProto_DataType_FLOAT);
  add_node(m, "Add", "use", {"x", "sf"}, {"y"});
  const std::string e = load_error(dir, m);
  INFO(e);
  CHECK(contains(e, "bad.onnx:2:0: error: node 'to_float' (Cast): the shape value [batch,4] holds symbolic dims"));
}

TEST_CASE("onnx error: a shape value reaching a kernel as data names the node") {
  kiln::test::TempDir dir;
  onnx::ModelProto m = model_with(13);
  add_node(m, "Shape", "shape", {"x"}, {"s"});
  add_node(m, "Relu", "use", {"s"}, {"y"});
  const std::string e = load_error(dir, m);
  INFO(e);
  CHECK(contains(e, "bad.onnx:2:0: error: node 'use' (Relu): input 's' is the shape value [batch,4]"));
  CHECK(contains(e, "used here as tensor data"));
}

TEST_CASE("onnx error: a graph output that folds at import (a shape) is refused") {
  kiln::test::TempDir dir;
  onnx::ModelProto m = model_with(13);
  add_node(m, "Shape", "shape", {"x"}, {"y"});
  const std::string e = load_error(dir, m);
  INFO(e);
  CHECK(contains(e, "bad.onnx: error: graph output 'y' is a constant or a shape known at import (expected a value "
                    "the model computes)"));
}

// Found by random models: an empty shape value broadcast against one element, and Expand to a negative dim.
TEST_CASE("onnx error: an empty shape value in arithmetic, and Expand to a negative dim, fail cleanly") {
  kiln::test::TempDir dir;
  {
    onnx::ModelProto m = model_with(13, {"batch", "3", "4"});
    add_node(m, "Shape", "shape", {"x"}, {"s"});
    add_ints(m, "none", {0}, {});
    add_node(m, "Gather", "pick", {"s", "none"}, {"e"});  // []
    add_ints(m, "two", {1}, {2});
    add_node(m, "Sub", "minus", {"e", "two"}, {"d"});  // [] - [2] = []
    add_ints(m, "tail", {2}, {-1, 4});
    set_int_attr(add_node(m, "Concat", "target", {"d", "tail"}, {"t"}), "axis", 0);
    add_node(m, "Reshape", "flat", {"x", "t"}, {"y"});
    const std::string path = save(dir, "empty.onnx", m);
    kiln::LoadOptions o0;
    o0.opt_level = 0;
    const std::string ir = kiln::Model::load(path, o0).ir();
    INFO(ir);
    CHECK(contains(ir, "%y = reshape(%x) {shape=[-1,4]}"));
  }
  {
    onnx::ModelProto m = model_with(13, {"batch", "3", "1"});
    add_ints(m, "neg", {1}, {-1});
    add_node(m, "Expand", "grow", {"x", "neg"}, {"y"});
    const std::string e = load_error(dir, m);
    INFO(e);
    CHECK(contains(e, "bad.onnx:1:0: error: node 'grow' (Expand): the shape [-1] has a negative dim"));
  }
}

TEST_CASE("onnx error: a Gather index out of range, on data and on a shape value") {
  kiln::test::TempDir dir;
  {
    onnx::ModelProto m = model_with(13);
    add_ints(m, "seven", {}, {7});
    add_node(m, "Gather", "pick", {"x", "seven"}, {"y"});
    set_int_attr(m.mutable_graph()->mutable_node(0), "axis", 1);
    const std::string e = load_error(dir, m);
    INFO(e);
    CHECK(contains(e, "bad.onnx:1:0: error: gather 'pick': index 7 is out of range for axis 1 of f32[batch,4]"));
  }
  {
    onnx::ModelProto m = model_with(13);
    add_node(m, "Shape", "shape", {"x"}, {"s"});
    add_ints(m, "five", {}, {5});
    add_node(m, "Gather", "pick", {"s", "five"}, {"g"});
    add_node(m, "Relu", "use", {"x"}, {"y"});
    const std::string e = load_error(dir, m);
    INFO(e);
    CHECK(contains(e, "bad.onnx:2:0: error: node 'pick' (Gather): index 5 is out of range for the shape value "
                      "[batch,4] of 2 elements"));
  }
}

TEST_CASE("onnx error: a Gather index past a symbolic dim fails when the plan is made for that shape") {
  kiln::test::TempDir dir;
  onnx::ModelProto m = model_with(13, {"batch", "seq"});
  add_ints(m, "five", {}, {5});
  add_node(m, "Gather", "pick", {"x", "five"}, {"y"});
  set_int_attr(m.mutable_graph()->mutable_node(0), "axis", 1);
  const std::string path = save(dir, "late.onnx", m);
  kiln::Model model = kiln::Model::load(path);  // seq is symbolic: index 5 may be in range
  kiln::Session session(model);
  std::vector<float> data(2 * 6);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i);
  kiln::Tensor y = session.run({{"x", kiln::Tensor::from_f32({2, 6}, data)}}).at("y");
  REQUIRE(y.shape() == std::vector<std::int64_t>{2});
  CHECK(y.data_as<float>()[1] == 11.0f);
  const std::string e = error_of([&] { session.run({{"x", kiln::Tensor::from_f32({2, 3}, {0, 1, 2, 3, 4, 5})}}); });
  INFO(e);
  CHECK(contains(e, "late.onnx:1:0: error: gather 'pick': index 5 is out of range for axis 1 of f32[2,3]"));
}

TEST_CASE("onnx error: Squeeze of a dim that is not 1, and of a symbolic dim") {
  kiln::test::TempDir dir;
  for (std::int64_t axis : {1, 0}) {
    onnx::ModelProto m = model_with(13);
    add_ints(m, "axes", {1}, {axis});
    add_node(m, "Squeeze", "sq", {"x", "axes"}, {"y"});
    const std::string e = load_error(dir, m);
    INFO(e);
    CHECK(contains(e, "bad.onnx:1:0: error: squeeze 'sq': cannot squeeze axis " + std::to_string(axis) +
                          " of f32[batch,4]: its size is " + (axis == 1 ? "4 (expected 1)" : "batch, symbolic")));
  }
}

TEST_CASE("onnx error: a Reshape target with two symbolic dims that no value has") {
  kiln::test::TempDir dir;
  onnx::ModelProto m = model_with(13, {"batch", "seq", "4"});
  const std::string b = dim_of_x(m, 0), s = dim_of_x(m, 1);
  add_ints(m, "two", {1}, {2});
  add_node(m, "Mul", "b2", {b, "two"}, {"bb"});
  add_node(m, "Mul", "s2", {s, "two"}, {"ss"});
  auto* c = add_node(m, "Concat", "target", {"bb", "ss"}, {"t"});
  set_int_attr(c, "axis", 0);
  add_node(m, "Reshape", "split", {"x", "t"}, {"y"});
  const std::string e = load_error(dir, m);
  INFO(e);
  CHECK(contains(e, "error: node 'split' (Reshape): target shape [2*batch,2*seq] for input f32[batch,seq,4]"));
  CHECK(contains(e, "only one dim can be inferred"));
}

TEST_CASE("onnx error: a sum of a symbolic dim and a number cannot fold") {
  kiln::test::TempDir dir;
  onnx::ModelProto m = model_with(13);
  const std::string b = dim_of_x(m, 0);
  add_ints(m, "one", {1}, {1});
  add_node(m, "Add", "plus", {b, "one"}, {"t"});
  add_node(m, "Relu", "use", {"x"}, {"y"});
  const std::string e = load_error(dir, m);
  INFO(e);
  CHECK(contains(e, "error: node 'plus' (Add): cannot fold batch + 1 at import: a sum or difference of symbolic dims"));
}

TEST_CASE("onnx error: Slice with a symbolic end that is not the axis' size") {
  kiln::test::TempDir dir;
  onnx::ModelProto m = model_with(13, {"batch", "seq"});
  const std::string b = dim_of_x(m, 0);
  add_ints(m, "st", {1}, {0});
  add_ints(m, "ax", {1}, {1});
  add_node(m, "Slice", "cut", {"x", "st", b, "ax"}, {"y"});
  const std::string e = load_error(dir, m);
  INFO(e);
  CHECK(contains(e, "error: node 'cut' (Slice): end batch is symbolic and not the size of axis 1 of f32[batch,seq]"));
}
