// ONNX import (frontends/onnx, docs/onnx.md): small models from tools/reference/make_onnx_fixtures.py
// (tests/fixtures/onnx, numpy references) and models built here with the ONNX library's protobuf classes;
// every error names the file, the node (FILE:INDEX+1:0 and its name) and what was expected.

#include <onnx/onnx_pb.h>

#include <fstream>
#include <sstream>
#include <string>

#include "frontends/onnx/onnx_frontend.hpp"
#include "runtime/npy.hpp"
#include "onnx_builder.hpp"
#include "test_util.hpp"

using kiln::test::contains;
using kiln::test::error_of;
using kiln::test::source_path;

namespace {

using kiln::test::onnx_build::add_node;
using kiln::test::onnx_build::save;

void add_initializer(onnx::ModelProto& m, const std::string& name, std::vector<std::int64_t> dims,
                     const std::vector<float>& values) {
  kiln::test::onnx_build::add_f32(m, name, dims, values);
}

std::string fixture(const std::string& name) { return source_path("tests/fixtures/onnx/" + name); }

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A one-graph model at `opset` with input x f32[batch, 4] and output y.
onnx::ModelProto model_with(int opset) {
  onnx::ModelProto m = kiln::test::onnx_build::empty_model(opset);
  kiln::test::onnx_build::add_input(m, "x", onnx::TensorProto_DataType_FLOAT, {"batch", "4"});
  // The checker needs the output's shape; Kiln infers its own.
  kiln::test::onnx_build::add_output(m, "y", onnx::TensorProto_DataType_FLOAT, {"batch", "n"});
  return m;
}




}  // namespace

TEST_CASE("onnx: a MatMul, Add and Relu MLP equals the numpy reference") {
  kiln::Model model = kiln::Model::load(fixture("mlp_matmul.onnx"));
  kiln::Session session(model);
  auto out = session.run({{"x", kiln::read_npy(fixture("x.npy"))}});
  kiln::Tensor expected = kiln::read_npy(fixture("y.npy"));
  REQUIRE(out.at("y").shape() == std::vector<std::int64_t>{2, 3});
  CHECK(kiln::test::max_abs_diff(out.at("y"), expected) <= 1e-5);
}

TEST_CASE("onnx: a Gemm MLP with a symbolic batch equals the numpy reference at batch 2 and 1") {
  kiln::Model model = kiln::Model::load(fixture("mlp_gemm.onnx"));
  // The dim_param 'p2o.DynamicDimension.0' is not an identifier: the symbol is its sanitized form.
  CHECK(contains(model.ir(), "%x: f32[p2o_DynamicDimension_0,4]"));
  kiln::Session session(model);
  kiln::Tensor x = kiln::read_npy(fixture("x.npy"));
  kiln::Tensor expected = kiln::read_npy(fixture("y.npy"));
  CHECK(kiln::test::max_abs_diff(session.run({{"x", x}}).at("y"), expected) <= 1e-5);
  // Batch 1: the first row of each.
  auto x1 = kiln::Tensor::view(kiln::DType::f32, {1, 4}, x.data());
  auto e1 = kiln::Tensor::view(kiln::DType::f32, {1, 3}, expected.data());
  CHECK(kiln::test::max_abs_diff(session.run({{"x", x1}}).at("y"), e1) <= 1e-5);
}

TEST_CASE("onnx: Gemm and Relu fuse into a linear with activation relu") {
  kiln::Model model = kiln::Model::load(fixture("mlp_gemm.onnx"));
  const std::string ir = model.ir();
  CHECK(contains(ir, "%h2 = linear(%x,"));
  CHECK(contains(ir, "{activation=\"relu\"}"));
  CHECK_FALSE(contains(ir, "= relu("));
  // The transB=0 Gemm's constant B [8,3] was transposed once at import into linear's [3,8] weight.
  CHECK(contains(ir, "%W2/transposed"));
  // At -O0 nothing fuses: the ONNX nodes map one to one.
  kiln::LoadOptions o0;
  o0.opt_level = 0;
  const std::string plain = kiln::Model::load(fixture("mlp_gemm.onnx"), o0).ir();
  CHECK(contains(plain, "%h2 = relu(%h1)"));
}

TEST_CASE("onnx: the graph keeps ONNX names and locates each node by its index") {
  auto g = kiln::load_onnx_model(fixture("mlp_matmul.onnx"));
  REQUIRE(g->inputs.size() == 1);
  CHECK(g->inputs[0]->name == "x");
  CHECK(g->inputs[0]->type.shape[0] == kiln::Dim::symbol("batch"));
  REQUIRE(g->outputs.size() == 1);
  CHECK(g->outputs[0]->name == "y");
  REQUIRE(g->nodes().size() == 5);
  CHECK(g->nodes()[3]->name == "fc2");
  CHECK(g->nodes()[3]->op == "matmul");
  CHECK(g->nodes()[3]->loc.line == 4);
  CHECK(g->nodes()[3]->loc.column == 0);
  CHECK(g->find_value("W2")->is_constant());
}

