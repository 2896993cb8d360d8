#pragma once
// Small predicates shared by the pattern passes.

#include <string>

#include "graph/graph.hpp"

namespace kiln {

/// The node producing `v` when it is an `op` node, else null.
inline Node* producer_of(const Value* v, const char* op) {
  return v && v->producer && v->producer->op == op ? v->producer : nullptr;
}

/// Empty when `v` is used exactly once and is not a graph output; else why a fusion cannot consume it.
inline std::string why_not_single_use(const Graph& g, const Value* v) {
  if (g.is_output(v)) return "its output '" + v->name + "' is a graph output";
  if (v->users.size() != 1) return "its output '" + v->name + "' has " + std::to_string(v->users.size()) + " uses";
  return {};
}

/// Input i of `node`, or null when absent.
inline Value* input_or_null(const Node* node, std::size_t i) { return i < node->inputs.size() ? node->inputs[i] : nullptr; }

}  // namespace kiln
