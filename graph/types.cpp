#include "graph/types.hpp"

#include "graph/checked.hpp"

#include <cmath>
#include <cstdio>
#include <sstream>

namespace kiln {

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i) out += ",";
    out += s[i].str();
  }
  return out + "]";
}

Shape concrete_shape(const std::vector<std::int64_t>& dims) {
  Shape s;
  s.reserve(dims.size());
  for (auto d : dims) s.push_back(Dim::of(d));
  return s;
}

bool is_concrete(const Shape& s) {
  for (const auto& d : s)
    if (!d.concrete()) return false;
  return true;
}

std::vector<std::int64_t> dims_of(const Shape& s) {
  std::vector<std::int64_t> out;
  out.reserve(s.size());
  for (const auto& d : s) {
    if (!d.concrete()) fail("internal: symbolic dim '" + d.sym + "' where a concrete shape is required");
    out.push_back(d.value);
  }
  return out;
}

// Both throw kiln::Error rather than overflow (undefined behaviour) on dims from untrusted input.
std::int64_t numel_of(const Shape& s) {
  auto n = checked::numel(dims_of(s));
  if (!n)
    fail("shape " + shape_str(s) + " has too many elements: the count exceeds " + std::to_string(checked::kMaxSize));
  return *n;
}

Dim mul_dims(const Dim& a, const Dim& b) {
  if (a.concrete() && b.concrete()) {
    auto p = checked::mul(a.value, b.value);
    if (!p)
      fail("dims " + a.str() + " and " + b.str() + " multiply to more than " + std::to_string(checked::kMaxSize) +
           " elements");
    return Dim::of(*p);
  }
  if (a.is(1)) return b;
  if (b.is(1)) return a;
  return Dim::symbol(a.str() + "*" + b.str());
}

std::string TensorType::str() const {
  return std::string(dtype_name(dtype)) + shape_str(shape) + (layout.empty() ? "" : "{" + layout + "}");
}

std::string SourceLoc::str() const {
  if (!known()) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

void fail_at(const SourceLoc& loc, const std::string& message) {
  if (loc.known()) throw Error(loc.str() + ": error: " + message);
  if (!loc.file.empty()) throw Error(loc.file + ": error: " + message);
  throw Error("error: " + message);
}

void fail(const std::string& message) { throw Error("error: " + message); }

const char* attr_type_name(AttrType t) {
  switch (t) {
    case AttrType::Int: return "int";
    case AttrType::Float: return "float";
    case AttrType::String: return "string";
    case AttrType::Ints: return "int list";
    case AttrType::Floats: return "float list";
    case AttrType::Bool: return "bool";
  }
  return "?";
}

AttrType attr_type_of(const Attr& a) { return static_cast<AttrType>(a.index()); }

namespace {
std::string float_str(double v) {
  // Shortest form that reads back to the same double, with a decimal point or exponent so that it
  // never reads as an int.
  char buf[64];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s = buf;
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}
}  // namespace

std::string attr_str(const Attr& a) {
  std::ostringstream os;
  switch (attr_type_of(a)) {
    case AttrType::Int: os << std::get<std::int64_t>(a); break;
    case AttrType::Float: os << float_str(std::get<double>(a)); break;
    case AttrType::String: os << '"' << std::get<std::string>(a) << '"'; break;
    case AttrType::Ints: {
      os << '[';
      const auto& v = std::get<std::vector<std::int64_t>>(a);
      for (std::size_t i = 0; i < v.size(); ++i) os << (i ? "," : "") << v[i];
      os << ']';
      break;
    }
    case AttrType::Floats: {
      os << '[';
      const auto& v = std::get<std::vector<double>>(a);
      for (std::size_t i = 0; i < v.size(); ++i) os << (i ? "," : "") << float_str(v[i]);
      os << ']';
      break;
    }
    case AttrType::Bool: os << (std::get<bool>(a) ? "true" : "false"); break;
  }
  return os.str();
}

}  // namespace kiln
