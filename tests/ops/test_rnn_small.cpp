// Kiln's LSTM and GRU kernel for small cells (ops/rnn_small.cpp) against oneDNN's primitives, which run the
// same node where Kiln's kernels are off (gemm::override_enabled(false), as on a CPU without AVX2): random
// weights, inputs and states on shapes the fixtures do not cover (hidden not a multiple of 8 or 16, batch 1,
// seq 1, bidirectional, reverse, several layers, seq-first, with and without initial states, biases,
// peepholes, the projected inputs of batches under 4), both instruction-set variants the CPU has.
// Tolerance 1e-5: both compute each gate as a dot product of at most inputs + hidden terms of values below 1
// through sigmoid/tanh, in different orders and with different exponentials (~2e-7 each); measured
// differences are ~1e-7 to 1e-6, except for c_n of the 30-step LSTM with peepholes, whose cell state grows to
// |c| ~ 40 (c_t = f·c_{t-1} + i·g with f near 1): 5.7e-6 there is 1.5 units in the last place.

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <random>

#include "ops/gemm.hpp"
#include "ops/isa.hpp"
#include "ops/rnn_small.hpp"
#include "runtime/compile.hpp"
#include "runtime/kplan.hpp"
#include "runtime/kplan_isa.hpp"
#include "runtime/model_impl.hpp"
#include "runtime/npy.hpp"
#include "tests/test_util.hpp"

namespace kiln {
std::size_t rnn_weight_packs_made();  // ops/rnn.cpp
}

namespace {

using kiln::DType;
using kiln::Tensor;
using kiln::test::contains;
using kiln::test::max_abs_diff;

struct Config {
  std::int64_t batch, seq, features, hidden, layers;
  bool bidirectional, batch_first, states, bias, reverse, peephole;
  bool gru = false;                 // nn.GRU's cell instead of the LSTM (no peepholes, no c)
  bool linear_before_reset = true;  // gru: false is ONNX's default GRU, which oneDNN runs
};

std::string str(const Config& c) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "%s batch %lld seq %lld features %lld hidden %lld layers %lld%s%s%s%s%s%s",
                c.gru ? "gru" : "lstm", static_cast<long long>(c.batch), static_cast<long long>(c.seq),
                static_cast<long long>(c.features), static_cast<long long>(c.hidden), static_cast<long long>(c.layers),
                c.bidirectional ? " bi" : "", c.batch_first ? "" : " seq-first", c.states ? " states" : "",
                c.bias ? "" : " no-bias", c.reverse ? " reverse" : "", c.peephole ? " peephole" : "");
  return buf;
}

