// reshape: a view op (no kernel). Checks 0 (copy the input dim) and -1 (inferred) semantics, that the
// output holds exactly the input's bytes, shape inference over symbolic dims, and that a view feeds the
// next kernel correctly, both from a graph input and from a buffer in the plan's arena.

#include <cstdlib>

#include "tests/ops/op_test_util.hpp"

namespace {

using namespace kiln;
using namespace kiln::test;

using Dims = std::vector<std::int64_t>;

void check(Rng& rng, const Dims& shape, const Dims& target, const Dims& expected) {
  Tensor x = random_f32(rng, shape);
  OpResult r = run_op("reshape", {in(x)}, {{"shape", target}});
  INFO("reshape ", dims_str(shape), " to ", dims_str(target), "\n", r.impl);
  CHECK(r.out.shape() == expected);
  CHECK(r.inferred.shape == concrete_shape(expected));
  CHECK(same_bytes(r.out, Tensor::view(DType::f32, expected, x.data())));
  CHECK(r.impl.find("[view]") != std::string::npos);
}

Shape sym(std::initializer_list<const char*> dims) {
  Shape s;
  for (const char* d : dims) {
    char* end = nullptr;
    long long v = std::strtoll(d, &end, 10);
    s.push_back(*end ? Dim::symbol(d) : Dim::of(v));
  }
  return s;
}

// The type reshape infers for an input of type `x` (symbolic dims allowed).
std::string inferred(const Shape& x, const Dims& target) {
  Graph g;
  g.name = "r";
  Value* in = g.add_value("x", TensorType{DType::f32, x});
  Value* out = g.add_value("y", TensorType{});
  g.add_node("reshape", "y", {in}, {out}, {{"shape", target}}, SourceLoc{});
  g.inputs = {in};
  g.outputs = {out};
  g.verify();
  g.infer_shapes();
  return out->type.str();
}

}  // namespace

TEST_CASE("reshape 0 and -1 semantics, output is the input's bytes") {
  Rng rng = make_rng(81);
  check(rng, {2, 3, 4}, {6, 4}, {6, 4});
  check(rng, {2, 3, 4}, {-1}, {24});
  check(rng, {2, 3, 4}, {0, -1}, {2, 12});
  check(rng, {2, 3, 4}, {0, 0, 2, -1}, {2, 3, 2, 2});
  check(rng, {2, 3, 4}, {-1, 0, 4}, {2, 3, 4});          // 0 in the middle
  check(rng, {2, 3, 4}, {4, 0, -1}, {4, 3, 2});          // 0 copies the dim at its own position
  check(rng, {1, 17}, {17, 1}, {17, 1});
  check(rng, {5, 1, 7}, {0, 0, 0}, {5, 1, 7});           // identity
  check(rng, {13}, {1, -1, 1}, {1, 13, 1});
  for (int i = 0; i < 3; ++i) {
    Dims s = random_shape(rng, 3);
    check(rng, s, {0, -1}, {s[0], s[1] * s[2]});
    check(rng, s, {-1, 0, 0}, s);
    check(rng, s, {s[0] * s[1], -1}, {s[0] * s[1], s[2]});
  }
}

TEST_CASE("reshape shape inference on symbolic dims") {
  CHECK(inferred(sym({"batch", "seq", "128"}), {0, 0, 8, -1}) == "f32[batch,seq,8,16]");
  CHECK(inferred(sym({"batch", "seq", "128"}), {-1, 128}) == "f32[batch*seq,128]");
  // The inferred dim is named by its product expression, concrete factor first.
  CHECK(inferred(sym({"batch", "seq", "128"}), {0, -1}) == "f32[batch,128*seq]");
  CHECK(inferred(sym({"batch", "seq", "8", "16"}), {0, 0, 128}) == "f32[batch,seq,128]");
  CHECK(inferred(sym({"batch*seq", "128"}), {-1, 8, 16}) == "f32[batch*seq,8,16]");
  CHECK(inferred(sym({"batch", "seq", "128"}), {0, 0, 0}) == "f32[batch,seq,128]");

  // A symbolic graph run at concrete shapes: [batch,seq,128] -> [batch*seq,128] with batch=3, seq=5.
  Rng rng = make_rng(82);
  Tensor x = random_f32(rng, {3, 5, 128});
  OpResult r = run_op("reshape", {in(x, sym({"batch", "seq", "128"}))}, {{"shape", Dims{-1, 128}}});
  CHECK(r.inferred.str() == "f32[batch*seq,128]");
  CHECK(r.out.shape() == Dims{15, 128});
  CHECK(same_bytes(r.out, Tensor::view(DType::f32, {15, 128}, x.data())));
  r = run_op("reshape", {in(x, sym({"batch", "seq", "128"}))}, {{"shape", Dims{0, 0, 8, -1}}});
  CHECK(r.inferred.str() == "f32[batch,seq,8,16]");
  CHECK(r.out.shape() == Dims{3, 5, 8, 16});
  CHECK(same_bytes(r.out, Tensor::view(DType::f32, {3, 5, 8, 16}, x.data())));
}

