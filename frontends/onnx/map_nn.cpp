// Products, normalizations, convolution and pooling.

#include <algorithm>
#include <cstring>

#include "frontends/onnx/importer.hpp"

namespace kiln::onnx_import {
namespace {

void map_matmul(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {});
  Value* a = im.input(n, 0);
  Value* b = im.input(n, 1);
  if (rank_of(a) < 2 || rank_of(b) < 2)
    im.fail(n, "expected operands of rank >= 2, got " + a->type.str() + " and " + b->type.str() +
                   " (1-D operands are not supported)");
  im.emit(n, "matmul", {a, b}, {});
}

// Gemm: A·B(ᵀ) + C with alpha = beta = 1 and A not transposed. B transposed ([N,K], torch's Linear export)
// is linear's weight as it is; a constant B [K,N] is transposed once here; a computed B [K,N] is a matmul.
void map_gemm(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"alpha", "beta", "transA", "transB"});
  if (im.attr_float(n, "alpha", 1.0) != 1.0 || im.attr_float(n, "beta", 1.0) != 1.0)
    im.fail(n, "expected alpha = beta = 1, got alpha = " + std::to_string(im.attr_float(n, "alpha", 1.0)) +
                   ", beta = " + std::to_string(im.attr_float(n, "beta", 1.0)));
  if (im.attr_int(n, "transA", 0) != 0) im.fail(n, "expected transA = 0 (a transposed A is not supported)");
  Value* a = im.input(n, 0);
  const bool trans_b = im.attr_int(n, "transB", 0) != 0;
  const ConstTensor* bc = im.constant(n, 1);
  Value* weight = nullptr;
  if (!trans_b && bc && bc->dtype == DType::f32 && bc->dims.size() == 2) {
    const std::int64_t k = bc->dims[0], cols = bc->dims[1];
    auto buf = aligned_buffer(bc->data.bytes);
    const auto* src = static_cast<const float*>(bc->data.data);
    auto* dst = static_cast<float*>(buf.get());
    for (std::int64_t i = 0; i < k; ++i)
      for (std::int64_t j = 0; j < cols; ++j) dst[j * k + i] = src[i * cols + j];
    weight = im.add_constant(n.proto.input(1) + "/transposed", TensorType{DType::f32, concrete_shape({cols, k})},
                             ConstData{buf.get(), bc->data.bytes, std::shared_ptr<const void>(buf)});
  } else if (trans_b) {
    weight = im.input(n, 1);
  }
  // C as linear's bias when it is a constant [N] or [1,N]; any other C (computed, [M,N], a scalar) is added.
  Value* bias = nullptr;
  if (weight && im.has_input(n, 2)) {
    const ConstTensor* cc = im.constant(n, 2);
    const Dim cols = weight->type.rank() == 2 ? weight->type.shape[0] : Dim::of(-1);
    if (cc && cc->dtype == DType::f32 && cols.concrete() &&
        ((cc->dims.size() == 1 && cc->dims[0] == cols.value) ||
         (cc->dims.size() == 2 && cc->dims[0] == 1 && cc->dims[1] == cols.value)))
      bias = cc->dims.size() == 1
                 ? im.input(n, 2)
                 : im.add_constant(n.proto.input(2) + "/bias", TensorType{DType::f32, {cols}}, cc->data);
  }
  if (!im.has_input(n, 2) || bias) {
    if (weight) im.emit(n, "linear", {a, weight, bias, nullptr}, {});
    else im.emit(n, "matmul", {a, im.input(n, 1)}, {});
    return;
  }
  Value* prod = weight ? im.emit_temp(n, "linear", "product", {a, weight, nullptr, nullptr}, {})
                       : im.emit_temp(n, "matmul", "product", {a, im.input(n, 1)}, {});
  im.emit(n, "add", {prod, im.input(n, 2)}, {});
}

// Softmax and LogSoftmax: from opset 13 along `axis` (default -1); before 13 over the input coerced to 2-D
// at `axis` (default 1), which is the same only when `axis` is the last axis.
void map_softmax_like(Importer& im, const OnnxNode& n, const std::string& op) {
  im.only_attrs(n, {"axis"});
  Value* x = im.input(n, 0);
  std::int64_t axis = im.attr_int(n, "axis", n.opset >= 13 ? -1 : 1);
  if (n.opset < 13) {
    const int r = rank_of(x);
    if ((axis < 0 ? axis + r : axis) != r - 1)
      im.fail(n, "before opset 13, " + n.op() + " flattens the dims from axis " + std::to_string(axis) +
                     " on into one; only the last axis (" + std::to_string(r - 1) + " for " + x->type.str() +
                     ") maps onto Kiln's " + op);
    axis = -1;
  }
  im.emit(n, op, {x}, {{"axis", axis}});
}
void map_softmax(Importer& im, const OnnxNode& n) { map_softmax_like(im, n, "softmax"); }
void map_log_softmax(Importer& im, const OnnxNode& n) { map_softmax_like(im, n, "log_softmax"); }

void map_layer_norm(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"axis", "epsilon", "stash_type"});
  Value* x = im.input(n, 0);
  const std::int64_t axis = im.attr_int(n, "axis", -1);
  if (axis != -1 && axis != rank_of(x) - 1)
    im.fail(n, "expected axis -1 (normalizing over the last axis only), got " + std::to_string(axis) + " for " +
                   x->type.str());
  if (im.attr_int(n, "stash_type", 1) != 1) im.fail(n, "expected stash_type 1 (float statistics)");
  im.emit(n, "layer_norm", {x, im.input(n, 1), im.input(n, 2, false), nullptr},
          {{"eps", im.attr_float(n, "epsilon", 1e-5)}});
}

