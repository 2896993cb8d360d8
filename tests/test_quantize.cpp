// Weight quantization (docs/quantization.md): how it is chosen (YAML's `quantize:`, LoadOptions, kilnc
// --quantize, the C API), what the pack-weights pass does with it (s8/bf16 panels replace the f32 weights,
// remarks with the error made), plan files with quantized weights, and bad inputs. The accuracy against
// PyTorch and fp32 is in tests/test_quantize_accuracy.cpp.

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "kiln/kiln.h"
#include "kiln/kiln.hpp"
#include "ops/gemm.hpp"
#include "ops/qgemm.hpp"
#include "runtime/compile.hpp"
#include "runtime/kplan.hpp"
#include "runtime/model_impl.hpp"
#include "runtime/npy.hpp"
#include "test_util.hpp"

using kiln::test::contains;
using kiln::test::error_of;
using kiln::test::max_abs_diff;
using kiln::test::source_path;
using kiln::test::TempDir;

namespace {

const std::string kD64 = "tests/fixtures/classifier_d64_l2";
using Bytes = std::vector<unsigned char>;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The d64 classifier's YAML with `extra` (e.g. "quantize: int8\n") after its `kiln: 1` line.
std::string d64_yaml(const std::string& extra) {
  std::string text = read_text(source_path(kD64 + "/model.yaml"));
  const auto at = text.find("kiln: 1\n");
  REQUIRE(at != std::string::npos);
  text.insert(at + 8, extra);
  return text;
}

kiln::Model load_d64(const std::string& extra, const kiln::LoadOptions& options = {}) {
  static const std::string weights = read_text(source_path(kD64 + "/weights.safetensors"));
  return kiln::Model::load_from_memory(d64_yaml(extra), weights.data(), weights.size(), options, "model.yaml");
}

std::map<std::string, kiln::Tensor> d64_inputs() {
  return {{"tokens", kiln::read_npy(source_path(kD64 + "/tokens_b4_s33.npy"))}};
}

// The constants the graph still uses, by layout.
struct Weights {
  std::size_t quantized = 0, quantized_bytes = 0, f32_equivalent = 0;
  std::vector<std::string> names;
};
Weights weights_of(const kiln::Model& m) {
  Weights w;
  for (const auto& v : m.impl()->graph->values()) {
    if (!v->is_constant() || v->users.empty()) continue;
    w.names.push_back(v->name);
    if (v->type.layout == kiln::qgemm::kS8Layout || v->type.layout == kiln::qgemm::kBf16Layout) {
      ++w.quantized;
      w.quantized_bytes += v->constant.bytes;
      w.f32_equivalent += static_cast<std::size_t>(kiln::numel_of(v->type.shape)) * sizeof(float);
    }
  }
  return w;
}

bool has_remark(const kiln::Model& m, const std::string& part) {
  for (const auto& r : m.impl()->remarks)
    if (contains(r.str(), part)) return true;
  return false;
}

struct Result {
  int code = -1;
  std::string out;
};

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs `kilnc ARGS` in the source folder, stdout and stderr together.
Result run_kilnc(const std::string& args) {
  const std::string cmd = "cd " + quote(KILN_SOURCE_DIR) + " && " + quote(KILNC_PATH) + " " + args + " 2>&1";
  Result r;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.out.append(buf, n);
  const int status = ::pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  return r;
}

Bytes compile_plan(const std::string& yaml, std::optional<kiln::Quantize> q) {
  kiln::detail::CompileRequest request;
  request.path = yaml;
  request.pipeline.quantize_override = q;
  auto impl = kiln::detail::compile(std::move(request));
  kiln::KplanInfo info;
  info.isa = kiln::host_isa();
  info.source = yaml;
  info.opt_level = 2;
  return kiln::detail::serialize_kplan(*impl, info);
}

// A field of /proc/self/status in kB ("RssFile:", "RssAnon:"), or -1.
long status_kb(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(key.size()));
  return -1;
}

}  // namespace

