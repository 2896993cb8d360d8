// Hostile inputs (issue 13): each case is a file or tensor that once crashed, hung or corrupted memory,
// and must now fail with a located kiln::Error. Hostile files are generated here.

#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <set>
#include <string>
#include <vector>

#include "frontends/safetensors.hpp"
#include "frontends/yaml/seq2seq.hpp"
#include "frontends/yaml/yaml_frontend.hpp"
#include "graph/types.hpp"
#include "kiln/kiln.h"
#include "runtime/compile.hpp"
#include "runtime/kplan.hpp"
#include "runtime/model_impl.hpp"
#include "runtime/plan.hpp"
#include "test_util.hpp"

using kiln::test::contains;
using kiln::test::error_of;
using kiln::test::source_path;
using kiln::test::TempDir;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

// ---- 1: seq2seq cross-checks no longer rewrite the decoder's 'inputs' map while iterating it ----

TEST_CASE("seq2seq: a decoder input fed by nothing after others fed by the encoder is located at its own key") {
  // Every decoder input before 'extra' is checked first; the old check assigned each match into the
  // 'inputs' map it was iterating (heap use after free) and then reported 'extra' at another key.
  std::string text = read_text(source_path("examples/date_translation/transformer.yaml"));
  const std::string last = "    mem_v1: {dtype: f32, shape: [batch, src, 64]}\n";
  auto at = text.find(last);
  REQUIRE(at != std::string::npos);
  text.insert(at + last.size(), "    extra: {dtype: f32, shape: [batch, 4]}\n");
  CHECK(error_of([&] { kiln::parse_yaml_seq2seq(text, "model.yaml", source_path("examples/date_translation")); }) ==
        "model.yaml:78:5: error: decoder input 'extra' is fed by nothing: it must be an encoder output of the same name, "
        "a state input, or generate's token, step or cache_rows");
}

// ---- 2: safetensors byte sizes are checked, not wrapped ----

