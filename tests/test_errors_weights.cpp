// Corrupt and truncated `.safetensors` files: each error names the file (and the tensor, where one is
// at fault) and says what was expected. Files are written to a fresh temp folder per test.

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "frontends/safetensors.hpp"
#include "frontends/yaml/yaml_frontend.hpp"
#include "test_util.hpp"

using kiln::test::error_of;
using kiln::test::contains;
using kiln::test::source_path;
using kiln::test::TempDir;
using namespace std::string_literals;

namespace {

namespace fs = std::filesystem;


// A safetensors image: 8-byte little-endian header length, the header, the data.
std::string safetensors(const std::string& header, const std::string& data = {}, std::uint64_t header_len = UINT64_MAX) {
  if (header_len == UINT64_MAX) header_len = header.size();
  std::string out;
  for (int i = 0; i < 8; ++i) out += static_cast<char>((header_len >> (8 * i)) & 0xff);
  return out + header + data;
}

std::string bytes_of(const void* p, std::size_t n) { return std::string(static_cast<const char*>(p), n); }

std::string open_error(const std::string& path) {
  return error_of([&] { kiln::WeightsFile::open(path); });
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

// ---- valid files ----

TEST_CASE("weights: a hand-made F32 [2,3] tensor reads back") {
  TempDir tmp;
  const float values[6] = {1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, 42.0f};
  // Pad the header so the data starts 8-byte aligned (as safetensors writers do).
  std::string header = R"({"__metadata__": {"format": "pt"}, "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string path = tmp.write("ok.safetensors", safetensors(header, bytes_of(values, sizeof values)));
  auto file = kiln::WeightsFile::open(path);
  CHECK(file->path() == path);
  REQUIRE(file->tensors().size() == 1);
  const kiln::WeightTensor* w = file->find("w");
  REQUIRE(w != nullptr);
  CHECK(w->dtype == kiln::DType::f32);
  CHECK(w->shape == std::vector<std::int64_t>{2, 3});
  REQUIRE(w->data.bytes == 24);
  const auto* got = static_cast<const float*>(w->data.data);
  for (int i = 0; i < 6; ++i) CHECK(got[i] == values[i]);
  CHECK(file->find("missing") == nullptr);
}

TEST_CASE("weights: a hand-made I64 tensor reads back, also when its data is misaligned") {
  TempDir tmp;
  const std::int64_t values[3] = {7, -1, 1234567890123LL};
  // 61-byte header: the data starts at byte 69, misaligned for I64, so the reader copies it.
  std::string header = R"({"ids":{"dtype":"I64","shape":[3],"data_offsets":[0,24]}})";
  header.append(61 - header.size(), ' ');
  std::string path = tmp.write("ids.safetensors", safetensors(header, bytes_of(values, sizeof values)));
  auto file = kiln::WeightsFile::open(path);
  const kiln::WeightTensor* w = file->find("ids");
  REQUIRE(w != nullptr);
  CHECK(w->dtype == kiln::DType::i64);
  CHECK(w->shape == std::vector<std::int64_t>{3});
  REQUIRE(w->data.bytes == 24);
  CHECK(reinterpret_cast<std::uintptr_t>(w->data.data) % alignof(std::int64_t) == 0);
  std::int64_t got[3];
  std::memcpy(got, w->data.data, sizeof got);
  CHECK(got[0] == 7);
  CHECK(got[1] == -1);
  CHECK(got[2] == 1234567890123LL);
}

// ---- corrupt files ----

TEST_CASE("weights error: file does not exist") {
  TempDir tmp;
  std::string path = tmp.dir() + "/absent.safetensors";
  CHECK(open_error(path) == path + ": error: cannot open weights file: No such file or directory");
}

TEST_CASE("weights error: a folder is not a weights file") {
  TempDir tmp;
  CHECK(open_error(tmp.dir()) == tmp.dir() + ": error: not a regular file");
}

TEST_CASE("weights error: empty file") {
  TempDir tmp;
  std::string path = tmp.write("empty.safetensors", "");
  CHECK(open_error(path) ==
        path + ": error: file is empty; expected a safetensors file (8-byte header length, JSON header, data)");
}

TEST_CASE("weights error: file shorter than the 8-byte length prefix") {
  TempDir tmp;
  std::string path = tmp.write("short.safetensors", "\x05\0\0\0\0"s);
  CHECK(open_error(path) ==
        path + ": error: file is 5 bytes, too short for a safetensors header (8-byte length prefix)");
}

TEST_CASE("weights error: header length larger than the file") {
  TempDir tmp;
  std::string path = tmp.write("long.safetensors", safetensors("{}", "", 1000));
  CHECK(open_error(path) == path + ": error: header length 1000 exceeds the 2 bytes that follow it (truncated or not a "
                                   "safetensors file)");
  // A header length near 2^64 must not wrap around.
  path = tmp.write("huge.safetensors", safetensors("{}", "", UINT64_MAX - 3));
  CHECK(contains(open_error(path), path + ": error: header length 18446744073709551612 exceeds the 2 bytes"));
}

TEST_CASE("weights error: header is not JSON") {
  TempDir tmp;
  std::string path = tmp.write("notjson.safetensors", safetensors(R"({"w": [1, 2})"));
  std::string msg = open_error(path);
  CHECK(contains(msg, path + ": error: header is not valid JSON (line 1, column "));
  // A NUL byte inside the header.
  path = tmp.write("nul.safetensors", safetensors("{\"w\"\0: 1}"s));
  CHECK(open_error(path) == path + ": error: header contains a NUL byte (corrupt file)");
  // Too short to be any JSON object.
  path = tmp.write("tiny.safetensors", safetensors("x"));
  CHECK(open_error(path) == path + ": error: header is 1 bytes; expected a JSON object");
}

TEST_CASE("weights error: header JSON is not an object") {
  TempDir tmp;
  std::string path = tmp.write("array.safetensors", safetensors("[1, 2, 3]"));
  CHECK(open_error(path) == path + ": error: header is not a JSON object");
  path = tmp.write("string.safetensors", safetensors(R"("weights")"));
  CHECK(open_error(path) == path + ": error: header is not a JSON object");
}

TEST_CASE("weights error: tensor entry is not a {dtype, shape, data_offsets} object") {
  TempDir tmp;
  std::string path = tmp.write("fields.safetensors", safetensors(R"({"w": {"dtype": "F32", "shape": [1]}})"));
  CHECK(open_error(path) ==
        path + ": error: tensor 'w': expected an object with \"dtype\", \"shape\" and \"data_offsets\"");
  path = tmp.write("offsets.safetensors", safetensors(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", "abcd"));
  CHECK(open_error(path) == path + ": error: tensor 'w': \"data_offsets\" must be [begin, end] byte offsets");
  path = tmp.write("dtype.safetensors", safetensors(R"({"w": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}})", "abcd"));
  CHECK(open_error(path) == path + ": error: tensor 'w': \"dtype\" must be a string");
}

TEST_CASE("weights error: unknown dtype") {
  TempDir tmp;
  std::string path =
      tmp.write("c64.safetensors", safetensors(R"({"w": {"dtype": "C64", "shape": [2], "data_offsets": [0, 16]}})", std::string(16, '\0')));
  CHECK(open_error(path) ==
        path + ": error: tensor 'w': unsupported dtype \"C64\" (expected F32, F16, BF16, F64, I64, I32, I8, U8 or BOOL)");
}

TEST_CASE("weights error: truncated file (data_offsets beyond the data section)") {
  TempDir tmp;
  std::string real = read_all(source_path("tests/fixtures/classifier_d64_l2/weights.safetensors"));
  REQUIRE(real.size() > 1000);
  std::string path = tmp.write("truncated.safetensors", real.substr(0, real.size() - 100));
  // The header is 2896 bytes and the data 656912, so 656812 remain; the last tensor ends at 656912.
  CHECK(open_error(path) == path +
                                ": error: tensor 'transformer_encoder.layers.1.self_attn.out_proj.weight': data_offsets "
                                "[640528, 656912] lie outside the data section of 656812 bytes (truncated file?)");
  // begin > end is no valid range either.
  path = tmp.write("reversed.safetensors",
                   safetensors(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})", std::string(8, '\0')));
  CHECK(open_error(path) ==
        path + ": error: tensor 'w': data_offsets [4, 0] lie outside the data section of 8 bytes (truncated file?)");
}

TEST_CASE("weights error: byte size does not match shape and dtype") {
  TempDir tmp;
  std::string path = tmp.write(
      "size.safetensors", safetensors(R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}})", std::string(20, '\0')));
  CHECK(open_error(path) == path + ": error: tensor 'w': shape [2,3] of F32 needs 24 bytes, data_offsets give 20");
}

TEST_CASE("weights error: overlapping tensors") {
  TempDir tmp;
  std::string path = tmp.write(
      "overlap.safetensors",
      safetensors(R"({"a": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}, )"
                  R"("b": {"dtype": "F32", "shape": [6], "data_offsets": [16, 40]}})",
                  std::string(40, '\0')));
  CHECK(open_error(path) == path + ": error: tensors 'a' and 'b' overlap in the data section (corrupt header)");
}

TEST_CASE("weights error: shape with a negative or oversized dim") {
  TempDir tmp;
  std::string path = tmp.write(
      "neg.safetensors", safetensors(R"({"w": {"dtype": "F32", "shape": [-1, 3], "data_offsets": [0, 12]}})", std::string(12, '\0')));
  CHECK(open_error(path) == path + ": error: tensor 'w': \"shape\" must hold non-negative integers, got -1");
  path = tmp.write(
      "frac.safetensors", safetensors(R"({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", std::string(4, '\0')));
  CHECK(open_error(path) == path + ": error: tensor 'w': \"shape\" must hold non-negative integers, got 1.5");
  // An element count that overflows 64 bits must not wrap around to a size that fits.
  path = tmp.write("huge.safetensors",
                   safetensors(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})"));
  CHECK(open_error(path) == path + ": error: tensor 'w': shape [4294967296,4294967296] of F32 is too large: its size in "
                              "bytes exceeds 9223372036854775807");
}

TEST_CASE("weights error: from_memory names the image") {
  std::string image = safetensors("[]");
  CHECK(error_of([&] { kiln::WeightsFile::from_memory("in-memory", image.data(), image.size(), nullptr); }) ==
        "in-memory: error: header is not a JSON object");
}

TEST_CASE("weights error: through a model file, the model's location comes first") {
  TempDir tmp;
  std::string path = tmp.write("bad.safetensors", safetensors("[1, 2, 3]"));
  std::string msg = error_of([&] {
    kiln::parse_yaml_model(R"(kiln: 1
weights: bad.safetensors
inputs: {x: {dtype: f32, shape: [b, 4]}}
outputs: [y]
nodes:
  - {op: relu, in: x, out: y}
)",
                           "model.yaml", tmp.dir());
  });
  CHECK(msg == "model.yaml:2:10: error: cannot load weights: " + path + ": header is not a JSON object");
}
