// Products, normalizations, convolution and pooling.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

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

// LayerNormalization (opset 17): Y is Kiln's layer_norm, over the last axis as it is; over the dims from
// an earlier `axis` (their sizes concrete) it normalizes the input reshaped to [..., product of those
// dims], with Scale and B (of exactly those dims) flattened likewise, and is reshaped back. The Mean and
// InvStdDev outputs, when used, are layer_norm_stats nodes over the same rows. stash_type 1 (float
// statistics).
void map_layer_norm(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"axis", "epsilon", "stash_type"});
  Value* x = im.input(n, 0);
  const int r = rank_of(x);
  std::int64_t axis = im.attr_int(n, "axis", -1);
  if (axis < -r || axis >= r)
    im.fail(n, "expected axis in [" + std::to_string(-r) + ", " + std::to_string(r) + ") for " + x->type.str() +
                   ", got " + std::to_string(axis));
  if (axis < 0) axis += r;
  if (im.attr_int(n, "stash_type", 1) != 1) im.fail(n, "expected stash_type 1 (float statistics)");
  const double eps = im.attr_float(n, "epsilon", 1e-5);
  std::vector<std::int64_t> trailing;
  const bool flatten = axis < r - 1;
  for (int d = static_cast<int>(axis); flatten && d < r; ++d) {
    const Dim& dim = x->type.shape[static_cast<std::size_t>(d)];
    if (!dim.concrete())
      im.fail(n, "expected concrete dims from axis " + std::to_string(axis) + " on (normalized together), got " +
                     x->type.str());
    trailing.push_back(dim.value);
  }
  // Scale or B as a vector over the flattened dims: a constant's bytes under new dims, else a reshape.
  auto flat = [&](int i) -> Value* {
    if (!im.has_input(n, i) || !flatten) return im.input(n, i, false);
    if (const ConstTensor* c = im.constant(n, i))
      return im.add_constant(n.proto.input(i) + "/flat", TensorType{c->dtype, concrete_shape({c->numel()})}, c->data);
    return im.emit_temp(n, "reshape", "flat" + std::to_string(i), {im.input(n, i)},
                        {{"shape", std::vector<std::int64_t>{-1}}});
  };
  // Each output as its own Kiln node: a copy of the ONNX node with that output alone, so that emit() names it.
  for (int i = 0; i < std::min(n.proto.output_size(), 3); ++i) {
    if (n.proto.output(i).empty()) continue;
    onnx::NodeProto one = n.proto;
    one.clear_output();
    one.add_output(n.proto.output(i));
    OnnxNode part{one, n.index, n.opset, n.loc, n.name};
    if (i > 0) {
      im.emit(part, "layer_norm_stats", {x},
              {{"stat", std::string(i == 1 ? "mean" : "inv_std_dev")}, {"axis", axis}, {"eps", eps}});
    } else if (!flatten) {
      im.emit(part, "layer_norm", {x, flat(1), flat(2), nullptr}, {{"eps", eps}});
    } else {
      std::vector<std::int64_t> rows(static_cast<std::size_t>(axis), 0), back(static_cast<std::size_t>(axis), 0);
      rows.push_back(-1);
      back.insert(back.end(), trailing.begin(), trailing.end());
      Value* x2 = im.emit_temp(part, "reshape", "rows", {x}, {{"shape", rows}});
      Value* y2 = im.emit_temp(part, "layer_norm", "norm", {x2, flat(1), flat(2), nullptr}, {{"eps", eps}});
      im.emit(part, "reshape", {y2}, {{"shape", back}});
    }
  }
}

// The window of Conv and the pools, as Kiln's 2-D one: a 1-D op ([N,C,L]) runs as 2-D with a unit height
// ([N,C,1,L], reshaped around the Kiln node). kernel_shape, strides, dilations and pads ([begin...,
// end...]; Kiln's padding is [top, left, bottom, right], the same order in 2-D) have one entry per spatial
// dim. auto_pad SAME_UPPER/SAME_LOWER become explicit pads computed from the input's concrete spatial
// size (ONNX: output = ceil(in / stride); the odd pad goes at the end for UPPER, at the beginning for
// LOWER); VALID is no padding.
struct Window {
  bool one_d = false;
  std::vector<std::int64_t> kernel, stride, dilation, pads;  // 2-D: [h, w] and [top, left, bottom, right]
};

