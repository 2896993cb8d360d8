// ONNX element-wise math, activations, comparisons, logic, Where, Cast and reductions (frontends/onnx/
// map_math.cpp, map_logic.cpp): models built here with ONNX's protobuf classes, run against values computed
// in the test, the fusions they feed at -O2 (GELU written out with Erf, LeakyRelu after a Conv), and the
// errors for what the importer refuses, each naming the file, the node (FILE:INDEX+1:0) and what was expected.

#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "frontends/onnx/onnx_frontend.hpp"
#include "runtime/npy.hpp"
#include "onnx_builder.hpp"
#include "test_util.hpp"

using kiln::test::contains;
using kiln::test::error_of;

namespace {

using Dims = std::vector<std::int64_t>;
constexpr int kF32 = onnx::TensorProto_DataType_FLOAT;
constexpr int kI64 = onnx::TensorProto_DataType_INT64;

using kiln::test::onnx_build::add_f32;
using kiln::test::onnx_build::add_i64;
using kiln::test::onnx_build::add_node;
using kiln::test::onnx_build::save;

// A model at `opset` with no inputs, outputs or nodes yet.
onnx::ModelProto empty_model(int opset) { return kiln::test::onnx_build::empty_model(opset, 8, "math"); }

// A graph input or output of element type `type`; dims < 0 are symbols named "batch".
void add_io(onnx::ModelProto& m, bool input, const std::string& name, int type, const Dims& dims) {
  std::vector<std::string> text;
  for (auto d : dims) text.push_back(d < 0 ? std::string("batch") : std::to_string(d));
  if (input) kiln::test::onnx_build::add_input(m, name, type, text);
  else kiln::test::onnx_build::add_output(m, name, type, text);
}


void set_float(onnx::NodeProto* n, const std::string& name, float v) {
  kiln::test::onnx_build::set_float_attr(n, name, v);
}
void set_int(onnx::NodeProto* n, const std::string& name, std::int64_t v) {
  kiln::test::onnx_build::set_int_attr(n, name, v);
}



kiln::LoadOptions level(int o) {
  kiln::LoadOptions opts;
  opts.opt_level = o;
  return opts;
}

}  // namespace

TEST_CASE("onnx math: a PyTorch export using the element-wise, mask and reduction ops equals PyTorch's outputs") {
  // tools/reference/make_onnx_math_fixture.py: torch.onnx.export (opset 14) of a module with an int64
  // padding mask (Equal, Not, Cast, Where), the activations, Clip, ReduceSum/Max/Mean, Max, Log, Reciprocal
  // and a bool output (Greater, LessOrEqual, And).
  const std::string dir = kiln::test::source_path("tests/fixtures/onnx/math/");
  for (int o : {0, 2}) {
    INFO("-O", o);
    kiln::Model model = kiln::Model::load(dir + "model.onnx", level(o));
    kiln::Session session(model);
    auto out = session.run({{"ids", kiln::read_npy(dir + "ids.npy")}, {"x", kiln::read_npy(dir + "x.npy")}});
    CHECK(kiln::test::max_abs_diff(out.at("a"), kiln::read_npy(dir + "a.npy")) <= 1e-5);
    CHECK(kiln::test::max_abs_diff(out.at("b"), kiln::read_npy(dir + "b.npy")) <= 1e-5);
    kiln::Tensor c = kiln::read_npy(dir + "c.npy");
    REQUIRE(out.at("c").dtype() == kiln::DType::boolean);
    REQUIRE(out.at("c").shape() == c.shape());
    CHECK(std::memcmp(out.at("c").data(), c.data(), c.bytes()) == 0);
  }
}

