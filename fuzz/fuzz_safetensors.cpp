// Fuzz target: a .safetensors image (frontends/safetensors): the 8-byte header length, the JSON header,
// every tensor's dtype, shape and byte range. Each tensor the reader accepts is read in full, so that a
// range reaching outside the image is an ASan report.
#include <cstddef>
#include <cstdint>

#include "frontends/safetensors.hpp"
#include "fuzz/fuzz_util.hpp"
#include "kiln/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    auto file = kiln::WeightsFile::from_memory("fuzz.safetensors", data, size, nullptr);
    for (const auto& [name, t] : file->tensors()) kiln::fuzz::touch(t.data.data, t.data.bytes);
  } catch (const kiln::Error&) {
  }
  return 0;
}
