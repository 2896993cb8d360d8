// The element-wise ops added for ONNX import (ops/binary.cpp, ops/logic.cpp, ops/unary.cpp, ops/reduce.cpp)
// against plain-loop references: typed binary ops (i64, i32, u8, f64) and their broadcasting in both
// operands, min/max, prelu, pow_tensor, comparisons, logic, where, cast, the new activations and
// reduce_max/reduce_min. Integer and bool results are compared exactly; f32 results within 1e-5 absolute
// of a double reference (one rounding of values of magnitude <= ~4), activations at 1e-5 relative too.

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "tests/ops/op_test_util.hpp"

namespace {

using namespace kiln;
using namespace kiln::test;
using Dims = std::vector<std::int64_t>;

template <class T>
Tensor make(DType t, const Dims& shape, const std::vector<T>& values) {
  Tensor x = Tensor::empty(t, shape);
  REQUIRE(static_cast<std::size_t>(x.numel()) == values.size());
  for (std::size_t i = 0; i < values.size(); ++i) x.data_as<T>()[i] = values[i];
  return x;
}

// The offset into a tensor of dims `in` (right-aligned, broadcast) of output element `i` of dims `out`.
std::int64_t offset_of(std::int64_t i, const Dims& out, const Dims& in) {
  std::int64_t off = 0, stride = 1;
  for (std::size_t d = out.size(); d-- > 0;) {
    const std::int64_t idx = i % out[d];
    i /= out[d];
    const std::size_t k = d + in.size();
    if (k >= out.size()) {
      const std::int64_t dim = in[k - out.size()];
      if (dim != 1) off += idx * stride;
      stride *= dim;
    }
  }
  return off;
}

Dims broadcast_dims(const Dims& a, const Dims& b) {
  Dims out(std::max(a.size(), b.size()), 1);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const std::int64_t x = i + a.size() >= out.size() ? a[i + a.size() - out.size()] : 1;
    const std::int64_t y = i + b.size() >= out.size() ? b[i + b.size() - out.size()] : 1;
    out[i] = x == 1 ? y : x;
  }
  return out;
}

template <class T>
Tensor random_ints(Rng& rng, DType t, const Dims& shape, std::int64_t lo, std::int64_t hi) {
  Tensor x = Tensor::empty(t, shape);
  for (std::int64_t i = 0; i < x.numel(); ++i) x.data_as<T>()[i] = static_cast<T>(random_int(rng, lo, hi));
  return x;
}

// Runs `op(a, b)` and checks every element against ref(a_i, b_i) exactly (Y integral or bool).
template <class T, class Y, class Ref>
void check_exact(const std::string& op, const Tensor& a, const Tensor& b, DType want_type, const Ref& ref) {
  OpResult r = run_op(op, {in(a), in(b)});
  const Dims out = broadcast_dims(a.shape(), b.shape());
  INFO(op, " ", dims_str(a.shape()), " vs ", dims_str(b.shape()), "\n", r.impl);
  REQUIRE(r.out.shape() == out);
  REQUIRE(r.out.dtype() == want_type);
  int wrong = 0;
  for (std::int64_t i = 0; i < r.out.numel(); ++i) {
    const Y want = ref(a.data_as<T>()[offset_of(i, out, a.shape())], b.data_as<T>()[offset_of(i, out, b.shape())]);
    if (r.out.data_as<Y>()[i] != want) ++wrong;
  }
  CHECK(wrong == 0);
}

const std::vector<std::pair<Dims, Dims>> kShapes = {
    {{3, 4, 5}, {3, 4, 5}},  // same
    {{3, 4, 5}, {5}},        // second broadcast
    {{1, 4, 1}, {3, 4, 5}},  // first broadcast
    {{3, 1, 5}, {1, 4, 1}},  // both
    {{}, {2, 3}},            // a scalar
    {{200, 300}, {300}},     // big enough to run in parallel
    {{1, 300}, {200, 1}},
};

}  // namespace