TEST_CASE("onnx math: torch's GELU as Div, Erf, Add, Mul, Mul fuses into one gelu at -O2 and equals the formula") {
  // What torch.onnx.export writes for nn.GELU() before opset 20: x * 0.5 * (1 + erf(x / sqrt(2))) in this order.
  onnx::ModelProto m = empty_model(14);
  add_io(m, true, "x", kF32, {-1, 8});
  add_io(m, false, "y", kF32, {-1, 8});
  add_f32(m, "sqrt2", {}, {1.4142135381698608f});
  add_f32(m, "one", {}, {1.f});
  add_f32(m, "half", {}, {0.5f});
  add_node(m, "Div", "div", {"x", "sqrt2"}, {"u"});
  add_node(m, "Erf", "erf", {"u"}, {"e"});
  add_node(m, "Add", "add", {"e", "one"}, {"t"});
  add_node(m, "Mul", "mul", {"x", "t"}, {"xt"});
  add_node(m, "Mul", "mul_half", {"xt", "half"}, {"y"});
  kiln::test::TempDir dir;
  const std::string path = save(dir, "gelu.onnx", m);
  kiln::Model o2 = kiln::Model::load(path);
  const std::string ir = o2.ir();
  CHECK(contains(ir, "%y = gelu(%x)"));
  CHECK_FALSE(contains(ir, "erf("));
  CHECK(contains(kiln::Model::load(path, level(0)).ir(), "%e = erf(%u)"));

  std::vector<float> xs(16);
  for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = -3.f + 0.4f * static_cast<float>(i);
  kiln::Session session(o2);
  auto out = session.run({{"x", kiln::Tensor::view(kiln::DType::f32, {2, 8}, xs.data())}});
  double err = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double x = xs[i];
    err = std::max(err, std::fabs(out.at("y").data_as<float>()[i] - 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)))));
  }
  CHECK(err <= 1e-5);
}

TEST_CASE("onnx math: an attention mask from int64 ids (Equal, Not, Cast, Where, ReduceSum) as torch exports it") {
  onnx::ModelProto m = empty_model(13);
  add_io(m, true, "ids", kI64, {-1, 5});
  add_io(m, true, "scores", kF32, {-1, 5});
  add_io(m, false, "masked", kF32, {-1, 5});
  add_io(m, false, "keep", kF32, {-1, 5});
  add_io(m, false, "lengths", kF32, {-1, 1});
  add_io(m, false, "shifted", kI64, {-1, 5});
  add_i64(m, "pad", {}, {0});
  add_i64(m, "one", {1}, {1});
  add_i64(m, "axes", {1}, {-1});
  add_f32(m, "neg", {}, {-1e9f});
  add_node(m, "Equal", "is_pad", {"ids", "pad"}, {"m"});
  add_node(m, "Where", "fill", {"m", "neg", "scores"}, {"masked"});
  add_node(m, "Not", "not_pad", {"m"}, {"k"});
  set_int(add_node(m, "Cast", "to_float", {"k"}, {"keep"}), "to", kF32);
  set_int(add_node(m, "Cast", "long", {"ids"}, {"ids64"}), "to", kI64);  // already int64: a view
  add_node(m, "ReduceSum", "count", {"keep", "axes"}, {"lengths"});
  add_node(m, "Sub", "shift", {"ids64", "one"}, {"shifted"});
  kiln::test::TempDir dir;
  kiln::Model model = kiln::Model::load(save(dir, "mask.onnx", m));
  CHECK(contains(model.ir(), "%keep = cast(%k) {to=\"f32\"}"));
  CHECK_FALSE(contains(model.ir(), "ids64"));  // the int64-to-int64 Cast was removed
  const std::vector<std::int64_t> ids = {5, 7, 0, 0, 0, 3, 4, 2, 9, 0};
  std::vector<float> scores(10);
  for (std::size_t i = 0; i < scores.size(); ++i) scores[i] = static_cast<float>(i) * 0.5f;
  kiln::Session session(model);
  auto out = session.run({{"ids", kiln::Tensor::view(kiln::DType::i64, {2, 5}, const_cast<std::int64_t*>(ids.data()))},
                          {"scores", kiln::Tensor::view(kiln::DType::f32, {2, 5}, scores.data())}});
  REQUIRE(out.at("masked").dtype() == kiln::DType::f32);
  REQUIRE(out.at("shifted").dtype() == kiln::DType::i64);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    CAPTURE(i);
    CHECK(out.at("masked").data_as<float>()[i] == (ids[i] == 0 ? -1e9f : scores[i]));
    CHECK(out.at("keep").data_as<float>()[i] == (ids[i] == 0 ? 0.f : 1.f));
    CHECK(out.at("shifted").data_as<std::int64_t>()[i] == ids[i] - 1);
  }
  REQUIRE(out.at("lengths").shape() == std::vector<std::int64_t>{2, 1});
  CHECK(out.at("lengths").data_as<float>()[0] == 2.f);
  CHECK(out.at("lengths").data_as<float>()[1] == 4.f);
}