TEST_CASE("onnx: initializers in external data are read relative to the model's folder") {
  kiln::Model model = kiln::Model::load(fixture("external.onnx"));
  kiln::Session session(model);
  auto out = session.run({{"x", kiln::read_npy(fixture("x.npy"))}});
  CHECK(kiln::test::max_abs_diff(out.at("y"), kiln::read_npy(fixture("y_external.npy"))) <= 1e-5);
}

TEST_CASE("onnx error: external data outside its file") {
  std::string e = error_of([] { kiln::Model::load(fixture("external_bad.onnx")); });
  INFO(e);
  CHECK(contains(e, "external_bad.onnx: error: initializer 'W1': external data [64, 192) lies outside"));
  CHECK(contains(e, "external.bin' of 144 bytes"));
}

TEST_CASE("onnx error: a truncated file") {
  kiln::test::TempDir dir;
  const std::string bytes = read_bytes(fixture("mlp_matmul.onnx"));
  REQUIRE(bytes.size() > 200);
  const std::string path = dir.write("cut.onnx", bytes.substr(0, bytes.size() / 2));
  std::string e = error_of([&] { kiln::Model::load(path); });
  INFO(e);
  CHECK(contains(e, path + ": error: cannot parse the file as an ONNX model"));
  CHECK(contains(e, "truncated"));
}

TEST_CASE("onnx error: a file that is not an ONNX model") {
  kiln::test::TempDir dir;
  const std::string text = dir.write("model.onnx", "kiln: 1\ninputs: {}\n");
  std::string e = error_of([&] { kiln::Model::load(text); });
  INFO(e);
  CHECK(contains(e, text + ": error: "));
  CHECK((contains(e, "cannot parse the file as an ONNX model") || contains(e, "not a valid ONNX model") ||
         contains(e, "not an ONNX model")));
  const std::string missing = dir.path("absent.onnx");
  CHECK(contains(error_of([&] { kiln::Model::load(missing); }), missing + ": error: cannot open the file"));
}

TEST_CASE("onnx error: every unsupported node is listed at once, with domain and opset") {
  const std::string path = fixture("unsupported.onnx");
  std::string e = error_of([&] { kiln::Model::load(path); });
  INFO(e);
  CHECK(contains(e, path + ": error: 3 node(s) use ops that Kiln cannot import"));
  CHECK(contains(e, path + ":2:0: node 'det': Det (domain ai.onnx, opset 13)"));
  CHECK(contains(e, path + ":3:0: node 'hardmax': Hardmax (domain ai.onnx, opset 13)"));
  CHECK(contains(e, path + ":4:0: node 'custom': FancyOp (domain com.example, opset 1)"));
  CHECK_FALSE(contains(e, "'first'"));  // the supported nodes are not listed
}

TEST_CASE("onnx error: a supported op at an opset outside its range") {
  kiln::test::TempDir dir;
  onnx::ModelProto m = model_with(17);
  m.mutable_opset_import(0)->set_version(6);  // Relu exists at 6; the importer reads 7 to 17
  add_node(m, "Relu", "act", {"x"}, {"y"});
  const std::string path = save(dir, "old.onnx", m);
  std::string e = error_of([&] { kiln::load_onnx_model(path); });
  INFO(e);
  CHECK(contains(e, path + ":1:0: node 'act': Relu (domain ai.onnx, opset 6; supported in opsets 7 to 17)"));
}

TEST_CASE("onnx error: a node input that no initializer, input or node defines") {
  const std::string path = fixture("undefined_input.onnx");
  std::string e = error_of([&] { kiln::Model::load(path); });
  INFO(e);
  CHECK(contains(e, path + ":2:0: error: node 'fc' (MatMul): input 'W' is not a graph input, an initializer"));
  CHECK(contains(e, "expected each input defined before the node that uses it"));
}

TEST_CASE("onnx error: Softmax before opset 13 over more than the last axis") {
  const std::string path = fixture("softmax_axis1_opset11.onnx");
  std::string e = error_of([&] { kiln::Model::load(path); });
  INFO(e);
  CHECK(contains(e, path + ":1:0: error: node 'probs' (Softmax): before opset 13"));
  CHECK(contains(e, "only the last axis (2 for f32[batch,3,5])"));
}

TEST_CASE("onnx error: Gemm with alpha other than 1 is refused, naming the node") {
  kiln::test::TempDir dir;
  onnx::ModelProto m = model_with(13);
  add_initializer(m, "W", {3, 4}, std::vector<float>(12, 0.5f));
  auto* n = add_node(m, "Gemm", "scaled", {"x", "W"}, {"y"});
  auto* a = n->add_attribute();
  a->set_name("alpha");
  a->set_type(onnx::AttributeProto_AttributeType_FLOAT);
  a->set_f(2.0f);
  auto* t = n->add_attribute();
  t->set_name("transB");
  t->set_type(onnx::AttributeProto_AttributeType_INT);
  t->set_i(1);
  const std::string path = save(dir, "gemm.onnx", m);
  std::string e = error_of([&] { kiln::Model::load(path); });
  INFO(e);
  CHECK(contains(e, path + ":1:0: error: node 'scaled' (Gemm): expected alpha = beta = 1, got alpha = 2"));
}

