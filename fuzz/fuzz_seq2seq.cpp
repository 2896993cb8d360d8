// Fuzz target: seq2seq model text (frontends/yaml, "Sequence-to-sequence models"): encoder, decoder,
// states, generate and tokenizer sections with their cross-checks, with the date_translation weights
// available by name. Loading only: nothing is generated.
#include <cstddef>
#include <cstdint>
#include <string>

#include "frontends/yaml/seq2seq.hpp"
#include "fuzz/fuzz_util.hpp"
#include "kiln/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const kiln::fuzz::LinkDir dir({
      {"lstm.safetensors", "examples/date_translation/lstm.safetensors"},
      {"transformer.safetensors", "examples/date_translation/transformer.safetensors"},
  });
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (!kiln::fuzz::confined(text)) return -1;
  try {
    auto spec = kiln::parse_yaml_seq2seq(text, "model.yaml", dir.path());
    (void)spec;
  } catch (const kiln::Error&) {
  }
  return 0;
}
