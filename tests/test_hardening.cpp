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
