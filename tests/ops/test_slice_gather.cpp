// slice, gather, squeeze, unsqueeze and reshape_dims (the ops ONNX imports of shape arithmetic and tensor
// indexing map onto): slice and gather against a reference on random shapes and bounds (negative,
// out-of-range, negative steps), the views' bytes, shape inference over symbolic dims, and refusals.

#include <cstdlib>
#include <limits>

#include "tests/ops/op_test_util.hpp"

namespace {

using namespace kiln;
using namespace kiln::test;

using Dims = std::vector<std::int64_t>;

// numpy's x[start:end:step] along `axis`, with ONNX's clamping (a plain loop over every output element).
Tensor ref_slice(const Tensor& x, const Dims& axes, const Dims& starts, const Dims& ends, const Dims& steps) {
  const Dims& in = x.shape();
  const auto rank = static_cast<std::int64_t>(in.size());
  Dims first(in.size(), 0), step(in.size(), 1), count = in;
  for (std::size_t i = 0; i < axes.size(); ++i) {
    const auto a = static_cast<std::size_t>(axes[i] < 0 ? axes[i] + rank : axes[i]);
    const std::int64_t d = in[a], s = steps[i];
    auto clampi = [&](std::int64_t v, std::int64_t lo, std::int64_t hi) {
      if (v < 0) v += d;
      return std::max(lo, std::min(v, hi));
    };
    std::int64_t b = s > 0 ? clampi(starts[i], 0, d) : clampi(starts[i], -1, d - 1);
    std::int64_t e = s > 0 ? clampi(ends[i], 0, d) : clampi(ends[i], -1, d - 1);
    std::int64_t n = 0;
    for (std::int64_t k = b; s > 0 ? k < e : k > e; k += s) ++n;
    first[a] = b;
    step[a] = s;
    count[a] = n;
  }
  Tensor out = Tensor::empty(DType::f32, count);
  const float* src = x.data_as<float>();
  float* dst = out.data_as<float>();
  Dims idx(in.size(), 0);
  for (std::int64_t o = 0; o < out.numel(); ++o) {
    std::int64_t off = 0;
    for (std::size_t d = 0; d < in.size(); ++d) off = off * in[d] + first[d] + idx[d] * step[d];
    dst[o] = src[off];
    for (std::size_t d = in.size(); d-- > 0;) {
      if (++idx[d] < count[d]) break;
      idx[d] = 0;
    }
  }
  return out;
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

}  // namespace

TEST_CASE("slice equals numpy's strided window with ONNX's clamping, on random shapes and bounds") {
  Rng rng = make_rng(151);
  for (int t = 0; t < 60; ++t) {
    const int rank = static_cast<int>(random_int(rng, 1, 4));
    Tensor x = random_f32(rng, random_shape(rng, rank, 1, 7));
    Dims axes, starts, ends, steps;
    for (int a = 0; a < rank; ++a) {
      if (random_int(rng, 0, 2) == 0) continue;
      axes.push_back(random_int(rng, 0, 1) ? a : a - rank);
      starts.push_back(random_int(rng, -9, 9));
      const std::int64_t e = random_int(rng, -9, 9);
      ends.push_back(e == 9 ? std::numeric_limits<std::int64_t>::max() : e == -9 ? std::numeric_limits<std::int64_t>::min() : e);
      std::int64_t s = random_int(rng, -3, 3);
      steps.push_back(s == 0 ? 1 : s);
    }
    OpResult r = run_op("slice", {in(x)}, {{"axes", axes}, {"starts", starts}, {"ends", ends}, {"steps", steps}});
    Tensor want = ref_slice(x, axes, starts, ends, steps);
    INFO(dims_str(x.shape()), " axes ", dims_str(axes), " starts ", dims_str(starts), " ends ", dims_str(ends),
         " steps ", dims_str(steps));
    REQUIRE(r.out.shape() == want.shape());
    CHECK(same_bytes(r.out, want));
  }
}

TEST_CASE("slice keeps a symbolic axis sliced whole and refuses any other window of it") {
  Rng rng = make_rng(152);
  Tensor x = random_f32(rng, {2, 5, 6});
  const std::int64_t big = std::numeric_limits<std::int64_t>::max();
  OpResult r = run_op("slice", {in(x, sym({"batch", "seq", "6"}))},
                      {{"axes", Dims{1, 2}}, {"starts", Dims{0, 2}}, {"ends", Dims{big, 5}}, {"steps", Dims{}}});
  CHECK(r.inferred.str() == "f32[batch,seq,3]");
  CHECK(same_bytes(r.out, ref_slice(x, {1, 2}, {0, 2}, {big, 5}, {1, 1})));
  CHECK(error_of([&] {
          run_op("slice", {in(x, sym({"batch", "seq", "6"}))},
                 {{"axes", Dims{1}}, {"starts", Dims{1}}, {"ends", Dims{big}}, {"steps", Dims{1}}});
        }) == "error: slice 'out': axis 1 of f32[batch,seq,6] is symbolic: only a whole-axis slice (start 0, end "
              "past the dim, step 1) has a size valid for every binding");
  CHECK(error_of([&] {
          run_op("slice", {in(x)}, {{"axes", Dims{0}}, {"starts", Dims{0}}, {"ends", Dims{1}}, {"steps", Dims{0}}});
        }) == "error: slice 'out': a step is 0");
  CHECK(error_of([&] {
          run_op("slice", {in(x)}, {{"axes", Dims{0, -3}}, {"starts", Dims{0, 0}}, {"ends", Dims{1, 1}}});
        }) == "error: slice 'out': axis 0 is sliced twice");
}

TEST_CASE("gather along an axis at constant indices, negative ones from the end, scalar dropping the axis") {
  Rng rng = make_rng(153);
  Tensor x = random_f32(rng, {2, 5, 3});
  OpResult r = run_op("gather", {in(x, sym({"batch", "seq", "3"}))},
                      {{"axis", std::int64_t{1}}, {"indices", Dims{0}}, {"scalar", true}});
  CHECK(r.inferred.str() == "f32[batch,3]");
  Tensor first = ref_slice(x, {1}, {0}, {1}, {1});
  CHECK(same_bytes(r.out, Tensor::view(DType::f32, {2, 3}, first.data())));
  r = run_op("gather", {in(x)}, {{"axis", std::int64_t{-2}}, {"indices", Dims{4, -5, 2}}});
  REQUIRE(r.out.shape() == Dims{2, 3, 3});
  const float* got = r.out.data_as<float>();
  const float* src = x.data_as<float>();
  int mismatches = 0;
  const std::int64_t picked[3] = {4, 0, 2};
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < 3; ++i)
      for (int c = 0; c < 3; ++c) mismatches += got[(b * 3 + i) * 3 + c] != src[(b * 5 + picked[i]) * 3 + c];
  CHECK(mismatches == 0);
  CHECK(error_of([&] {
          run_op("gather", {in(x)}, {{"axis", std::int64_t{1}}, {"indices", Dims{5}}});
        }) == "error: gather 'out': index 5 is out of range for axis 1 of f32[2,5,3] (expected -5 <= index < 5)");
  CHECK(error_of([&] {
          run_op("gather", {in(x)}, {{"axis", std::int64_t{0}}, {"indices", Dims{0, 1}}, {"scalar", true}});
        }) == "error: gather 'out': attribute 'scalar' needs exactly one index, got [0,1]");
}

