// Fuzz target: the C API's kiln_model_load_from_memory (runtime/c_api, Model::load_from_memory): YAML text
// and a .safetensors image, the full pass pipeline (opt level 2), then the model's input and output names
// and a session created and freed (plans are compiled on first run, which this target does not do).
//
// Input: the YAML text, optionally followed by a line "#safetensors" (a YAML comment) and the bytes of the
// weights image after it. Without that line the weights are the classifier_d64_l2 fixture's.
// Status KILN_OK, KILN_ERROR (bad input) and KILN_OUT_OF_MEMORY are expected; KILN_INVALID_ARGUMENT or
// KILN_INTERNAL_ERROR (a C++ exception other than kiln::Error inside Kiln) is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "fuzz/fuzz_util.hpp"
#include "kiln/kiln.h"

namespace {
void check(kiln_status s, const char* what) {
  if (s == KILN_OK || s == KILN_ERROR || s == KILN_OUT_OF_MEMORY) return;
  std::fprintf(stderr, "fuzz_c_api: %s returned %d: %s\n", what, static_cast<int>(s), kiln_last_error());
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string default_weights =
      kiln::fuzz::read_file(kiln::fuzz::source_path("tests/fixtures/classifier_d64_l2/weights.safetensors"));
  const std::string input(reinterpret_cast<const char*>(data), size);
  static const std::string marker = "\n#safetensors\n";
  const auto at = input.find(marker);
  const std::string yaml = input.substr(0, at);
  const char* weights = default_weights.data();
  std::size_t weights_size = default_weights.size();
  if (at != std::string::npos) {
    weights = input.data() + at + marker.size();
    weights_size = input.size() - at - marker.size();
  }
  kiln_model* model = nullptr;
  kiln_status s = kiln_model_load_from_memory(yaml.data(), yaml.size(), weights_size ? weights : nullptr, weights_size, &model);
  check(s, "kiln_model_load_from_memory");
  if (s != KILN_OK) return 0;
  for (std::size_t i = 0; i < kiln_model_num_inputs(model); ++i)
    if (!kiln_model_input_name(model, i)) std::abort();
  for (std::size_t i = 0; i < kiln_model_num_outputs(model); ++i)
    if (!kiln_model_output_name(model, i)) std::abort();
  kiln_session_options options;
  kiln_session_options_init(&options);
  options.intra_op_threads = 1;
  kiln_session* session = nullptr;
  s = kiln_session_create(model, &options, &session);
  check(s, "kiln_session_create");
  kiln_session_free(session);
  kiln_model_free(model);
  return 0;
}
