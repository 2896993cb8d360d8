#pragma once
// Symbolic dims bound at compile time (`kilnc compile --shape NAME=DIM` or `NAME=MIN..MAX`): the spec a
// tool parses, and binding it into a graph's inputs. A plan file records the bindings (runtime/kplan.hpp).

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "graph/graph.hpp"

namespace kiln {

/// A symbolic dim bound at compile time: fixed when min == max, else the range min..max (inclusive).
struct DimRange {
  std::int64_t min = 1;
  std::int64_t max = 1;
  bool fixed() const { return min == max; }
  std::string str() const;  // "32" or "1..512"
};
using DimRanges = std::map<std::string, DimRange>;

/// Parses `--shape` arguments (NAME=DIM or NAME=MIN..MAX); throws kiln::Error naming the bad argument.
DimRanges parse_shape_args(const std::vector<std::string>& args);

namespace detail {

/// Makes the fixed dims of `dims` concrete in `g`'s inputs (re-inferring shapes when any was bound) and
/// returns the ranged ones, which stay symbolic. Throws kiln::Error when `dims` names a dim no input has.
DimRanges bind_dims(Graph& g, const DimRanges& dims);

}  // namespace detail

}  // namespace kiln