TEST_CASE("typed binary ops: i64, i32 and u8 arithmetic, min and max with broadcasting in either operand") {
  Rng rng = make_rng(41);
  for (const auto& [sa, sb] : kShapes) {
    Tensor a = random_ints<std::int64_t>(rng, DType::i64, sa, -50, 50);
    Tensor b = random_ints<std::int64_t>(rng, DType::i64, sb, -50, 50);
    using I = std::int64_t;
    check_exact<I, I>("add", a, b, DType::i64, [](I x, I y) { return x + y; });
    check_exact<I, I>("sub", a, b, DType::i64, [](I x, I y) { return x - y; });
    check_exact<I, I>("mul", a, b, DType::i64, [](I x, I y) { return x * y; });
    check_exact<I, I>("div", a, b, DType::i64, [](I x, I y) { return y == 0 ? 0 : x / y; });
    check_exact<I, I>("max", a, b, DType::i64, [](I x, I y) { return std::max(x, y); });
    check_exact<I, I>("min", a, b, DType::i64, [](I x, I y) { return std::min(x, y); });
    Tensor a32 = random_ints<std::int32_t>(rng, DType::i32, sa, -50, 50);
    Tensor b32 = random_ints<std::int32_t>(rng, DType::i32, sb, -50, 50);
    check_exact<std::int32_t, std::int32_t>("sub", a32, b32, DType::i32, [](std::int32_t x, std::int32_t y) { return x - y; });
    Tensor a8 = random_ints<std::uint8_t>(rng, DType::u8, sa, 0, 255);
    Tensor b8 = random_ints<std::uint8_t>(rng, DType::u8, sb, 0, 255);
    check_exact<std::uint8_t, std::uint8_t>("add", a8, b8, DType::u8, [](std::uint8_t x, std::uint8_t y) {
      return static_cast<std::uint8_t>(x + y);  // wraps, as NumPy
    });
  }
}

TEST_CASE("typed binary ops: integer division by zero gives 0 and INT64_MIN / -1 wraps, without trapping") {
  constexpr auto kMin = std::numeric_limits<std::int64_t>::min();
  Tensor a = make<std::int64_t>(DType::i64, {4}, {7, -7, kMin, 5});
  Tensor b = make<std::int64_t>(DType::i64, {4}, {0, 2, -1, -1});
  OpResult r = run_op("div", {in(a), in(b)});
  const auto* y = r.out.data_as<std::int64_t>();
  CHECK(y[0] == 0);
  CHECK(y[1] == -3);  // truncated toward zero
  CHECK(y[2] == kMin);
  CHECK(y[3] == -5);
}

TEST_CASE("comparisons give bool for f32, i64, i32 and bool operands") {
  Rng rng = make_rng(42);
  for (const auto& [sa, sb] : kShapes) {
    Tensor a = random_ints<std::int64_t>(rng, DType::i64, sa, -3, 3);
    Tensor b = random_ints<std::int64_t>(rng, DType::i64, sb, -3, 3);
    using I = std::int64_t;
    using B = std::uint8_t;
    check_exact<I, B>("equal", a, b, DType::boolean, [](I x, I y) { return x == y; });
    check_exact<I, B>("less", a, b, DType::boolean, [](I x, I y) { return x < y; });
    check_exact<I, B>("less_equal", a, b, DType::boolean, [](I x, I y) { return x <= y; });
    check_exact<I, B>("greater", a, b, DType::boolean, [](I x, I y) { return x > y; });
    check_exact<I, B>("greater_equal", a, b, DType::boolean, [](I x, I y) { return x >= y; });
    Tensor fa = random_f32(rng, sa), fb = random_f32(rng, sb);
    check_exact<float, B>("greater", fa, fb, DType::boolean, [](float x, float y) { return x > y; });
    Tensor ba = random_ints<B>(rng, DType::boolean, sa, 0, 1), bb = random_ints<B>(rng, DType::boolean, sb, 0, 1);
    check_exact<B, B>("equal", ba, bb, DType::boolean, [](B x, B y) { return x == y; });
    check_exact<B, B>("logical_and", ba, bb, DType::boolean, [](B x, B y) { return x && y; });
    check_exact<B, B>("logical_or", ba, bb, DType::boolean, [](B x, B y) { return x || y; });
    check_exact<B, B>("logical_xor", ba, bb, DType::boolean, [](B x, B y) { return x != y; });
  }
  // not, and a non-zero byte other than 1 reads as true.
  Tensor x = make<std::uint8_t>(DType::boolean, {4}, {0, 1, 2, 255});
  OpResult r = run_op("logical_not", {in(x)});
  CHECK(r.out.dtype() == DType::boolean);
  CHECK(same_bytes(r.out, make<std::uint8_t>(DType::boolean, {4}, {1, 0, 0, 0})));
}

