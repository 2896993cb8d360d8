// Fuzz target: YAML model text (frontends/yaml), parsed, verified and shape-inferred with the weights files
// of the examples and fixtures available by name. Loading only: no plan is compiled and nothing runs
// (fuzz_c_api also runs the pass pipeline).
#include <cstddef>
#include <cstdint>
#include <string>

#include "frontends/yaml/yaml_frontend.hpp"
#include "fuzz/fuzz_util.hpp"
#include "kiln/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const kiln::fuzz::LinkDir dir({
      {"weights.safetensors", "tests/fixtures/classifier_d64_l2/weights.safetensors"},
      {"transformer_classifier.safetensors", "examples/transformer_classifier/transformer_classifier.safetensors"},
      {"mobilenet_tiny.safetensors", "examples/mobilenet_tiny/mobilenet_tiny.safetensors"},
      {"resnet_tiny.safetensors", "examples/resnet_tiny/resnet_tiny.safetensors"},
  });
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (!kiln::fuzz::confined(text)) return -1;
  try {
    auto graph = kiln::parse_yaml_model(text, "model.yaml", dir.path());
    (void)graph;
  } catch (const kiln::Error&) {
  }
  return 0;
}
