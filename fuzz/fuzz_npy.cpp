// Fuzz target: .npy bytes (runtime/npy): magic, version 1-3 header, dtype, order and shape. The tensor
// the reader returns is read in full.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_util.hpp"
#include "kiln/error.hpp"
#include "runtime/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    kiln::Tensor t = kiln::parse_npy(std::string(reinterpret_cast<const char*>(data), size), "fuzz.npy");
    if (t.data()) kiln::fuzz::touch(t.data(), t.bytes());
  } catch (const kiln::Error&) {
  }
  return 0;
}