Window window_of(Importer& im, const OnnxNode& n, Value* x, const std::vector<std::int64_t>& kernel) {
  const int r = rank_of(x);
  if (r != 3 && r != 4)
    im.fail(n, "expected a 1-D input [N,C,L] or a 2-D input [N,C,H,W], got " + x->type.str() +
                   " (3-D windows are not supported)");
  const auto sp = static_cast<std::size_t>(r - 2);
  auto per_dim = [&](const std::string& key, std::int64_t dflt) {
    std::vector<std::int64_t> v = im.attr_ints(n, key, std::vector<std::int64_t>(sp, dflt));
    if (v.size() != sp)
      im.fail(n, "expected " + std::to_string(sp) + " " + key + " for " + x->type.str() + ", got " +
                     std::to_string(v.size()));
    return v;
  };
  if (kernel.size() != sp)
    im.fail(n, "expected kernel_shape of " + std::to_string(sp) + " entries for " + x->type.str() + ", got " +
                   std::to_string(kernel.size()));
  Window w;
  w.one_d = sp == 1;
  w.kernel = kernel;
  w.stride = per_dim("strides", 1);
  w.dilation = per_dim("dilations", 1);
  for (std::size_t d = 0; d < sp; ++d)
    if (w.stride[d] < 1 || w.dilation[d] < 1 || w.kernel[d] < 1)
      im.fail(n, "expected kernel_shape, strides and dilations >= 1");
  const std::string auto_pad = im.attr_string(n, "auto_pad", "NOTSET");
  if (auto_pad == "NOTSET") {
    w.pads = im.attr_ints(n, "pads", std::vector<std::int64_t>(2 * sp, 0));
    if (w.pads.size() != 2 * sp)
      im.fail(n, "expected " + std::to_string(2 * sp) + " pads for " + x->type.str() + ", got " +
                     std::to_string(w.pads.size()));
  } else if (auto_pad == "VALID") {
    w.pads.assign(2 * sp, 0);
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    w.pads.assign(2 * sp, 0);
    for (std::size_t d = 0; d < sp; ++d) {
      const Dim& in = x->type.shape[2 + d];
      if (!in.concrete())
        im.fail(n, "auto_pad " + auto_pad +
                       " needs the input's spatial size to be concrete (the pads depend on it), got " + x->type.str());
      const std::int64_t out = (in.value + w.stride[d] - 1) / w.stride[d];
      const std::int64_t total =
          std::max<std::int64_t>(0, (out - 1) * w.stride[d] + (w.kernel[d] - 1) * w.dilation[d] + 1 - in.value);
      const std::int64_t small = total / 2, large = total - small;
      w.pads[d] = auto_pad == "SAME_UPPER" ? small : large;
      w.pads[d + sp] = auto_pad == "SAME_UPPER" ? large : small;
    }
  } else {
    im.fail(n, "expected auto_pad NOTSET, VALID, SAME_UPPER or SAME_LOWER, got " + auto_pad);
  }
  for (auto p : w.pads)
    if (p < 0) im.fail(n, "expected pads >= 0, got " + std::to_string(p));
  if (w.one_d) {
    w.kernel = {1, w.kernel[0]};
    w.stride = {1, w.stride[0]};
    w.dilation = {1, w.dilation[0]};
    w.pads = {0, w.pads[0], 0, w.pads[1]};
  }
  return w;
}

/// x as Kiln's 2-D ops take it: a 1-D [N,C,L] input gets a unit height.
Value* as_2d(Importer& im, const OnnxNode& n, Value* x, const Window& w) {
  if (!w.one_d) return x;
  return im.emit_temp(n, "reshape", "as_2d", {x}, {{"shape", std::vector<std::int64_t>{0, 0, 1, -1}}});
}

/// Emits the Kiln op of node n on the 2-D input; for a 1-D node the unit height is dropped after it.
void emit_window_op(Importer& im, const OnnxNode& n, const Window& w, const std::string& op, std::vector<Value*> inputs,
                    AttrMap attrs) {
  if (!w.one_d) {
    im.emit(n, op, std::move(inputs), std::move(attrs));
    return;
  }
  im.unused_outputs_from(n, 1);
  Value* y = im.emit_temp(n, op, "2d", std::move(inputs), std::move(attrs));
  im.emit(n, "reshape", {y}, {{"shape", std::vector<std::int64_t>{0, 0, -1}}});
}