TEST_CASE("comparison and logic shape rules refuse mixed or wrong types, naming the node") {
  Tensor i = make<std::int64_t>(DType::i64, {2}, {1, 2});
  Tensor f = make<float>(DType::f32, {2}, {1, 2});
  CHECK(contains(error_of([&] { run_op("equal", {in(i), in(f)}); }), "expected both inputs of one type, got i64[2] and f32[2]"));
  CHECK(contains(error_of([&] { run_op("logical_and", {in(f), in(f)}); }), "expected input 0 of type bool, got f32[2]"));
  CHECK(contains(error_of([&] { run_op("where", {in(f), in(f), in(f)}); }), "expected input 0 of type bool, got f32[2]"));
  CHECK(contains(error_of([&] { run_op("where", {in(make<std::uint8_t>(DType::boolean, {2}, {1, 0})), in(i), in(f)}); }),
                 "expected x and y (inputs 1 and 2) of one type, got i64[2] and f32[2]"));
  CHECK(contains(error_of([&] { run_op("add", {in(i), in(f)}); }), "expected both inputs of one type, got i64[2] and f32[2]"));
  CHECK(contains(error_of([&] { run_op("cast", {in(f)}, {{"to", std::string("u16")}}); }),
                 "attribute 'to' must be one of f32, f64, f16, bf16, i64, i32, i8, u8, bool, got \"u16\""));
}

TEST_CASE("where selects with three-way broadcasting, for 4- and 8-byte and bool values") {
  Rng rng = make_rng(43);
  using B = std::uint8_t;
  const std::vector<std::array<Dims, 3>> shapes = {
      {Dims{2, 1, 4}, Dims{3, 1}, Dims{}},          {Dims{5}, Dims{5}, Dims{5}},
      {Dims{64, 1, 1, 128}, Dims{}, Dims{64, 4, 8, 128}}, {Dims{1}, Dims{4}, Dims{3, 4}},
      {Dims{2, 1}, Dims{2, 3}, Dims{}},             {Dims{3, 1}, Dims{}, Dims{3, 2}},
      {Dims{3, 4}, Dims{3, 1}, Dims{1, 4}},         {Dims{3, 1}, Dims{1, 1}, Dims{1}},
      {Dims{2, 3, 5}, Dims{1, 3, 1}, Dims{2, 1, 5}}, {Dims{3, 4}, Dims{3, 4}, Dims{3, 1}},
      {Dims{3, 1, 1}, Dims{1, 2, 1}, Dims{}}};  // every pattern of run steps 0 and 1, flat and by rows
  for (const auto& s : shapes) {
    Tensor c = random_ints<B>(rng, DType::boolean, s[0], 0, 1);
    Tensor x = random_f32(rng, s[1]), y = random_f32(rng, s[2]);
    OpResult r = run_op("where", {in(c), in(x), in(y)});
    const Dims out = broadcast_dims(broadcast_dims(s[0], s[1]), s[2]);
    REQUIRE(r.out.shape() == out);
    int wrong = 0;
    for (std::int64_t i = 0; i < r.out.numel(); ++i) {
      const float want = c.data_as<B>()[offset_of(i, out, s[0])] ? x.data_as<float>()[offset_of(i, out, s[1])]
                                                                 : y.data_as<float>()[offset_of(i, out, s[2])];
      if (r.out.data_as<float>()[i] != want) ++wrong;
    }
    CHECK(wrong == 0);
    Tensor xi = random_ints<std::int64_t>(rng, DType::i64, s[1], -9, 9), yi = random_ints<std::int64_t>(rng, DType::i64, s[2], -9, 9);
    OpResult ri = run_op("where", {in(c), in(xi), in(yi)});
    CHECK(ri.out.dtype() == DType::i64);
    wrong = 0;
    for (std::int64_t i = 0; i < ri.out.numel(); ++i) {
      const std::int64_t want = c.data_as<B>()[offset_of(i, out, s[0])] ? xi.data_as<std::int64_t>()[offset_of(i, out, s[1])]
                                                                        : yi.data_as<std::int64_t>()[offset_of(i, out, s[2])];
      if (ri.out.data_as<std::int64_t>()[i] != want) ++wrong;
    }
    CHECK(wrong == 0);
  }
}

