#pragma once
// The kernel side of the activation table (graph/activation.hpp): each activation's oneDNN eltwise
// algorithm, Kiln's GEMM epilogue for it, and the schema attributes of the ops that absorb activations.
// Defined in ops/activation.cpp, next to the table.

#include <optional>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "graph/activation.hpp"
#include "ops/gemm.hpp"
#include "ops/op.hpp"

namespace kiln {

/// A oneDNN eltwise algorithm with its alpha and beta.
struct Eltwise {
  dnnl::algorithm alg;
  float alpha = 0.f, beta = 0.f;
};

/// An activation oneDNN lacks (erf, selu, hard_sigmoid, ...), computed by a loop of Kiln's over n elements:
/// y[i] = f(x[i], alpha, beta) with alpha, beta its first two parameters.
using LoopFn = void (*)(const float* x, float* y, std::int64_t n, float alpha, float beta);
struct LoopActivation {
  LoopFn fn;
  float alpha = 0.f, beta = 0.f;
};

/// The values of a's parameters on `node`: a unary node's own attributes (clip's min, max), or, for an op
/// that folded `a` in (`folded`), its <activation>_<param> attributes (conv2d's clip_min, clip_max).
std::vector<double> activation_params(const ActivationDef& a, const Node& node, bool folded);
/// oneDNN's eltwise computing `a` with those parameter values; nullopt where oneDNN has none (erf, selu, ...: loop_of).
std::optional<Eltwise> eltwise_of(const ActivationDef& a, const std::vector<double>& params);
/// The loop computing `a` where eltwise_of gives nullopt; fails for the others.
LoopActivation loop_of(const ActivationDef& a, const std::vector<double>& params);
/// The activation Kiln's GEMM epilogue applies for `a` (null: none). Only for a.gemm_epilogue.
gemm::Activation gemm_activation(const ActivationDef* a);

/// The attributes of an op whose post_ops take the activations `filter` accepts: `activation` ("none" by
/// default; doc: `doc`, ": ", the accepted names) and the parameters of the accepted ones.
std::vector<AttrSpec> activation_attrs(ActivationFilter filter, const char* doc);
/// For a shape rule: fails unless the node's `activation` is one its schema's post_ops accept.
void check_activation_attr(const ShapeCtx& ctx);

}  // namespace kiln