#if defined(__SANITIZE_ADDRESS__)
#define KILN_TEST_RSS 0  // ASan's shadow memory and allocator change what resident memory means
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KILN_TEST_RSS 0
#endif
#endif
#ifndef KILN_TEST_RSS
#define KILN_TEST_RSS 1
#endif

TEST_CASE("quantize: the process's resident memory holds the quantized weights, not the f32 ones as well") {
#if defined(MADV_PAGEOUT) && KILN_TEST_RSS
  // The kernel must take MADV_PAGEOUT (Linux 5.4), which the compile driver uses to release the f32 pages.
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  void* probe = mmap(nullptr, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(probe != MAP_FAILED);
  const bool pageout = madvise(probe, page, MADV_PAGEOUT) == 0;
  munmap(probe, page);
  // Where Kiln's GEMM is off, oneDNN reads f32 weights in place (faulted in at the first run, not at load)
  // and quantized ones through a dequantized copy: nothing to compare at load time.
  if (!pageout || status_kb("RssFile:") < 0 || !kiln::qgemm::available(kiln::qgemm::Format::s8) ||
      !kiln::gemm::enabled())
    return;
  const std::string path = source_path("examples/transformer_classifier/transformer_classifier.yaml");
  // Every model stays loaded, so that no load reuses memory another one freed. The int8 one loads first:
  // MADV_PAGEOUT leaves alone file pages that another mapping of the same file (the f32 model) maps too.
  std::vector<kiln::Model> alive;
  auto grows = [&](const std::string& file, std::optional<kiln::Quantize> q) {  // resident kB a load adds
    kiln::LoadOptions o;
    o.quantize = q;
    const long before = status_kb("RssFile:") + status_kb("RssAnon:");
    alive.push_back(kiln::Model::load(file, o));
    return status_kb("RssFile:") + status_kb("RssAnon:") - before;
  };
  grows(source_path(kD64 + "/model.yaml"), kiln::Quantize::int8);  // faults in code and allocator arenas
  const long q8 = grows(path, kiln::Quantize::int8), f32 = grows(path, std::nullopt);
  MESSAGE("resident memory a loaded model adds: f32 " << f32 << " kB, int8 " << q8 << " kB");
  // f32: the mapped weights (2.1 MB) plus their GEMM panels; int8: s8 panels (0.28x of the GEMM weights).
  CHECK(q8 * 2 < f32);
#endif
}

TEST_CASE("quantize: names parse, and only none, int8 and bf16") {
  kiln::Quantize q = kiln::Quantize::none;
  CHECK(kiln::parse_quantize("int8", &q));
  CHECK(q == kiln::Quantize::int8);
  CHECK(kiln::parse_quantize("bf16", &q));
  CHECK(q == kiln::Quantize::bf16);
  CHECK(kiln::parse_quantize("none", &q));
  CHECK(q == kiln::Quantize::none);
  CHECK_FALSE(kiln::parse_quantize("INT8", &q));
  CHECK_FALSE(kiln::parse_quantize("int4", &q));
  CHECK(std::string(kiln::quantize_name(kiln::Quantize::bf16)) == "bf16");
}

TEST_CASE("quantize: int8 from the YAML file packs the GEMM weights into s8 panels that replace the f32 ones") {
  if (!kiln::qgemm::available(kiln::qgemm::Format::s8)) {
    // Refused where the CPU cannot run it, naming the key and the CPU feature.
    const std::string err = error_of([] { load_d64("quantize: int8\n"); });
    CHECK(contains(err, "model.yaml:3:11: error: quantize: int8: int8 weights need AVX2"));
    return;
  }
  const kiln::Model f32 = load_d64("");
  const kiln::Model q8 = load_d64("quantize: int8\n");
  const Weights w = weights_of(q8);
  // 2 layers x (in_proj, out_proj, linear1, linear2) + the classifier head.
  CHECK(w.quantized == 9);
  CHECK(weights_of(f32).quantized == 0);
  // s8 panels: 16 columns of k bytes plus 128 bytes of scales and sums: 0.25 + 2/k of the f32 bytes.
  const double ratio = static_cast<double>(w.quantized_bytes) / static_cast<double>(w.f32_equivalent);
  MESSAGE("int8 GEMM weights: " << w.quantized_bytes << " bytes for " << w.f32_equivalent << " f32 bytes (" << ratio
                                << "x); model weights " << q8.weight_bytes() << " vs f32 " << f32.weight_bytes());
  CHECK(ratio < 0.3);
  CHECK(ratio > 0.25);
  CHECK(q8.weight_bytes() < f32.weight_bytes() * 6 / 10);
  // The f32 weights are gone from the graph (nothing reads them), the quantized constants replace them.
  const kiln::Graph& g = *q8.impl()->graph;
  CHECK(g.find_value("transformer_encoder.layers.0.linear1.weight") == nullptr);
  const kiln::Value* packed = g.find_value("transformer_encoder.layers.0.linear1.weight.s8panels16");
  REQUIRE(packed != nullptr);
  CHECK(packed->type.str() == "i8[256,64]{s8panels16}");
  CHECK(packed->constant.bytes == kiln::qgemm::packed_bytes(kiln::qgemm::Format::s8, 256, 64));
  // The embedding table stays f32 (read by rows).
  CHECK(g.find_value("embedding.weight") != nullptr);
  CHECK(has_remark(q8, "quantized 'transformer_encoder.layers.0.linear1.weight' to s8 per output channel: 65536 "
                       "bytes in f32 -> 18432"));
  CHECK(has_remark(q8, "error vs f32: relative"));
  CHECK(has_remark(q8, "kept 'embedding.weight' in f32: an embedding table is read by rows"));
  // The IR says so, and the kernels run on qgemm where Kiln's GEMM runs.
  CHECK(contains(q8.ir(), "i8[256,64]{s8panels16}"));
  kiln::Session session(q8);
  const auto inputs = d64_inputs();
  const std::string plan = session.explain(inputs);
  if (kiln::gemm::enabled()) CHECK(contains(plan, kiln::qgemm::variant(kiln::qgemm::Format::s8)));
  const auto out = session.run(inputs);
  const auto ref = kiln::Session(f32).run(inputs);
  const double err = max_abs_diff(out.at("probs"), ref.at("probs"));
  MESSAGE("int8 vs f32 probs: max abs difference " << err);
  CHECK(err <= 1e-2);
  CHECK(err > 0);  // quantized: not the f32 results
}

TEST_CASE("quantize: bf16 weights, and LoadOptions overrides the file (none, bf16)") {
  const kiln::Model plain = load_d64("quantize: int8\n", [] {
    kiln::LoadOptions o;
    o.quantize = kiln::Quantize::none;
    return o;
  }());
  CHECK(weights_of(plain).quantized == 0);
  kiln::LoadOptions o;
  o.quantize = kiln::Quantize::bf16;
  if (!kiln::qgemm::available(kiln::qgemm::Format::bf16)) {
    const std::string err = error_of([&] { load_d64("", o); });
    CHECK(contains(err, "quantize bf16 (--quantize, LoadOptions::quantize): bf16 weights need AVX512_BF16"));
    return;
  }
  const kiln::Model bf = load_d64("quantize: int8\n", o);
  const Weights w = weights_of(bf);
  CHECK(w.quantized == 9);
  CHECK(bf.impl()->graph->find_value("transformer_encoder.layers.1.self_attn.in_proj_weight.bf16panels16")->type.str() ==
        "bf16[192,64]{bf16panels16}");
  // Half the bytes, but for the classifier head's 4 rows, padded to a panel of 16.
  CHECK(static_cast<double>(w.quantized_bytes) / static_cast<double>(w.f32_equivalent) == doctest::Approx(0.5).epsilon(0.01));
  CHECK(has_remark(bf, "quantized 'transformer_encoder.layers.1.self_attn.in_proj_weight' to bf16"));
  const auto inputs = d64_inputs();
  const double err =
      max_abs_diff(kiln::Session(bf).run(inputs).at("probs"), kiln::Session(plain).run(inputs).at("probs"));
  MESSAGE("bf16 vs f32 probs: max abs difference " << err);
  CHECK(err <= 1e-2);
}

TEST_CASE("quantize: where oneDNN runs the products (KILN_GEMM=onednn), it reads the dequantized weights") {
  if (!kiln::qgemm::available(kiln::qgemm::Format::s8)) return;  // refused at load (tested above)
  const auto inputs = d64_inputs();
  const kiln::Model q8 = load_d64("quantize: int8\n");
  const auto on_qgemm = kiln::Session(q8).run(inputs);
  kiln::gemm::override_enabled(false);
  kiln::Session onednn(q8);  // the same graph: kernels made now unpack the s8 panels once
  const std::string plan = onednn.explain(inputs);
  const auto out = onednn.run(inputs);
  kiln::gemm::override_enabled(std::nullopt);
  CHECK_FALSE(contains(plan, "qgemm"));
  // The weights are the same dequantized values; only the activations are not quantized: close, not equal.
  const double err = max_abs_diff(out.at("probs"), on_qgemm.at("probs"));
  MESSAGE("oneDNN on dequantized weights vs qgemm: " << err);
  CHECK(err <= 1e-2);
}

TEST_CASE("quantize: a bad YAML value fails at its line and column with the accepted values") {
  std::string err = error_of([] { load_d64("quantize: int4\n"); });
  CHECK(contains(err, "model.yaml:3:11: error: unknown quantize value 'int4' (expected none, int8 or bf16)"));
  err = error_of([] {
    kiln::LoadOptions o;
    o.disabled_passes = {"pack-weights"};
    load_d64("quantize: int8\n", o);
  });
  CHECK(contains(err, "model.yaml:3:11: error: quantize int8: the pack-weights pass quantizes the weights, and "
                      "--disable-pass turns it off"));
  err = error_of([] { load_d64("quantize: [int8]\n"); });
  CHECK(contains(err, "model.yaml:3:11: error: expected none, int8 or bf16 (a scalar), got a list"));
}

TEST_CASE("quantize: a weight given at run time stays f32, and the remark says why") {
  if (!kiln::qgemm::available(kiln::qgemm::Format::s8)) return;
  const std::string yaml = R"(kiln: 1
quantize: int8
inputs:
  x: {dtype: f32, shape: [2, 64]}
  w: {dtype: f32, shape: [16, 64]}
outputs: [y]
nodes:
  - {op: linear, in: [x, w], out: y}
)";
  const kiln::Model m = kiln::Model::load_from_memory(yaml, nullptr, 0, {}, "model.yaml");
  CHECK(has_remark(m, "model.yaml:8:5: pack-weights: declined on linear 'y': kept 'w' in f32: read at run time (not a "
                      "constant), so it cannot be packed ahead"));
  CHECK(weights_of(m).quantized == 0);
}

