// Element-wise math, activations and reductions: ONNX ops onto Kiln's binary, unary and reduce ops.

#include <algorithm>
#include <cstring>

#include "frontends/onnx/importer.hpp"

namespace kiln::onnx_import {
namespace {

void map_same(Importer& im, const OnnxNode& n, const std::string& op) {
  im.only_attrs(n, {});
  im.emit(n, op, all_inputs(im, n), {});
}

void map_add(Importer& im, const OnnxNode& n) { map_same(im, n, "add"); }
void map_sub(Importer& im, const OnnxNode& n) { map_same(im, n, "sub"); }
void map_mul(Importer& im, const OnnxNode& n) { map_same(im, n, "mul"); }
void map_div(Importer& im, const OnnxNode& n) { map_same(im, n, "div"); }
void map_relu(Importer& im, const OnnxNode& n) { map_same(im, n, "relu"); }
void map_sigmoid(Importer& im, const OnnxNode& n) { map_same(im, n, "sigmoid"); }
void map_tanh(Importer& im, const OnnxNode& n) { map_same(im, n, "tanh"); }
void map_exp(Importer& im, const OnnxNode& n) { map_same(im, n, "exp"); }
void map_sqrt(Importer& im, const OnnxNode& n) { map_same(im, n, "sqrt"); }
void map_erf(Importer& im, const OnnxNode& n) { map_same(im, n, "erf"); }
void map_abs(Importer& im, const OnnxNode& n) { map_same(im, n, "abs"); }
void map_neg(Importer& im, const OnnxNode& n) { map_same(im, n, "neg"); }
void map_log(Importer& im, const OnnxNode& n) { map_same(im, n, "log"); }
void map_reciprocal(Importer& im, const OnnxNode& n) { map_same(im, n, "reciprocal"); }
void map_softplus(Importer& im, const OnnxNode& n) { map_same(im, n, "softplus"); }
void map_hard_swish(Importer& im, const OnnxNode& n) { map_same(im, n, "hard_swish"); }
void map_prelu(Importer& im, const OnnxNode& n) { map_same(im, n, "prelu"); }
// ONNX's other element-wise functions, one Kiln op each (a loop of the C library's function).
#define KILN_ONNX_SAME(fn, op) \
  void fn(Importer& im, const OnnxNode& n) { map_same(im, n, op); }
KILN_ONNX_SAME(map_sin, "sin")
KILN_ONNX_SAME(map_cos, "cos")
KILN_ONNX_SAME(map_tan, "tan")
KILN_ONNX_SAME(map_asin, "asin")
KILN_ONNX_SAME(map_acos, "acos")
KILN_ONNX_SAME(map_atan, "atan")
KILN_ONNX_SAME(map_sinh, "sinh")
KILN_ONNX_SAME(map_cosh, "cosh")
KILN_ONNX_SAME(map_asinh, "asinh")
KILN_ONNX_SAME(map_acosh, "acosh")
KILN_ONNX_SAME(map_atanh, "atanh")
KILN_ONNX_SAME(map_floor, "floor")
KILN_ONNX_SAME(map_ceil, "ceil")
KILN_ONNX_SAME(map_round, "round")
KILN_ONNX_SAME(map_sign, "sign")
KILN_ONNX_SAME(map_softsign, "softsign")
#undef KILN_ONNX_SAME

// An activation with float attributes: each ONNX attribute (with ONNX's default) onto the Kiln attribute.
void map_params(Importer& im, const OnnxNode& n, const std::string& op,
                std::initializer_list<std::pair<const char*, double>> params) {
  std::vector<std::string_view> names;
  for (const auto& p : params) names.emplace_back(p.first);
  for (const auto& a : n.proto.attribute())
    if (std::find(names.begin(), names.end(), a.name()) == names.end()) {
      std::string known;
      for (auto k : names) known += (known.empty() ? "" : ", ") + std::string(k);
      im.fail(n, "attribute '" + a.name() + "' is not supported (this importer reads: " + known + ")");
    }
  AttrMap attrs;
  for (const auto& [name, dflt] : params) attrs[name] = im.attr_float(n, name, dflt);
  im.emit(n, op, {im.input(n, 0)}, std::move(attrs));
}

void map_leaky_relu(Importer& im, const OnnxNode& n) { map_params(im, n, "leaky_relu", {{"alpha", 0.01}}); }
void map_elu(Importer& im, const OnnxNode& n) { map_params(im, n, "elu", {{"alpha", 1.0}}); }
// ONNX's defaults, as float32 (the spec gives them to float precision).
void map_selu(Importer& im, const OnnxNode& n) {
  map_params(im, n, "selu", {{"alpha", 1.67326319217681884765625}, {"gamma", 1.05070102214813232421875}});
}
void map_celu(Importer& im, const OnnxNode& n) { map_params(im, n, "celu", {{"alpha", 1.0}}); }
void map_thresholded_relu(Importer& im, const OnnxNode& n) { map_params(im, n, "thresholded_relu", {{"alpha", 1.0}}); }
void map_shrink(Importer& im, const OnnxNode& n) { map_params(im, n, "shrink", {{"lambd", 0.5}, {"bias", 0.0}}); }

// Mod: fmod 0 (the default: the remainder takes the divisor's sign, integers only in ONNX) or 1 (C's fmod).
void map_mod(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"fmod"});
  const std::int64_t fmod = im.attr_int(n, "fmod", 0);
  if (fmod != 0 && fmod != 1) im.fail(n, "expected fmod 0 or 1, got " + std::to_string(fmod));
  im.emit(n, "mod", {im.input(n, 0), im.input(n, 1)}, {{"fmod", fmod == 1}});
}