/// A .safetensors image of f32 tensors.
std::string safetensors(const std::map<std::string, std::pair<std::vector<std::int64_t>, std::vector<float>>>& ts) {
  std::string header = "{", data;
  for (const auto& [name, t] : ts) {
    std::string shape;
    for (auto d : t.first) shape += (shape.empty() ? "" : ",") + std::to_string(d);
    const std::size_t begin = data.size();
    data.append(reinterpret_cast<const char*>(t.second.data()), t.second.size() * sizeof(float));
    header += (header.size() > 1 ? "," : "") + std::string("\"") + name + "\":{\"dtype\":\"F32\",\"shape\":[" + shape +
              "],\"data_offsets\":[" + std::to_string(begin) + "," + std::to_string(data.size()) + "]}";
  }
  header += "}";
  while (header.size() % 8) header += ' ';
  std::string out(8, '\0');
  const std::uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

struct Built {
  std::string yaml, weights;
  std::map<std::string, Tensor> inputs;
};

Built build(const Config& c, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-0.6f, 0.6f);
  auto values = [&](std::int64_t n) {
    std::vector<float> v(static_cast<std::size_t>(n));
    for (auto& x : v) x = u(rng);
    return v;
  };
  const std::int64_t dirs = c.bidirectional ? 2 : 1, h = c.hidden, g = c.gru ? 3 : 4;
  std::map<std::string, std::pair<std::vector<std::int64_t>, std::vector<float>>> ts;
  for (std::int64_t l = 0; l < c.layers; ++l)
    for (std::int64_t d = 0; d < dirs; ++d) {
      const std::string suffix = "_l" + std::to_string(l) + (d ? "_reverse" : "");
      const std::int64_t in = l == 0 ? c.features : dirs * h;
      ts["rnn.weight_ih" + suffix] = {{g * h, in}, values(g * h * in)};
      ts["rnn.weight_hh" + suffix] = {{g * h, h}, values(g * h * h)};
      if (c.bias) {
        ts["rnn.bias_ih" + suffix] = {{g * h}, values(g * h)};
        ts["rnn.bias_hh" + suffix] = {{g * h}, values(g * h)};
      }
      if (c.peephole) ts["rnn.weight_peephole" + suffix] = {{3 * h}, values(3 * h)};
    }
  Built b;
  b.weights = safetensors(ts);
  const std::string x_shape = c.batch_first ? "[batch, seq, " + std::to_string(c.features) + "]"
                                            : "[seq, batch, " + std::to_string(c.features) + "]";
  const std::string state_shape = "[" + std::to_string(c.layers * dirs) + ", batch, " + std::to_string(h) + "]";
  b.yaml = "kiln: 1\nname: lstm_small\ninputs:\n  x: {dtype: f32, shape: " + x_shape + "}\n";
  if (c.states) b.yaml += "  h0: {dtype: f32, shape: " + state_shape + "}\n";
  if (c.states && !c.gru) b.yaml += "  c0: {dtype: f32, shape: " + state_shape + "}\n";
  const std::string outs = c.gru ? "[y, h_n]" : "[y, h_n, c_n]";
  b.yaml += "outputs: " + outs + "\nnodes:\n  - {op: " + (c.gru ? "gru" : "lstm") + ", in: [x" +
            (c.states ? (c.gru ? ", h0" : ", h0, c0") : "") +
            "], weights: rnn, num_layers: " + std::to_string(c.layers) +
            ", bidirectional: " + (c.bidirectional ? "true" : "false") +
            ", batch_first: " + (c.batch_first ? "true" : "false") + ", reverse: " + (c.reverse ? "true" : "false") +
            (c.gru ? std::string(", linear_before_reset: ") + (c.linear_before_reset ? "true" : "false") : "") +
            ", out: " + outs + "}\n";
  auto tensor = [&](std::vector<std::int64_t> shape) {
    Tensor t = Tensor::empty(DType::f32, shape);
    for (std::int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = u(rng);
    return t;
  };
  b.inputs["x"] = c.batch_first ? tensor({c.batch, c.seq, c.features}) : tensor({c.seq, c.batch, c.features});
  if (c.states) b.inputs["h0"] = tensor({c.layers * dirs, c.batch, h});
  if (c.states && !c.gru) b.inputs["c0"] = tensor({c.layers * dirs, c.batch, h});
  return b;
}

struct Result {
  std::map<std::string, Tensor> out;
  std::string explained;
};

/// Loads the model with Kiln's kernels on or off (the pack-weights pass packs for the kernel then chosen),
/// then runs it with them `run_kiln` (a plan file from another CPU when the two differ). !pack: without the
/// pack-weights pass (the weights as written).
Result run(const Built& b, bool load_kiln, bool run_kiln, bool pack = true, int threads = 0) {
  kiln::LoadOptions options;
  if (!pack) options.disabled_passes = {"pack-weights"};
  kiln::gemm::override_enabled(load_kiln);
  kiln::Model model = kiln::Model::load_from_memory(b.yaml, b.weights.data(), b.weights.size(), options);
  kiln::gemm::override_enabled(run_kiln);
  kiln::SessionOptions session_options;
  session_options.intra_op_threads = threads;
  kiln::Session session(model, session_options);
  Result r;
  r.explained = session.explain(b.inputs);
  r.out = session.run(b.inputs);
  kiln::gemm::override_enabled(std::nullopt);
  return r;
}

const Config kConfigs[] = {
    // batch, seq, features, hidden, layers, bi, batch_first, states, bias, reverse, peephole
    {8, 64, 16, 24, 1, false, true, true, true, false, false},   // lstm_tagger's cell
    {1, 1, 5, 7, 1, false, true, true, true, false, false},      // a decoder step, hidden below one vector
    {1, 9, 3, 13, 1, true, true, false, true, false, false},     // batch 1, bidirectional
    {3, 1, 6, 17, 2, true, false, true, false, false, false},    // seq 1, two bidirectional layers, seq-first
    {5, 7, 11, 33, 3, false, true, true, true, true, false},     // three layers, reverse, hidden 2·16 + 1
    {7, 6, 4, 9, 1, true, true, true, true, false, true},        // peepholes, 7 rows (blocks of 4 + 3, or 3 + 2 + 2)
    {13, 4, 20, 40, 2, false, false, false, true, false, true},  // 13 rows, seq-first, peepholes, two layers
    // batches under 4 with over 4096 multiply-adds per row and step project 24 steps' inputs at a time:
    // several chunks, reverse, peepholes, seq-first
    {2, 30, 12, 29, 1, false, true, true, true, true, true},
    {3, 30, 9, 21, 2, true, false, true, true, false, false},
    // GRU (nn.GRU's, linear before reset)
    {8, 64, 12, 16, 1, true, true, true, true, false, false, true},   // gru_bi's cell
    {1, 1, 5, 7, 1, false, true, true, true, false, false, true},     // a decoder step
    {3, 5, 6, 17, 2, true, false, false, true, false, false, true},   // two bidirectional layers, seq-first
    {7, 4, 9, 21, 1, false, true, true, false, true, false, true},    // reverse, no biases, 7 rows
    {1, 30, 17, 27, 2, true, false, true, true, false, false, true},  // batch 1: projected, two chunks
    {2, 49, 30, 25, 1, false, true, true, true, true, false, true},   // reverse, projected, three chunks
};

std::vector<const char*> outputs(const Config& c) {
  if (c.gru) return {"y", "h_n"};
  return {"y", "h_n", "c_n"};
}

TEST_CASE("rnn small kernel: LSTM and GRU equal oneDNN's primitives on random shapes, both instruction-set variants") {
  if (!kiln::rnn_small::enabled()) return;  // no AVX2/FMA (or KILN_GEMM=onednn): oneDNN runs every lstm
  std::uint32_t seed = 1;
  for (const Config& c : kConfigs) {
    const Built b = build(c, seed++);
    const Result ref = run(b, false, false);
    CHECK_FALSE(contains(ref.explained, "kiln:"));
    std::vector<kiln::isa::Level> levels = {kiln::isa::Level::avx2};
    if (kiln::isa::has(kiln::isa::Level::avx512)) levels.push_back(kiln::isa::Level::avx512);
    for (auto level : levels) {
      kiln::gemm::override_variant(level);
      const Result got = run(b, true, true);
      const std::string variant = kiln::rnn_small::variant(c.gru);
      kiln::gemm::override_variant(std::nullopt);
      CHECK_MESSAGE(contains(got.explained, variant), str(c) << ": " << got.explained);
      for (const char* o : outputs(c)) {
        const double err = max_abs_diff(got.out.at(o), ref.out.at(o));
        std::printf("rnn small %s, %s %s: max abs difference from oneDNN %.3g\n", str(c).c_str(), variant.c_str(), o,
                    err);
        CHECK_MESSAGE(err <= 1e-5, str(c) << " " << variant << " " << o << ": " << err);
      }
    }
  }
}

TEST_CASE(
    "rnn small kernel: weights packed for it run on oneDNN too, and weights as written (no pack-weights pass) too") {
  if (!kiln::rnn_small::enabled()) return;
  const Built b = build(kConfigs[4], 77);
  const Result ref = run(b, false, false);
  const Result cross = run(b, true, false);  // packed in Kiln's layout, run where oneDNN runs the op
  CHECK_FALSE(contains(cross.explained, "kiln:lstm"));
  const Result other = run(b, false, true);  // packed for oneDNN's primitive: that primitive runs it
  CHECK_FALSE(contains(other.explained, "kiln:lstm"));
  const std::size_t before = kiln::rnn_weight_packs_made();
  const Result plain = run(b, true, true, false);  // Kiln's kernel packs a private copy when it is made
  CHECK(kiln::rnn_weight_packs_made() > before);
  CHECK(contains(plain.explained, kiln::rnn_small::variant()));
  for (const char* o : {"y", "h_n", "c_n"}) {
    CHECK(max_abs_diff(cross.out.at(o), ref.out.at(o)) <= 1e-5);
    CHECK(max_abs_diff(other.out.at(o), ref.out.at(o)) <= 1e-5);
    CHECK(max_abs_diff(plain.out.at(o), ref.out.at(o)) <= 1e-5);
  }
}

TEST_CASE("rnn small kernel: impl() names the variant that runs, and packed weights are read in place") {
  const Built b = build(kConfigs[0], 5);
  const std::size_t before = kiln::rnn_weight_packs_made();
  kiln::Model model = kiln::Model::load_from_memory(b.yaml, b.weights.data(), b.weights.size());
  kiln::Session session(model);
  const std::string explained = session.explain(b.inputs);
  if (kiln::rnn_small::enabled()) {
    // "kiln:lstm_" and the variant gemm::variant_level() picks on this CPU, whichever it is.
    CHECK(contains(explained, kiln::rnn_small::variant()));
    CHECK(std::string(kiln::rnn_small::variant()).rfind("kiln:lstm_", 0) == 0);
  } else {
    CHECK_FALSE(contains(explained, "kiln:lstm"));
  }
  session.run(b.inputs);
  CHECK(kiln::rnn_weight_packs_made() == before);  // the pass packed them for the kernel that runs
}

TEST_CASE("rnn small kernel: pack and unpack are inverse, gates padded with zeros to 16 hidden units") {
  const std::int64_t gates = 4, hidden = 7, k = 3;
  std::vector<float> w(static_cast<std::size_t>(gates * hidden * k)), back(w.size());
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i) + 1.0f;
  std::vector<float> packed(kiln::rnn_small::packed_floats(gates, hidden, k), -1.0f);
  CHECK(packed.size() == static_cast<std::size_t>(k * gates * 16));
  kiln::rnn_small::pack(w.data(), gates, hidden, k, packed.data());
  kiln::rnn_small::unpack(packed.data(), gates, hidden, k, back.data());
  CHECK(back == w);
  // Column 1 of gate 2's unit 5 is w[(2·7 + 5)·3 + 1]; units 7..15 are zero.
  CHECK(packed[(1 * 4 + 2) * 16 + 5] == w[(2 * 7 + 5) * 3 + 1]);
  for (std::int64_t j = hidden; j < 16; ++j) CHECK(packed[static_cast<std::size_t>((2 * 4 + 3) * 16 + j)] == 0.0f);
}

}  // namespace

