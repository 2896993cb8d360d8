#pragma once
// Checked arithmetic for every size computed from untrusted numbers (file headers, declared shapes,
// tensor dims, options): element counts, byte sizes, offsets. Each helper returns std::nullopt where the
// plain expression would wrap (unsigned) or overflow (signed: undefined behaviour), so that callers
// refuse the input with a message instead of computing with a wrong size.
//
// Counts and byte sizes are bounded by INT64_MAX (kMaxSize), so that they fit both std::int64_t and
// std::size_t and their differences stay representable.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>

namespace kiln::checked {

inline constexpr std::int64_t kMaxSize = std::numeric_limits<std::int64_t>::max();

/// a * b for a, b >= 0; nullopt when either is negative or the product exceeds kMaxSize.
inline std::optional<std::int64_t> mul(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

/// a + b for a, b >= 0; nullopt when either is negative or the sum exceeds kMaxSize.
inline std::optional<std::int64_t> add(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

/// Unsigned sizes (offsets, byte counts read from a file): nullopt past kMaxSize.
inline std::optional<std::uint64_t> mul_u64(std::uint64_t a, std::uint64_t b) {
  std::uint64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r) || r > static_cast<std::uint64_t>(kMaxSize)) return std::nullopt;
  return r;
}
inline std::optional<std::uint64_t> add_u64(std::uint64_t a, std::uint64_t b) {
  std::uint64_t r = 0;
  if (__builtin_add_overflow(a, b, &r) || r > static_cast<std::uint64_t>(kMaxSize)) return std::nullopt;
  return r;
}

/// The element count of `dims` (any range of integers); nullopt when a dim is negative or the product of
/// the non-zero dims exceeds kMaxSize (so that no partial product of the dims overflows either, even
/// when a zero dim makes the count 0).
template <class Dims>
std::optional<std::int64_t> numel(const Dims& dims) {
  std::int64_t n = 1;
  bool zero = false;
  for (const auto& d : dims) {
    const auto v = static_cast<std::int64_t>(d);
    if (v < 0) return std::nullopt;
    if (v == 0) {
      zero = true;
      continue;
    }
    auto m = mul(n, v);
    if (!m) return std::nullopt;
    n = *m;
  }
  return zero ? 0 : n;
}

/// Bytes of `count` elements of `element_bytes` each; nullopt past kMaxSize.
inline std::optional<std::int64_t> bytes(std::int64_t count, std::size_t element_bytes) {
  return mul(count, static_cast<std::int64_t>(element_bytes));
}

/// Bytes of a tensor of `dims` with `element_bytes` per element; nullopt when the count or bytes overflow.
template <class Dims>
std::optional<std::int64_t> tensor_bytes(const Dims& dims, std::size_t element_bytes) {
  auto n = numel(dims);
  if (!n) return std::nullopt;
  return bytes(*n, element_bytes);
}

}  // namespace kiln::checked