TEST_CASE("cast converts between f32, f64, i64, i32, u8 and bool: truncating, saturating, NaN to 0") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor f = make<float>(DType::f32, {7}, {1.9f, -1.9f, 0.f, 17179869184.f, -3e10f, nan, 0.5f});
  OpResult r = run_op("cast", {in(f)}, {{"to", std::string("i64")}});
  CHECK(r.out.dtype() == DType::i64);
  CHECK(same_bytes(r.out, make<std::int64_t>(DType::i64, {7}, {1, -1, 0, 17179869184, -30000001024, 0, 0})));
  r = run_op("cast", {in(f)}, {{"to", std::string("i32")}});
  CHECK(same_bytes(r.out, make<std::int32_t>(DType::i32, {7}, {1, -1, 0, std::numeric_limits<std::int32_t>::max(),
                                                                std::numeric_limits<std::int32_t>::min(), 0, 0})));
  r = run_op("cast", {in(f)}, {{"to", std::string("bool")}});
  CHECK(same_bytes(r.out, make<std::uint8_t>(DType::boolean, {7}, {1, 1, 0, 1, 1, 1, 1})));
  Tensor b = make<std::uint8_t>(DType::boolean, {3}, {0, 1, 7});
  r = run_op("cast", {in(b)}, {{"to", std::string("f32")}});
  CHECK(same_bytes(r.out, make<float>(DType::f32, {3}, {0.f, 1.f, 1.f})));
  Tensor i = make<std::int64_t>(DType::i64, {3}, {-1, 256, 3});
  r = run_op("cast", {in(i)}, {{"to", std::string("u8")}});
  CHECK(same_bytes(r.out, make<std::uint8_t>(DType::u8, {3}, {255, 0, 3})));  // wraps, as C++ and NumPy
  Tensor d = make<double>(DType::f64, {3}, {1e300, -1e300, 1.5});
  r = run_op("cast", {in(d)}, {{"to", std::string("f32")}});  // beyond float's range: ±inf
  CHECK(same_bytes(r.out, make<float>(DType::f32, {3}, {std::numeric_limits<float>::infinity(),
                                                        -std::numeric_limits<float>::infinity(), 1.5f})));
  r = run_op("cast", {in(i)}, {{"to", std::string("f64")}});
  CHECK(same_bytes(r.out, make<double>(DType::f64, {3}, {-1.0, 256.0, 3.0})));
}

