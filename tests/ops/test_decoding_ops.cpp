// The decoding ops against naive references: log_softmax, argmax, topk, padding_mask, positions,
// attention with a key_padding_mask, attention_kv + cross_attention, and cached_attention run step by
// step over its own cache (each step equals full attention of that position over positions 0..t, also
// when cache_rows sends reads to other rows). Tolerance 1e-5 absolute: inputs in [-1, 1], E <= 32 (or weights
// within ±1/sqrt(E)). Each op runs with Kiln's kernels and with oneDNN's (gemm::override_enabled), and
// cached_attention on an AVX-512 host with the AVX2 GEMM variant as well (gemm::override_variant).

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "ops/gemm.hpp"
#include "tests/ops/op_test_util.hpp"

namespace {

using namespace kiln;
using namespace kiln::test;

constexpr double kTol = 1e-5;

// Runs one node with several outputs; args as run_op takes them.
std::vector<Tensor> run_multi(const std::string& op, const std::vector<Arg>& args, AttrMap attrs, int outputs) {
  Graph g;
  g.name = "test_" + op;
  std::vector<Value*> node_inputs;
  std::vector<Tensor> feeds;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const Arg& a = args[i];
    std::string name(a.kind == Arg::Kind::Input ? "in" : "w");
    name.append(std::to_string(i));
    if (a.kind == Arg::Kind::Input) {
      Value* v = g.add_value(name, TensorType{a.data.dtype(), concrete_shape(a.data.shape())});
      g.inputs.push_back(v);
      feeds.push_back(a.data);
      node_inputs.push_back(v);
    } else if (a.kind == Arg::Kind::Constant) {
      ConstData data{a.data.data(), a.data.bytes(), std::make_shared<Tensor>(a.data)};
      node_inputs.push_back(g.add_constant(name, TensorType{a.data.dtype(), concrete_shape(a.data.shape())}, std::move(data)));
    } else {
      node_inputs.push_back(nullptr);
    }
  }
  std::vector<Value*> outs;
  for (int j = 0; j < outputs; ++j) {
    std::string name("out");
    name.append(std::to_string(j));
    outs.push_back(g.add_value(name, TensorType{}));
  }
  g.add_node(op, "node", node_inputs, outs, std::move(attrs), SourceLoc{});
  g.outputs = outs;
  g.verify();
  g.infer_shapes();
  return run_graph(g, feeds);
}

// Rows [b, from, from+len) of a [B,S,E] tensor as a new [1,len,E] tensor.
Tensor rows_of(const Tensor& t, std::int64_t b, std::int64_t from, std::int64_t len) {
  const std::int64_t s = t.shape()[1], e = t.shape()[2];
  Tensor out = Tensor::empty(DType::f32, {1, len, e});
  std::memcpy(out.data_as<float>(), t.data_as<float>() + (b * s + from) * e, static_cast<std::size_t>(len * e) * sizeof(float));
  return out;
}

}  // namespace

TEST_CASE("log_softmax equals log(softmax)") {
  Rng rng = make_rng(601);
  for (int i = 0; i < 4; ++i) {
    auto shape = random_shape(rng, 2, 1, 80);
    Tensor x = random_f32(rng, shape, -6.f, 6.f);
    Tensor want = ref_softmax(x, 1);
    for (std::int64_t k = 0; k < want.numel(); ++k) want.data_as<float>()[k] = std::log(want.data_as<float>()[k]);
    for (bool kiln_kernels : {true, false}) {  // Kiln's row loop and oneDNN's logsoftmax
      gemm::override_enabled(kiln_kernels);
      OpResult r = run_op("log_softmax", {in(x)});
      gemm::override_enabled(std::nullopt);
      INFO(dims_str(shape), " ", r.impl);
      CHECK(max_abs_error(r.out, want) <= kTol);
      CHECK((r.impl.find("[kiln:log_softmax_rows]") != std::string::npos) == (kiln_kernels && gemm::available()));
    }
  }
}

