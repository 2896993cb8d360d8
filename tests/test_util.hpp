#pragma once
// Helpers shared by the tests.

#include <string>

#include <doctest/doctest.h>

#include "kiln/kiln.hpp"

namespace kiln::test {

/// Absolute path of a file in the source tree.
inline std::string source_path(const std::string& rel) { return std::string(KILN_SOURCE_DIR) + "/" + rel; }

/// The message of the kiln::Error that `fn` throws; fails the test when it throws nothing or another type.
template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const kiln::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected kiln::Error, got std::exception: " << e.what());
  }
  FAIL("expected kiln::Error, nothing was thrown");
  return {};
}

/// Max |a - b| over two f32 tensors of equal shape (checked).
double max_abs_diff(const Tensor& a, const Tensor& b);

}  // namespace kiln::test