namespace {
std::string safetensors_image(const std::string& header, const std::string& data = {}) {
  std::string out;
  for (int i = 0; i < 8; ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return out + header + data;
}
std::string weights_error(const std::string& header) {
  const std::string image = safetensors_image(header);
  return error_of([&] { kiln::WeightsFile::from_memory("w.safetensors", image.data(), image.size(), nullptr); });
}
}  // namespace

TEST_CASE("safetensors: a shape whose byte size wraps to 0 is refused, not loaded with no data") {
  // 2^58 * 16 = 2^62 elements passed the old element cap; times 4 bytes it wrapped to 0 == 0 - 0.
  CHECK(weights_error(R"({"w": {"dtype": "F32", "shape": [288230376151711744, 16], "data_offsets": [0, 0]}})") ==
        "w.safetensors: error: tensor 'w': shape [288230376151711744,16] of F32 is too large: its size in bytes exceeds "
        "9223372036854775807");
  // The same with I64 (8 bytes) and 2^61 elements, and with a zero dim beside two huge ones.
  CHECK(weights_error(R"({"e": {"dtype": "I64", "shape": [2305843009213693952], "data_offsets": [0, 0]}})") ==
        "w.safetensors: error: tensor 'e': shape [2305843009213693952] of I64 is too large: its size in bytes exceeds "
        "9223372036854775807");
  CHECK(weights_error(R"({"z": {"dtype": "U8", "shape": [0, 4294967296, 4294967296], "data_offsets": [0, 0]}})") ==
        "w.safetensors: error: tensor 'z': shape [0,4294967296,4294967296] of U8 is too large: its size in bytes exceeds "
        "9223372036854775807");
}

// ---- 3: plan files: constant types are checked (sign and size) before their bytes are compared ----

namespace {

using Bytes = std::vector<unsigned char>;

Bytes compile_plan(const std::string& yaml, const std::set<std::string>& disabled = {}) {
  kiln::PipelineOptions options;
  options.disabled = disabled;
  kiln::detail::CompileRequest request;
  request.path = yaml;
  request.pipeline = options;
  auto impl = kiln::detail::compile(std::move(request));
  kiln::KplanInfo info;
  info.isa = kiln::host_isa();
  info.source = yaml;
  info.opt_level = options.opt_level;
  info.plans = kiln::detail::summarize_plans(*impl);
  return kiln::detail::serialize_kplan(*impl, info);
}

void put_le(Bytes& b, std::size_t at, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b[at + static_cast<std::size_t>(i)] = static_cast<unsigned char>(v >> (8 * i));
}
std::uint64_t get_le(const Bytes& b, std::size_t at, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | b[at + static_cast<std::size_t>(i)];
  return v;
}
void reseal(Bytes& b) { put_le(b, kiln::kKplanChecksumOffset, kiln::kplan_checksum(b.data(), b.size()), 8); }

std::string plan_error(const Bytes& b) {
  return error_of([&] { kiln::Model::load_plan(b.data(), b.size(), "m.kplan"); });
}

// Where the type of constant `name` sits in a plan image: u8 dtype, u32 rank, per dim i64 value and a
// string (u32 length + bytes), the layout string, then u8 1 (a constant), u64 offset, u64 bytes.
struct ConstantAt {
  std::size_t dims;   // first dim's i64
  std::size_t bytes;  // the constant's u64 byte count
  std::size_t type_end;
};
ConstantAt constant_at(const Bytes& b, const std::string& name) {
  std::string key(4, '\0');
  for (int i = 0; i < 4; ++i) key[static_cast<std::size_t>(i)] = static_cast<char>(name.size() >> (8 * i));
  key += name;
  auto it = std::search(b.begin(), b.end(), key.begin(), key.end());
  REQUIRE(it != b.end());
  std::size_t at = static_cast<std::size_t>(it - b.begin()) + key.size();
  REQUIRE(b[at] == static_cast<unsigned char>(kiln::DType::f32));
  REQUIRE(get_le(b, at + 1, 4) == 2);  // rank 2, both dims concrete (empty symbol strings)
  REQUIRE(get_le(b, at + 13, 4) == 0);
  REQUIRE(get_le(b, at + 25, 4) == 0);
  const std::size_t layout = get_le(b, at + 29, 4);
  const std::size_t end = at + 33 + layout;
  REQUIRE(b[end] == 1);
  return ConstantAt{at + 5, end + 9, end};
}

}  // namespace

TEST_CASE("plan file: a constant whose byte size wraps to 0, or whose dims are negative, is refused") {
  // Weights as written (not packed into GEMM panels), so that the head's weight is a plain f32[4,64].
  const Bytes good = compile_plan(source_path("tests/fixtures/classifier_d64_l2/model.yaml"), {"pack-weights"});
  const ConstantAt c = constant_at(good, "output_layer.weight");  // f32[4,64], 1024 bytes
  REQUIRE(get_le(good, c.dims, 8) == 4);
  REQUIRE(get_le(good, c.bytes, 8) == 1024);
  const std::string at = " (at byte " + std::to_string(c.type_end - kiln::kKplanHeaderBytes) + " of the graph section)";
  SUBCASE("f32[2^59,8] with 0 bytes: 2^62 elements of 4 bytes wrapped to 0") {
    Bytes b = good;
    put_le(b, c.dims, std::uint64_t{1} << 59, 8);
    put_le(b, c.dims + 12, 8, 8);
    put_le(b, c.bytes, 0, 8);
    reseal(b);
    CHECK(plan_error(b) == "m.kplan: error: corrupt plan file: value 'output_layer.weight' has type f32[576460752303423488,8], "
                           "too large: its size in bytes exceeds 9223372036854775807" + at);
  }
  SUBCASE("f32[-4,-64]: the product of two negative dims matches the 1024 bytes") {
    Bytes b = good;
    put_le(b, c.dims, static_cast<std::uint64_t>(std::int64_t{-4}), 8);
    put_le(b, c.dims + 12, static_cast<std::uint64_t>(std::int64_t{-64}), 8);
    reseal(b);
    CHECK(plan_error(b) == "m.kplan: error: corrupt plan file: value 'output_layer.weight' has type f32[-4,-64]: dims must be "
                           "non-negative" + at);
  }
}

// ---- 4: shape arithmetic is checked: declared shapes at load, products in shape rules ----

namespace {
std::string model_error(const std::string& yaml) {
  return error_of([&] { kiln::parse_yaml_model(yaml, "model.yaml", "."); });
}
}  // namespace

TEST_CASE("yaml: a declared input shape whose size overflows 64 bits is refused at load with its location") {
  CHECK(model_error("kiln: 1\n"
                    "inputs:\n"
                    "  x: {dtype: f32, shape: [batch, 4294967296, 4294967296]}\n"
                    "nodes:\n"
                    "  - {op: flatten, in: [x], axis: 0, out: y}\n"
                    "outputs: [y]\n") ==
        "model.yaml:3:26: error: input 'x': shape [batch,4294967296,4294967296] of f32 is too large: its size in bytes "
        "exceeds 9223372036854775807");
  // 2^61 i64 elements fit a count but not a byte size.
  CHECK(model_error("kiln: 1\n"
                    "inputs:\n"
                    "  x: {dtype: i64, shape: [2305843009213693952]}\n"
                    "nodes:\n"
                    "  - {op: relu, in: [x], out: y}\n"
                    "outputs: [y]\n") ==
        "model.yaml:3:26: error: input 'x': shape [2305843009213693952] of i64 is too large: its size in bytes exceeds "
        "9223372036854775807");
}

TEST_CASE("yaml: flatten and reshape of a shape whose element count overflows fail with the node's location") {
  // Each input fits; their matmul [2^31, 2^33] has 2^64 elements. flatten multiplied the dims unchecked
  // (signed overflow), as did reshape's element count.
  const std::string head =
      "kiln: 1\n"
      "inputs:\n"
      "  a: {dtype: f32, shape: [2147483648, 1]}\n"
      "  b: {dtype: f32, shape: [1, 8589934592]}\n"
      "nodes:\n"
      "  - {op: matmul, in: [a, b], out: c}\n";
  CHECK(model_error(head + "  - {op: flatten, in: [c], axis: 0, out: y}\noutputs: [y]\n") ==
        "model.yaml:7:5: error: flatten 'y': dims 0.. of f32[2147483648,8589934592] multiply to more than "
        "9223372036854775807 elements");
  CHECK(model_error(head + "  - {op: reshape, in: [c], shape: [-1], out: y}\noutputs: [y]\n") ==
        "model.yaml:7:5: error: reshape 'y': input f32[2147483648,8589934592] has more than 9223372036854775807 elements");
}

TEST_CASE("shape helpers refuse products past INT64_MAX") {
  using kiln::Dim;
  CHECK(error_of([] { kiln::numel_of({Dim::of(4294967296), Dim::of(4294967296)}); }) ==
        "error: shape [4294967296,4294967296] has too many elements: the count exceeds 9223372036854775807");
  CHECK(error_of([] { kiln::mul_dims(Dim::of(4294967296), Dim::of(4294967296)); }) ==
        "error: dims 4294967296 and 4294967296 multiply to more than 9223372036854775807 elements");
  CHECK(kiln::numel_of({Dim::of(3037000499), Dim::of(3037000499)}) == 9223372030926249001);
}

TEST_CASE("run-time inputs: a tensor whose byte size overflows is refused by name before any plan is made") {
  // 2^53 x 1000 elements fit a count; 4 bytes each do not. A view may carry any shape.
  kiln::Session s(kiln::Model::load_from_memory("kiln: 1\ninputs:\n  x: {dtype: f32, shape: [batch, 1000]}\nnodes:\n"
                                                "  - {op: relu, in: [x], out: y}\noutputs: [y]\n",
                                                nullptr, 0));
  float one = 0;
  kiln::Tensor x = kiln::Tensor::view(kiln::DType::f32, {std::int64_t{1} << 53, 1000}, &one);
  CHECK(error_of([&] { s.run({{"x", x}}); }) ==
        "error: input 'x': shape [9007199254740992,1000] of f32 is too large: its size in bytes exceeds 9223372036854775807");
  CHECK(s.plan_count() == 0);
}

// ---- 5: block expansion is bounded before anything is expanded ----

TEST_CASE("yaml: nested block calls that expand past the node limit fail at once, naming the limit") {
  const std::string yaml =
      "kiln: 1\n"
      "inputs:\n"
      "  x: {dtype: f32, shape: [1, 4]}\n"
      "blocks:\n"
      "  a: {args: [x], returns: [y], nodes: [{op: relu, in: [x], out: y}]}\n"
      "  b: {args: [x], returns: [y], nodes: [{block: a, repeat: 4096, in: [x], out: [y]}]}\n"
      "  c: {args: [x], returns: [y], nodes: [{block: b, repeat: 4096, in: [x], out: [y]}]}\n"
      "nodes:\n"
      "  - {op: relu, in: [x], out: x1}\n"
      "  - {block: c, repeat: 4096, in: [x1], out: [y]}\n"
      "outputs: [y]\n";
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(model_error(yaml) ==
        "model.yaml:10:5: error: block call 'c' expands to 68719476736 nodes (4096 x 16777216), more than the 100000 nodes "
        "a model may have (with the 1 before it)");
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1));
  // Just past the limit: 2 x 4096 x 13 relus.
  std::string wide =
      "kiln: 1\n"
      "inputs:\n"
      "  x: {dtype: f32, shape: [1, 4]}\n"
      "blocks:\n"
      "  a:\n"
      "    args: [x]\n"
      "    returns: [y]\n"
      "    nodes:\n";
  for (int i = 0; i < 13; ++i)
    wide += "      - {op: relu, in: [" + (i ? "r" + std::to_string(i - 1) : std::string("x")) + "], out: " +
            (i == 12 ? std::string("y") : "r" + std::to_string(i)) + "}\n";
  wide += "  b: {args: [x], returns: [y], nodes: [{block: a, repeat: 4096, in: [x], out: [y]}]}\n"
          "nodes:\n"
          "  - {block: b, repeat: 2, in: [x], out: [y]}\n"
          "outputs: [y]\n";
  CHECK(model_error(wide) ==
        "model.yaml:24:5: error: block call 'b' expands to 106496 nodes (2 x 53248), more than the 100000 nodes a model "
        "may have");
}

