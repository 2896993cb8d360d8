// The activation table (graph/activation.hpp): one row per activation, with its oneDNN eltwise algorithm
// and Kiln's GEMM epilogue next to its name, unary op and parameters.

#include "graph/activation.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/eltwise.hpp"

namespace kiln {
namespace {

// A parameter (a double attribute, from any model file) as the float kernels take: beyond float's range the
// C++ conversion is undefined, so it saturates to ±inf.
float to_float(double v) {
  constexpr double kMax = std::numeric_limits<float>::max();
  return v > kMax    ? std::numeric_limits<float>::infinity()
         : v < -kMax ? -std::numeric_limits<float>::infinity()
                     : static_cast<float>(v);
}

// alpha or beta of a oneDNN eltwise: a constant, or parameter `param` of the activation.
struct EltArg {
  float value = 0.f;
  int param = -1;
  float of(const std::vector<double>& params) const {
    return param < 0 ? value : to_float(params.at(static_cast<std::size_t>(param)));
  }
};
constexpr EltArg kP0{0.f, 0}, kP1{0.f, 1};

struct Row {
  ActivationDef def;
  std::optional<dnnl::algorithm> alg;  // nullopt: oneDNN has none; `loop` computes it
  EltArg alpha, beta;
  gemm::Activation gemm = gemm::Activation::None;  // None: Kiln's GEMM epilogue lacks it
  LoopFn loop = nullptr;                           // for rows without `alg`: over<f>, y = f(x, alpha, beta)
};

// A row's loop: f inlined into a loop over a run of elements (vectorized where the compiler can).
template <float (*F)(float, float, float)>
void over(const float* x, float* y, std::int64_t n, float alpha, float beta) {
  for (std::int64_t i = 0; i < n; ++i) y[i] = F(x[i], alpha, beta);
}

float erf_fn(float x, float, float) { return std::erf(x); }
float log_fn(float x, float, float) { return std::log(x); }
// ONNX's other element-wise functions: loops of the C library's (exact where ONNX's tests ask 1e-7).
float sin_fn(float x, float, float) { return std::sin(x); }
float cos_fn(float x, float, float) { return std::cos(x); }
float tan_fn(float x, float, float) { return std::tan(x); }
float asin_fn(float x, float, float) { return std::asin(x); }
float acos_fn(float x, float, float) { return std::acos(x); }
float atan_fn(float x, float, float) { return std::atan(x); }
float sinh_fn(float x, float, float) { return std::sinh(x); }
float cosh_fn(float x, float, float) { return std::cosh(x); }
float asinh_fn(float x, float, float) { return std::asinh(x); }
float acosh_fn(float x, float, float) { return std::acosh(x); }
float atanh_fn(float x, float, float) { return std::atanh(x); }
float floor_fn(float x, float, float) { return std::floor(x); }
float ceil_fn(float x, float, float) { return std::ceil(x); }
float round_fn(float x, float, float) { return std::nearbyint(x); }  // halves to even (the default mode)
float sign_fn(float x, float, float) { return x > 0.f ? 1.f : x < 0.f ? -1.f : x; }  // 0 and NaN kept
float softsign_fn(float x, float, float) { return x / (1.f + std::fabs(x)); }
// ONNX Celu: max(0, x) + min(0, alpha · (e^(x/alpha) − 1)).
float celu_fn(float x, float alpha, float) { return std::max(0.f, x) + std::min(0.f, alpha * std::expm1(x / alpha)); }
float thresholded_relu_fn(float x, float alpha, float) { return x > alpha ? x : 0.f; }
// ONNX Shrink: x + bias below -lambd, x - bias above lambd, else 0.
float shrink_fn(float x, float lambd, float bias) { return x < -lambd ? x + bias : x > lambd ? x - bias : 0.f; }
// ONNX Selu: gamma · (x if x > 0 else alpha · (e^x − 1)).
float selu_fn(float x, float alpha, float gamma) { return gamma * (x > 0.f ? x : alpha * std::expm1(x)); }
// ONNX HardSigmoid: max(0, min(1, alpha · x + beta)).
float hard_sigmoid_fn(float x, float alpha, float beta) { return std::clamp(alpha * x + beta, 0.f, 1.f); }

using A = dnnl::algorithm;
using G = gemm::Activation;

// The order is the order of `activation_names` (in error messages and `kilnc ops`).
const std::vector<Row>& table() {
  static const std::vector<Row> rows = [] {
    constexpr const char* kGeluDoc = "x · Φ(x); approximate=\"tanh\" uses the tanh form (nn.GELU)";
    constexpr const char* kApproximateDoc = R"("none" (erf) or "tanh")";
    constexpr const char* kClipDoc = "min(max(x, min), max) (torch.clamp, nn.ReLU6)";
    std::vector<Row> r = {
        {{.name = "relu", .op = "relu", .doc = "max(x, 0)", .post_op = true}, A::eltwise_relu, {}, {}, G::Relu},
        {{.name = "gelu",
          .op = "gelu",
          .doc = kGeluDoc,
          .variant_attr = "approximate",
          .variant = "none",
          .variant_doc = kApproximateDoc,
          .post_op = true},
         A::eltwise_gelu_erf,
         {},
         {},
         G::Gelu},
        {{.name = "gelu_tanh",
          .op = "gelu",
          .doc = kGeluDoc,
          .variant_attr = "approximate",
          .variant = "tanh",
          .variant_doc = kApproximateDoc,
          .post_op = true},
         A::eltwise_gelu_tanh,
         {},
         {},
         G::GeluTanh},
        {{.name = "clip",
          .op = "clip",
          .doc = kClipDoc,
          .params = {{"min", 0.0, "lower bound"}, {"max", 6.0, "upper bound"}},
          .ordered_params = true,
          .post_op = true},
         A::eltwise_clip,
         kP0,
         kP1},
        {{.name = "silu", .op = "silu", .doc = "x * sigmoid(x) (nn.SiLU, swish)", .post_op = true},
         A::eltwise_swish,
         {1.f},
         {}},
        {{.name = "sigmoid", .op = "sigmoid", .doc = "1 / (1 + exp(-x))", .post_op = true},
         A::eltwise_logistic,
         {},
         {},
         G::Sigmoid},
        {{.name = "tanh", .op = "tanh", .doc = "tanh(x)", .post_op = true}, A::eltwise_tanh, {}, {}, G::Tanh},
        {{.name = "exp", .op = "exp", .doc = "e^x"}, A::eltwise_exp, {}, {}},
        {{.name = "sqrt", .op = "sqrt", .doc = "√x"}, A::eltwise_sqrt, {}, {}},
        {{.name = "pow",
          .op = "pow",
          .doc = "x^exponent (torch.pow with a scalar exponent)",
          .params = {{"exponent", std::nullopt, "the exponent"}}},
         A::eltwise_pow,
         {1.f},
         kP0},
        {{.name = "erf", .op = "erf", .doc = "the error function"}, std::nullopt, {}, {}, G::None, over<erf_fn>},
        // ONNX's element-wise math and activations (frontends/onnx/map_math.cpp).
        {{.name = "abs", .op = "abs", .doc = "|x|"}, A::eltwise_abs, {}, {}},
        {{.name = "neg", .op = "neg", .doc = "-x"}, A::eltwise_linear, {-1.f}, {0.f}},
        // oneDNN 2.6's eltwise_log gives log(1) = -1e-6: a loop of std::log instead (ONNX's tests ask 1e-7).
        {{.name = "log", .op = "log", .doc = "the natural logarithm"}, std::nullopt, {}, {}, G::None, over<log_fn>},
        {{.name = "reciprocal", .op = "reciprocal", .doc = "1 / x"}, A::eltwise_pow, {1.f}, {-1.f}},
        {{.name = "leaky_relu",
          .op = "leaky_relu",
          .doc = "x if x >= 0 else alpha * x (nn.LeakyReLU)",
          .params = {{"alpha", 0.01, "the slope for x < 0"}},
          .post_op = true},
         A::eltwise_relu,
         kP0,
         {}},
        {{.name = "elu",
          .op = "elu",
          .doc = "x if x > 0 else alpha * (e^x - 1) (nn.ELU)",
          .params = {{"alpha", 1.0, "the scale of the negative part"}},
          .post_op = true},
         A::eltwise_elu,
         kP0,
         {}},
        {{.name = "selu",
          .op = "selu",
          .doc = "gamma * (x if x > 0 else alpha * (e^x - 1)) (nn.SELU with the defaults)",
          .params = {{"alpha", 1.6732632423543772, "the scale of the negative part"},
                     {"gamma", 1.0507009873554805, "the scale of the result"}}},
         std::nullopt,
         {},
         {},
         G::None,
         over<selu_fn>},
        {{.name = "hard_sigmoid",
          .op = "hard_sigmoid",
          .doc = "max(0, min(1, alpha * x + beta)) (ONNX HardSigmoid; nn.Hardsigmoid: alpha 1/6)",
          .params = {{"alpha", 0.2, "the slope"}, {"beta", 0.5, "the offset"}}},
         std::nullopt,
         {},
         {},
         G::None,
         over<hard_sigmoid_fn>},
        {{.name = "hard_swish",
          .op = "hard_swish",
          .doc = "x * max(0, min(1, x / 6 + 1/2)) (nn.Hardswish)",
          .post_op = true},
         A::eltwise_hardswish,
         {},
         {}},
        {{.name = "softplus", .op = "softplus", .doc = "log(1 + e^x) (nn.Softplus with beta 1)", .post_op = true},
         A::eltwise_soft_relu,
         {},
         {}},
        {{.name = "sin", .op = "sin", .doc = "sin(x)"}, std::nullopt, {}, {}, G::None, over<sin_fn>},
        {{.name = "cos", .op = "cos", .doc = "cos(x)"}, std::nullopt, {}, {}, G::None, over<cos_fn>},
        {{.name = "tan", .op = "tan", .doc = "tan(x)"}, std::nullopt, {}, {}, G::None, over<tan_fn>},
        {{.name = "asin", .op = "asin", .doc = "asin(x)"}, std::nullopt, {}, {}, G::None, over<asin_fn>},
        {{.name = "acos", .op = "acos", .doc = "acos(x)"}, std::nullopt, {}, {}, G::None, over<acos_fn>},
        {{.name = "atan", .op = "atan", .doc = "atan(x)"}, std::nullopt, {}, {}, G::None, over<atan_fn>},
        {{.name = "sinh", .op = "sinh", .doc = "sinh(x)"}, std::nullopt, {}, {}, G::None, over<sinh_fn>},
        {{.name = "cosh", .op = "cosh", .doc = "cosh(x)"}, std::nullopt, {}, {}, G::None, over<cosh_fn>},
        {{.name = "asinh", .op = "asinh", .doc = "asinh(x)"}, std::nullopt, {}, {}, G::None, over<asinh_fn>},
        {{.name = "acosh", .op = "acosh", .doc = "acosh(x)"}, std::nullopt, {}, {}, G::None, over<acosh_fn>},
        {{.name = "atanh", .op = "atanh", .doc = "atanh(x)"}, std::nullopt, {}, {}, G::None, over<atanh_fn>},
        {{.name = "floor", .op = "floor", .doc = "the largest integer <= x"},
         std::nullopt,
         {},
         {},
         G::None,
         over<floor_fn>},
        {{.name = "ceil", .op = "ceil", .doc = "the smallest integer >= x"},
         std::nullopt,
         {},
         {},
         G::None,
         over<ceil_fn>},
        {{.name = "round", .op = "round", .doc = "x rounded to the nearest integer, halves to even"},
         std::nullopt,
         {},
         {},
         G::None,
         over<round_fn>},
        {{.name = "sign", .op = "sign", .doc = "-1, 0 or 1 by the sign of x"},
         std::nullopt,
         {},
         {},
         G::None,
         over<sign_fn>},
        {{.name = "softsign", .op = "softsign", .doc = "x / (1 + |x|) (nn.Softsign)"},
         std::nullopt,
         {},
         {},
         G::None,
         over<softsign_fn>},
        {{.name = "celu",
          .op = "celu",
          .doc = "max(0, x) + min(0, alpha * (e^(x/alpha) - 1)) (nn.CELU)",
          .params = {{"alpha", 1.0, "the scale"}}},
         std::nullopt,
         {},
         {},
         G::None,
         over<celu_fn>},
        {{.name = "thresholded_relu",
          .op = "thresholded_relu",
          .doc = "x if x > alpha else 0",
          .params = {{"alpha", 1.0, "the threshold"}}},
         std::nullopt,
         {},
         {},
         G::None,
         over<thresholded_relu_fn>},
        {{.name = "shrink",
          .op = "shrink",
          .doc = "x + bias if x < -lambd, x - bias if x > lambd, else 0 (nn.Hardshrink, nn.Softshrink)",
          .params = {{"lambd", 0.5, "the threshold"}, {"bias", 0.0, "the shift"}}},
         std::nullopt,
         {},
         {},
         G::None,
         over<shrink_fn>},

    };
    for (Row& row : r) row.def.gemm_epilogue = row.gemm != G::None;
    return r;
  }();
  return rows;
}

const Row& row_of(const ActivationDef& a) {
  for (const Row& r : table())
    if (&r.def == &a) return r;
  fail(std::string("activation '") + a.name + "' is not in the table");
}

}  // namespace

const std::vector<const ActivationDef*>& activations() {
  static const std::vector<const ActivationDef*> all = [] {
    std::vector<const ActivationDef*> out;
    for (const Row& r : table()) out.push_back(&r.def);
    return out;
  }();
  return all;
}

const ActivationDef* find_activation(std::string_view name) {
  for (const ActivationDef* a : activations())
    if (name == a->name) return a;
  return nullptr;
}

const ActivationDef* activation_of(const Node& node) {
  for (const ActivationDef* a : activations())
    if (node.op == a->op && (!a->variant_attr || node.attr_string(a->variant_attr) == a->variant)) return a;
  return nullptr;
}

std::string activation_names(ActivationFilter filter) {
  std::string out = "none";
  for (const ActivationDef* a : activations())
    if (filter && filter(*a)) out += std::string(", ") + a->name;
  return out;
}

std::vector<double> activation_params(const ActivationDef& a, const Node& node, bool folded) {
  std::vector<double> out;
  for (std::size_t i = 0; i < a.params.size(); ++i)
    out.push_back(node.attr_float(folded ? a.param_attr(i) : a.params[i].name));
  return out;
}

std::optional<Eltwise> eltwise_of(const ActivationDef& a, const std::vector<double>& params) {
  const Row& r = row_of(a);
  if (!r.alg) return std::nullopt;
  return Eltwise{*r.alg, r.alpha.of(params), r.beta.of(params)};
}

LoopActivation loop_of(const ActivationDef& a, const std::vector<double>& params) {
  const Row& r = row_of(a);
  if (!r.loop) fail(std::string("activation '") + a.name + "' has no loop of Kiln's (oneDNN computes it)");
  auto param = [&](std::size_t i) { return i < params.size() ? to_float(params[i]) : 0.f; };
  return LoopActivation{r.loop, param(0), param(1)};
}

gemm::Activation gemm_activation(const ActivationDef* a) { return a ? row_of(*a).gemm : G::None; }

std::vector<AttrSpec> activation_attrs(ActivationFilter filter, const char* doc) {
  std::vector<AttrSpec> out = {AttrSpec{"activation", AttrType::String, Attr{std::string("none")},
                                        std::string(doc) + ": " + activation_names(filter)}};
  for (const ActivationDef* a : activations()) {
    if (!filter(*a)) continue;
    for (std::size_t i = 0; i < a->params.size(); ++i)
      out.push_back(AttrSpec{a->param_attr(i), AttrType::Float, Attr{a->params[i].default_value.value_or(0.0)},
                             std::string(a->params[i].doc) + " of activation=" + a->name});
  }
  return out;
}

void check_activation_attr(const ShapeCtx& ctx) {
  const PostOps& post_ops = ctx.node().schema->post_ops;
  const std::string& act = ctx.node().attr_string("activation");
  if (act == "none") return;
  const ActivationDef* a = find_activation(act);
  if (!a || !post_ops.accepts(*a))
    ctx.fail("attribute 'activation' must be one of " + activation_names(post_ops.activations) + "; got \"" + act +
             "\"");
}

}  // namespace kiln
