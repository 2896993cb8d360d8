#pragma once
// Reading `.safetensors` weight files (the format PyTorch users export a state_dict to): an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype, shape and byte range, then the
// raw data. The file is memory-mapped; tensors are views into the mapping (copied only when misaligned).

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graph/graph.hpp"

namespace kiln {

struct WeightTensor {
  DType dtype = DType::f32;
  std::vector<std::int64_t> shape;
  ConstData data;  // data.owner keeps the mapping alive
};

class WeightsFile {
 public:
  /// Maps and validates the file; throws kiln::Error naming the file and what is wrong.
  static std::shared_ptr<WeightsFile> open(const std::string& path);
  /// Validates an in-memory image (`bytes` must outlive the returned object; `owner` may keep it alive).
  static std::shared_ptr<WeightsFile> from_memory(const std::string& name, const void* bytes, std::size_t size,
                                                  const std::shared_ptr<const void>& owner);

  const std::string& path() const { return path_; }
  const WeightTensor* find(const std::string& name) const;
  const std::map<std::string, WeightTensor>& tensors() const { return tensors_; }

 private:
  std::string path_;
  std::map<std::string, WeightTensor> tensors_;
};

/// One tensor to write: its name in the header, dtype, shape and bytes (numel × dtype size).
struct NamedTensor {
  std::string name;
  DType dtype = DType::f32;
  std::vector<std::int64_t> shape;
  const void* data = nullptr;
  std::size_t bytes = 0;
};

/// A `.safetensors` image of `tensors` (header keys sorted by name, data in that order, each tensor's
/// offset a multiple of 64 so that a reader can map it aligned). Throws kiln::Error when a name repeats or
/// a tensor's bytes do not match its shape and dtype.
std::string safetensors_image(std::vector<NamedTensor> tensors);

}  // namespace kiln