// ---- 6: a run whose memory is known to exceed the limit is refused before anything is allocated ----

namespace {

// x f32[batch,1000] -> relu a -> relu b -> y = a + b: the arena holds a and b, 4000 * batch bytes each.
const char* kRelus =
    "kiln: 1\n"
    "inputs:\n"
    "  x: {dtype: f32, shape: [batch, 1000]}\n"
    "nodes:\n"
    "  - {op: relu, in: [x], out: a}\n"
    "  - {op: relu, in: [a], out: b}\n"
    "  - {op: add, in: [a, b], out: y}\n"
    "outputs: [y]\n";

kiln::Model relus() { return kiln::Model::load_from_memory(kRelus, nullptr, 0, {}, "relus.yaml"); }

std::string run_kilnc(const std::string& args, double* seconds) {
  std::string cmd = std::string("cd '") + KILN_SOURCE_DIR + "' && '" + KILNC_PATH + "' " + args + " 2>&1";
  const auto t0 = std::chrono::steady_clock::now();
  FILE* pipe = ::popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int status = ::pclose(pipe);
  *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)) + ":" + out;
}

// A 1 x `len` i64 .npy of zeros.
std::string tokens_npy(std::int64_t len) {
  std::string header = "{'descr': '<i8', 'fortran_order': False, 'shape': (1, " + std::to_string(len) + "), }";
  header.append(63 - (10 + header.size()) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY\x01";
  out += '\0';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  out.append(static_cast<std::size_t>(len) * 8, '\0');
  return out;
}

const std::string kPhysicalTail =
    ", more than this machine's physical memory of " + std::to_string(kiln::physical_memory_bytes()) + " bytes";

}  // namespace

