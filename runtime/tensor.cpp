#include <cstdlib>
#include <cstring>

#include "graph/checked.hpp"
#include "graph/types.hpp"
#include "kiln/tensor.hpp"

namespace kiln {

std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32:
    case DType::i32: return 4;
    case DType::f16:
    case DType::bf16: return 2;
    case DType::f64:
    case DType::i64: return 8;
    case DType::i8:
    case DType::u8:
    case DType::boolean: return 1;
  }
  return 0;
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
    case DType::f64: return "f64";
    case DType::i64: return "i64";
    case DType::i32: return "i32";
    case DType::i8: return "i8";
    case DType::u8: return "u8";
    case DType::boolean: return "bool";
  }
  return "?";
}

bool parse_dtype(std::string_view name, DType* out) {
  for (DType t : {DType::f32, DType::f16, DType::bf16, DType::f64, DType::i64, DType::i32, DType::i8, DType::u8,
                  DType::boolean}) {
    if (dtype_name(t) == name) {
      *out = t;
      return true;
    }
  }
  return false;
}

std::int64_t Tensor::numel() const {
  auto n = checked::numel(shape_);
  if (!n)
    throw Error("error: tensor shape " + shape_to_string(shape_) + " has a negative dim or more than " +
                std::to_string(checked::kMaxSize) + " elements");
  return *n;
}

Tensor Tensor::empty(DType dtype, std::vector<std::int64_t> shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  for (auto d : t.shape_)
    if (d < 0) throw Error("error: negative dimension in tensor shape " + shape_to_string(t.shape_));
  const auto size = checked::tensor_bytes(t.shape_, dtype_size(dtype));
  if (!size || *size > checked::kMaxSize - 63)
    throw Error("error: tensor shape " + shape_to_string(t.shape_) + " of " + std::string(dtype_name(dtype)) +
                " is too large: its size in bytes exceeds " + std::to_string(checked::kMaxSize));
  std::size_t bytes = (static_cast<std::size_t>(*size) + 63) / 64 * 64;
  if (bytes == 0) bytes = 64;
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw Error("error: out of memory allocating " + std::to_string(bytes) + " bytes");
  std::memset(p, 0, bytes);
  t.owner_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  t.data_ = p;
  return t;
}

Tensor Tensor::view(DType dtype, std::vector<std::int64_t> shape, void* data) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = data;
  return t;
}

Tensor Tensor::from_f32(std::vector<std::int64_t> shape, const std::vector<float>& values) {
  Tensor t = empty(DType::f32, std::move(shape));
  if (static_cast<std::size_t>(t.numel()) != values.size())
    throw Error("error: " + std::to_string(values.size()) + " values for shape " + shape_to_string(t.shape()));
  std::memcpy(t.data(), values.data(), t.bytes());
  return t;
}

Tensor Tensor::from_i64(std::vector<std::int64_t> shape, const std::vector<std::int64_t>& values) {
  Tensor t = empty(DType::i64, std::move(shape));
  if (static_cast<std::size_t>(t.numel()) != values.size())
    throw Error("error: " + std::to_string(values.size()) + " values for shape " + shape_to_string(t.shape()));
  std::memcpy(t.data(), values.data(), t.bytes());
  return t;
}

std::string shape_to_string(const std::vector<std::int64_t>& shape) { return shape_str(concrete_shape(shape)); }

}  // namespace kiln