void map_conv(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"});
  Value* x = im.input(n, 0);
  Value* w = im.input(n, 1);
  if (!im.constant(n, 1)) im.fail(n, "expected a constant weight (Kiln's conv2d takes its weights as constants)");
  if (w->type.rank() != rank_of(x))
    im.fail(n, "expected a weight of the input's rank " + std::to_string(rank_of(x)) + ", got " + w->type.str());
  std::vector<std::int64_t> wk;
  for (int d = 2; d < w->type.rank(); ++d) wk.push_back(w->type.shape[static_cast<std::size_t>(d)].value);
  if (auto k = im.attr_ints(n, "kernel_shape"); !k.empty() && k != wk)
    im.fail(n, "kernel_shape differs from the weight's " + w->type.str());
  const Window win = window_of(im, n, x, wk);
  if (win.one_d) {  // the weight [O, C/g, k] as [O, C/g, 1, k]: the same bytes
    const ConstTensor* c = im.constant(n, 1);
    std::vector<std::int64_t> dims = {c->dims[0], c->dims[1], 1, c->dims[2]};
    w = im.add_constant(n.proto.input(1) + "/2d", TensorType{c->dtype, concrete_shape(dims)}, c->data);
  }
  emit_window_op(im, n, win, "conv2d", {as_2d(im, n, x, win), w, im.input(n, 2, false), nullptr},
                 {{"stride", win.stride},
                  {"padding", win.pads},
                  {"dilation", win.dilation},
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

// The pools' window. ceil_mode = 1 (opset 10 on): the output size rounds up, ceil((in + pads - k) / s) + 1,
// which is the floor formula with the end pad grown to cover the last window; it needs the input's
// spatial size concrete, and the last window must start inside the input or its begin pad (ONNX's formula
// and PyTorch's agree then). Averages that count padding would count the grown pad too, so
// count_include_pad = 1 takes ceil_mode only where it grows nothing.
std::pair<Window, AttrMap> pool_window(Importer& im, const OnnxNode& n, Value* x, bool count_pad) {
  Window w = window_of(im, n, x, im.attr_ints(n, "kernel_shape"));
  if (n.op() != "MaxPool" && (w.dilation[0] != 1 || w.dilation[1] != 1))
    im.fail(n, "expected dilations of 1 (Kiln's avg_pool is not dilated)");
  if (im.attr_int(n, "ceil_mode", 0) != 0) {
    const std::string auto_pad = im.attr_string(n, "auto_pad", "NOTSET");
    if (auto_pad != "NOTSET" && auto_pad != "VALID")
      im.fail(n, "expected ceil_mode 0 with auto_pad " + auto_pad + " (which fixes the output size by itself)");
    for (int a = 0; a < 2; ++a) {
      const Dim& in = x->type.shape[w.one_d ? 2 : 2 + static_cast<std::size_t>(a)];
      if (w.one_d && a == 0) continue;
      if (!in.concrete()) im.fail(n, "ceil_mode 1 needs the input's spatial size to be concrete, got " + x->type.str());
      const std::int64_t k = (w.kernel[a] - 1) * w.dilation[a] + 1, s = w.stride[a], pb = w.pads[a], pe = w.pads[a + 2];
      const std::int64_t span = in.value + pb + pe - k;
      if (span < 0) im.fail(n, "the window is larger than the padded input " + x->type.str());
      const std::int64_t out = (span + s - 1) / s + 1;
      if ((out - 1) * s >= in.value + pb)
        im.fail(n, "with ceil_mode 1 the last window would start in the end padding (ONNX and PyTorch differ there)");
      const std::int64_t grown = (out - 1) * s + k - in.value - pb;
      if (grown > pe) {
        if (count_pad)
          im.fail(n,
                  "expected ceil_mode 0 with count_include_pad 1 (the rounded-up window would count padding "
                  "that ONNX does not)");
        w.pads[a + 2] = grown;
      }
    }
  }
  AttrMap attrs{{"kernel", w.kernel}, {"stride", w.stride}, {"padding", w.pads}};
  if (n.op() == "MaxPool") attrs["dilation"] = w.dilation;  // AveragePool has none before opset 19
  return {w, attrs};
}

// Kiln's pools take pads of at most half the kernel (PyTorch's rule). Larger ones, where the pooled values
// do not depend on how the padding is counted, become an explicit `pad` of x2 (the 2-D input) before a pool
// without padding: the lowest float for MaxPool (what a window of padding alone gives in ONNX Runtime),
// zeros for AveragePool with count_include_pad 1. AveragePool without it keeps them (Kiln's pool refuses).
Value* pad_beyond_half_kernel(Importer& im, const OnnxNode& n, Value* x2, AttrMap& attrs, double value) {
  const auto& k = std::get<std::vector<std::int64_t>>(attrs.at("kernel"));
  const auto p = std::get<std::vector<std::int64_t>>(attrs.at("padding"));
  if (2 * std::max(p[0], p[2]) <= k[0] && 2 * std::max(p[1], p[3]) <= k[1]) return x2;
  attrs["padding"] = std::vector<std::int64_t>{0, 0, 0, 0};
  return im.emit_temp(n, "pad", "pads", {x2},
                      {{"pads", std::vector<std::int64_t>{0, 0, p[0], p[1], 0, 0, p[2], p[3]}},
                       {"mode", std::string("constant")},
                       {"value", value}});
}

void map_max_pool(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"});
  if (im.attr_int(n, "storage_order", 0) != 0) im.fail(n, "expected storage_order 0");
  Value* x = im.input(n, 0);
  auto [w, attrs] = pool_window(im, n, x, false);
  Value* x2 = pad_beyond_half_kernel(im, n, as_2d(im, n, x, w), attrs,
                                     static_cast<double>(std::numeric_limits<float>::lowest()));
  emit_window_op(im, n, w, "max_pool", {x2}, std::move(attrs));
}

void map_avg_pool(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads", "strides"});
  Value* x = im.input(n, 0);
  const bool count_pad = im.attr_int(n, "count_include_pad", 0) != 0;
  auto [w, attrs] = pool_window(im, n, x, count_pad);
  attrs["count_include_pad"] = count_pad;
  Value* x2 = as_2d(im, n, x, w);
  if (count_pad) x2 = pad_beyond_half_kernel(im, n, x2, attrs, 0.0);
  emit_window_op(im, n, w, "avg_pool", {x2}, std::move(attrs));
}

// GlobalAveragePool and GlobalMaxPool over any number of spatial dims: [N,C,H,W] as it is; [N,C,...] of
// another rank (1-D, 3-D) reshaped to [N,C,1,spatial product] around the 2-D pool, and back to [N,C,1,...].
void map_global_pool(Importer& im, const OnnxNode& n, const std::string& op) {
  im.only_attrs(n, {});
  Value* x = im.input(n, 0);
  const int r = rank_of(x);
  if (r < 3) im.fail(n, "expected an input [N,C,...] with at least one spatial dim, got " + x->type.str());
  if (r == 4) {
    im.emit(n, op, {x}, {});
    return;
  }
  Value* x4 = im.emit_temp(n, "reshape", "as_2d", {x}, {{"shape", std::vector<std::int64_t>{0, 0, 1, -1}}});
  Value* y4 = im.emit_temp(n, op, "2d", {x4}, {});
  std::vector<std::int64_t> back(static_cast<std::size_t>(r), 1);
  back[0] = back[1] = 0;
  im.emit(n, "reshape", {y4}, {{"shape", back}});
}
void map_global_avg_pool(Importer& im, const OnnxNode& n) { map_global_pool(im, n, "global_avg_pool"); }
void map_global_max_pool(Importer& im, const OnnxNode& n) { map_global_pool(im, n, "global_max_pool"); }

// InstanceNormalization (unchanged since opset 6): scale and B per channel, epsilon.
void map_instance_norm(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"epsilon"});
  Value* x = im.input(n, 0);
  if (rank_of(x) < 3) im.fail(n, "expected an input of rank >= 3 [N,C,...], got " + x->type.str());
  im.emit(n, "instance_norm", {x, im.input(n, 1), im.input(n, 2)}, {{"eps", im.attr_float(n, "epsilon", 1e-5)}});
}

// An integer input that must be a constant (TopK's K, CumSum's axis, Trilu's k, Pad's pads, ...).
std::vector<std::int64_t> const_input_ints(Importer& im, const OnnxNode& n, int i, const std::string& what) {
  const ConstTensor* c = im.constant(n, i);
  if (!c) im.fail(n, "expected " + what + " (input " + std::to_string(i) + ") to be a constant");
  return const_ints(im, n, *c, what);
}

std::int64_t const_input_int(Importer& im, const OnnxNode& n, int i, const std::string& what) {
  auto v = const_input_ints(im, n, i, what);
  if (v.size() != 1) im.fail(n, "expected " + what + " to hold one value, got " + std::to_string(v.size()));
  return v[0];
}

// ArgMax and ArgMin: axis (default 0), keepdims (default 1), select_last_index (opset 12 on).
void map_arg(Importer& im, const OnnxNode& n, const std::string& op) {
  im.only_attrs(n, {"axis", "keepdims", "select_last_index"});
  im.emit(n, op, {im.input(n, 0)},
          {{"axis", im.attr_int(n, "axis", 0)},
           {"keepdims", im.attr_int(n, "keepdims", 1) != 0},
           {"select_last_index", im.attr_int(n, "select_last_index", 0) != 0}});
}
void map_argmax(Importer& im, const OnnxNode& n) { map_arg(im, n, "argmax"); }
void map_argmin(Importer& im, const OnnxNode& n) { map_arg(im, n, "argmin"); }

// TopK: k an attribute before opset 10, a constant input from 10; largest and sorted from 11. Kiln's
// topk always sorts, which is one of the orders sorted = 0 allows.
void map_topk(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"axis", "k", "largest", "sorted"});
  const std::int64_t k = n.opset < 10 ? im.attr_int(n, "k", 0) : const_input_int(im, n, 1, "K");
  im.emit(n, "topk", {im.input(n, 0)},
          {{"k", k}, {"axis", im.attr_int(n, "axis", -1)}, {"largest", im.attr_int(n, "largest", 1) != 0}});
}