TEST_CASE("memory: a session's memory_limit refuses an arena that does not fit, naming the shapes, bytes and limit") {
  kiln::SessionOptions o;
  o.memory_limit = 20000;
  kiln::Session s(relus(), o);
  kiln::Tensor big = kiln::Tensor::empty(kiln::DType::f32, {4, 1000});
  CHECK(error_of([&] { s.run({{"x", big}}); }) ==
        "error: memory limit: a run on x f32[4,1000] needs an activation arena of 32000 bytes, more than the session's "
        "memory_limit of 20000 bytes");
  CHECK(s.memory().arena_bytes == 0);  // nothing was allocated
  kiln::Tensor small = kiln::Tensor::empty(kiln::DType::f32, {2, 1000});
  CHECK(s.run({{"x", small}}).at("y").shape() == std::vector<std::int64_t>{2, 1000});  // still usable
  CHECK(s.memory().arena_bytes == 16000);
}

TEST_CASE("memory: without a memory_limit, a run beyond physical memory is refused at once (transformer, 2M tokens)") {
  REQUIRE(kiln::physical_memory_bytes() > 0);
  kiln::Session s(kiln::Model::load(source_path("examples/transformer_classifier/transformer_classifier.yaml")));
  // The data is not read for a shape query: the refusal comes from the plan, before any arena exists.
  kiln::Tensor tokens = kiln::Tensor::view(kiln::DType::i64, {1, 2000000}, nullptr);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string e = error_of([&] { s.output_shapes({{"tokens", tokens}}); });
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1));
  CHECK(e.rfind("error: not enough memory: a run on tokens i64[1,2000000] needs ", 0) == 0);
  CHECK(e.size() > kPhysicalTail.size());
  CHECK(e.substr(e.size() - std::min(e.size(), kPhysicalTail.size())) == kPhysicalTail);
  CHECK(s.memory().arena_bytes == 0);
}