void map_hard_sigmoid(Importer& im, const OnnxNode& n) {
  map_params(im, n, "hard_sigmoid", {{"alpha", 0.2}, {"beta", 0.5}});
}

// A one-value f32 constant computed here (Clip's attribute bounds, Mean's count).
Value* scalar_f32(Importer& im, const OnnxNode& n, const std::string& suffix, double v) {
  auto buf = aligned_buffer(sizeof(float));
  const auto f = static_cast<float>(v);
  std::memcpy(buf.get(), &f, sizeof(float));
  return im.add_constant(n.proto.output(0) + "/" + suffix, TensorType{DType::f32, {}},
                         ConstData{buf.get(), sizeof(float), std::shared_ptr<const void>(buf)});
}

// Clip: min/max attributes before opset 11 (absent: no bound), optional inputs from 11. An f32 input with
// both bounds constant, min <= max, is Kiln's clip (an eltwise that folds into a conv), min 0 alone relu;
// anything else (one bound, a computed bound, integer data, min > max) is max(x, min) then min(·, max),
// which is ONNX's definition.
void map_clip(Importer& im, const OnnxNode& n) {
  Value* x = im.input(n, 0);
  bool has[2] = {false, false}, known[2] = {false, false};
  double value[2] = {0, 0};
  for (int i : {0, 1}) {
    const char* name = i == 0 ? "min" : "max";
    if (n.opset < 11) {
      if (i == 0) im.only_attrs(n, {"min", "max"});
      has[i] = known[i] = im.attr(n, name) != nullptr;
      if (has[i]) value[i] = im.attr_float(n, name, 0.0);
    } else {
      if (i == 0) im.only_attrs(n, {});
      has[i] = im.has_input(n, i + 1);
      if (const ConstTensor* c = im.constant(n, i + 1); c && c->numel() == 1 && c->dtype == DType::f32) {
        known[i] = true;
        value[i] = const_scalar(im, n, *c, name);
      }
    }
  }
  const bool f32 = x->type.dtype == DType::f32;
  if (has[0] && has[1] && known[0] && known[1] && f32 && value[0] <= value[1])
    return im.emit(n, "clip", {x}, {{"min", value[0]}, {"max", value[1]}});
  if (has[0] && !has[1] && known[0] && f32 && value[0] == 0.0) return im.emit(n, "relu", {x}, {});  // clamp(min=0)
  if (!has[0] && !has[1]) return im.emit(n, "dropout", {x}, {{"p", 0.0}});
  // One bound, computed bounds, integer data or min > max: max(x, min) then min(., max). (No infinite
  // attribute stands in for an absent bound: model files could not spell it.)
  Value* bound[2] = {nullptr, nullptr};
  for (int i : {0, 1})
    if (has[i]) bound[i] = n.opset < 11 ? scalar_f32(im, n, i == 0 ? "min" : "max", value[i]) : im.input(n, i + 1);
  Value* lower = x;
  if (bound[0]) {
    if (!bound[1]) return im.emit(n, "max", {x, bound[0]}, {});
    lower = im.emit_temp(n, "max", "lower", {x, bound[0]}, {});
  }
  im.emit(n, "min", {lower, bound[1]}, {});
}