// CumSum: axis a constant input; exclusive, reverse.
void map_cumsum(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"exclusive", "reverse"});
  im.emit(n, "cumsum", {im.input(n, 0)},
          {{"axis", const_input_int(im, n, 1, "axis")},
           {"exclusive", im.attr_int(n, "exclusive", 0) != 0},
           {"reverse", im.attr_int(n, "reverse", 0) != 0}});
}

// Trilu: upper (default 1), k an optional constant input (default 0).
void map_trilu(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"upper"});
  const std::int64_t k = im.has_input(n, 1) ? const_input_int(im, n, 1, "k") : 0;
  im.emit(n, "trilu", {im.input(n, 0)}, {{"upper", im.attr_int(n, "upper", 1) != 0}, {"k", k}});
}

// Tile: repeats a constant input, one per dim.
void map_tile(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {});
  im.emit(n, "tile", {im.input(n, 0)}, {{"repeats", const_input_ints(im, n, 1, "repeats")}});
}

void map_gather_elements(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"axis"});
  im.emit(n, "gather_elements", {im.input(n, 0), im.input(n, 1)}, {{"axis", im.attr_int(n, "axis", 0)}});
}

// Pad: pads (and the constant value) attributes before opset 11, inputs from 11 (pads a constant int64
// [2*rank]; constant_value an optional constant scalar). Modes constant, edge, reflect; negative pads
// (cropping) are refused.
void map_pad(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, n.opset < 11 ? std::initializer_list<std::string_view>{"mode", "pads", "value"}
                                : std::initializer_list<std::string_view>{"mode"});
  Value* x = im.input(n, 0);
  const std::string mode = im.attr_string(n, "mode", "constant");
  if (mode != "constant" && mode != "edge" && mode != "reflect")
    im.fail(n, "expected mode constant, edge or reflect, got " + mode);
  std::vector<std::int64_t> pads;
  double value = 0;
  if (n.opset < 11) {
    pads = im.attr_ints(n, "pads");
    value = im.attr_float(n, "value", 0.0);
  } else {
    pads = const_input_ints(im, n, 1, "pads");
    if (im.has_input(n, 2)) {
      const ConstTensor* c = im.constant(n, 2);
      if (!c) im.fail(n, "expected constant_value (input 2) to be a constant");
      value = const_scalar(im, n, *c, "constant_value");
    }
  }
  if (static_cast<int>(pads.size()) != 2 * rank_of(x))
    im.fail(n, "expected " + std::to_string(2 * rank_of(x)) + " pads for " + x->type.str() + ", got " +
                   std::to_string(pads.size()));
  for (auto p : pads)
    if (p < 0)
      im.fail(n, "expected pads >= 0 (negative pads, which crop, are not supported), got " + std::to_string(p));
  im.emit(n, "pad", {x}, {{"pads", pads}, {"mode", mode}, {"value", value}});
}

