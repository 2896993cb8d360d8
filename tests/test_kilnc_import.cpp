// `kilnc import` (frontends/yaml/yaml_writer.hpp): an ONNX model written out as a Kiln YAML model and its
// safetensors weights loads back to the same results; names YAML cannot keep are changed, not lost; `~` in
// a YAML node's `in` leaves an optional input out.

#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "frontends/onnx/onnx_frontend.hpp"
#include "frontends/safetensors.hpp"
#include "frontends/yaml/yaml_writer.hpp"
#include "kiln/kiln.hpp"
#include "passes/pass.hpp"
#include "runtime/npy.hpp"
#include "test_util.hpp"

using kiln::test::contains;
using kiln::test::error_of;
using kiln::test::max_abs_diff;
using kiln::test::source_path;
using kiln::test::TempDir;

namespace {

// The files `kilnc import -O LEVEL` writes for `onnx_path`, without the tool.
kiln::YamlExport import_files(const std::string& onnx_path, int level) {
  auto g = kiln::load_onnx_model(onnx_path);
  kiln::PipelineOptions options;
  options.opt_level = level;
  options.disabled.insert("assign-layouts");
  kiln::run_pipeline(*g, options);
  return kiln::export_yaml(*g, "model.safetensors", "test");
}

kiln::Tensor run_one(const kiln::Model& model, const std::string& input, const kiln::Tensor& x) {
  kiln::Session session(model);
  auto out = session.run({{input, x}});
  REQUIRE(out.size() == 1);
  return out.begin()->second;
}

}  // namespace

TEST_CASE("import: an ONNX MLP written as YAML loads back to the same outputs at every level") {
  const kiln::Tensor x = kiln::read_npy(source_path("tests/fixtures/onnx/x.npy"));
  const kiln::Tensor y = kiln::read_npy(source_path("tests/fixtures/onnx/y.npy"));  // numpy's result
  for (const char* name : {"mlp_gemm.onnx", "mlp_matmul.onnx"}) {
    const std::string path = source_path(std::string("tests/fixtures/onnx/") + name);
    const kiln::Tensor from_onnx = run_one(kiln::Model::load(path), "x", x);
    for (int level = 0; level <= 2; ++level) {
      CAPTURE(name);
      CAPTURE(level);
      kiln::YamlExport files = import_files(path, level);
      CHECK(contains(files.yaml, "kiln: 1"));
      kiln::Model back = kiln::Model::load_from_memory(files.yaml, files.weights.data(), files.weights.size());
      const kiln::Tensor out = run_one(back, "x", x);
      CHECK(max_abs_diff(out, y) <= 1e-5);
      CHECK(max_abs_diff(out, from_onnx) == 0.0);  // the same graph and kernels: the same floats
    }
  }
}

TEST_CASE("import: names are kept where YAML keeps them and changed where it cannot") {
  const std::string path = source_path("tests/fixtures/onnx/mlp_gemm.onnx");
  kiln::YamlExport files = import_files(path, 0);
  CHECK(contains(files.yaml, "name: fc1"));     // node names from the ONNX file
  CHECK(contains(files.yaml, "out: h1"));       // value names
  CHECK(contains(files.yaml, "in: [x, W1t, b1]"));  // weights by their initializer names
  CHECK(files.renamed == 0);

  // A graph whose names hold characters a YAML model cannot (braces are block parameters, spaces split
  // words, a leading digit reads as a number): written with '_' and still loading.
  kiln::Graph g;
  g.name = "odd names";
  kiln::Value* x = g.add_value("x {in}", kiln::TensorType{kiln::DType::f32, {kiln::Dim::symbol("n"), kiln::Dim::of(2)}});
  g.inputs.push_back(x);
  kiln::Value* r = g.add_value("7 relu", kiln::TensorType{});
  g.add_node("relu", "node one", {x}, {r}, {}, {});
  kiln::Value* t = g.add_value("t", kiln::TensorType{});
  g.add_node("tanh", "node one!", {r}, {t}, {}, {});
  g.outputs.push_back(t);
  g.infer_shapes();
  kiln::YamlExport odd = kiln::export_yaml(g, "w.safetensors", "");
  CHECK(odd.renamed >= 4);
  CHECK(contains(odd.yaml, "x__in_"));
  CHECK(contains(odd.yaml, "v_7_relu"));
  kiln::Model back = kiln::Model::load_from_memory(odd.yaml, nullptr, 0);
  float data[4] = {-1.f, 0.5f, 2.f, -3.f};
  auto out = run_one(back, "x__in_", kiln::Tensor::view(kiln::DType::f32, {2, 2}, data));
  CHECK(out.data_as<float>()[1] == doctest::Approx(std::tanh(0.5f)));
  CHECK(out.data_as<float>()[0] == 0.f);
}