TEST_CASE("onnx math: LeakyRelu after a Conv folds into conv2d at -O2 with its alpha, and gives -O0's result") {
  onnx::ModelProto m = empty_model(13);
  add_io(m, true, "x", kF32, {-1, 2, 5, 5});
  add_io(m, false, "y", kF32, {-1, 3, 5, 5});
  std::vector<float> w(3 * 2 * 3 * 3);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::sin(static_cast<float>(i));
  add_f32(m, "W", {3, 2, 3, 3}, w);
  auto* conv = add_node(m, "Conv", "conv", {"x", "W"}, {"c"});
  auto* pads = conv->add_attribute();
  pads->set_name("pads");
  pads->set_type(onnx::AttributeProto_AttributeType_INTS);
  for (int i = 0; i < 4; ++i) pads->add_ints(1);
  set_float(add_node(m, "LeakyRelu", "act", {"c"}, {"y"}), "alpha", 0.25f);
  kiln::test::TempDir dir;
  const std::string path = save(dir, "conv_leaky.onnx", m);
  kiln::Model o2 = kiln::Model::load(path);
  CHECK(contains(o2.ir(), "activation=\"leaky_relu\""));
  CHECK(contains(o2.ir(), "leaky_relu_alpha=0.25"));
  CHECK_FALSE(contains(o2.ir(), "= leaky_relu("));
  kiln::Model o0 = kiln::Model::load(path, level(0));
  CHECK(contains(o0.ir(), "%y = leaky_relu(%c) {alpha=0.25}"));
  std::vector<float> xs(2 * 2 * 5 * 5);
  for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = std::cos(0.7f * static_cast<float>(i));
  auto x = kiln::Tensor::view(kiln::DType::f32, {2, 2, 5, 5}, xs.data());
  kiln::Session s2(o2), s0(o0);
  auto y2 = s2.run({{"x", x}}).at("y");
  auto y0 = s0.run({{"x", x}}).at("y");
  CHECK(kiln::test::max_abs_diff(y2, y0) <= 1e-5);
  int negative = 0;  // the slope did apply: some outputs are negative
  for (std::int64_t i = 0; i < y0.numel(); ++i) negative += y0.data_as<float>()[i] < 0;
  CHECK(negative > 0);
}

TEST_CASE("onnx math: Clip reads min/max attributes before opset 11 and constant inputs from 11, absent as unbounded") {
  kiln::test::TempDir dir;
  {
    onnx::ModelProto m = empty_model(10);
    add_io(m, true, "x", kF32, {-1, 4});
    add_io(m, false, "y", kF32, {-1, 4});
    auto* c = add_node(m, "Clip", "c", {"x"}, {"y"});
    set_float(c, "min", -1.f);
    set_float(c, "max", 0.5f);
    const std::string ir = kiln::Model::load(save(dir, "clip10.onnx", m)).ir();
    CHECK(contains(ir, "%y = clip(%x) {max=0.5, min=-1.0}"));
  }
  onnx::ModelProto m = empty_model(13);
  add_io(m, true, "x", kF32, {-1, 4});
  add_io(m, false, "y", kF32, {-1, 4});
  add_f32(m, "hi", {}, {0.5f});
  add_node(m, "Clip", "c", {"x", "", "hi"}, {"y"});
  kiln::Model model = kiln::Model::load(save(dir, "clip13.onnx", m), level(0));
  CHECK(contains(model.ir(), "%y = min(%x, %hi)"));  // one bound: no infinite attribute stands in for the other
  std::vector<float> xs = {-1e30f, -2.f, 0.25f, 3.f};
  kiln::Session session(model);
  auto y = session.run({{"x", kiln::Tensor::view(kiln::DType::f32, {1, 4}, xs.data())}}).at("y");
  CHECK(y.data_as<float>()[0] == -1e30f);  // no lower bound
  CHECK(y.data_as<float>()[1] == -2.f);
  CHECK(y.data_as<float>()[2] == 0.25f);
  CHECK(y.data_as<float>()[3] == 0.5f);
}