TEST_CASE("argmax and topk: largest first, ties to the lower index") {
  Tensor x = Tensor::from_f32({2, 6}, {0.5f, 2.f, -1.f, 2.f, 1.f, 0.f, -3.f, -3.f, -4.f, -1.f, -1.f, -2.f});
  OpResult a = run_op("argmax", {in(x)});
  CHECK(a.out.shape() == std::vector<std::int64_t>{2});
  CHECK(a.out.data_as<std::int64_t>()[0] == 1);
  CHECK(a.out.data_as<std::int64_t>()[1] == 3);
  auto t = run_multi("topk", {in(x)}, {{"k", std::int64_t{3}}}, 2);
  const std::vector<std::int64_t> want_i = {1, 3, 4, 3, 4, 5};
  const std::vector<float> want_v = {2.f, 2.f, 1.f, -1.f, -1.f, -2.f};
  CHECK(std::vector<std::int64_t>(t[1].data_as<std::int64_t>(), t[1].data_as<std::int64_t>() + 6) == want_i);
  CHECK(std::vector<float>(t[0].data_as<float>(), t[0].data_as<float>() + 6) == want_v);
  // Random rows against a stable sort.
  Rng rng = make_rng(602);
  Tensor r = random_f32(rng, {5, 70});
  auto got = run_multi("topk", {in(r)}, {{"k", std::int64_t{8}}}, 2);
  for (int row = 0; row < 5; ++row) {
    std::vector<std::int64_t> idx(70);
    std::iota(idx.begin(), idx.end(), 0);
    const float* v = r.data_as<float>() + row * 70;
    std::stable_sort(idx.begin(), idx.end(), [&](auto i, auto j) { return v[i] > v[j]; });
    for (int k = 0; k < 8; ++k) CHECK(got[1].data_as<std::int64_t>()[row * 8 + k] == idx[static_cast<std::size_t>(k)]);
  }
  std::string msg = error_of([&] { run_multi("topk", {in(x)}, {{"k", std::int64_t{7}}}, 2); });
  CHECK(msg == "error: topk 'node': attribute 'k' = 7 must be between 1 and the last dim 6");
}

TEST_CASE("padding_mask and positions") {
  Tensor ids = Tensor::from_i64({2, 3}, {5, 6, 0, 7, 0, 0});
  OpResult m = run_op("padding_mask", {in(ids)}, {{"pad", std::int64_t{0}}});
  const float* v = m.out.data_as<float>();
  CHECK(v[0] == 0.f);
  CHECK(v[1] == 0.f);
  CHECK(std::isinf(v[2]));
  CHECK(v[2] < 0);
  CHECK(v[3] == 0.f);
  CHECK(std::isinf(v[5]));
  OpResult p = run_op("positions", {in(ids)}, {{"axis", std::int64_t{1}}});
  CHECK(p.out.shape() == std::vector<std::int64_t>{3});
  CHECK(std::vector<std::int64_t>(p.out.data_as<std::int64_t>(), p.out.data_as<std::int64_t>() + 3) == std::vector<std::int64_t>{0, 1, 2});
  std::string msg = error_of([&] { run_op("padding_mask", {in(Tensor::from_f32({2}, {1.f, 2.f}))}); });
  CHECK(msg == "error: padding_mask 'out': expected token ids of type i64 or i32, got f32[2]");
}

