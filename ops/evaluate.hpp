#pragma once
// Runs one node on constant inputs, outside any plan: what constant folding computes at compile time.

#include <vector>

#include "graph/graph.hpp"

namespace kiln {

/// Computes `node` with its op's own kernel, once: every input must be a constant (or an absent optional
/// input) and every type concrete. Returns one freshly allocated constant per output (64-byte aligned).
/// Throws kiln::Error at the node when the kernel cannot be made or memory runs out.
std::vector<ConstData> evaluate_constant_node(const Node& node);

}  // namespace kiln
