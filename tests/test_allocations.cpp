// Counts heap allocations (global operator new, which the C++ runtime, TBB and oneDNN's C++ code use)
// during warm runs: after the first run has compiled the plan, a run with caller-provided outputs must
// allocate nothing in Kiln's code. oneDNN 2.6 itself allocates inside dnnl_primitive_execute (its
// argument map and gemm driver state, a few small blocks per primitive call) and offers no way to
// avoid that; those allocations are attributed by walking the stack into libdnnl and reported apart.
// At -O2 on AVX2 CPUs the Transformer classifier runs no oneDNN primitive (Kiln's GEMM, attention and
// softmax kernels, ops/gemm.hpp), so there a warm run must allocate nothing anywhere.

#include <dlfcn.h>
#include <execinfo.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "ops/gemm.hpp"
#include "runtime/npy.hpp"
#include "test_util.hpp"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};       // not from inside oneDNN
std::atomic<long> g_onednn_allocations{0};
thread_local bool t_in_hook = false;

bool called_from_onednn() {
  void* frames[12];
  int n = backtrace(frames, 12);
  for (int i = 2; i < n; ++i) {
    Dl_info info;
    if (dladdr(frames[i], &info) && info.dli_fname && std::strstr(info.dli_fname, "libdnnl")) return true;
  }
  return false;
}