TEST_CASE("onnx math: Clip with min 0 alone is relu (torch.clamp(min=0)), which folds into a producer") {
  onnx::ModelProto m = empty_model(13);
  add_io(m, true, "x", kF32, {-1, 4});
  add_io(m, false, "y", kF32, {-1, 4});
  add_f32(m, "zero", {}, {0.f});
  add_node(m, "Clip", "c", {"x", "zero"}, {"y"});
  kiln::test::TempDir dir;
  CHECK(contains(kiln::Model::load(save(dir, "clamp0.onnx", m), level(0)).ir(), "%y = relu(%x)"));
}

TEST_CASE("onnx math: Clip with a computed bound, on int64, or with min above max is max(x, min) then min(., max)") {
  kiln::test::TempDir dir;
  {
    onnx::ModelProto m = empty_model(13);
    add_io(m, true, "x", kI64, {-1, 4});
    add_io(m, true, "lo", kI64, {});
    add_io(m, false, "y", kI64, {-1, 4});
    add_i64(m, "hi", {}, {3});
    add_node(m, "Clip", "c", {"x", "lo", "hi"}, {"y"});
    kiln::Model model = kiln::Model::load(save(dir, "clip_i64.onnx", m));
    CHECK(contains(model.ir(), "%y/lower = max(%x, %lo)"));
    CHECK(contains(model.ir(), "%y = min(%y/lower, %hi)"));
    std::vector<std::int64_t> xs = {-5, 0, 2, 9};
    std::int64_t lo = -1;
    kiln::Session session(model);
    auto y = session.run({{"x", kiln::Tensor::view(kiln::DType::i64, {1, 4}, xs.data())},
                          {"lo", kiln::Tensor::view(kiln::DType::i64, {}, &lo)}})
                 .at("y");
    CHECK(y.data_as<std::int64_t>()[0] == -1);
    CHECK(y.data_as<std::int64_t>()[1] == 0);
    CHECK(y.data_as<std::int64_t>()[2] == 2);
    CHECK(y.data_as<std::int64_t>()[3] == 3);
  }
  // min 2 > max 1 (opset 10 attributes): every element is max, as numpy.clip and ONNX's reference give.
  onnx::ModelProto m = empty_model(10);
  add_io(m, true, "x", kF32, {-1, 4});
  add_io(m, false, "y", kF32, {-1, 4});
  auto* c = add_node(m, "Clip", "c", {"x"}, {"y"});
  set_float(c, "min", 2.f);
  set_float(c, "max", 1.f);
  kiln::Model model = kiln::Model::load(save(dir, "clip_split.onnx", m));
  std::vector<float> xs = {-5, 1.5f, 2.5f, 9};
  kiln::Session session(model);
  auto y = session.run({{"x", kiln::Tensor::view(kiln::DType::f32, {1, 4}, xs.data())}}).at("y");
  for (int i = 0; i < 4; ++i) CHECK(y.data_as<float>()[i] == 1.f);
}

