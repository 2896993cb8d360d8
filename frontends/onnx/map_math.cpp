// Element-wise math and activations: ONNX ops onto Kiln's binary and unary ops.

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

void map_pow(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {});
  Value* x = im.input(n, 0);
  const ConstTensor* y = im.constant(n, 1);
  if (!y) im.fail(n, "expected a constant exponent (Kiln's pow takes the exponent as an attribute)");
  if (static_cast<int>(y->dims.size()) > rank_of(x))
    im.fail(n, "expected an exponent of rank at most the base's " + std::to_string(rank_of(x)));
  im.emit(n, "pow", {x}, {{"exponent", const_scalar(im, n, *y, "the exponent")}});
}

}  // namespace

std::vector<OpRow> math_rows() {
  return {
      {"Add", kMinOpset, kMaxOpset, map_add},   {"Sub", kMinOpset, kMaxOpset, map_sub},
      {"Mul", kMinOpset, kMaxOpset, map_mul},   {"Div", kMinOpset, kMaxOpset, map_div},
      {"Relu", kMinOpset, kMaxOpset, map_relu}, {"Sigmoid", kMinOpset, kMaxOpset, map_sigmoid},
      {"Tanh", kMinOpset, kMaxOpset, map_tanh}, {"Exp", kMinOpset, kMaxOpset, map_exp},
      {"Sqrt", kMinOpset, kMaxOpset, map_sqrt}, {"Erf", 9, kMaxOpset, map_erf},
      {"Pow", kMinOpset, kMaxOpset, map_pow},
  };
}

}  // namespace kiln::onnx_import
