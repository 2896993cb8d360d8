#include "runtime/dims.hpp"

#include <set>

#include "graph/types.hpp"

namespace kiln {

std::string DimRange::str() const {
  return fixed() ? std::to_string(min) : std::to_string(min) + ".." + std::to_string(max);
}

DimRanges parse_shape_args(const std::vector<std::string>& args) {
  DimRanges out;
  auto number = [](const std::string& s, std::int64_t* v) {
    if (s.empty() || s.size() > 12 || s.find_first_not_of("0123456789") != std::string::npos) return false;
    *v = std::stoll(s);
    return *v > 0;
  };
  for (const auto& a : args) {
    auto bad = [&](const std::string& why) { fail("--shape '" + a + "': " + why); };
    auto eq = a.find('=');
    if (eq == std::string::npos || eq == 0) bad("expected NAME=DIM or NAME=MIN..MAX (e.g. seq=128 or seq=1..512)");
    std::string name = a.substr(0, eq), value = a.substr(eq + 1);
    DimRange r;
    auto dots = value.find("..");
    if (dots == std::string::npos) {
      if (!number(value, &r.min)) bad("expected a positive integer or MIN..MAX after '='");
      r.max = r.min;
    } else {
      if (!number(value.substr(0, dots), &r.min) || !number(value.substr(dots + 2), &r.max))
        bad("expected positive integers in MIN..MAX");
      if (r.min > r.max) bad("the range is empty (MIN > MAX)");
    }
    if (!out.emplace(name, r).second) bad("dim '" + name + "' is given twice");
  }
  return out;
}

namespace detail {

DimRanges bind_dims(Graph& g, const DimRanges& dims) {
  std::set<std::string> symbols;
  for (Value* in : g.inputs)
    for (Dim& d : in->type.shape)
      if (!d.concrete()) symbols.insert(d.sym);
  for (const auto& [name, range] : dims) {
    if (symbols.count(name)) continue;
    std::string known;
    for (const auto& s : symbols) known += (known.empty() ? "" : ", ") + s;
    fail("--shape " + name + "=" + range.str() + ": model '" + g.name + "' has no input dim named '" + name + "'" +
         (known.empty() ? " (its inputs have no symbolic dims)" : " (its symbolic dims: " + known + ")"));
  }
  bool bound = false;
  for (Value* in : g.inputs)
    for (Dim& d : in->type.shape) {
      auto it = d.concrete() ? dims.end() : dims.find(d.sym);
      if (it != dims.end() && it->second.fixed()) {
        d = Dim::of(it->second.min);
        bound = true;
      }
    }
  if (bound) g.infer_shapes();
  DimRanges ranges;
  for (const auto& [name, range] : dims)
    if (!range.fixed()) ranges.emplace(name, range);
  return ranges;
}

}  // namespace detail

}  // namespace kiln