TEST_CASE("prelu broadcasts its slope, and pow_tensor takes tensor and integer exponents") {
  Rng rng = make_rng(44);
  Tensor x = random_f32(rng, {2, 3, 4});
  Tensor slope = random_f32(rng, {3, 1});
  OpResult r = run_op("prelu", {in(x), in(slope)});
  double err = 0;
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    const float v = x.data_as<float>()[i];
    const float s = slope.data_as<float>()[offset_of(i, {2, 3, 4}, {3, 1})];
    err = std::max(err, static_cast<double>(std::fabs(r.out.data_as<float>()[i] - (v < 0 ? v * s : v))));
  }
  CHECK(err <= 1e-6);
  CHECK(contains(error_of([&] { run_op("prelu", {in(slope), in(x)}); }),
                 "expected a slope that broadcasts to the input's shape [3,1], got [2,3,4]"));

  Tensor base = random_f32(rng, {3, 4}, 0.5f, 2.f);
  Tensor e = random_f32(rng, {4}, -2.f, 2.f);
  r = run_op("pow_tensor", {in(base), in(e)});
  err = 0;
  for (std::int64_t i = 0; i < base.numel(); ++i)
    err = std::max(err, std::fabs(r.out.data_as<float>()[i] -
                                  std::pow(static_cast<double>(base.data_as<float>()[i]), e.data_as<float>()[i % 4])));
  CHECK(err <= 1e-5);
  Tensor ib = make<std::int64_t>(DType::i64, {4}, {2, -3, 5, 1});
  Tensor ie = make<std::int64_t>(DType::i64, {4}, {10, 3, 0, -2});
  r = run_op("pow_tensor", {in(ib), in(ie)});
  CHECK(same_bytes(r.out, make<std::int64_t>(DType::i64, {4}, {1024, -27, 1, 1})));
  Tensor fe = make<float>(DType::f32, {4}, {0.5f, 2.f, 1.f, 3.f});
  r = run_op("pow_tensor", {in(ib), in(fe)});
  CHECK(r.out.dtype() == DType::i64);
  CHECK(same_bytes(r.out, make<std::int64_t>(DType::i64, {4}, {1, 9, 5, 1})));  // 2^0.5 = 1.41 truncates to 1
}

TEST_CASE("the new activations match their formulas") {
  Rng rng = make_rng(45);
  Tensor x = random_f32(rng, {5, 37}, -4.f, 4.f);
  struct Case {
    const char* op;
    AttrMap attrs;
    double (*f)(double x);
  };
  const std::vector<Case> cases = {
      {"abs", {}, [](double v) { return std::fabs(v); }},
      {"neg", {}, [](double v) { return -v; }},
      {"reciprocal", {}, [](double v) { return 1 / v; }},
      {"leaky_relu", {{"alpha", 0.1}}, [](double v) { return v < 0 ? 0.1 * v : v; }},
      {"elu", {{"alpha", 2.0}}, [](double v) { return v > 0 ? v : 2.0 * (std::exp(v) - 1); }},
      {"selu", {}, [](double v) { return 1.0507009873554805 * (v > 0 ? v : 1.6732632423543772 * (std::exp(v) - 1)); }},
      {"hard_sigmoid", {}, [](double v) { return std::clamp(0.2 * v + 0.5, 0.0, 1.0); }},
      {"hard_swish", {}, [](double v) { return v * std::clamp(v / 6 + 0.5, 0.0, 1.0); }},
      {"softplus", {}, [](double v) { return std::log1p(std::exp(v)); }},
  };
  for (const Case& c : cases) {
    OpResult r = run_op(c.op, {in(x)}, c.attrs);
    double worst = 0;
    for (std::int64_t i = 0; i < x.numel(); ++i) {
      const double want = c.f(x.data_as<float>()[i]);
      worst = std::max(worst, std::fabs(r.out.data_as<float>()[i] - want) / (1e-5 + 1e-5 * std::fabs(want)));
    }
    INFO(c.op, " ", r.impl);
    CHECK(worst <= 1.0);
  }
  Tensor pos = random_f32(rng, {64}, 0.1f, 8.f);
  OpResult r = run_op("log", {in(pos)});
  double worst = 0;
  for (std::int64_t i = 0; i < pos.numel(); ++i)
    worst = std::max(worst, std::fabs(r.out.data_as<float>()[i] - std::log(static_cast<double>(pos.data_as<float>()[i]))));
  CHECK(worst <= 1e-6);
}