void* counted(std::size_t n, std::size_t align) {
  if (g_counting.load(std::memory_order_relaxed) && !t_in_hook) {
    t_in_hook = true;
    (called_from_onednn() ? g_onednn_allocations : g_allocations).fetch_add(1, std::memory_order_relaxed);
    t_in_hook = false;
  }
  void* p = align > alignof(std::max_align_t) ? std::aligned_alloc(align, (n + align - 1) / align * align) : std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(std::size_t n) { return counted(n, 0); }
void* operator new[](std::size_t n) { return counted(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return counted(n, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted(n, static_cast<std::size_t>(a)); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

TEST_CASE("a warm run allocates nothing") {
  using kiln::test::source_path;
  const std::string dir = "examples/transformer_classifier/";
  for (int level : {0, 2}) {
    kiln::LoadOptions options;
    options.opt_level = level;
    kiln::Session session(kiln::Model::load(source_path(dir + "transformer_classifier.yaml"), options));
    std::map<std::string, kiln::Tensor> inputs{{"tokens", kiln::read_npy(source_path(dir + "tokens.npy"))}};
    std::map<std::string, kiln::Tensor> outputs{{"probs", kiln::Tensor::empty(kiln::DType::f32, {1, 4})}};
    session.run(inputs, outputs);  // compiles the plan
    session.run(inputs, outputs);
    {
      void* warm[4];
      backtrace(warm, 4);  // the first call loads the unwinder, which allocates
    }
    g_allocations = 0;
    g_onednn_allocations = 0;
    g_counting = true;
    for (int i = 0; i < 10; ++i) session.run(inputs, outputs);
    g_counting = false;
    std::printf("-O%d: allocations per warm run: %ld in Kiln, %ld inside oneDNN's primitive execution\n", level,
                g_allocations.load() / 10, g_onednn_allocations.load() / 10);
    INFO("opt level " << level);
    CHECK(g_allocations.load() == 0);
    if (level == 2 && kiln::gemm::enabled()) {
      // -O2 on an AVX2 CPU: linear products, attention and softmax run Kiln's kernels and the rest
      // (embedding, layer norm, mean) was Kiln's already, so no oneDNN primitive runs and a warm run
      // allocates nothing at all.
      CHECK(g_onednn_allocations.load() == 0);
    } else {
      CHECK(g_onednn_allocations.load() > 0);  // the attribution works: oneDNN's own allocations are seen
    }
    // And Kiln's are seen too: the convenience overload allocates its result map and tensors.
    g_counting = true;
    auto owned = session.run(inputs);
    g_counting = false;
    CHECK(g_allocations.load() > 0);
    double err = kiln::test::max_abs_diff(outputs.at("probs"), kiln::read_npy(source_path(dir + "expected_probs.npy")));
    CHECK(err <= 1e-4);
  }
}

TEST_CASE("a warm run of the CNN examples allocates nothing in Kiln") {
  // Conv weights are packed when the plan is compiled; the residual sum runs in place or copies into dst.
  using kiln::test::source_path;
  for (const char* name : {"resnet_tiny", "mobilenet_tiny"}) {
    const std::string dir = std::string("examples/") + name + "/";
    for (int level : {0, 2}) {
      kiln::Session session(kiln::Model::load(source_path(dir + name + ".yaml"), kiln::LoadOptions{level}));
      std::map<std::string, kiln::Tensor> inputs{{"image", kiln::read_npy(source_path(dir + "image_b2.npy"))}};
      std::map<std::string, kiln::Tensor> outputs{{"logits", kiln::Tensor::empty(kiln::DType::f32, {2, 10})}};
      session.run(inputs, outputs);
      session.run(inputs, outputs);
      g_allocations = 0;
      g_counting = true;
      for (int i = 0; i < 5; ++i) session.run(inputs, outputs);
      g_counting = false;
      INFO(name << " -O" << level);
      CHECK(g_allocations.load() == 0);
      CHECK(kiln::test::max_abs_diff(outputs.at("logits"), kiln::read_npy(source_path(dir + "logits_b2.npy"))) <= 1e-4);
    }
  }
}

TEST_CASE("a warm lstm decoder step allocates nothing in Kiln") {
  // One step (seq 1) of a 1-layer LSTM with states in and out: the shape a decoder runs once per token.
  using kiln::test::source_path;
  const std::string dir = source_path("tests/fixtures/rnn/lstm_l1_s1_state/");
  kiln::Session session(kiln::Model::load(dir + "model.yaml"));
  std::map<std::string, kiln::Tensor> inputs{{"x", kiln::read_npy(dir + "x.npy")},
                                             {"h0", kiln::read_npy(dir + "h0.npy")},
                                             {"c0", kiln::read_npy(dir + "c0.npy")}};
  std::map<std::string, kiln::Tensor> outputs{{"y", kiln::Tensor::empty(kiln::DType::f32, {2, 1, 8})},
                                              {"h_n", kiln::Tensor::empty(kiln::DType::f32, {1, 2, 8})},
                                              {"c_n", kiln::Tensor::empty(kiln::DType::f32, {1, 2, 8})}};
  session.run(inputs, outputs);
  session.run(inputs, outputs);
  {
    void* warm[4];
    backtrace(warm, 4);
  }
  g_allocations = 0;
  g_onednn_allocations = 0;
  g_counting = true;
  for (int i = 0; i < 10; ++i) session.run(inputs, outputs);
  g_counting = false;
  std::printf("lstm step: allocations per warm run: %ld in Kiln, %ld inside oneDNN's primitive execution\n",
              g_allocations.load() / 10, g_onednn_allocations.load() / 10);
  CHECK(g_allocations.load() == 0);
  CHECK(kiln::test::max_abs_diff(outputs.at("h_n"), kiln::read_npy(dir + "h_n.npy")) <= 1e-4);
}

// Seq2seq generation: the per-token loop allocates nothing in Kiln's code, so a warm generate call
// allocates the same number of times (for its results) whether it generates 4 tokens or 16.
TEST_CASE("generation allocates nothing per generated token") {
  using kiln::test::source_path;
  kiln::Generator gen(kiln::Seq2SeqModel::load(source_path("examples/date_translation/transformer.yaml")));
  const std::vector<std::vector<std::int64_t>> sources = {{19, 21, 3, 4, 5}, {20, 20, 5}};
  {
    void* warm[4];
    backtrace(warm, 4);
  }
  for (const char* strategy : {"greedy", "beam"}) {
    kiln::GenerateOptions o;
    o.strategy = strategy;
    o.beam_width = 3;
    o.stop_at_end = false;
    long counts[2];
    int lengths[2] = {4, 16};
    for (int i = 0; i < 2; ++i) {
      o.max_length = lengths[i];
      gen.generate(sources, o);  // sizes the buffers and compiles the plans for this length
      gen.generate(sources, o);
      g_allocations = 0;
      g_counting = true;
      auto out = gen.generate(sources, o);
      g_counting = false;
      counts[i] = g_allocations.load();
      REQUIRE(out[0][0].tokens.size() == static_cast<std::size_t>(lengths[i]));
    }
    std::printf("%s: allocations per warm generate call in Kiln: %ld for 4 tokens, %ld for 16 tokens\n", strategy, counts[0], counts[1]);
    INFO(strategy);
    CHECK(counts[0] == counts[1]);
    CHECK(counts[0] > 0);  // the results themselves are allocated: the counting sees generate's allocations
  }
}

TEST_CASE("a warm run of the typed element-wise ops (masks, where, cast, integer math) allocates nothing") {
  // Big enough (40000 elements) that the broadcast loops split over TBB threads, and with broadcasting.
  const std::string yaml = R"(kiln: 1
name: masks
inputs:
  ids: {dtype: i64, shape: [4, 10000]}
  pad: {dtype: i64, shape: [1]}
  x: {dtype: f32, shape: [4, 10000]}
  slope: {dtype: f32, shape: [10000]}
outputs: [masked, keep, count, shifted, p, s, h, m]
nodes:
  - {op: equal, in: [ids, pad], out: is_pad}
  - {op: where, in: [is_pad, slope, x], out: masked}
  - {op: logical_not, in: [is_pad], out: not_pad}
  - {op: cast, in: [not_pad], to: f32, out: keep}
  - {op: cast, in: [not_pad], to: i64, out: keep_i}
  - {op: reduce_sum, in: [keep_i], axes: [1], out: count}
  - {op: sub, in: [pad, ids], out: shifted}
  - {op: prelu, in: [x, slope], out: p}
  - {op: selu, in: [x], out: s}
  - {op: hard_sigmoid, in: [x], out: h}
  - {op: max, in: [x, slope], out: m}
)";
  kiln::Session session(kiln::Model::load_from_memory(yaml, nullptr, 0));
  std::vector<std::int64_t> ids(40000);
  std::vector<float> x(40000), slope(10000);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    ids[i] = static_cast<std::int64_t>(i % 7);
    x[i] = static_cast<float>(i % 13) - 6.f;
  }
  for (std::size_t i = 0; i < slope.size(); ++i) slope[i] = 0.1f * static_cast<float>(i % 5);
  std::int64_t pad = 0;
  std::map<std::string, kiln::Tensor> inputs{{"ids", kiln::Tensor::view(kiln::DType::i64, {4, 10000}, ids.data())},
                                             {"pad", kiln::Tensor::view(kiln::DType::i64, {1}, &pad)},
                                             {"x", kiln::Tensor::view(kiln::DType::f32, {4, 10000}, x.data())},
                                             {"slope", kiln::Tensor::view(kiln::DType::f32, {10000}, slope.data())}};
  std::map<std::string, kiln::Tensor> outputs;
  for (const char* f : {"masked", "keep", "p", "s", "h", "m"})
    outputs[f] = kiln::Tensor::empty(kiln::DType::f32, {4, 10000});
  outputs["count"] = kiln::Tensor::empty(kiln::DType::i64, {4});
  outputs["shifted"] = kiln::Tensor::empty(kiln::DType::i64, {4, 10000});
  session.run(inputs, outputs);
  session.run(inputs, outputs);
  g_allocations = 0;
  g_counting = true;
  for (int i = 0; i < 5; ++i) session.run(inputs, outputs);
  g_counting = false;
  CHECK(g_allocations.load() == 0);
  // The results are the ones computed here (the runs above filled caller-owned outputs).
  const auto* count = outputs.at("count").data_as<std::int64_t>();
  std::int64_t pads = 0;
  for (std::size_t i = 0; i < 10000; ++i) pads += ids[i] == 0;
  CHECK(count[0] == 10000 - pads);
  CHECK(outputs.at("masked").data_as<float>()[7] == slope[7]);  // ids[7] = 0: the pad
  CHECK(outputs.at("masked").data_as<float>()[8] == x[8]);
  CHECK(outputs.at("shifted").data_as<std::int64_t>()[9] == -2);
  CHECK(outputs.at("m").data_as<float>()[0] == std::max(x[0], slope[0]));
}

TEST_CASE("a warm run of the ops ONNX's nn mappings add allocates nothing in Kiln") {
  // pad, resize's Kiln kernel, tile, split, trilu, cumsum, gather_elements, argmin, topk along an axis
  // (its scratch), dilated max_pool, global_max_pool, layer_norm_stats, instance_norm: tables and fill rows
  // are made with the plan.
  kiln::test::TempDir dir;
  const std::string path = dir.write("nn_ops.yaml", R"(kiln: 1
name: nn_ops
inputs:
  x: {dtype: f32, shape: [2, 4, 6, 6]}
  idx: {dtype: i64, shape: [2, 4, 6, 3]}
  s: {dtype: f32, shape: [4]}
outputs: [a, b, c, d, e, f, g, h, i, j, k, l]
nodes:
  - {op: pad, in: [x], pads: [0, 0, 1, 2, 0, 0, 2, 1], mode: reflect, out: p}
  - {op: resize, in: [p], mode: cubic, size: [7, 5], coordinate_mode: align_corners, out: a}
  - {op: tile, in: [x], repeats: [1, 2, 1, 1], out: b}
  - {op: split, in: [x], axis: 1, sizes: [1, 3], index: 1, out: c}
  - {op: trilu, in: [x], upper: false, k: 1, out: d}
  - {op: cumsum, in: [x], axis: 2, exclusive: true, out: e}
  - {op: gather_elements, in: [x, idx], axis: 3, out: f}
  - {op: argmin, in: [x], axis: 1, keepdims: true, out: g}
  - {op: topk, in: [x], k: 2, axis: 1, largest: false, out: [h, h_idx]}
  - {op: max_pool, in: [x], kernel: [2, 2], dilation: [2, 2], out: i}
  - {op: global_max_pool, in: [x], out: j}
  - {op: layer_norm_stats, in: [x], stat: inv_std_dev, axis: 1, out: k}
  - {op: instance_norm, in: [x, s, s], out: l}
)");
  kiln::Session session(kiln::Model::load(path));
  kiln::Tensor x = kiln::Tensor::empty(kiln::DType::f32, {2, 4, 6, 6});
  kiln::Tensor idx = kiln::Tensor::empty(kiln::DType::i64, {2, 4, 6, 3});
  for (std::int64_t i = 0; i < x.numel(); ++i) x.data_as<float>()[i] = static_cast<float>((i * 7) % 11) - 5.f;
  for (std::int64_t i = 0; i < idx.numel(); ++i) idx.data_as<std::int64_t>()[i] = (i * 5) % 6;
  kiln::Tensor scale = kiln::Tensor::empty(kiln::DType::f32, {4});
  for (std::int64_t i = 0; i < 4; ++i) scale.data_as<float>()[i] = 0.5f + static_cast<float>(i);
  std::map<std::string, kiln::Tensor> inputs{{"x", x}, {"idx", idx}, {"s", scale}};
  std::map<std::string, kiln::Tensor> outputs;
  for (auto& [name, t] : session.run(inputs)) outputs[name] = kiln::Tensor::empty(t.dtype(), t.shape());
  session.run(inputs, outputs);
  session.run(inputs, outputs);
  {
    void* warm[4];
    backtrace(warm, 4);
  }
  g_allocations = 0;
  g_counting = true;
  for (int i = 0; i < 5; ++i) session.run(inputs, outputs);
  g_counting = false;
  CHECK(outputs.size() == 12);
  CHECK(g_allocations.load() == 0);
}