TEST_CASE("squeeze and unsqueeze are views that keep symbolic dims, squeeze only of 1s") {
  Rng rng = make_rng(154);
  Tensor x = random_f32(rng, {3, 1, 4});
  OpResult r = run_op("squeeze", {in(x, sym({"batch", "1", "4"}))}, {{"axes", Dims{-2}}});
  CHECK(r.inferred.str() == "f32[batch,4]");
  CHECK(same_bytes(r.out, Tensor::view(DType::f32, {3, 4}, x.data())));
  CHECK(r.impl.find("[view]") != std::string::npos);
  r = run_op("unsqueeze", {in(x, sym({"batch", "1", "seq"}))}, {{"axes", Dims{0, -1}}});
  CHECK(r.inferred.str() == "f32[1,batch,1,seq,1]");
  CHECK(same_bytes(r.out, Tensor::view(DType::f32, {1, 3, 1, 4, 1}, x.data())));
  CHECK(error_of([&] { run_op("squeeze", {in(x, sym({"batch", "1", "4"}))}, {{"axes", Dims{0}}}); }) ==
        "error: squeeze 'out': cannot squeeze axis 0 of f32[batch,1,4]: its size is batch, symbolic (expected 1)");
  CHECK(error_of([&] { run_op("squeeze", {in(x)}, {{"axes", Dims{2}}}); }) ==
        "error: squeeze 'out': cannot squeeze axis 2 of f32[3,1,4]: its size is 4 (expected 1)");
  CHECK(error_of([&] { run_op("unsqueeze", {in(x)}, {{"axes", Dims{1, -4}}}); }) ==
        "error: unsqueeze 'out': axis -4 is named twice");
}

TEST_CASE("reshape_dims takes target dims from another input's dims") {
  Rng rng = make_rng(155);
  Tensor x = random_f32(rng, {15, 8});  // [seq*batch, 8] with seq 5, batch 3
  Tensor like = random_f32(rng, {3, 5});
  // [seq*batch, 8] -> [seq, batch, 8]: seq from like's axis 1, batch inferred.
  OpResult r = run_op("reshape_dims", {in(x, sym({"batch*seq", "8"})), in(like, sym({"batch", "seq"}))},
                      {{"shape", Dims{0, -1, 8}}, {"dims", Dims{0, 1, 1}}});
  CHECK(r.inferred.str() == "f32[seq,batch,8]");
  CHECK(r.out.shape() == Dims{5, 3, 8});
  CHECK(same_bytes(r.out, Tensor::view(DType::f32, {5, 3, 8}, x.data())));
  CHECK(error_of([&] {
          run_op("reshape_dims", {in(x), in(like)}, {{"shape", Dims{2, -1, 8}}, {"dims", Dims{0, 1, 1}}});
        }) == "error: reshape_dims 'out': attribute 'shape' entry 0 is taken from 'dims' and must be 0");
  CHECK(error_of([&] {
          run_op("reshape_dims", {in(x), in(like)}, {{"shape", Dims{0, -1}}, {"dims", Dims{0, 2, 0}}});
        }) == "error: reshape_dims 'out': attribute 'dims' names input 2 (expected 1..1)");
}

TEST_CASE("reshape reads a concrete factor of a derived dim (8*batch) as a number, not a symbol") {
  Rng rng = make_rng(156);
  Tensor x = random_f32(rng, {5, 16, 8});  // [seq, 8*batch, 8] with batch 2
  OpResult r = run_op("reshape", {in(x, sym({"seq", "8*batch", "8"}))}, {{"shape", Dims{-1, 64}}});
  CHECK(r.inferred.str() == "f32[batch*seq,64]");
  CHECK(r.out.shape() == Dims{10, 64});
}