TEST_CASE("quantize: shape rules take i8 and bf16 weights only in qgemm's layouts") {
  kiln::Graph g;
  kiln::Value* x = g.add_value("x", kiln::TensorType{kiln::DType::f32, kiln::concrete_shape({2, 64})});
  g.inputs.push_back(x);
  static std::vector<std::int8_t> bytes(16 * 64);
  kiln::Value* w = g.add_constant("w", kiln::TensorType{kiln::DType::i8, kiln::concrete_shape({16, 64})},
                                  kiln::ConstData{bytes.data(), bytes.size(), nullptr});
  kiln::Value* y = g.add_value("y", {});
  g.add_node("linear", "y", {x, w}, {y}, {}, kiln::SourceLoc{"m.yaml", 7, 5});
  g.outputs.push_back(y);
  const std::string err = error_of([&] { g.infer_shapes(); });
  CHECK(contains(err, "m.yaml:7:5: error: linear 'y': expected weight of type f32 (or i8 in layout s8panels16, "
                      "bf16 in layout bf16panels16 as quantization packs it), got i8[16,64] ('w')"));
}

TEST_CASE("quantize: plan files keep the quantized weights: smaller, and bit-identical outputs") {
  if (!kiln::qgemm::available(kiln::qgemm::Format::s8)) return;  // refused at compile time (tested above)
  const std::string yaml = source_path(kD64 + "/model.yaml");
  const Bytes f32 = compile_plan(yaml, std::nullopt);
  const Bytes q8 = compile_plan(yaml, kiln::Quantize::int8);
  MESSAGE("plan file: " << q8.size() << " bytes int8, " << f32.size() << " bytes f32");
  CHECK(q8.size() < f32.size() * 7 / 10);
  kiln::KplanInfo info;
  auto impl = kiln::detail::load_kplan("m.kplan", q8.data(), q8.size(),
                                       std::shared_ptr<const void>(q8.data(), [](const void*) {}), &info);
  CHECK(info.quantized == 9);
  kiln::Model from_plan(impl);
  kiln::LoadOptions o;
  o.quantize = kiln::Quantize::int8;
  kiln::Model in_memory = kiln::Model::load(yaml, o);
  const kiln::Value* v = from_plan.impl()->graph->find_value("transformer_encoder.layers.0.linear2.weight.s8panels16");
  REQUIRE(v != nullptr);
  CHECK(v->type.str() == "i8[64,256]{s8panels16}");
  CHECK(from_plan.weight_bytes() == in_memory.weight_bytes());
  const auto inputs = d64_inputs();
  const auto a = kiln::Session(from_plan).run(inputs);
  const auto b = kiln::Session(in_memory).run(inputs);
  for (const char* name : {"logits", "probs"}) {
    REQUIRE(a.at(name).bytes() == b.at(name).bytes());
    CHECK(std::memcmp(a.at(name).data(), b.at(name).data(), a.at(name).bytes()) == 0);
  }
}

