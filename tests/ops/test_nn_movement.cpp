// The data-movement and nn ops added for ONNX (pad, tile, split, trilu, gather_elements, cumsum, resize's
// Kiln kernel) on inputs that must not crash or compute undefined behavior: attribute values a plan file
// could carry, integer sums that overflow, coordinates that are not numbers. Exact where bytes move.

#include <cmath>
#include <cstring>
#include <limits>

#include "tests/ops/cnn_ref.hpp"

namespace {

using namespace kiln;
using namespace kiln::test;

using Ints = std::vector<std::int64_t>;

Tensor ints32(const Ints& shape, const std::vector<std::int32_t>& v) {
  Tensor t = Tensor::empty(DType::i32, shape);
  std::memcpy(t.data(), v.data(), v.size() * 4);
  return t;
}

}  // namespace

TEST_CASE("pad refuses a fill value its element type cannot hold") {
  Tensor x = ints32({2, 2}, {1, 2, 3, 4});
  CHECK(error_of([&] {
    run_op("pad", {in(x)}, {{"pads", Attr{Ints{0, 1, 0, 1}}}, {"value", Attr{1e300}}});
  }) == "error: pad 'out': attribute 'value' " + std::to_string(1e300) + " is not a value of i32");
  Rng rng = make_rng(901);
  Tensor f = random_f32(rng, {2, 2});
  CHECK(error_of([&] {
    run_op("pad", {in(f)}, {{"pads", Attr{Ints{0, 1, 0, 1}}}, {"value", Attr{1e300}}});
  }).find("is not a value of f32") != std::string::npos);
  // Reflect: [1 2 | 3 4] padded by 1 on each side of the last dim mirrors without repeating the border.
  OpResult r = run_op("pad", {in(x)}, {{"pads", Attr{Ints{0, 1, 0, 1}}}, {"mode", Attr{std::string("reflect")}}});
  const std::vector<std::int32_t> want = {2, 1, 2, 1, 4, 3, 4, 3};
  REQUIRE(r.out.numel() == 8);
  for (std::size_t i = 0; i < want.size(); ++i) CHECK(r.out.data_as<std::int32_t>()[i] == want[i]);
}

TEST_CASE("cumsum of integers wraps around instead of overflowing") {
  const std::int32_t big = std::numeric_limits<std::int32_t>::max();
  Tensor x = ints32({3}, {big, 1, 1});
  OpResult r = run_op("cumsum", {in(x)}, {{"axis", Attr{std::int64_t{0}}}});
  CHECK(r.out.data_as<std::int32_t>()[0] == big);
  CHECK(r.out.data_as<std::int32_t>()[1] == std::numeric_limits<std::int32_t>::min());
  CHECK(r.out.data_as<std::int32_t>()[2] == std::numeric_limits<std::int32_t>::min() + 1);
}

TEST_CASE("resize's Kiln kernel keeps coordinates that are not numbers inside the input") {
  Rng rng = make_rng(902);
  Tensor x = random_f32(rng, {1, 1, 3, 3});
  const double nan = std::numeric_limits<double>::quiet_NaN();
  OpResult r = run_op("resize", {in(x)},
                      {{"size", Attr{Ints{2, 2}}},
                       {"mode", Attr{std::string("linear")}},
                       {"coordinate_mode", Attr{std::string("tf_crop_and_resize")}},
                       {"roi", Attr{std::vector<double>{nan, 0.0, 1e300, 1.0}}},
                       {"extrapolation_value", Attr{0.5}}});
  REQUIRE(r.out.numel() == 4);
  for (std::int64_t i = 0; i < 4; ++i) CHECK(std::isfinite(r.out.data_as<float>()[i]));
  CHECK(r.impl.find("kiln:resize") != std::string::npos);
}

TEST_CASE("split, tile and trilu move bytes of any element type exactly") {
  Tensor x = ints32({2, 3}, {1, 2, 3, 4, 5, 6});
  OpResult s = run_op("split", {in(x)},
                      {{"axis", Attr{std::int64_t{1}}}, {"sizes", Attr{Ints{1, 2}}}, {"index", Attr{std::int64_t{1}}}});
  const std::vector<std::int32_t> ws = {2, 3, 5, 6};
  for (std::size_t i = 0; i < ws.size(); ++i) CHECK(s.out.data_as<std::int32_t>()[i] == ws[i]);
  OpResult t = run_op("tile", {in(x)}, {{"repeats", Attr{Ints{2, 1}}}});
  REQUIRE(t.out.shape() == Ints{4, 3});
  for (std::int64_t i = 0; i < 12; ++i) CHECK(t.out.data_as<std::int32_t>()[i] == (i % 6) + 1);
  OpResult u = run_op("trilu", {in(x)}, {{"upper", Attr{true}}, {"k", Attr{std::int64_t{1}}}});
  const std::vector<std::int32_t> wu = {0, 2, 3, 0, 0, 6};
  for (std::size_t i = 0; i < wu.size(); ++i) CHECK(u.out.data_as<std::int32_t>()[i] == wu[i]);
}

TEST_CASE("max_pool with dilation, stride and padding equals a naive reference") {
  Rng rng = make_rng(903);
  Tensor x = random_f32(rng, {2, 3, 9, 8});
  const Ints k = {3, 2}, st = {2, 1}, dl = {2, 3}, pad = {1, 1, 1, 0};
  OpResult r = run_op("max_pool", {in(x)},
                      {{"kernel", Attr{k}}, {"stride", Attr{st}}, {"dilation", Attr{dl}}, {"padding", Attr{pad}}});
  const std::int64_t oh = (9 + pad[0] + pad[2] - (k[0] - 1) * dl[0] - 1) / st[0] + 1;
  const std::int64_t ow = (8 + pad[1] + pad[3] - (k[1] - 1) * dl[1] - 1) / st[1] + 1;
  REQUIRE(r.out.shape() == Ints{2, 3, oh, ow});
  const float* xs = x.data_as<float>();
  for (std::int64_t p = 0; p < 6; ++p)
    for (std::int64_t i = 0; i < oh; ++i)
      for (std::int64_t j = 0; j < ow; ++j) {
        float best = -std::numeric_limits<float>::infinity();
        for (std::int64_t a = 0; a < k[0]; ++a)
          for (std::int64_t b = 0; b < k[1]; ++b) {
            const std::int64_t y = i * st[0] - pad[0] + a * dl[0], z = j * st[1] - pad[1] + b * dl[1];
            if (y >= 0 && y < 9 && z >= 0 && z < 8) best = std::max(best, xs[(p * 9 + y) * 8 + z]);
          }
        CHECK(r.out.data_as<float>()[(p * oh + i) * ow + j] == best);
      }
}