namespace {

TEST_CASE("rnn small kernel: a GRU with the reset before the product (ONNX's default) stays on oneDNN") {
  Config c{4, 6, 5, 9, 1, false, true, true, true, false, false, true, false};
  const Built b = build(c, 9);
  const Result got = run(b, true, true);
  CHECK_FALSE(contains(got.explained, "kiln:gru"));
  CHECK(got.out.at("y").numel() == 4 * 6 * 9);
}

}  // namespace

namespace {

TEST_CASE("rnn small kernel: rows and directions split over two threads give the same bits as one thread") {
  if (!kiln::rnn_small::enabled()) return;
  // 16 rows x 64 steps of a hidden-32 LSTM and GRU: 8.4 M and 6.3 M multiply-adds per layer and direction,
  // well above the kernel's 0.5 M per thread: with two threads, one direction's rows are split in two, two
  // directions go one to each thread.
  for (bool gru : {false, true})
    for (bool bidirectional : {false, true}) {
      Config c{16, 64, 32, 32, 2, bidirectional, true, true, true, false, false, gru};
      const Built b = build(c, 21);
      const Result one = run(b, true, true, true, 1);
      const Result two = run(b, true, true, true, 2);
      CHECK(contains(two.explained, kiln::rnn_small::variant(gru)));
      for (const char* o : outputs(c)) CHECK(max_abs_diff(one.out.at(o), two.out.at(o)) == 0.0);
      const Result ref = run(b, false, false);
      for (const char* o : outputs(c)) CHECK(max_abs_diff(two.out.at(o), ref.out.at(o)) <= 1e-5);
    }
}

}  // namespace