TEST_CASE("quantize: a plan file whose quantized weight is cut short is refused when its kernel is made") {
  if (!kiln::qgemm::available(kiln::qgemm::Format::s8)) return;
  // A graph whose s8 constant holds fewer bytes than its [64,64] shape needs, as a corrupt plan file could.
  auto impl = std::make_shared<kiln::detail::ModelImpl>();
  impl->graph = std::make_unique<kiln::Graph>();
  kiln::Graph& g = *impl->graph;
  kiln::Value* x = g.add_value("x", kiln::TensorType{kiln::DType::f32, kiln::concrete_shape({2, 64})});
  g.inputs.push_back(x);
  kiln::TensorType t{kiln::DType::i8, kiln::concrete_shape({64, 64}), kiln::qgemm::kS8Layout};
  auto owner = kiln::allocate_constant_bytes(1024);
  kiln::Value* w = g.add_constant("w", t, kiln::ConstData{owner.get(), 1024, owner});
  kiln::Value* y = g.add_value("y", {});
  g.add_node("linear", "y", {x, w}, {y}, {}, kiln::SourceLoc{"m.yaml", 3, 1});
  g.outputs.push_back(y);
  g.infer_shapes();
  kiln::Session s{kiln::Model(impl)};
  const std::string err = error_of([&] { s.run({{"x", kiln::Tensor::empty(kiln::DType::f32, {2, 64})}}); });
  CHECK(contains(err, "weight 'weight' in layout s8panels16 holds 1024 bytes; rows 0..64 of 64 columns need 4608"));
}