// Split: into the `split` sizes (an attribute before opset 13, a constant input from 13) or, without
// them, into as many equal parts as the node has outputs. Each output is one Kiln split node.
void map_split(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, n.opset < 13 ? std::initializer_list<std::string_view>{"axis", "split"}
                                : std::initializer_list<std::string_view>{"axis"});
  Value* x = im.input(n, 0);
  const std::int64_t axis = im.attr_int(n, "axis", 0);
  const int r = rank_of(x);
  if (axis < -r || axis >= r)
    im.fail(n, "expected axis in [" + std::to_string(-r) + ", " + std::to_string(r) + "), got " + std::to_string(axis));
  const Dim& d = x->type.shape[static_cast<std::size_t>(axis < 0 ? axis + r : axis)];
  const int parts = n.proto.output_size();
  std::vector<std::int64_t> sizes =
      n.opset < 13 ? im.attr_ints(n, "split")
                   : (im.has_input(n, 1) ? const_input_ints(im, n, 1, "split") : std::vector<std::int64_t>{});
  if (sizes.empty()) {
    if (!d.concrete() || parts < 1 || d.value % parts != 0)
      im.fail(n, "expected dim " + std::to_string(axis) + " of " + x->type.str() + " to split into " +
                     std::to_string(parts) + " equal parts");
    sizes.assign(static_cast<std::size_t>(parts), d.value / parts);
  }
  if (static_cast<int>(sizes.size()) != parts)
    im.fail(n,
            "expected one split size per output (" + std::to_string(parts) + "), got " + std::to_string(sizes.size()));
  // One node per output: a copy of the ONNX node with that output alone, so that emit() names it.
  for (int i = 0; i < parts; ++i) {
    if (n.proto.output(i).empty()) continue;
    onnx::NodeProto one = n.proto;
    one.clear_output();
    one.add_output(n.proto.output(i));
    OnnxNode part{one, n.index, n.opset, n.loc, n.name};
    im.emit(part, "split", {x}, {{"axis", axis}, {"sizes", sizes}, {"index", std::int64_t{i}}});
  }
}