// Sum, Mean, Max, Min: variadic, broadcasting; a chain of Kiln's binary op (one input: the identity).
Value* fold_inputs(Importer& im, const OnnxNode& n, const std::string& op, bool last_is_output) {
  std::vector<Value*> ins = all_inputs(im, n);
  if (ins.empty()) im.fail(n, "expected at least one input");
  if (ins.size() == 1) {
    if (last_is_output) im.emit(n, "dropout", {ins[0]}, {{"p", 0.0}});
    return ins[0];
  }
  Value* acc = ins[0];
  for (std::size_t i = 1; i < ins.size(); ++i) {
    if (last_is_output && i + 1 == ins.size()) {
      im.emit(n, op, {acc, ins[i]}, {});
      return nullptr;
    }
    acc = im.emit_temp(n, op, op + std::to_string(i), {acc, ins[i]}, {});
  }
  return acc;
}

void map_sum(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {});
  fold_inputs(im, n, "add", true);
}
void map_max(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {});
  fold_inputs(im, n, "max", true);
}
void map_min(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {});
  fold_inputs(im, n, "min", true);
}

void map_mean(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {});
  if (n.proto.input_size() == 1) return void(fold_inputs(im, n, "add", true));
  Value* sum = fold_inputs(im, n, "add", false);
  if (sum->type.dtype != DType::f32) im.fail(n, "expected inputs of type f32, got " + sum->type.str());
  im.emit(n, "div", {sum, scalar_f32(im, n, "count", static_cast<double>(n.proto.input_size()))}, {});
}

// Pow: a constant one-value exponent on an f32 base is Kiln's pow (an eltwise, and what fuse-gelu's tanh
// form matches); any other exponent (a tensor, computed, or an integer base) is pow_tensor.
void map_pow(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {});
  Value* x = im.input(n, 0);
  const ConstTensor* y = im.constant(n, 1);
  if (y && y->numel() == 1 && x->type.dtype == DType::f32 && static_cast<int>(y->dims.size()) <= rank_of(x) &&
      (y->dtype == DType::f32 || y->dtype == DType::f64 || y->dtype == DType::i64 || y->dtype == DType::i32))
    return im.emit(n, "pow", {x}, {{"exponent", const_scalar(im, n, *y, "the exponent")}});
  im.emit(n, "pow_tensor", {x, im.input(n, 1)}, {});
}

// ---- reductions ----