TEST_CASE("quantize: the C API takes it in kiln_load_options, and refuses bad values") {
  kiln_load_options o;
  kiln_load_options_init(&o);
  CHECK(o.opt_level == 2);
  CHECK(o.quantize == KILN_QUANTIZE_MODEL);
  const std::string path = source_path(kD64 + "/model.yaml");
  kiln_model* m = nullptr;
  o.quantize = 7;
  CHECK(kiln_model_load_with_options(path.c_str(), &o, &m) == KILN_INVALID_ARGUMENT);
  CHECK(m == nullptr);
  CHECK(contains(kiln_last_error(), "kiln_model_load_with_options: options->quantize is 7 (expected "
                                    "KILN_QUANTIZE_MODEL, KILN_QUANTIZE_NONE, KILN_QUANTIZE_INT8 or KILN_QUANTIZE_BF16)"));
  o.quantize = KILN_QUANTIZE_INT8;
  o.opt_level = 3;
  CHECK(kiln_model_load_with_options(path.c_str(), &o, &m) == KILN_INVALID_ARGUMENT);
  CHECK(contains(kiln_last_error(), "options->opt_level is 3 (expected 0, 1 or 2)"));
  o.opt_level = 2;
  const std::string yaml = d64_yaml("");
  const std::string weights = read_text(source_path(kD64 + "/weights.safetensors"));
  o.quantize = -1;
  CHECK(kiln_model_load_from_memory_with_options(yaml.data(), yaml.size(), weights.data(), weights.size(), &o, &m) ==
        KILN_INVALID_ARGUMENT);
  CHECK(contains(kiln_last_error(), "kiln_model_load_from_memory_with_options: options->quantize is -1"));
  if (!kiln::qgemm::available(kiln::qgemm::Format::s8)) return;
  o.quantize = KILN_QUANTIZE_INT8;
  REQUIRE(kiln_model_load_with_options(path.c_str(), &o, &m) == KILN_OK);
  REQUIRE(m != nullptr);
  kiln_model* from_memory = nullptr;
  REQUIRE(kiln_model_load_from_memory_with_options(yaml.data(), yaml.size(), weights.data(), weights.size(), &o,
                                                   &from_memory) == KILN_OK);
  // NULL options: the defaults (the file's choice, here none).
  kiln_model* plain = nullptr;
  REQUIRE(kiln_model_load_with_options(path.c_str(), nullptr, &plain) == KILN_OK);
  kiln_session* s = nullptr;
  REQUIRE(kiln_session_create(m, nullptr, &s) == KILN_OK);
  kiln_session* sp = nullptr;
  REQUIRE(kiln_session_create(plain, nullptr, &sp) == KILN_OK);
  const kiln::Tensor tokens = kiln::read_npy(source_path(kD64 + "/tokens_b1_s8.npy"));
  const std::int64_t out_shape[2] = {1, 4};
  std::vector<float> q(4), p(4);
  kiln_tensor in{"tokens", KILN_I64, 2, tokens.shape().data(), tokens.data()};
  kiln_tensor out_q{"probs", KILN_F32, 2, out_shape, q.data()};
  kiln_tensor out_p{"probs", KILN_F32, 2, out_shape, p.data()};
  // The d64 model has two outputs; the C API wants both.
  std::vector<float> lq(4), lp(4);
  kiln_tensor outs_q[2] = {{"logits", KILN_F32, 2, out_shape, lq.data()}, out_q};
  kiln_tensor outs_p[2] = {{"logits", KILN_F32, 2, out_shape, lp.data()}, out_p};
  REQUIRE(kiln_session_run(s, &in, 1, outs_q, 2) == KILN_OK);
  REQUIRE(kiln_session_run(sp, &in, 1, outs_p, 2) == KILN_OK);
  double worst = 0;
  for (int i = 0; i < 4; ++i) worst = std::max(worst, std::fabs(static_cast<double>(q[i] - p[i])));
  CHECK(worst <= 1e-2);
  kiln_memory_stats mq, mp;
  REQUIRE(kiln_session_memory(s, &mq) == KILN_OK);
  REQUIRE(kiln_session_memory(sp, &mp) == KILN_OK);
  CHECK(mq.weight_bytes < mp.weight_bytes * 6 / 10);
  kiln_session_free(s);
  kiln_session_free(sp);
  kiln_model_free(m);
  kiln_model_free(from_memory);
  kiln_model_free(plain);
}

