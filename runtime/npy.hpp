#pragma once
// Reading and writing NumPy `.npy` files (format versions 1-3, little-endian, C order), for kilnc and tests.

#include <string>

#include "kiln/tensor.hpp"

namespace kiln {

/// Reads a `.npy` file into an owned tensor; throws kiln::Error naming the file on any problem.
Tensor read_npy(const std::string& path);
/// Parses `.npy` bytes; `name` is used in messages.
Tensor parse_npy(const std::string& bytes, const std::string& name);
/// Writes a tensor as a version 1.0 `.npy` file.
void write_npy(const std::string& path, const Tensor& t);

}  // namespace kiln
