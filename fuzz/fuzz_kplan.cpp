// Fuzz target: a .kplan plan file image (runtime/kplan). The harness writes the correct checksum into the
// header before loading, so that mutations get past the checksum and reach the reader proper (a random
// change would otherwise fail there, as it should). The loaded model's IR is printed (to a string).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "fuzz/fuzz_util.hpp"
#include "kiln/error.hpp"
#include "kiln/model.hpp"
#include "runtime/kplan.hpp"
#include "runtime/model_impl.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // A 64-byte aligned copy, as a mapped file would be (the reader copies misaligned images itself).
  const std::size_t room = (size + 63) / 64 * 64 + 64;
  std::shared_ptr<unsigned char> image(static_cast<unsigned char*>(std::aligned_alloc(64, room)), std::free);
  std::memcpy(image.get(), data, size);
  if (size >= kiln::kKplanChecksumOffset + 8) {
    const std::uint64_t sum = kiln::kplan_checksum(image.get(), size);
    for (int i = 0; i < 8; ++i) image.get()[kiln::kKplanChecksumOffset + i] = static_cast<unsigned char>(sum >> (8 * i));
  }
  try {
    auto impl = kiln::detail::load_kplan("fuzz.kplan", image.get(), size, image);
    kiln::Model model(impl);
    (void)model.inputs();
    (void)model.outputs();
    (void)model.ir(true);
  } catch (const kiln::Error&) {
  }
  return 0;
}
