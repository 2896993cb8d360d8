// Fuzz target: .onnx bytes (frontends/onnx): protobuf parsing, the structure checks, the ONNX checker, the
// initializers (raw, typed and external data), graph inputs, and every op mapping with its shape rules.
// The bytes are written to model.onnx in a private temporary folder, which holds nothing else: external data
// must be a relative path inside it (absolute paths and '..' are refused), so a model can only name files
// that do not exist or model.onnx itself. Loading only: no plan is compiled and nothing runs.
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "frontends/onnx/onnx_frontend.hpp"
#include "fuzz/fuzz_util.hpp"
#include "kiln/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const kiln::fuzz::LinkDir dir({});
  static const std::string path = dir.path() + "/model.onnx";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    auto graph = kiln::load_onnx_model(path);
    (void)graph;
  } catch (const kiln::Error&) {
  }
  return 0;
}
