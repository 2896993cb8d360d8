#pragma once
// Small predicates shared by the pattern passes.

#include <cmath>
#include <cstring>
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

/// Whether `v` is a one-element f32 constant; its value goes to `out`.
inline bool scalar_constant(const Value* v, float* out) {
  if (!v || !v->is_constant() || v->type.dtype != DType::f32 || !is_concrete(v->type.shape) ||
      numel_of(v->type.shape) != 1)
    return false;
  std::memcpy(out, v->constant.data, sizeof(float));
  return true;
}

/// Whether `v` is a one-element f32 constant equal to `want` (relative tolerance 1e-6).
inline bool is_scalar(const Value* v, double want) {
  float c = 0;
  return scalar_constant(v, &c) && std::fabs(c - want) <= 1e-6 * std::max(1.0, std::fabs(want));
}

/// For a binary node with one scalar operand equal to `want`, the other operand; else null.
/// `commutes`: the scalar may be on either side (mul, add), else only on the right (div, sub).
inline Value* other_than_scalar(const Node* n, double want, bool commutes) {
  if (is_scalar(n->inputs[1], want)) return n->inputs[0];
  if (commutes && is_scalar(n->inputs[0], want)) return n->inputs[1];
  return nullptr;
}

/// Input i of `node`, or null when absent.
inline Value* input_or_null(const Node* node, std::size_t i) {
  return i < node->inputs.size() ? node->inputs[i] : nullptr;
}

/// Folds `add` (= node's output + residual) into `node` as its residual input `slot`: the add is removed
/// and node takes over its output value (name kept). Returns the remark text for PassContext::fired.
inline std::string absorb_residual(Graph& g, Node* node, Node* add, Value* residual, std::size_t slot) {
  std::string remark = "absorbed " + add->label() + " (residual '" + residual->name + "')";
  Value* out = add->outputs[0];
  g.remove_node(add);
  while (node->inputs.size() < slot) g.set_input(node, node->inputs.size(), nullptr);
  g.set_input(node, slot, residual);
  g.set_output(node, 0, out);
  return remark;
}

}  // namespace kiln