// The axes to reduce, from the attribute (ReduceMean/Max/Min, ReduceSum before 13) or the constant input 1
// (ReduceSum from 13). Empty: every axis, or none (the identity) with noop_with_empty_axes = 1.
// `pre` (abs, square, exp) before the reduction and `post` (sqrt, log) after it make ReduceL1, ReduceL2,
// ReduceSumSquare, ReduceLogSum and ReduceLogSumExp from reduce_sum, as ONNX defines them.
void map_reduce(Importer& im, const OnnxNode& n, const std::string& op, bool axes_input, const char* pre = nullptr,
                const char* post = nullptr) {
  if (axes_input) im.only_attrs(n, {"keepdims", "noop_with_empty_axes"});
  else im.only_attrs(n, {"axes", "keepdims"});
  Value* x = im.input(n, 0);
  std::vector<std::int64_t> axes;
  if (axes_input) {
    if (im.has_input(n, 1)) {
      const ConstTensor* c = im.constant(n, 1);
      if (!c) im.fail(n, "expected input 1 (axes) to be a constant (Kiln reduces over axes known at load time)");
      axes = const_ints(im, n, *c, "input 1 (axes)");
    }
  } else {
    axes = im.attr_ints(n, "axes");
  }
  const std::int64_t keepdims = im.attr_int(n, "keepdims", 1);
  if (keepdims != 0 && keepdims != 1) im.fail(n, "expected keepdims 0 or 1, got " + std::to_string(keepdims));
  bool reduce = true;
  if (axes.empty()) {
    const std::int64_t noop = axes_input ? im.attr_int(n, "noop_with_empty_axes", 0) : 0;
    if (noop != 0 && noop != 1) im.fail(n, "expected noop_with_empty_axes 0 or 1, got " + std::to_string(noop));
    reduce = !noop && rank_of(x) > 0;
    for (int i = 0; i < rank_of(x); ++i) axes.push_back(i);
  }
  struct Step {
    std::string op;
    AttrMap attrs;
    bool square = false;
  };
  std::vector<Step> steps;
  if (pre) steps.push_back({std::string(pre) == "square" ? "mul" : pre, {}, std::string(pre) == "square"});
  if (reduce) steps.push_back({op, {{"axes", axes}, {"keepdims", keepdims == 1}}});
  if (post) steps.push_back({post, {}});
  if (steps.empty()) return im.emit(n, "dropout", {x}, {{"p", 0.0}});
  Value* v = x;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    std::vector<Value*> ins = steps[i].square ? std::vector<Value*>{v, v} : std::vector<Value*>{v};
    if (i + 1 == steps.size()) im.emit(n, steps[i].op, ins, steps[i].attrs);
    else v = im.emit_temp(n, steps[i].op, steps[i].op, ins, steps[i].attrs);
  }
}

void map_reduce_mean(Importer& im, const OnnxNode& n) { map_reduce(im, n, "reduce_mean", false); }
void map_reduce_max(Importer& im, const OnnxNode& n) { map_reduce(im, n, "reduce_max", false); }
void map_reduce_min(Importer& im, const OnnxNode& n) { map_reduce(im, n, "reduce_min", false); }
void map_reduce_sum(Importer& im, const OnnxNode& n) { map_reduce(im, n, "reduce_sum", n.opset >= 13); }
void map_reduce_prod(Importer& im, const OnnxNode& n) { map_reduce(im, n, "reduce_prod", false); }
void map_reduce_l1(Importer& im, const OnnxNode& n) { map_reduce(im, n, "reduce_sum", false, "abs"); }
void map_reduce_l2(Importer& im, const OnnxNode& n) { map_reduce(im, n, "reduce_sum", false, "square", "sqrt"); }
void map_reduce_sum_square(Importer& im, const OnnxNode& n) { map_reduce(im, n, "reduce_sum", false, "square"); }
void map_reduce_log_sum(Importer& im, const OnnxNode& n) { map_reduce(im, n, "reduce_sum", false, nullptr, "log"); }
void map_reduce_log_sum_exp(Importer& im, const OnnxNode& n) { map_reduce(im, n, "reduce_sum", false, "exp", "log"); }

}  // namespace