TEST_CASE("onnx error: a shape mismatch names the file and the node") {
  kiln::test::TempDir dir;
  onnx::ModelProto m = model_with(13);
  add_initializer(m, "b", {3}, {1, 2, 3});
  add_node(m, "Relu", "act", {"x"}, {"h"});
  add_node(m, "Add", "bias", {"h", "b"}, {"y"});
  const std::string path = save(dir, "mismatch.onnx", m);
  std::string e = error_of([&] { kiln::Model::load(path); });
  INFO(e);
  CHECK(contains(e, path + ":2:0: error: add 'bias': "));
  CHECK(contains(e, "cannot broadcast shapes [batch,4] and [3]"));
}

TEST_CASE("onnx error: a checker failure is reported as a kiln::Error") {
  kiln::test::TempDir dir;
  onnx::ModelProto m = model_with(13);
  add_node(m, "Relu", "act", {"x"}, {"y"});
  m.set_ir_version(0);  // the checker refuses a model without an IR version
  const std::string path = save(dir, "noir.onnx", m);
  std::string e = error_of([&] { kiln::Model::load(path); });
  INFO(e);
  CHECK(contains(e, path + ": error: not a valid ONNX model (the ONNX checker says: "));
  CHECK(contains(e, "ir_version"));
}

TEST_CASE("onnx error: an unknown model extension names .onnx among those expected") {
  std::string e = error_of([] { kiln::Model::load("model.pb"); });
  INFO(e);
  CHECK(contains(e, "expected .yaml, .yml, .onnx or .kplan"));
}

TEST_CASE("onnx: a Constant node's value_ints is Reshape's shape, and Flatten at axis 0 is a reshape") {
  kiln::test::TempDir dir;
  onnx::ModelProto m = model_with(13);
  auto* c = add_node(m, "Constant", "shape", {}, {"s"});
  auto* a = c->add_attribute();
  a->set_name("value_ints");
  a->set_type(onnx::AttributeProto_AttributeType_INTS);
  a->add_ints(0);
  a->add_ints(2);
  a->add_ints(-1);
  add_node(m, "Reshape", "split", {"x", "s"}, {"r"});
  add_node(m, "Flatten", "flat", {"r"}, {"y"})->add_attribute()->CopyFrom([] {
    onnx::AttributeProto axis;
    axis.set_name("axis");
    axis.set_type(onnx::AttributeProto_AttributeType_INT);
    axis.set_i(0);
    return axis;
  }());
  const std::string path = save(dir, "reshape.onnx", m);
  kiln::LoadOptions o0;
  o0.opt_level = 0;
  const std::string ir = kiln::Model::load(path, o0).ir();
  INFO(ir);
  CHECK(contains(ir, "%r = reshape(%x) {shape=[0,2,-1]} : (f32[batch,4]) -> f32[batch,2,2]"));
  CHECK(contains(ir, "%y = reshape(%r) {shape=[1,-1]}"));
  kiln::Model model = kiln::Model::load(path);
  kiln::Session session(model);
  kiln::Tensor x = kiln::Tensor::from_f32({2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
  kiln::Tensor y = session.run({{"x", x}}).at("y");
  REQUIRE(y.shape() == std::vector<std::int64_t>{1, 8});
  CHECK(y.data_as<float>()[7] == 8.0f);
}

TEST_CASE("onnx error: a graph input whose size overflows") {
  kiln::test::TempDir dir;
  onnx::ModelProto m = model_with(13);
  auto* shape = m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
  shape->mutable_dim(1)->set_dim_value(std::int64_t{1} << 40);
  shape->add_dim()->set_dim_value(std::int64_t{1} << 40);
  add_node(m, "Relu", "act", {"x"}, {"y"});
  const std::string path = save(dir, "huge.onnx", m);
  std::string e = error_of([&] { kiln::Model::load(path); });
  INFO(e);
  CHECK(contains(e, path + ": error: graph input 'x': shape [batch,1099511627776,1099511627776] is too large"));
}

TEST_CASE("onnx error: an initializer whose dims promise more data than it holds") {
  kiln::test::TempDir dir;
  onnx::ModelProto m = model_with(13);
  add_initializer(m, "W", {std::int64_t{1} << 30, 1024}, {1.0f, 2.0f});  // 4 TiB promised, 8 bytes held
  add_node(m, "MatMul", "fc", {"x", "W"}, {"y"});
  const std::string path = save(dir, "promise.onnx", m);
  std::string e = error_of([&] { kiln::Model::load(path); });
  INFO(e);
  CHECK(contains(e, path + ": error: initializer 'W': float_data holds 2 values, expected 1099511627776"));
}