// Resize (opsets 10, 11–12, 13) and Upsample (7–9) onto Kiln's resize of [N,C,H,W] (N and C not resized;
// scales, sizes and roi constant). Kiln's resize has ONNX's coordinate modes, nearest modes, linear and
// cubic (its Kiln kernel, on plain data); the cases equal to its default semantics (half-pixel by the
// ratio of the sizes, nearest rounding ties up; oneDNN's resampling, in any layout) are given as that
// default: pytorch_half_pixel with no output size 1, linear, nearest round_prefer_floor where no output
// pixel is a tie (concrete sizes; integer upscaling has none), and asymmetric + floor (Upsample, Resize 10)
// for integer upscaling. ONNX maps coordinates by the given scale: when floor(in * scale) differs from
// in * scale, the scale is passed as coordinate_scale.
void map_resize(Importer& im, const OnnxNode& n) {
  const bool upsample = n.op() == "Upsample";
  const bool legacy = upsample || n.opset < 11;  // asymmetric coordinates, nearest rounds down
  if (upsample && n.opset < 9) im.only_attrs(n, {"mode", "scales"});
  else if (legacy) im.only_attrs(n, {"mode"});
  else
    im.only_attrs(n, {"coordinate_transformation_mode", "cubic_coeff_a", "exclude_outside", "extrapolation_value",
                      "mode", "nearest_mode"});
  Value* x = im.input(n, 0);
  if (rank_of(x) != 4) im.fail(n, "expected a 2-D input [N,C,H,W], got " + x->type.str() + " (Kiln resizes H and W)");
  const std::string mode = im.attr_string(n, "mode", "nearest");
  if (mode != "nearest" && mode != "linear" && (legacy || mode != "cubic"))
    im.fail(n, "expected mode nearest, linear" + std::string(legacy ? "" : " or cubic") + ", got " + mode);
  std::string coord = legacy ? "asymmetric" : im.attr_string(n, "coordinate_transformation_mode", "half_pixel");
  std::string nearest = legacy ? "floor" : im.attr_string(n, "nearest_mode", "round_prefer_floor");

  // The scales (attribute before Upsample 9; input 1 of Upsample 9 and Resize 10; input 2 from Resize 11)
  // or the sizes (input 3 from Resize 11); an empty tensor counts as absent.
  std::vector<double> scales;
  std::vector<std::int64_t> sizes;
  if (upsample && n.opset < 9) {
    const auto* a = im.attr(n, "scales");
    if (!a) im.fail(n, "expected attribute 'scales'");
    scales.assign(a->floats().begin(), a->floats().end());
  } else {
    const int si = legacy ? 1 : 2;
    if (im.has_input(n, si)) {
      const ConstTensor* c = im.constant(n, si);
      if (!c) im.fail(n, "expected scales (input " + std::to_string(si) + ") to be a constant");
      if (c->dtype != DType::f32) im.fail(n, "expected scales of type float");
      const auto* f = static_cast<const float*>(c->data.data);
      scales.assign(f, f + c->numel());
    }
    if (!legacy && im.has_input(n, 3)) {
      const ConstTensor* c = im.constant(n, 3);
      if (!c) im.fail(n, "expected sizes (input 3) to be a constant");
      sizes = const_ints(im, n, *c, "sizes");
    }
  }
  if (scales.empty() == sizes.empty()) im.fail(n, "expected exactly one of scales and sizes (non-empty)");
  if ((!scales.empty() && scales.size() != 4) || (!sizes.empty() && sizes.size() != 4))
    im.fail(n, "expected 4 scales or sizes for " + x->type.str());
  const Shape& in = x->type.shape;
  for (std::size_t d = 0; d < 2; ++d)
    if (scales.empty() ? !in[d].is(sizes[d]) : scales[d] != 1.0)
      im.fail(n, "expected N and C unchanged (scale 1), got " + std::string(scales.empty() ? "sizes" : "scales") +
                     " resizing dim " + std::to_string(d) + " (Kiln resizes H and W only)");

  // Each spatial dim: its output size (when the input's is concrete), whether it is an integer upscale,
  // and ONNX's unrounded output width (in * scale).
  std::int64_t out[2] = {0, 0};
  double width[2] = {0, 0};
  bool integer_up[2] = {false, false}, concrete = true, by_scale = false;
  for (std::size_t a = 0; a < 2; ++a) {
    const Dim& i = in[2 + a];
    if (!sizes.empty()) {
      if (!i.concrete()) im.fail(n, "sizes need the input's spatial size to be concrete, got " + x->type.str());
      out[a] = sizes[2 + a];
      if (out[a] < 1) im.fail(n, "expected sizes >= 1");
      width[a] = static_cast<double>(out[a]);
      integer_up[a] = out[a] % i.value == 0;
      continue;
    }
    const double sc = scales[2 + a];
    if (!(sc > 0)) im.fail(n, "expected scales > 0");
    if (i.concrete()) {
      width[a] = static_cast<double>(i.value) * sc;
      out[a] = static_cast<std::int64_t>(std::floor(width[a]));
      if (out[a] < 1) im.fail(n, "scale " + std::to_string(sc) + " leaves no pixels of " + x->type.str());
      by_scale = by_scale || static_cast<double>(out[a]) != width[a];
      integer_up[a] = out[a] % i.value == 0 && static_cast<double>(out[a]) == width[a];
    } else {
      if (sc != std::floor(sc))
        im.fail(n, "a fractional scale needs the input's spatial size to be concrete, got " + x->type.str());
      concrete = false;
      integer_up[a] = true;
      width[a] = 2;  // only compared with 1 below
    }
  }

  // Canonical forms of the cases Kiln's default semantics compute.
  if (coord == "pytorch_half_pixel" && width[0] != 1 && width[1] != 1) coord = "half_pixel";
  if (mode == "nearest" && coord == "asymmetric" && nearest == "floor" && integer_up[0] && integer_up[1]) {
    coord = "half_pixel";  // floor(o / s) == round-half-up((o + 0.5) / s - 0.5) for integer s
    nearest = "round_prefer_ceil";
  }
  if (mode == "nearest" && coord == "half_pixel" && nearest == "round_prefer_floor") {
    // A tie: (o + 0.5) * in / out - 0.5 halfway between two pixels.
    bool tie = !concrete || by_scale;
    for (std::size_t a = 0; a < 2 && !tie; ++a)
      for (std::int64_t o = 0; o < out[a] && !tie; ++o) tie = (2 * o + 1) * in[2 + a].value % (2 * out[a]) == 0;
    if (!tie || (!concrete && integer_up[0] && integer_up[1])) nearest = "round_prefer_ceil";
  }
  if (mode != "nearest") nearest = "round_prefer_ceil";  // not read
  AttrMap attrs{{"mode", mode}, {"coordinate_mode", coord}, {"nearest_mode", nearest}};
  if (mode == "cubic") {
    attrs["cubic_coeff_a"] = im.attr_float(n, "cubic_coeff_a", -0.75);
    attrs["exclude_outside"] = im.attr_int(n, "exclude_outside", 0) != 0;
  }
  if (coord == "tf_crop_and_resize") {
    const ConstTensor* roi = im.constant(n, 1);
    if (!roi)
      im.fail(n, "expected roi (input 1) to be a constant with coordinate_transformation_mode tf_crop_and_resize");
    if (roi->dtype != DType::f32 || roi->numel() != 8)
      im.fail(n, "expected roi of 8 floats [starts..., ends...] for " + x->type.str());
    const auto* r = static_cast<const float*>(roi->data.data);
    if (r[0] != 0 || r[1] != 0 || r[4] != 1 || r[5] != 1)
      im.fail(n, "expected roi to keep N and C whole (start 0, end 1)");
    attrs["roi"] = std::vector<double>{r[2], r[3], r[6], r[7]};
    attrs["extrapolation_value"] = im.attr_float(n, "extrapolation_value", 0.0);
  }
  if (concrete) attrs["size"] = std::vector<std::int64_t>{out[0], out[1]};
  else attrs["scale"] = std::vector<double>{scales[2], scales[3]};
  if (by_scale) attrs["coordinate_scale"] = std::vector<double>{scales[2], scales[3]};
  im.emit(n, "resize", {x}, std::move(attrs));
}