// The 2-D window attributes shared by Conv and the pools: kernel_shape must match, strides, pads
// ([top, left, bottom, right] in both), no auto_pad other than NOTSET or VALID, no dilation (pools).
std::vector<std::int64_t> pads_of(Importer& im, const OnnxNode& n) {
  const std::string auto_pad = im.attr_string(n, "auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID")
    im.fail(n, "expected auto_pad NOTSET or VALID, got " + auto_pad + " (pads computed from the input size)");
  std::vector<std::int64_t> pads = im.attr_ints(n, "pads", {0, 0, 0, 0});
  if (auto_pad == "VALID") pads = {0, 0, 0, 0};
  if (pads.size() != 4) im.fail(n, "expected 4 pads for a 2-D window, got " + std::to_string(pads.size()));
  return pads;
}

Value* input_nchw(Importer& im, const OnnxNode& n) {
  Value* x = im.input(n, 0);
  if (rank_of(x) != 4) im.fail(n, "expected a 2-D input [N,C,H,W], got " + x->type.str() + " (only 2-D is supported)");
  return x;
}

std::vector<std::int64_t> pair_attr(Importer& im, const OnnxNode& n, const std::string& key) {
  std::vector<std::int64_t> v = im.attr_ints(n, key, {1, 1});
  if (v.size() != 2) im.fail(n, "expected 2 " + key + " for a 2-D window, got " + std::to_string(v.size()));
  return v;
}

void map_conv(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"});
  Value* x = input_nchw(im, n);
  Value* w = im.input(n, 1);
  if (auto k = im.attr_ints(n, "kernel_shape");
      !k.empty() && w->type.rank() == 4 && (!w->type.shape[2].is(k[0]) || !w->type.shape[3].is(k[1])))
    im.fail(n, "kernel_shape differs from the weight's " + w->type.str());
  im.emit(n, "conv2d", {x, w, im.input(n, 2, false), nullptr},
          {{"stride", pair_attr(im, n, "strides")},
           {"padding", pads_of(im, n)},
           {"dilation", pair_attr(im, n, "dilations")},
           {"groups", im.attr_int(n, "group", 1)}});
}

void map_batch_norm(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"epsilon", "momentum", "spatial", "training_mode"});
  if (im.attr_int(n, "training_mode", 0) != 0) im.fail(n, "expected training_mode 0 (Kiln runs inference only)");
  // Opsets 7 and 8: spatial = 0 keeps statistics per (channel, position); 1, the default, per channel.
  if (im.attr_int(n, "spatial", 1) != 1) im.fail(n, "expected spatial 1 (statistics per channel)");
  im.emit(n, "batch_norm", {im.input(n, 0), im.input(n, 1), im.input(n, 2), im.input(n, 3), im.input(n, 4)},
          {{"eps", im.attr_float(n, "epsilon", 1e-5)}});
}

AttrMap pool_attrs(Importer& im, const OnnxNode& n) {
  if (im.attr_int(n, "ceil_mode", 0) != 0) im.fail(n, "expected ceil_mode 0");
  const auto d = im.attr_ints(n, "dilations", {1, 1});
  if (std::any_of(d.begin(), d.end(), [](std::int64_t v) { return v != 1; }))
    im.fail(n, "expected dilations of 1 (dilated pooling is not supported)");
  std::vector<std::int64_t> kernel = im.attr_ints(n, "kernel_shape");
  if (kernel.size() != 2) im.fail(n, "expected kernel_shape of 2 entries (2-D pooling)");
  return {{"kernel", kernel}, {"stride", pair_attr(im, n, "strides")}, {"padding", pads_of(im, n)}};
}

void map_max_pool(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"});
  if (im.attr_int(n, "storage_order", 0) != 0) im.fail(n, "expected storage_order 0");
  Value* x = input_nchw(im, n);
  im.emit(n, "max_pool", {x}, pool_attrs(im, n));
}

void map_avg_pool(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads", "strides"});
  Value* x = input_nchw(im, n);
  AttrMap attrs = pool_attrs(im, n);
  attrs["count_include_pad"] = im.attr_int(n, "count_include_pad", 0) != 0;
  im.emit(n, "avg_pool", {x}, std::move(attrs));
}

void map_global_avg_pool(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {});
  im.emit(n, "global_avg_pool", {input_nchw(im, n)}, {});
}

}  // namespace

std::vector<OpRow> nn_rows() {
  return {
      {"MatMul", kMinOpset, kMaxOpset, map_matmul},
      {"Gemm", kMinOpset, kMaxOpset, map_gemm},
      {"Softmax", kMinOpset, kMaxOpset, map_softmax},
      {"LogSoftmax", kMinOpset, kMaxOpset, map_log_softmax},
      {"LayerNormalization", 17, kMaxOpset, map_layer_norm},
      {"Conv", kMinOpset, kMaxOpset, map_conv},
      {"BatchNormalization", kMinOpset, kMaxOpset, map_batch_norm},
      {"MaxPool", kMinOpset, kMaxOpset, map_max_pool},
      {"AveragePool", kMinOpset, kMaxOpset, map_avg_pool},
      {"GlobalAveragePool", 1, kMaxOpset, map_global_avg_pool},  // unchanged since opset 1
  };
}

}  // namespace kiln::onnx_import