TEST_CASE("reduce_max and reduce_min: contiguous middle axes (Kiln's loop) and others (oneDNN)") {
  Rng rng = make_rng(46);
  const std::vector<std::pair<Dims, Dims>> cases = {
      {{4, 9, 6}, {1}}, {{4, 9, 6}, {-1}}, {{2, 3, 4, 5}, {1, 2}}, {{2, 3, 4, 5}, {0, 2}}, {{7}, {0}}};
  for (const auto& shape_axes : cases)  // not a structured binding: INFO's lambda captures these (clang 14)
    for (bool keep : {false, true})
      for (const char* op : {"reduce_max", "reduce_min"}) {
        const Dims& shape = shape_axes.first;
        const Dims& axes = shape_axes.second;
        Tensor x = random_f32(rng, shape);
        OpResult r = run_op(op, {in(x)}, {{"axes", axes}, {"keepdims", keep}});
        const int rank = static_cast<int>(shape.size());
        Dims kept = shape;
        for (auto a : axes) kept[a < 0 ? a + rank : a] = 1;
        const bool is_max = std::string(op) == "reduce_max";
        std::vector<float> want(static_cast<std::size_t>(r.out.numel()), is_max ? -INFINITY : INFINITY);
        for (std::int64_t i = 0; i < x.numel(); ++i) {
          // output index: the input index with reduced dims at 0
          std::int64_t rem = i, o = 0, stride = 1;
          for (int d = rank - 1; d >= 0; --d) {
            const std::int64_t idx = rem % shape[d];
            rem /= shape[d];
            if (kept[d] != 1 || shape[d] == 1) o += (kept[d] == 1 ? 0 : idx) * stride;
            stride *= kept[d];
          }
          float& w = want[static_cast<std::size_t>(o)];
          w = is_max ? std::max(w, x.data_as<float>()[i]) : std::min(w, x.data_as<float>()[i]);
        }
        INFO(op, " ", dims_str(shape), " axes ", dims_str(axes), " ", r.impl);
        int wrong = 0;
        for (std::int64_t i = 0; i < r.out.numel(); ++i) wrong += r.out.data_as<float>()[i] != want[static_cast<std::size_t>(i)];
        CHECK(wrong == 0);
      }
}

TEST_CASE("reduce_sum, reduce_max and reduce_min over i64 and i32, and reduce_mean refusing integers") {
  // [2,3,4] with values i*7 mod 24 - 11: sums and extrema per kept index, computed here.
  Dims shape = {2, 3, 4};
  std::vector<std::int64_t> v(24);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::int64_t>((i * 7) % 24) - 11;
  Tensor x = make<std::int64_t>(DType::i64, shape, v);
  OpResult sum = run_op("reduce_sum", {in(x)}, {{"axes", Dims{1}}, {"keepdims", false}});
  OpResult mx = run_op("reduce_max", {in(x)}, {{"axes", Dims{0, -1}}, {"keepdims", true}});
  REQUIRE(sum.out.dtype() == DType::i64);
  REQUIRE(sum.out.shape() == Dims{2, 4});
  REQUIRE(mx.out.shape() == Dims{1, 3, 1});
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 4; ++k) {
      std::int64_t want = 0;
      for (int j = 0; j < 3; ++j) want += v[static_cast<std::size_t>((i * 3 + j) * 4 + k)];
      CHECK(sum.out.data_as<std::int64_t>()[i * 4 + k] == want);
    }
  for (int j = 0; j < 3; ++j) {
    std::int64_t want = std::numeric_limits<std::int64_t>::lowest();
    for (int i = 0; i < 2; ++i)
      for (int k = 0; k < 4; ++k) want = std::max(want, v[static_cast<std::size_t>((i * 3 + j) * 4 + k)]);
    CHECK(mx.out.data_as<std::int64_t>()[j] == want);
  }
  Tensor x32 = make<std::int32_t>(DType::i32, {3}, {4, -9, 2});
  OpResult mn = run_op("reduce_min", {in(x32)}, {{"axes", Dims{0}}, {"keepdims", false}});
  CHECK(mn.out.dtype() == DType::i32);
  CHECK(mn.out.data_as<std::int32_t>()[0] == -9);
  CHECK(contains(error_of([&] { run_op("reduce_mean", {in(x)}, {{"axes", Dims{0}}}); }),
                 "expected input 0 of type f32, got i64[2,3,4]"));
}