TEST_CASE("import: the safetensors image reads back with every dtype, shape and byte") {
  std::vector<float> a = {1.f, 2.f, 3.f, 4.f, 5.f, 6.f};
  std::vector<std::int64_t> b = {7, -8};
  std::uint8_t c = 1;
  std::string image = kiln::safetensors_image({{"z.a", kiln::DType::f32, {2, 3}, a.data(), 24},
                                               {"b", kiln::DType::i64, {2}, b.data(), 16},
                                               {"c", kiln::DType::boolean, {}, &c, 1}});
  auto file = kiln::WeightsFile::from_memory("img", image.data(), image.size(), nullptr);
  REQUIRE(file->tensors().size() == 3);
  const kiln::WeightTensor* ta = file->find("z.a");
  REQUIRE(ta != nullptr);
  CHECK(ta->shape == std::vector<std::int64_t>{2, 3});
  CHECK(std::memcmp(ta->data.data, a.data(), 24) == 0);
  CHECK(reinterpret_cast<std::uintptr_t>(ta->data.data) % 64 == reinterpret_cast<std::uintptr_t>(image.data()) % 64);
  CHECK(file->find("b")->dtype == kiln::DType::i64);
  CHECK(static_cast<const std::int64_t*>(file->find("b")->data.data)[1] == -8);
  CHECK(file->find("c")->shape.empty());
  CHECK(contains(error_of([&] {
                   kiln::safetensors_image({{"w", kiln::DType::f32, {3}, a.data(), 8}});
                 }),
                 "tensor 'w' holds 8 bytes, its shape [3] of f32 needs 12"));
  CHECK(contains(error_of([&] {
                   kiln::safetensors_image({{"w", kiln::DType::f32, {1}, a.data(), 4}, {"w", kiln::DType::f32, {1}, a.data(), 4}});
                 }),
                 "tensor 'w' is named twice"));
}

TEST_CASE("yaml: ~ in 'in' leaves an optional input out, and a required one is still required") {
  const std::string ok = R"(kiln: 1
inputs:
  x: {dtype: f32, shape: [2, 3]}
outputs: [y]
nodes:
  - {op: linear, in: [x, w, ~, x2], out: y}
  - {op: relu, in: [x], out: x2_unused}
)";
  // x2 is not defined: the residual names a value, so this fails on the name, after accepting the ~.
  CHECK(contains(error_of([&] { kiln::Model::load_from_memory(ok, nullptr, 0); }), "undefined value 'w'"));
  std::vector<float> w(4 * 3, 0.5f);
  std::string weights = kiln::safetensors_image({{"w", kiln::DType::f32, {4, 3}, w.data(), w.size() * 4}});
  const std::string with_residual = R"(kiln: 1
inputs:
  x: {dtype: f32, shape: [2, 3]}
  r: {dtype: f32, shape: [2, 4]}
outputs: [y]
nodes:
  - {op: linear, in: [x, w, ~, r], out: y}
)";
  kiln::Model m = kiln::Model::load_from_memory(with_residual, weights.data(), weights.size());
  float xs[6] = {1, 2, 3, 4, 5, 6}, rs[8] = {1, 1, 1, 1, 2, 2, 2, 2};
  kiln::Session s(m);
  auto out = s.run({{"x", kiln::Tensor::view(kiln::DType::f32, {2, 3}, xs)},
                    {"r", kiln::Tensor::view(kiln::DType::f32, {2, 4}, rs)}});
  const float* y = out.at("y").data_as<float>();
  CHECK(y[0] == doctest::Approx(0.5f * 6 + 1));   // no bias, the residual added
  CHECK(y[7] == doctest::Approx(0.5f * 15 + 2));
  const std::string missing = R"(kiln: 1
inputs:
  x: {dtype: f32, shape: [2, 3]}
outputs: [y]
nodes:
  - {op: linear, in: [x, ~], out: y}
)";
  CHECK(contains(error_of([&] { kiln::Model::load_from_memory(missing, nullptr, 0, {}, "m.yaml"); }),
                 "m.yaml:6:5: error: linear 'y': missing input 'weight'"));
}