TEST_CASE("attention and cross_attention with a key_padding_mask equal attention over each row's unpadded keys") {
  Rng rng = make_rng(603);
  const std::int64_t b = 3, sq = 2, s = 7, e = 16, h = 4;
  Tensor q = random_f32(rng, {b, sq, e}), mem = random_f32(rng, {b, s, e});
  Tensor in_w = random_f32(rng, {3 * e, e}), in_b = random_f32(rng, {3 * e}), out_w = random_f32(rng, {e, e}),
         out_b = random_f32(rng, {e});
  const std::int64_t lengths[] = {7, 4, 1};
  Tensor mask = Tensor::empty(DType::f32, {b, s});
  for (std::int64_t i = 0; i < b; ++i)
    for (std::int64_t j = 0; j < s; ++j) mask.data_as<float>()[i * s + j] = j < lengths[i] ? 0.f : -INFINITY;
  AttrMap heads{{"heads", h}};
  for (bool kiln_kernels : {true, false}) {  // Kiln's kernels and oneDNN's (KILN_GEMM=onednn)
  gemm::override_enabled(kiln_kernels);
  OpResult full = run_op("attention", {in(q), in(mem), same(1), weight(in_w), weight(in_b), weight(out_w), weight(out_b), in(mask)}, heads);
  auto kv = run_multi("attention_kv", {in(mem), weight(in_w), weight(in_b)}, {}, 2);
  OpResult cross = run_op("cross_attention", {in(q), in(kv[0]), in(kv[1]), weight(in_w), weight(in_b), weight(out_w), weight(out_b), in(mask)}, heads);
  for (std::int64_t i = 0; i < b; ++i) {
    Tensor keys = rows_of(mem, i, 0, lengths[i]);
    Tensor want = ref_attention(rows_of(q, i, 0, sq), keys, keys, in_w, &in_b, out_w, &out_b, static_cast<int>(h));
    INFO(std::string(kiln_kernels ? "Kiln" : "oneDNN") << " kernels, row " << i << " (" << lengths[i] << " keys)");
    CHECK(max_abs_error(rows_of(full.out, i, 0, sq), want) <= kTol);
    CHECK(max_abs_error(rows_of(cross.out, i, 0, sq), want) <= kTol);
  }
  gemm::override_enabled(std::nullopt);
  }
}

// One cached_attention run over t_max steps (e = embedding, h = heads) with Kiln's kernels or oneDNN's;
// returns the worst abs error against causal attention over the prefix.
double cached_attention_steps(Rng& rng, std::int64_t b, std::int64_t t_max, std::int64_t e, std::int64_t h, bool kiln_kernels) {
  gemm::override_enabled(kiln_kernels);
  Tensor x = random_f32(rng, {b, t_max, e});
  // Weights within ±1/sqrt(E) (nn.Linear's initialization) keep every activation O(1) at any E, so the
  // absolute tolerance means the same for E = 32 and E = 72.
  const float w = 1.0f / std::sqrt(static_cast<float>(e));
  Tensor in_w = random_f32(rng, {3 * e, e}, -w, w), in_b = random_f32(rng, {3 * e}, -w, w),
         out_w = random_f32(rng, {e, e}, -w, w), out_b = random_f32(rng, {e}, -w, w);
  Tensor kc = Tensor::empty(DType::f32, {b, t_max, e}), vc = Tensor::empty(DType::f32, {b, t_max, e});
  // A second cache holding the rows swapped, read through cache_rows = the other row.
  Tensor kc_swapped = Tensor::empty(DType::f32, {b, t_max, e}), vc_swapped = Tensor::empty(DType::f32, {b, t_max, e});
  Tensor rows = Tensor::empty(DType::i64, {b, t_max});
  for (std::int64_t r = 0; r < b; ++r)
    for (std::int64_t j = 0; j < t_max; ++j) rows.data_as<std::int64_t>()[r * t_max + j] = b - 1 - r;
  AttrMap heads{{"heads", h}};
  double worst = 0;
  for (std::int64_t t = 0; t < t_max; ++t) {
    Tensor xt = Tensor::empty(DType::f32, {b, 1, e});
    for (std::int64_t r = 0; r < b; ++r) std::memcpy(xt.data_as<float>() + r * e, x.data_as<float>() + (r * t_max + t) * e, e * sizeof(float));
    Tensor step = Tensor::from_i64({1}, {t});
    auto out = run_multi("cached_attention", {in(xt), in(kc), in(vc), in(step), weight(in_w), weight(in_b), weight(out_w), weight(out_b)}, heads, 3);
    auto out2 = run_multi("cached_attention",
                          {in(xt), in(kc_swapped), in(vc_swapped), in(step), weight(in_w), weight(in_b), weight(out_w), weight(out_b), in(rows)},
                          heads, 3);
    for (std::int64_t r = 0; r < b; ++r) {
      Tensor prefix = rows_of(x, r, 0, t + 1);
      Tensor want = ref_attention(rows_of(x, r, t, 1), prefix, prefix, in_w, &in_b, out_w, &out_b, static_cast<int>(h));
      double err = std::max(max_abs_error(rows_of(out[0], r, 0, 1), want), max_abs_error(rows_of(out2[0], r, 0, 1), want));
      INFO(std::string(kiln_kernels ? "Kiln" : "oneDNN") << " kernels, e " << e << " heads " << h << ", step " << t << " row " << r);
      CHECK(err <= kTol);
      worst = std::max(worst, err);
      // Store this step's key/value at position t, as the generation loop does.
      const std::size_t bytes = static_cast<std::size_t>(e) * sizeof(float);
      std::memcpy(kc.data_as<float>() + (r * t_max + t) * e, out[1].data_as<float>() + r * e, bytes);
      std::memcpy(vc.data_as<float>() + (r * t_max + t) * e, out[2].data_as<float>() + r * e, bytes);
      std::memcpy(kc_swapped.data_as<float>() + ((b - 1 - r) * t_max + t) * e, out[1].data_as<float>() + r * e, bytes);
      std::memcpy(vc_swapped.data_as<float>() + ((b - 1 - r) * t_max + t) * e, out[2].data_as<float>() + r * e, bytes);
    }
  }
  gemm::override_enabled(std::nullopt);
  return worst;
}