TEST_CASE("mod takes the divisor's sign (Python's %) or the dividend's (fmod), and by zero gives 0") {
  using I = std::int64_t;
  Tensor a = make<I>(DType::i64, {6}, {7, -7, 7, -7, 5, std::numeric_limits<I>::min()});
  Tensor b = make<I>(DType::i64, {6}, {3, 3, -3, -3, 0, -1});
  OpResult r = run_op("mod", {in(a), in(b)});
  CHECK(same_bytes(r.out, make<I>(DType::i64, {6}, {1, 2, -2, -1, 0, 0})));
  r = run_op("mod", {in(a), in(b)}, {{"fmod", true}});
  CHECK(same_bytes(r.out, make<I>(DType::i64, {6}, {1, -1, 1, -1, 0, 0})));
  Tensor fa = make<float>(DType::f32, {2}, {-7.5f, 7.5f});
  Tensor fb = make<float>(DType::f32, {1}, {2.f});
  r = run_op("mod", {in(fa), in(fb)}, {{"fmod", true}});
  CHECK(same_bytes(r.out, make<float>(DType::f32, {2}, {-1.5f, 1.5f})));
  r = run_op("mod", {in(fa), in(fb)});
  CHECK(same_bytes(r.out, make<float>(DType::f32, {2}, {0.5f, 1.5f})));
}

TEST_CASE("is_nan and is_inf give bool, is_inf by sign") {
  const float inf = std::numeric_limits<float>::infinity();
  Tensor x = make<float>(DType::f32, {4}, {1.f, inf, -inf, std::numeric_limits<float>::quiet_NaN()});
  CHECK(same_bytes(run_op("is_nan", {in(x)}).out, make<std::uint8_t>(DType::boolean, {4}, {0, 0, 0, 1})));
  CHECK(same_bytes(run_op("is_inf", {in(x)}).out, make<std::uint8_t>(DType::boolean, {4}, {0, 1, 1, 0})));
  CHECK(same_bytes(run_op("is_inf", {in(x)}, {{"detect_positive", false}}).out,
                   make<std::uint8_t>(DType::boolean, {4}, {0, 0, 1, 0})));
  CHECK(contains(error_of([&] { run_op("is_nan", {in(make<std::int64_t>(DType::i64, {1}, {1}))}); }),
                 "expected input 0 of type f32, f64, got i64[1]"));
}

TEST_CASE("broadcast loops: 18 dims alternating between the operands (the per-row path past 16 outer dims)") {
  Rng rng = make_rng(47);
  Dims sa, sb;
  for (int i = 0; i < 18; ++i) {
    sa.push_back(i % 2 ? 1 : 2);
    sb.push_back(i % 2 ? 2 : 1);
  }
  Tensor a = random_ints<std::int64_t>(rng, DType::i64, sa, -50, 50);
  Tensor b = random_ints<std::int64_t>(rng, DType::i64, sb, -50, 50);
  using I = std::int64_t;
  check_exact<I, I>("sub", a, b, DType::i64, [](I x, I y) { return x - y; });
  Tensor fa = random_f32(rng, sa), fb = random_f32(rng, sb);
  check_exact<float, std::uint8_t>("less", fa, fb, DType::boolean, [](float x, float y) { return x < y; });
}