TEST_CASE("kilnc run: a 1 x 200,000-token input to the transformer classifier exits 1 with the message, quickly") {
  TempDir tmp;
  const std::string npy = tmp.write("T.npy", tokens_npy(200000));
  double seconds = 0;
  const std::string out =
      run_kilnc("run examples/transformer_classifier/transformer_classifier.yaml --input tokens=" + npy, &seconds);
  CHECK(out.rfind("1:error: not enough memory: a run on tokens i64[1,200000] needs ", 0) == 0);
  CHECK(contains(out, kPhysicalTail + "\n"));
  CHECK(seconds < 5.0);  // typically well under a second: nothing is allocated
}

TEST_CASE("C API: a length no container can hold is a status, not an escaping std::length_error") {
  kiln_model* model = nullptr;
  CHECK(kiln_model_load_from_memory("kiln: 1", SIZE_MAX, nullptr, 0, &model) == KILN_INVALID_ARGUMENT);
  CHECK(std::string(kiln_last_error()) ==
        "error: kiln_model_load_from_memory: yaml_len " + std::to_string(SIZE_MAX) + " is longer than any string can be");
  CHECK(model == nullptr);
}

TEST_CASE("C API: hostile weights and a run beyond physical memory give a status and a message") {
  const std::string header = R"({"w": {"dtype": "F32", "shape": [288230376151711744, 16], "data_offsets": [0, 0]}})";
  const std::string image = safetensors_image(header);
  kiln_model* model = nullptr;
  const char* yaml = "kiln: 1\ninputs:\n  x: {dtype: f32, shape: [1, 4]}\nnodes:\n  - {op: relu, in: [x], out: y}\noutputs: [y]\n";
  CHECK(kiln_model_load_from_memory(yaml, std::strlen(yaml), image.data(), image.size(), &model) == KILN_ERROR);
  CHECK(std::string(kiln_last_error()) ==
        "<memory> (weights): error: tensor 'w': shape [288230376151711744,16] of F32 is too large: its size in bytes exceeds "
        "9223372036854775807");
  CHECK(model == nullptr);

  REQUIRE(kiln_model_load(source_path("examples/transformer_classifier/transformer_classifier.yaml").c_str(), &model) == KILN_OK);
  kiln_session* session = nullptr;
  REQUIRE(kiln_session_create(model, nullptr, &session) == KILN_OK);
  const std::int64_t dims[2] = {1, 2000000};
  kiln_tensor in{"tokens", KILN_I64, 2, dims, nullptr};
  std::int64_t shape[KILN_MAX_RANK];
  std::int32_t rank = 0;
  CHECK(kiln_session_output_shape(session, &in, 1, "probs", shape, &rank) == KILN_ERROR);
  const std::string e = kiln_last_error();
  CHECK(e.rfind("error: not enough memory: a run on tokens i64[1,2000000] needs ", 0) == 0);
  CHECK(contains(e, kPhysicalTail));
  kiln_session_free(session);
  kiln_model_free(model);
}

TEST_CASE("generation: a beam no machine can hold is refused at once, naming the sizes") {
  auto model = kiln::Seq2SeqModel::load(kiln::test::source_path("examples/date_translation/lstm.yaml"));
  kiln::Generator generator(model);
  kiln::GenerateOptions options;
  options.strategy = "beam";
  options.beam_width = 2000000000;  // an int; 2e9 hypotheses and their caches
  std::string message;
  const auto start = std::chrono::steady_clock::now();
  try {
    generator.generate({model.encode("nov 26 2026")}, options);
  } catch (const kiln::Error& e) {
    message = e.what();
  }
  INFO(message);
  CHECK(contains(message, "generate: 1 sources x beam width 2000000000 x "));
  CHECK(contains(message, " tokens need more memory for their token histories alone than this machine's "));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));
  // The generator still works after the refusal.
  CHECK(generator.translate({"nov 26 2026"}) == std::vector<std::string>{"2026-11-26"});
}