// ConvTranspose (2-D, and 1-D with a unit height as Conv) onto conv_transpose2d: strides, dilations, group,
// pads, output_padding. output_shape (and, from opset 11, auto_pad SAME_*, whose output is in * stride)
// gives the pads from the input's concrete size: total = stride * (in - 1) + output_padding +
// dilation * (k - 1) + 1 - out, split as ONNX says (SAME_UPPER: the smaller half first); a negative end
// pad lengthens the output's end (as output_padding). auto_pad SAME before opset 11 meant another output size and is refused.
void map_conv_transpose(Importer& im, const OnnxNode& n) {
  im.only_attrs(
      n, {"auto_pad", "dilations", "group", "kernel_shape", "output_padding", "output_shape", "pads", "strides"});
  Value* x = im.input(n, 0);
  const int r = rank_of(x);
  if (r != 3 && r != 4)
    im.fail(n, "expected a 1-D input [N,C,L] or a 2-D input [N,C,H,W], got " + x->type.str() +
                   " (3-D transposed convolution is not supported)");
  const auto sp = static_cast<std::size_t>(r - 2);
  const ConstTensor* wc = im.constant(n, 1);
  if (!wc) im.fail(n, "expected a constant weight (Kiln's conv_transpose2d takes its weights as constants)");
  if (wc->dims.size() != static_cast<std::size_t>(r))
    im.fail(n,
            "expected a weight of the input's rank " + std::to_string(r) + ", got " + std::to_string(wc->dims.size()));
  std::vector<std::int64_t> k(wc->dims.begin() + 2, wc->dims.end());
  if (auto ks = im.attr_ints(n, "kernel_shape"); !ks.empty() && ks != k)
    im.fail(n, "kernel_shape differs from the weight's kernel");
  auto per_dim = [&](const std::string& key, std::int64_t dflt, std::size_t count) {
    std::vector<std::int64_t> v = im.attr_ints(n, key, std::vector<std::int64_t>(count, dflt));
    if (v.size() != count)
      im.fail(n, "expected " + std::to_string(count) + " " + key + " for " + x->type.str() + ", got " +
                     std::to_string(v.size()));
    return v;
  };
  auto stride = per_dim("strides", 1, sp), dilation = per_dim("dilations", 1, sp),
       out_pad = per_dim("output_padding", 0, sp), pads = per_dim("pads", 0, 2 * sp);
  for (std::size_t d = 0; d < sp; ++d)
    if (stride[d] < 1 || dilation[d] < 1) im.fail(n, "expected strides and dilations >= 1");
  const std::string auto_pad = im.attr_string(n, "auto_pad", "NOTSET");
  std::vector<std::int64_t> out_shape = im.attr_ints(n, "output_shape");
  if (auto_pad == "VALID") {
    pads.assign(2 * sp, 0);
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    if (n.opset < 11) im.fail(n, "expected auto_pad NOTSET or VALID before opset 11, got " + auto_pad);
    if (out_shape.empty())
      for (std::size_t d = 0; d < sp; ++d) {
        const Dim& in = x->type.shape[2 + d];
        if (!in.concrete())
          im.fail(n, "auto_pad " + auto_pad + " needs the input's spatial size to be concrete, got " + x->type.str());
        out_shape.push_back(in.value * stride[d]);
      }
  } else if (auto_pad != "NOTSET") {
    im.fail(n, "expected auto_pad NOTSET, VALID, SAME_UPPER or SAME_LOWER, got " + auto_pad);
  }
  if (!out_shape.empty()) {
    if (out_shape.size() == sp + 2) out_shape.erase(out_shape.begin(), out_shape.begin() + 2);  // [N, C, ...]
    if (out_shape.size() != sp) im.fail(n, "expected output_shape of " + std::to_string(sp) + " entries");
    for (std::size_t d = 0; d < sp; ++d) {
      const Dim& in = x->type.shape[2 + d];
      if (!in.concrete())
        im.fail(n, "output_shape needs the input's spatial size to be concrete, got " + x->type.str());
      const std::int64_t total = stride[d] * (in.value - 1) + out_pad[d] + dilation[d] * (k[d] - 1) + 1 - out_shape[d];
      // ONNX's split, with its reference's floor division: a negative total lengthens the end (an output
      // padding, which must stay below the stride) or, at SAME_UPPER, shifts the start (refused).
      const std::int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);
      pads[d] = auto_pad == "SAME_UPPER" ? half : total - half;
      pads[d + sp] = total - pads[d];
      if (pads[d + sp] < 0) {
        out_pad[d] -= pads[d + sp];
        pads[d + sp] = 0;
      }
      if (pads[d] < 0 || out_pad[d] >= stride[d])
        im.fail(n, "output_shape " + std::to_string(out_shape[d]) + " exceeds the transposed convolution of " +
                       x->type.str() + " (" + std::to_string(out_shape[d] + total) +
                       ") by more than an output padding below the stride can add");
    }
  }
  for (auto p : pads)
    if (p < 0) im.fail(n, "expected pads >= 0, got " + std::to_string(p));
  Window w;
  w.one_d = sp == 1;
  Value* weight = im.input(n, 1);
  std::vector<std::int64_t> opad = out_pad;
  if (w.one_d) {
    stride = {1, stride[0]};
    dilation = {1, dilation[0]};
    pads = {0, pads[0], 0, pads[1]};
    opad = {0, out_pad[0]};
    std::vector<std::int64_t> dims = {wc->dims[0], wc->dims[1], 1, wc->dims[2]};
    weight = im.add_constant(n.proto.input(1) + "/2d", TensorType{wc->dtype, concrete_shape(dims)}, wc->data);
  }
  emit_window_op(im, n, w, "conv_transpose2d", {as_2d(im, n, x, w), weight, im.input(n, 2, false)},
                 {{"stride", stride},
                  {"padding", pads},
                  {"dilation", dilation},
                  {"groups", im.attr_int(n, "group", 1)},
                  {"output_padding", opad}});
}