namespace {

TEST_CASE("rnn small kernel error: a plan file whose packed weight holds fewer bytes than its layout needs") {
  if (!kiln::rnn_small::enabled()) return;  // nothing is packed in Kiln's layout here
  const std::string dir = kiln::test::source_path("tests/fixtures/rnn/lstm_l1_s7/");
  const std::string yaml = dir + "model.yaml";
  kiln::detail::CompileRequest request;
  request.path = yaml;
  auto impl = kiln::detail::compile(std::move(request));
  kiln::KplanInfo info;
  info.isa = kiln::host_isa();
  info.source = yaml;
  info.plans = kiln::detail::summarize_plans(*impl);
  std::vector<unsigned char> b = kiln::detail::serialize_kplan(*impl, info);
  // The first constant in the layout: its type ends with the layout string (u32 length, bytes), then come
  // u8 "constant", u64 data offset, u64 byte count. The byte count becomes 64.
  const std::string layout = std::string("\x09\0\0\0", 4) + kiln::rnn_small::kLayout;
  const auto it = std::search(b.begin(), b.end(), layout.begin(), layout.end());
  REQUIRE(it != b.end());
  const auto at = static_cast<std::size_t>(it - b.begin()) + layout.size() + 1 + 8;
  for (std::size_t i = 0; i < 8; ++i) b[at + i] = i == 0 ? 64 : 0;
  const std::uint64_t sum = kiln::kplan_checksum(b.data(), b.size());
  for (std::size_t i = 0; i < 8; ++i) b[kiln::kKplanChecksumOffset + i] = static_cast<unsigned char>(sum >> (8 * i));
  kiln::test::TempDir tmp;
  const std::string path = tmp.write("short.kplan", std::string(b.begin(), b.end()));
  const auto x = kiln::read_npy(dir + "x.npy");
  for (bool kiln_kernel : {true, false}) {  // Kiln's kernel, and oneDNN's path reading Kiln's layout
    kiln::gemm::override_enabled(kiln_kernel);
    kiln::Session session(kiln::Model::load(path));
    const std::string err = kiln::test::error_of([&] { session.run({{"x", x}}); });
    kiln::gemm::override_enabled(std::nullopt);
    CHECK_MESSAGE(contains(err, "lstm 'y'"), err);
    CHECK_MESSAGE(contains(err, "in layout rnn_kgh16 holds 64 bytes; expected "), err);
  }
}

}  // namespace