TEST_CASE("quantize: ONNX models take LoadOptions::quantize too") {
  if (!kiln::qgemm::available(kiln::qgemm::Format::s8)) return;
  const std::string dir = "tests/fixtures/onnx_torch/classifier/";
  kiln::LoadOptions o;
  o.quantize = kiln::Quantize::int8;
  const kiln::Model q8 = kiln::Model::load(source_path(dir + "model.onnx"), o);
  const kiln::Model f32 = kiln::Model::load(source_path(dir + "model.onnx"));
  CHECK(weights_of(q8).quantized > 0);
  CHECK(q8.weight_bytes() < f32.weight_bytes());
  const std::map<std::string, kiln::Tensor> inputs = {
      {q8.inputs().at(0).name, kiln::read_npy(source_path(dir + "tokens_b2_s7.npy"))}};
  const double err =
      max_abs_diff(kiln::Session(q8).run(inputs).at("probs"), kiln::read_npy(source_path(dir + "probs_b2_s7.npy")));
  MESSAGE("ONNX classifier int8 vs PyTorch probs: " << err);
  CHECK(err <= 1e-2);
}

TEST_CASE("kilnc --quantize: check --explain reports each weight's error, and a bad value is refused") {
  const std::string model = kD64 + "/model.yaml";
  Result r = run_kilnc("check " + model + " --quantize int4");
  CHECK(r.code != 0);
  CHECK(contains(r.out, "error: --quantize expects none, int8 or bf16, got 'int4'"));
  if (!kiln::qgemm::available(kiln::qgemm::Format::s8)) return;
  r = run_kilnc("check " + model + " --quantize int8 --explain");
  REQUIRE(r.code == 0);
  CHECK(contains(r.out, "pack-weights: fired on linear"));
  CHECK(contains(r.out, "quantized 'transformer_encoder.layers.1.linear2.weight' to s8 per output channel: 65536 "
                        "bytes in f32 -> 16896 (0.26x); error vs f32: relative "));
  CHECK(contains(r.out, "kept 'embedding.weight' in f32"));
  CHECK(contains(r.out, "i8[256,64]{s8panels16}"));
  r = run_kilnc("run " + model + " --quantize int8 -i tokens=" + kD64 + "/tokens_b1_s8.npy");
  CHECK(r.code == 0);
  CHECK(contains(r.out, "probs: f32[1,4]"));
  TempDir tmp;
  const std::string plan = tmp.path("q.kplan"), plain = tmp.path("f.kplan");
  REQUIRE(run_kilnc("compile " + model + " --quantize int8 -q -o " + quote(plan)).code == 0);
  REQUIRE(run_kilnc("compile " + model + " -q -o " + quote(plain)).code == 0);
  r = run_kilnc("inspect " + quote(plan));
  CHECK(r.code == 0);
  CHECK(contains(r.out, "quantized:       "));
  CHECK(contains(r.out, "for 9 weights (s8/bf16 panels"));
  std::ifstream a(plan, std::ios::binary | std::ios::ate), b(plain, std::ios::binary | std::ios::ate);
  CHECK(a.tellg() < b.tellg());
  // Seq2seq models: generate --explain gives the same report for the encoder and the decoder.
  r = run_kilnc("generate examples/date_translation/lstm.yaml --quantize int8 --explain 'nov 26 2026'");
  REQUIRE(r.code == 0);
  CHECK(contains(r.out, "passes on the decoder at -O2:"));
  CHECK(contains(r.out, "quantized 'out.weight' to s8 per output channel: 35840 bytes in f32 -> 10880 (0.30x)"));
  CHECK(contains(r.out, "kept 'encoder.weight_ih_l0' in f32: lstm has no quantized kernel"));
  CHECK(contains(r.out, "nov 26 2026 -> 2026-11-26"));
}
