#pragma once
/// \file
/// Element types and tensors as the public API sees them.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

/// Element types of tensors.
enum class DType : std::uint8_t { f32, f16, bf16, f64, i64, i32, i8, u8, boolean };

/// Size of one element in bytes.
std::size_t dtype_size(DType t);
/// Short name used in model files and IR dumps: "f32", "i64", ...
std::string_view dtype_name(DType t);
/// Parses a short name; returns false when the name is unknown.
bool parse_dtype(std::string_view name, DType* out);

/// A dense, row-major tensor. It either owns its buffer (`Tensor::empty`) or is a view over memory the
/// caller owns (`Tensor::view`): a view never copies, never frees, and must not outlive the caller's buffer.
/// Copies of a Tensor share the same buffer (like a shared_ptr).
class Tensor {
 public:
  Tensor() = default;
  /// A new owned tensor, zero-filled, 64-byte aligned.
  static Tensor empty(DType dtype, std::vector<std::int64_t> shape);
  /// A view over `data`, which the caller keeps alive and unmodified for as long as the view is used.
  static Tensor view(DType dtype, std::vector<std::int64_t> shape, void* data);
  /// Builds an owned f32 or i64 tensor from values (a convenience for tests and examples).
  static Tensor from_f32(std::vector<std::int64_t> shape, const std::vector<float>& values);
  static Tensor from_i64(std::vector<std::int64_t> shape, const std::vector<std::int64_t>& values);

  DType dtype() const { return dtype_; }
  const std::vector<std::int64_t>& shape() const { return shape_; }
  std::int64_t numel() const;
  std::size_t bytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }
  bool defined() const { return data_ != nullptr || numel() == 0; }
  void* data() const { return data_; }
  template <class T>
  T* data_as() const {
    return static_cast<T*>(data_);
  }

 private:
  DType dtype_ = DType::f32;
  std::vector<std::int64_t> shape_;
  void* data_ = nullptr;
  std::shared_ptr<void> owner_;  // null for views
};

/// "[2,3]" — for messages.
std::string shape_to_string(const std::vector<std::int64_t>& shape);

}  // namespace kiln