TEST_CASE("onnx math: Sum, Mean, Max and Min over three broadcasting inputs, Pow with a computed exponent") {
  onnx::ModelProto m = empty_model(13);
  add_io(m, true, "a", kF32, {2, 3});
  add_io(m, true, "b", kF32, {3});
  add_io(m, true, "c", kF32, {2, 1});
  for (const char* o : {"sum", "mean", "max", "min", "pow"}) add_io(m, false, o, kF32, {2, 3});
  add_node(m, "Sum", "sum", {"a", "b", "c"}, {"sum"});
  add_node(m, "Mean", "mean", {"a", "b", "c"}, {"mean"});
  add_node(m, "Max", "max", {"a", "b", "c"}, {"max"});
  add_node(m, "Min", "min", {"a", "b", "c"}, {"min"});
  add_node(m, "Abs", "abs", {"a"}, {"absa"});
  add_node(m, "Pow", "pow", {"absa", "b"}, {"pow"});  // exponent b: a graph input
  kiln::test::TempDir dir;
  kiln::Model model = kiln::Model::load(save(dir, "variadic.onnx", m));
  std::vector<float> a = {1, -2, 3, -4, 5, -6}, b = {0.5f, 2, -1}, c = {10, -10};
  kiln::Session session(model);
  auto out = session.run({{"a", kiln::Tensor::view(kiln::DType::f32, {2, 3}, a.data())},
                          {"b", kiln::Tensor::view(kiln::DType::f32, {3}, b.data())},
                          {"c", kiln::Tensor::view(kiln::DType::f32, {2, 1}, c.data())}});
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) {
      INFO("i ", i, " j ", j);
      const float x = a[i * 3 + j], y = b[j], z = c[i];
      const auto at = [&](const char* name) { return out.at(name).data_as<float>()[i * 3 + j]; };
      CHECK(std::fabs(at("sum") - (x + y + z)) <= 1e-5);
      CHECK(std::fabs(at("mean") - (x + y + z) / 3) <= 1e-5);
      CHECK(at("max") == std::max({x, y, z}));
      CHECK(at("min") == std::min({x, y, z}));
      CHECK(std::fabs(at("pow") - std::pow(std::fabs(x), y)) <= 1e-5 * std::max(1.f, std::pow(std::fabs(x), y)));
    }
}

TEST_CASE("onnx math: reductions with negative axes, keepdims 0, all axes, and noop_with_empty_axes") {
  onnx::ModelProto m = empty_model(13);
  add_io(m, true, "x", kF32, {2, 3, 4});
  add_io(m, false, "mx", kF32, {2, 4});
  add_io(m, false, "all", kF32, {1, 1, 1});
  add_io(m, false, "same", kF32, {2, 3, 4});
  auto* mx = add_node(m, "ReduceMax", "mx", {"x"}, {"mx"});
  auto* axes = mx->add_attribute();
  axes->set_name("axes");
  axes->set_type(onnx::AttributeProto_AttributeType_INTS);
  axes->add_ints(-2);
  set_int(mx, "keepdims", 0);
  add_node(m, "ReduceMin", "all", {"x"}, {"all"});
  add_i64(m, "none", {0}, {});
  set_int(add_node(m, "ReduceSum", "same", {"x", "none"}, {"same"}), "noop_with_empty_axes", 1);
  kiln::test::TempDir dir;
  kiln::Model model = kiln::Model::load(save(dir, "reduce.onnx", m));
  CHECK(contains(model.ir(), "reduce_max(%x) {axes=[-2], keepdims=false}"));
  CHECK(contains(kiln::Model::load(save(dir, "reduce0.onnx", m), level(0)).ir(),
                 "reduce_min(%x) {axes=[0,1,2], keepdims=true}"));
  std::vector<float> xs(24);
  for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<float>((i * 7) % 24) - 11.f;
  kiln::Session session(model);
  auto out = session.run({{"x", kiln::Tensor::view(kiln::DType::f32, {2, 3, 4}, xs.data())}});
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 4; ++k) {
      float want = -INFINITY;
      for (int j = 0; j < 3; ++j) want = std::max(want, xs[(i * 3 + j) * 4 + k]);
      CHECK(out.at("mx").data_as<float>()[i * 4 + k] == want);
    }
  CHECK(out.at("all").data_as<float>()[0] == -11.f);
  CHECK(std::memcmp(out.at("same").data(), xs.data(), xs.size() * sizeof(float)) == 0);
}

// ---- errors ----

