#pragma once
// Shapes with symbolic dims, tensor types, attributes and source locations: the vocabulary of the IR.

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "kiln/error.hpp"
#include "kiln/tensor.hpp"

namespace kiln {

/// One dimension: a concrete size, or a named symbol (`batch`, `seq`) bound when a plan is compiled.
/// Derived symbolic sizes are named by their expression (`batch*seq`).
struct Dim {
  std::int64_t value = 0;
  std::string sym;  // non-empty for a symbolic dim

  static Dim of(std::int64_t v) { return Dim{v, {}}; }
  static Dim symbol(std::string s) { return Dim{-1, std::move(s)}; }
  bool concrete() const { return sym.empty(); }
  bool is(std::int64_t v) const { return concrete() && value == v; }
  bool operator==(const Dim& o) const { return value == o.value && sym == o.sym; }
  bool operator!=(const Dim& o) const { return !(*this == o); }
  std::string str() const { return concrete() ? std::to_string(value) : sym; }
};

using Shape = std::vector<Dim>;

std::string shape_str(const Shape& s);  // "[batch,seq,128]"
Shape concrete_shape(const std::vector<std::int64_t>& dims);
bool is_concrete(const Shape& s);
std::vector<std::int64_t> dims_of(const Shape& s);  // requires a concrete shape
std::int64_t numel_of(const Shape& s);              // requires a concrete shape
/// The product of two dims: concrete when both are, else a symbolic expression.
Dim mul_dims(const Dim& a, const Dim& b);

struct TensorType {
  DType dtype = DType::f32;
  Shape shape;
  /// Memory layout: empty for plain row-major, else a blocked or permuted oneDNN layout by name
  /// ("nhwc", "nChw8c", ...; see ops/common.cpp). Assigned by shape rules and the assign-layouts pass.
  std::string layout;
  int rank() const { return static_cast<int>(shape.size()); }
  bool plain() const { return layout.empty(); }
  std::string str() const;  // "f32[batch,seq,128]", "f32[1,16,8,8]{nChw8c}"
  bool operator==(const TensorType& o) const { return dtype == o.dtype && shape == o.shape && layout == o.layout; }
};

/// Where a node or value came from, for diagnostics.
struct SourceLoc {
  std::string file;
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based
  bool known() const { return line > 0; }
  std::string str() const;  // "model.yaml:12:5"
};

/// Throws kiln::Error("FILE:LINE:COL: error: MESSAGE").
[[noreturn]] void fail_at(const SourceLoc& loc, const std::string& message);
/// Throws kiln::Error("error: MESSAGE").
[[noreturn]] void fail(const std::string& message);

/// Typed attribute values. The order of alternatives is the order of AttrType.
using Attr = std::variant<std::int64_t, double, std::string, std::vector<std::int64_t>, std::vector<double>, bool>;
enum class AttrType : std::uint8_t { Int, Float, String, Ints, Floats, Bool };

const char* attr_type_name(AttrType t);  // "int", "float", ...
AttrType attr_type_of(const Attr& a);
std::string attr_str(const Attr& a);  // IR text form: 8, 1.0e-05, "erf", [1,2], true

using AttrMap = std::map<std::string, Attr>;  // sorted: printing and hashing are stable

}  // namespace kiln