std::vector<OpRow> math_rows() {
  return {
      {"Add", kMinOpset, kMaxOpset, map_add},
      {"Sub", kMinOpset, kMaxOpset, map_sub},
      {"Mul", kMinOpset, kMaxOpset, map_mul},
      {"Div", kMinOpset, kMaxOpset, map_div},
      {"Relu", kMinOpset, kMaxOpset, map_relu},
      {"Sigmoid", kMinOpset, kMaxOpset, map_sigmoid},
      {"Tanh", kMinOpset, kMaxOpset, map_tanh},
      {"Exp", kMinOpset, kMaxOpset, map_exp},
      {"Sqrt", kMinOpset, kMaxOpset, map_sqrt},
      {"Erf", 9, kMaxOpset, map_erf},
      {"Pow", kMinOpset, kMaxOpset, map_pow},
      // Unchanged since opset 6 (which dropped the legacy consumed_inputs attribute) but for new types.
      {"Abs", 6, kMaxOpset, map_abs},
      {"Neg", 6, kMaxOpset, map_neg},
      {"Log", 6, kMaxOpset, map_log},
      {"Reciprocal", 6, kMaxOpset, map_reciprocal},
      {"LeakyRelu", 6, kMaxOpset, map_leaky_relu},
      {"Elu", 6, kMaxOpset, map_elu},
      {"Selu", 6, kMaxOpset, map_selu},
      {"HardSigmoid", 6, kMaxOpset, map_hard_sigmoid},
      {"HardSwish", 14, kMaxOpset, map_hard_swish},
      {"Softplus", 1, kMaxOpset, map_softplus},
      {"PRelu", 7, kMaxOpset, map_prelu},  // 7: the slope broadcasts to X (NumPy, unidirectional)
      {"Clip", 6, kMaxOpset, map_clip},    // 6-10: attributes; 11-17: inputs
      {"Sum", 8, kMaxOpset, map_sum},      // 8: NumPy broadcasting
      {"Mean", 8, kMaxOpset, map_mean},
      {"Max", 8, kMaxOpset, map_max},
      {"Min", 8, kMaxOpset, map_min},
      {"ReduceMean", 1, kMaxOpset, map_reduce_mean},  // 18 moves axes to an input
      {"ReduceMax", 1, kMaxOpset, map_reduce_max},
      {"ReduceMin", 1, kMaxOpset, map_reduce_min},
      {"ReduceSum", 1, kMaxOpset, map_reduce_sum},  // 13: axes an input, noop_with_empty_axes
      {"ReduceProd", 1, kMaxOpset, map_reduce_prod},
      {"ReduceL1", 1, kMaxOpset, map_reduce_l1},
      {"ReduceL2", 1, kMaxOpset, map_reduce_l2},
      {"ReduceSumSquare", 1, kMaxOpset, map_reduce_sum_square},
      {"ReduceLogSum", 1, kMaxOpset, map_reduce_log_sum},
      {"ReduceLogSumExp", 1, kMaxOpset, map_reduce_log_sum_exp},
      {"Sin", 7, kMaxOpset, map_sin},
      {"Cos", 7, kMaxOpset, map_cos},
      {"Tan", 7, kMaxOpset, map_tan},
      {"Asin", 7, kMaxOpset, map_asin},
      {"Acos", 7, kMaxOpset, map_acos},
      {"Atan", 7, kMaxOpset, map_atan},
      {"Sinh", 9, kMaxOpset, map_sinh},
      {"Cosh", 9, kMaxOpset, map_cosh},
      {"Asinh", 9, kMaxOpset, map_asinh},
      {"Acosh", 9, kMaxOpset, map_acosh},
      {"Atanh", 9, kMaxOpset, map_atanh},
      {"Floor", 6, kMaxOpset, map_floor},
      {"Ceil", 6, kMaxOpset, map_ceil},
      {"Round", 11, kMaxOpset, map_round},
      {"Sign", 9, kMaxOpset, map_sign},
      {"Softsign", 1, kMaxOpset, map_softsign},
      {"Celu", 12, kMaxOpset, map_celu},
      {"ThresholdedRelu", 10, kMaxOpset, map_thresholded_relu},
      {"Shrink", 9, kMaxOpset, map_shrink},
      {"Mod", 10, kMaxOpset, map_mod},
  };
}

}  // namespace kiln::onnx_import