TEST_CASE("reshape rejects bad targets") {
  Rng rng = make_rng(83);
  Tensor x = random_f32(rng, {2, 3});
  auto msg = [&](const Dims& target) { return error_of([&] { run_op("reshape", {in(x)}, {{"shape", target}}); }); };
  CHECK(msg({4, 2}) == "error: reshape 'out': cannot reshape f32[2,3] to [4,2]: element counts differ");
  CHECK(msg({-1, -1}) == "error: reshape 'out': attribute 'shape' has more than one -1");
  CHECK(msg({4, -1}) == "error: reshape 'out': cannot reshape f32[2,3] to [4,-1]: element counts differ");
  CHECK(msg({-2, 3}) == "error: reshape 'out': attribute 'shape' has invalid entry -2 (expected > 0, 0 to copy, or -1)");
  CHECK(msg({0, 0, 0}) == "error: reshape 'out': attribute 'shape' copies dim 2 (0) of an input of rank 2");
  CHECK(error_of([] { inferred(sym({"batch", "seq", "128"}), {2, 64}); }) ==
        "error: reshape 'y': cannot reshape f32[batch,seq,128] to [2,64]: element counts differ");
}

TEST_CASE("reshape view of a graph input feeds add") {
  // y = reshape(x, [0,0,8,-1]) + b, b broadcast over [batch,seq,8,16].
  Rng rng = make_rng(84);
  Graph g;
  g.name = "view_add";
  Value* x = g.add_value("x", TensorType{DType::f32, sym({"batch", "seq", "128"})});
  Value* b = g.add_value("b", TensorType{DType::f32, sym({"8", "16"})});
  Value* x4 = g.add_value("x4", TensorType{});
  Value* y = g.add_value("y", TensorType{});
  g.add_node("reshape", "x4", {x}, {x4}, {{"shape", Dims{0, 0, 8, -1}}}, SourceLoc{});
  g.add_node("add", "y", {x4, b}, {y}, {}, SourceLoc{});
  g.inputs = {x, b};
  g.outputs = {y};
  g.verify();
  g.infer_shapes();
  CHECK(y->type.str() == "f32[batch,seq,8,16]");
  for (Dims s : {Dims{1, 1, 128}, Dims{2, 3, 128}, Dims{3, 17, 128}}) {
    Tensor xt = random_f32(rng, s), bt = random_f32(rng, {8, 16});
    auto out = run_graph(g, {xt, bt});
    Tensor want = ref_binary('+', Tensor::view(DType::f32, {s[0], s[1], 8, 16}, xt.data()), bt);
    INFO("x ", dims_str(s));
    CHECK(out.at(0).shape() == want.shape());
    CHECK(max_abs_error(out.at(0), want) <= 1e-5);
  }
}

TEST_CASE("reshape view of an arena buffer stays live while used") {
  // t = x + x lives in the arena; r = reshape(t) is a view of it, used by the last node. u = x * x is
  // computed in between and must not be placed over t.
  //   t = add(x, x); r = reshape(t) [-1, 16]; u = mul(x2, x2); y = add(r, u)
  Rng rng = make_rng(85);
  Graph g;
  g.name = "arena_view";
  Value* x = g.add_value("x", TensorType{DType::f32, sym({"n", "4", "4"})});
  Value* x2 = g.add_value("x2", TensorType{DType::f32, sym({"n", "16"})});
  Value* t = g.add_value("t", TensorType{});
  Value* r = g.add_value("r", TensorType{});
  Value* u = g.add_value("u", TensorType{});
  Value* y = g.add_value("y", TensorType{});
  g.add_node("add", "t", {x, x}, {t}, {}, SourceLoc{});
  g.add_node("reshape", "r", {t}, {r}, {{"shape", Dims{-1, 16}}}, SourceLoc{});
  g.add_node("mul", "u", {x2, x2}, {u}, {}, SourceLoc{});
  g.add_node("add", "y", {r, u}, {y}, {}, SourceLoc{});
  g.inputs = {x, x2};
  g.outputs = {y, r};  // the view is also an output: copied out at the end
  g.verify();
  g.infer_shapes();
  CHECK(r->type.str() == "f32[n,16]");
  for (std::int64_t n : {1, 5, 17}) {
    Tensor xt = random_f32(rng, {n, 4, 4}), x2t = random_f32(rng, {n, 16});
    std::string plan;
    auto out = run_graph(g, {xt, x2t}, &plan);
    Tensor xv = Tensor::view(DType::f32, {n, 16}, xt.data());
    Tensor tw = ref_binary('+', xv, xv);
    Tensor want = ref_binary('+', tw, ref_binary('*', x2t, x2t));
    INFO("n ", n, "\n", plan);
    CHECK(max_abs_error(out.at(0), want) <= 1e-5);
    CHECK(out.at(1).shape() == Dims{n, 16});
    CHECK(max_abs_error(out.at(1), tw) <= 1e-5);
  }
}