TEST_CASE("reduce_prod over middle axes (Kiln's loop), the last axis (oneDNN) and i64") {
  std::vector<float> v(24);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = 0.5f + 0.1f * static_cast<float>(i % 7);
  Tensor x = make<float>(DType::f32, {2, 3, 4}, v);
  for (const Dims& axes : {Dims{1}, Dims{-1}, Dims{0, 1, 2}}) {
    OpResult r = run_op("reduce_prod", {in(x)}, {{"axes", axes}, {"keepdims", true}});
    INFO(dims_str(axes), " ", r.impl);
    const int rank = 3;
    Dims shape = {2, 3, 4}, kept = shape;
    for (auto a : axes) kept[a < 0 ? a + rank : a] = 1;
    std::vector<double> want(static_cast<std::size_t>(r.out.numel()), 1.0);
    for (std::int64_t i = 0; i < 24; ++i) want[static_cast<std::size_t>(offset_of(i, shape, kept))] *= v[static_cast<std::size_t>(i)];
    double err = 0;
    for (std::size_t i = 0; i < want.size(); ++i) err = std::max(err, std::fabs(r.out.data_as<float>()[i] - want[i]) / want[i]);
    CHECK(err <= 1e-5);
  }
  Tensor xi = make<std::int64_t>(DType::i64, {2, 3}, {1, 2, 3, -4, 5, 6});
  OpResult r = run_op("reduce_prod", {in(xi)}, {{"axes", Dims{1}}, {"keepdims", false}});
  CHECK(same_bytes(r.out, make<std::int64_t>(DType::i64, {2}, {6, -120})));
}

TEST_CASE("cast to float16 and bfloat16 rounds to nearest even, overflows to inf, keeps NaN and subnormals") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // 1 + 2^-11 is halfway between two halves: even (1.0); 1 + 3*2^-11 rounds up; 65520 overflows half;
  // 2^-25 * 1.5 rounds to the smallest subnormal; 2^-26 to zero.
  Tensor x = make<float>(DType::f32, {7}, {1.f + std::ldexp(1.f, -11), 1.f + 3 * std::ldexp(1.f, -11), 65520.f, nan,
                                           1.5f * std::ldexp(1.f, -25), std::ldexp(1.f, -26), -0.f});
  OpResult r = run_op("cast", {in(x)}, {{"to", std::string("f16")}});
  REQUIRE(r.out.dtype() == DType::f16);
  const auto* h = r.out.data_as<std::uint16_t>();
  CHECK(h[0] == 0x3c00);
  CHECK(h[1] == 0x3c02);
  CHECK(h[2] == 0x7c00);
  CHECK(((h[3] & 0x7c00) == 0x7c00 && (h[3] & 0x3ff) != 0));  // a NaN
  CHECK(h[4] == 0x0001);
  CHECK(h[5] == 0x0000);
  CHECK(h[6] == 0x8000);
  // bfloat16: 1 + 2^-8 is halfway: even (1.0); 1 + 3*2^-8 rounds up to 1 + 2^-6.
  Tensor y = make<float>(DType::f32, {2}, {1.f + std::ldexp(1.f, -8), 1.f + 3 * std::ldexp(1.f, -8)});
  r = run_op("cast", {in(y)}, {{"to", std::string("bf16")}});
  CHECK(r.out.data_as<std::uint16_t>()[0] == 0x3f80);
  CHECK(r.out.data_as<std::uint16_t>()[1] == 0x3f82);
  // And back: every half bit pattern that is a number converts exactly (f16 -> f32 -> f16 is the identity).
  Tensor all = Tensor::empty(DType::f16, {65536});
  for (int i = 0; i < 65536; ++i) all.data_as<std::uint16_t>()[i] = static_cast<std::uint16_t>(i);
  Tensor f = run_op("cast", {in(all)}, {{"to", std::string("f32")}}).out;
  Tensor back = run_op("cast", {in(f)}, {{"to", std::string("f16")}}).out;
  int wrong = 0;
  for (int i = 0; i < 65536; ++i) {
    const bool is_nan = (i & 0x7c00) == 0x7c00 && (i & 0x3ff) != 0;
    if (!is_nan && back.data_as<std::uint16_t>()[i] != i) ++wrong;
  }
  CHECK(wrong == 0);
}