namespace {

// A one-node model at `opset`: inputs and outputs as given; `build` adds the node and initializers.
template <class Build>
std::string model_error(int opset, const std::vector<std::tuple<std::string, int, Dims>>& inputs, int out_type,
                        const Build& build) {
  onnx::ModelProto m = empty_model(opset);
  for (const auto& [name, type, dims] : inputs) add_io(m, true, name, type, dims);
  add_io(m, false, "y", out_type, {-1, 4});
  build(m);
  kiln::test::TempDir dir;
  const std::string path = save(dir, "bad.onnx", m);
  return error_of([&] { kiln::Model::load(path); });
}

}  // namespace

TEST_CASE("onnx math errors: Cast to a type Kiln lacks (uint16, string)") {
  for (int to : {onnx::TensorProto_DataType_UINT16, onnx::TensorProto_DataType_STRING}) {
    std::string e = model_error(13, {{"x", kF32, {-1, 4}}}, to, [to](onnx::ModelProto& m) {
      set_int(add_node(m, "Cast", "c", {"x"}, {"y"}), "to", to);
    });
    CHECK(contains(e, "bad.onnx:1:0: error: node 'c' (Cast): Cast to " +
                          std::string(to == onnx::TensorProto_DataType_UINT16 ? "UINT16" : "STRING") +
                          " is not supported (expected to = FLOAT, DOUBLE, FLOAT16, BFLOAT16, INT64, INT32, INT8, "
                          "UINT8 or BOOL)"));
  }
}

TEST_CASE("onnx math: a float16 input cast to float and back, and to bfloat16") {
  onnx::ModelProto m = empty_model(13);
  add_io(m, true, "h", onnx::TensorProto_DataType_FLOAT16, {-1, 4});
  add_io(m, false, "f", kF32, {-1, 4});
  add_io(m, false, "h2", onnx::TensorProto_DataType_FLOAT16, {-1, 4});
  add_io(m, false, "b", onnx::TensorProto_DataType_BFLOAT16, {-1, 4});
  set_int(add_node(m, "Cast", "to_f32", {"h"}, {"f"}), "to", kF32);
  set_int(add_node(m, "Cast", "to_f16", {"f"}, {"h2"}), "to", onnx::TensorProto_DataType_FLOAT16);
  set_int(add_node(m, "Cast", "to_bf16", {"f"}, {"b"}), "to", onnx::TensorProto_DataType_BFLOAT16);
  kiln::test::TempDir dir;
  kiln::Model model = kiln::Model::load(save(dir, "half.onnx", m));
  // 1.0, -2.5, the smallest subnormal (2^-24), +inf as IEEE half bits.
  std::vector<std::uint16_t> h = {0x3c00, 0xc100, 0x0001, 0x7c00};
  kiln::Session session(model);
  auto out = session.run({{"h", kiln::Tensor::view(kiln::DType::f16, {1, 4}, h.data())}});
  const float* f = out.at("f").data_as<float>();
  CHECK(f[0] == 1.f);
  CHECK(f[1] == -2.5f);
  CHECK(f[2] == std::ldexp(1.f, -24));
  CHECK(std::isinf(f[3]));
  REQUIRE(out.at("h2").dtype() == kiln::DType::f16);
  for (int i = 0; i < 4; ++i) CHECK(out.at("h2").data_as<std::uint16_t>()[i] == h[static_cast<std::size_t>(i)]);
  REQUIRE(out.at("b").dtype() == kiln::DType::bf16);
  CHECK(out.at("b").data_as<std::uint16_t>()[0] == 0x3f80);  // 1.0
  CHECK(out.at("b").data_as<std::uint16_t>()[1] == 0xc020);  // -2.5
}