// LRN (unchanged since opset 1 but for types, opset 13): across channels of [N,C,H,W]; an odd size (even
// sizes centre the window unevenly in ONNX); alpha, beta, bias.
void map_lrn(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"alpha", "beta", "bias", "size"});
  Value* x = im.input(n, 0);
  if (rank_of(x) != 4) im.fail(n, "expected a 2-D input [N,C,H,W], got " + x->type.str());
  const std::int64_t size = im.attr_int(n, "size", 0);
  if (size < 1 || size % 2 == 0) im.fail(n, "expected an odd size, got " + std::to_string(size));
  im.emit(n, "lrn", {x},
          {{"size", size},
           {"alpha", im.attr_float(n, "alpha", 1e-4)},
           {"beta", im.attr_float(n, "beta", 0.75)},
           {"k", im.attr_float(n, "bias", 1.0)}});
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
      // ---- wt-nn: the nn ops of issue 15 point 3 ----
      {"GlobalMaxPool", 1, kMaxOpset, map_global_max_pool},        // unchanged since opset 1
      {"InstanceNormalization", 6, kMaxOpset, map_instance_norm},  // unchanged since opset 6
      {"ArgMax", kMinOpset, kMaxOpset, map_argmax},
      {"ArgMin", kMinOpset, kMaxOpset, map_argmin},
      {"TopK", kMinOpset, kMaxOpset, map_topk},
      {"CumSum", 11, kMaxOpset, map_cumsum},
      {"Trilu", 14, kMaxOpset, map_trilu},
      {"Tile", kMinOpset, kMaxOpset, map_tile},
      {"GatherElements", 11, kMaxOpset, map_gather_elements},
      {"Pad", kMinOpset, kMaxOpset, map_pad},
      {"Split", kMinOpset, kMaxOpset, map_split},
      {"Resize", 10, kMaxOpset, map_resize},
      {"Upsample", kMinOpset, 9, map_resize},
      {"ConvTranspose", kMinOpset, kMaxOpset, map_conv_transpose},
      {"LRN", kMinOpset, kMaxOpset, map_lrn},
  };
}

}  // namespace kiln::onnx_import
