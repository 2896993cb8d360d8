#pragma once
// Helpers shared by the tests.

#include <filesystem>
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

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

/// A fresh temporary folder, removed with everything in it when the object goes away.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string dir() const { return path_.string(); }
  std::string path(const std::string& name) const { return (path_ / name).string(); }
  /// Writes `bytes` to NAME in the folder; returns the file's path.
  std::string write(const std::string& name, const std::string& bytes) const;

 private:
  std::filesystem::path path_;
};

}  // namespace kiln::test