TEST_CASE("onnx math errors: comparisons, logic and Where on the wrong types") {
  std::string e = model_error(13, {{"a", kI64, {-1, 4}}, {"b", kF32, {-1, 4}}}, onnx::TensorProto_DataType_BOOL,
                              [](onnx::ModelProto& m) { add_node(m, "Equal", "eq", {"a", "b"}, {"y"}); });
  CHECK(contains(e, "bad.onnx:1:0: error: equal 'eq': expected both inputs of one type, got i64[batch,4] and "
                    "f32[batch,4]"));
  e = model_error(13, {{"c", kF32, {-1, 4}}, {"a", kF32, {-1, 4}}}, kF32,
                  [](onnx::ModelProto& m) { add_node(m, "Where", "w", {"c", "a", "a"}, {"y"}); });
  CHECK(contains(e, "bad.onnx:1:0: error: where 'w': expected input 0 of type bool, got f32[batch,4]"));
  e = model_error(13, {{"a", kF32, {-1, 4}}}, onnx::TensorProto_DataType_BOOL,
                  [](onnx::ModelProto& m) { add_node(m, "Not", "n", {"a"}, {"y"}); });
  CHECK(contains(e, "bad.onnx:1:0: error: logical_not 'n': expected input 0 of type bool, got f32[batch,4]"));
}

TEST_CASE("onnx math errors: Max of float16, Mean of int64, a PRelu slope larger than X, Log of int64") {
  std::string e = model_error(13, {{"a", onnx::TensorProto_DataType_FLOAT16, {-1, 4}}},
                              onnx::TensorProto_DataType_FLOAT16,
                              [](onnx::ModelProto& m) { add_node(m, "Max", "mx", {"a", "a"}, {"y"}); });
  CHECK(contains(e, "bad.onnx:1:0: error: max 'mx': expected input 0 of type f32, f64, i64, i32, i8 or u8, got "
                    "f16[batch,4]"));
  e = model_error(13, {{"a", kI64, {-1, 4}}}, kI64,
                  [](onnx::ModelProto& m) { add_node(m, "Mean", "mean", {"a", "a"}, {"y"}); });
  CHECK(contains(e, "bad.onnx:1:0: error: node 'mean' (Mean): expected inputs of type f32, got i64[batch,4]"));
  e = model_error(13, {{"x", kF32, {4}}, {"s", kF32, {-1, 4}}}, kF32,
                  [](onnx::ModelProto& m) { add_node(m, "PRelu", "p", {"x", "s"}, {"y"}); });
  CHECK(contains(e, "bad.onnx:1:0: error: prelu 'p': expected a slope that broadcasts to the input's shape [4], got "
                    "[batch,4]"));
  e = model_error(13, {{"x", kI64, {-1, 4}}}, kI64, [](onnx::ModelProto& m) { add_node(m, "Log", "l", {"x"}, {"y"}); });
  CHECK(contains(e, "bad.onnx:1:0: error: log 'l': "));
  CHECK(contains(e, "i64"));
}

TEST_CASE("onnx math errors: reductions with computed axes or keepdims other than 0 and 1, HardSwish before 14, Mod with fmod 2") {
  std::string e = model_error(13, {{"x", kF32, {-1, 4}}, {"axes", kI64, {1}}}, kF32,
                              [](onnx::ModelProto& m) { add_node(m, "ReduceSum", "s", {"x", "axes"}, {"y"}); });
  CHECK(contains(e, "bad.onnx:1:0: error: node 's' (ReduceSum): expected input 1 (axes) to be a constant (Kiln "
                    "reduces over axes known at load time)"));
  e = model_error(13, {{"x", kF32, {-1, 4}}}, kF32,
                  [](onnx::ModelProto& m) { set_int(add_node(m, "ReduceMean", "r", {"x"}, {"y"}), "keepdims", 2); });
  CHECK(contains(e, "bad.onnx:1:0: error: node 'r' (ReduceMean): expected keepdims 0 or 1, got 2"));
  e = model_error(13, {{"x", kF32, {-1, 4}}}, kF32,
                  [](onnx::ModelProto& m) { add_node(m, "HardSwish", "hs", {"x"}, {"y"}); });
  CHECK(contains(e, "bad.onnx:1:0: node 'hs': HardSwish (domain ai.onnx, opset 13; supported in opsets 14 to 17)"));
  e = model_error(13, {{"a", kI64, {-1, 4}}}, kI64,
                  [](onnx::ModelProto& m) { set_int(add_node(m, "Mod", "md", {"a", "a"}, {"y"}), "fmod", 2); });
  CHECK(contains(e, "bad.onnx:1:0: error: node 'md' (Mod): expected fmod 0 or 1, got 2"));
}
