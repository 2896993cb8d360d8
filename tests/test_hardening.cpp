// Hostile inputs (issue 13): each case is a file or tensor that once crashed, hung or corrupted memory,
// and must now fail with a located kiln::Error. Hostile files are generated here.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "frontends/safetensors.hpp"
#include "frontends/yaml/seq2seq.hpp"
#include "frontends/yaml/yaml_frontend.hpp"
#include "graph/types.hpp"
#include "runtime/kplan.hpp"
#include "runtime/model_impl.hpp"
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