TEST_CASE("cached_attention, step by step, equals causal attention, cache_rows redirects reads") {
  // Head sizes 8 and 24 take the AVX2 row kernel with Kiln's kernels (dh a multiple of 8; e = 72 also
  // covers its 64-column context block and the 8-column rest); 12 takes the portable loop; 11 steps
  // cover its four-position score blocks and the positions left over.
  Rng rng = make_rng(604);
  double worst = 0;
  for (bool kiln_kernels : {true, false}) {
    worst = std::max(worst, cached_attention_steps(rng, 2, 6, 32, 4, kiln_kernels));
    worst = std::max(worst, cached_attention_steps(rng, 2, 11, 72, 3, kiln_kernels));
    worst = std::max(worst, cached_attention_steps(rng, 1, 11, 36, 3, kiln_kernels));
  }
  if (isa::has(isa::Level::avx512)) {  // the AVX2 variant of the GEMM and softmax too (the default runs AVX-512)
    gemm::override_variant(isa::Level::avx2);
    worst = std::max(worst, cached_attention_steps(rng, 2, 11, 72, 3, true));
    worst = std::max(worst, cached_attention_steps(rng, 1, 11, 36, 3, true));
    gemm::override_variant(std::nullopt);
  }
  const std::int64_t b = 2, t_max = 6, e = 32, h = 4;
  AttrMap heads{{"heads", h}};
  Tensor kc = Tensor::empty(DType::f32, {b, t_max, e}), vc = Tensor::empty(DType::f32, {b, t_max, e});
  Tensor in_w = random_f32(rng, {3 * e, e}), in_b = random_f32(rng, {3 * e}), out_w = random_f32(rng, {e, e}),
         out_b = random_f32(rng, {e});
  MESSAGE("cached_attention worst abs error " << worst);
  Tensor xt = random_f32(rng, {b, 1, e});
  std::string msg = error_of([&] {
    run_multi("cached_attention", {in(xt), in(kc), in(vc), in(Tensor::from_i64({1}, {t_max})), weight(in_w), weight(in_b), weight(out_w), weight(out_b)},
              heads, 3);
  });
  CHECK(msg == "error: cached_attention 'node': step 6 is out of range for a cache of length 6");
  msg = error_of([&] {
    run_multi("cached_attention", {in(random_f32(rng, {b, 2, e})), in(kc), in(vc), in(Tensor::from_i64({1}, {0})), weight(in_w), weight(in_b), weight(out_w)},
              heads, 3);
  });
  CHECK(msg == "error: cached_attention 'node': expected x of shape [2,1,32] (one new position per step), got f32[2,2,32]");
}
