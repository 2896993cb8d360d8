#pragma once
// The activation vocabulary: every elementwise function Kiln knows by name, in one table
// (ops/activation.cpp). A row gives the value of the `activation` attribute of the ops that fold one in
// (linear, conv2d), the unary op that computes it on its own (relu, gelu, clip, ...: ops/unary.cpp makes
// their schemas from the table), that op's parameters, whether it can be
// folded into a producer as a post-op, and, for the kernels, its oneDNN eltwise algorithm and whether
// Kiln's GEMM epilogue implements it. Adding an activation is a row there, plus the registration of its
// unary op by name (a KILN_OP line in ops/op_list.inc, a KILN_UNARY_OP line in ops/unary.cpp); the
// fusion passes and the ops that absorb post-ops (conv2d: every post-op but gelu; linear: those with a
// GEMM epilogue) pick it up.
//
// This header belongs to the IR (graph/): schemas (OpSchema::post_ops) and passes include it. The table
// itself is defined in ops/activation.cpp, with its kernel side (oneDNN algorithm, GEMM epilogue, schema
// attributes) declared in ops/eltwise.hpp.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "graph/graph.hpp"

namespace kiln {

/// A float parameter of an activation: an attribute of its unary op (clip's "min"), and of an op that
/// folds it in, named <activation>_<param> (conv2d's "clip_min").
struct ActivationParam {
  const char* name;
  std::optional<double> default_value;  // absent: the unary op requires it
  const char* doc;
};

/// One activation: one row of the table.
struct ActivationDef {
  /// The value of the `activation` attribute ("gelu_tanh").
  const char* name;
  /// The unary op that computes it ("gelu"), and that op's one-line doc (the same on every row of the op).
  const char* op;
  const char* doc;
  /// For an op with variants (gelu's approximate="none" | "tanh"): the string attribute that selects the
  /// row, this row's value of it, and the attribute's doc. The op's first row gives the default.
  const char* variant_attr = nullptr;
  const char* variant = nullptr;
  const char* variant_doc = nullptr;
  std::vector<ActivationParam> params;
  /// params[0] <= params[1] (clip's min and max).
  bool ordered_params = false;
  /// Whether it can be folded into a producer as a post-op (exp, sqrt, pow and erf cannot).
  bool post_op = false;
  /// Whether Kiln's GEMM epilogue (ops/gemm.hpp) applies it.
  bool gemm_epilogue = false;

  /// The attribute of a folding op that holds params[i] ("clip_min").
  std::string param_attr(std::size_t i) const { return std::string(name) + "_" + params.at(i).name; }
};

/// Every activation, in table order.
const std::vector<const ActivationDef*>& activations();
/// The activation whose `activation` attribute value is `name`, or null ("none" included).
const ActivationDef* find_activation(std::string_view name);
/// The activation a node of a unary op computes (its op and variant attribute), or null when the node's op
/// is not one of the table's.
const ActivationDef* activation_of(const Node& node);

/// Which activations an op can absorb.
using ActivationFilter = bool (*)(const ActivationDef&);

/// What an op can fold into itself as post-ops (OpSchema::post_ops); the fuse-activation and
/// fuse-residual passes read it.
struct PostOps {
  /// The activations its `activation` attribute takes ("none" always); null: it applies none. Parameters
  /// of the accepted ones are attributes <activation>_<param> of the op.
  ActivationFilter activations = nullptr;
  /// The input through which it adds a residual of its output's shape, or -1.
  int residual = -1;
  /// Whether it applies the activation before adding the residual (linear: act(x·Wᵀ + b) + r) or after
  /// (conv2d: act(conv(x) + b + r)). The graph holds the two in that order, so the passes fold an
  /// op's post-ops in that order too: activation-first ops early in the pipeline (fuse-activation, then
  /// fuse-residual), the others late (fuse-residual, then fuse-activation), after fold-conv-batch-norm.
  bool activation_first = true;

  bool accepts(const ActivationDef& a) const { return activations && activations(a); }
};

/// "none, relu, ..." for the activations `filter` accepts, in table order.
std::string activation_names(ActivationFilter filter);

}  // namespace kiln
