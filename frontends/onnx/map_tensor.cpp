// Layout and value plumbing: transpose, reshape, flatten, concat, identity, dropout, constants.

#include <algorithm>
#include <cstring>

#include "frontends/onnx/importer.hpp"

namespace kiln::onnx_import {
namespace {

void map_transpose(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"perm"});
  Value* x = im.input(n, 0);
  std::vector<std::int64_t> perm = im.attr_ints(n, "perm");
  if (!im.attr(n, "perm"))  // default: the axes reversed
    for (int i = rank_of(x); i-- > 0;) perm.push_back(i);
  im.emit(n, "transpose", {x}, {{"perm", perm}});
}

void map_reshape(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"allowzero"});
  Value* x = im.input(n, 0);
  const ConstTensor* s = im.constant(n, 1);
  if (!s) im.fail(n, "expected a constant shape (input 1 is computed; Kiln's reshape takes the shape as an attribute)");
  std::vector<std::int64_t> shape = const_ints(im, n, *s, "the shape");
  if (im.attr_int(n, "allowzero", 0) != 0 && std::find(shape.begin(), shape.end(), 0) != shape.end())
    im.fail(n, "allowzero = 1 with a 0 in the shape (a zero-sized dim) is not supported");
  im.emit(n, "reshape", {x}, {{"shape", shape}});
}

// Identity and Dropout at inference: Kiln's dropout, a view that the remove-noops pass removes.
void map_identity(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {});
  im.emit(n, "dropout", {im.input(n, 0)}, {{"p", 0.0}});
}

void map_dropout(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"ratio", "seed"});
  double ratio = im.attr_float(n, "ratio", 0.5);
  if (const ConstTensor* r = im.constant(n, 1)) ratio = const_scalar(im, n, *r, "the ratio");
  if (im.has_input(n, 2)) {
    const ConstTensor* t = im.constant(n, 2);
    if (!t || t->numel() != 1 || t->dtype != DType::boolean || *static_cast<const unsigned char*>(t->data.data))
      im.fail(n, "expected training_mode absent or a constant false (Kiln runs inference only)");
  }
  im.emit(n, "dropout", {im.input(n, 0)}, {{"p", std::clamp(ratio, 0.0, 1.0)}});
}

// ONNX Flatten always gives 2-D [d0*..*d(axis-1), d(axis)*..]; Kiln's flatten keeps the leading dims, so it
// matches at axis 1; other axes become a reshape when one side's dims are concrete.
void map_flatten(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"axis"});
  Value* x = im.input(n, 0);
  const int r = rank_of(x);
  std::int64_t axis = im.attr_int(n, "axis", 1);
  if (axis < 0) axis += r;
  if (axis < 0 || axis > r) im.fail(n, "axis " + std::to_string(axis) + " is outside " + x->type.str());
  if (axis == 1 && r >= 2) return im.emit(n, "flatten", {x}, {{"axis", std::int64_t{1}}});
  auto product = [&](int from, int to) -> std::int64_t {
    std::int64_t p = 1;
    for (int i = from; i < to; ++i) {
      if (!x->type.shape[i].concrete()) return -1;
      p *= x->type.shape[i].value;
    }
    return p;
  };
  const std::int64_t head = product(0, static_cast<int>(axis)), tail = product(static_cast<int>(axis), r);
  std::vector<std::int64_t> shape;
  if (tail > 0) shape = {-1, tail};
  else if (head > 0) shape = {head, -1};
  else
    im.fail(n, "flattening " + x->type.str() + " at axis " + std::to_string(axis) +
                   " needs the dims on one side of the axis concrete and non-zero");
  if (axis == 0) shape = {1, -1};
  im.emit(n, "reshape", {x}, {{"shape", shape}});
}

void map_concat(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"axis"});
  if (!im.attr(n, "axis")) im.fail(n, "expected attribute 'axis'");
  im.emit(n, "concat", all_inputs(im, n), {{"axis", im.attr_int(n, "axis", 1)}});
}

// Constant: a value for later nodes' inputs (a Kiln constant where one is used as a tensor).
void map_constant(Importer& im, const OnnxNode& n) {
  if (n.proto.attribute_size() != 1) im.fail(n, "expected exactly one attribute holding the value");
  const auto& a = n.proto.attribute(0);
  ConstTensor c;
  auto scalars = [&](DType t, const void* src, std::size_t count, std::vector<std::int64_t> dims) {
    c.dtype = t;
    c.dims = std::move(dims);
    const std::size_t bytes = count * dtype_size(t);
    auto buf = aligned_buffer(bytes);
    if (bytes) std::memcpy(buf.get(), src, bytes);
    c.data = ConstData{buf.get(), bytes, std::shared_ptr<const void>(buf)};
  };
  if (a.name() == "value") {
    c = im.read_tensor(a.t(), n.label() + ": value");
  } else if (a.name() == "value_float") {
    const float f = a.f();
    scalars(DType::f32, &f, 1, {});
  } else if (a.name() == "value_floats") {
    scalars(DType::f32, a.floats().data(), static_cast<std::size_t>(a.floats_size()), {a.floats_size()});
  } else if (a.name() == "value_int") {
    const std::int64_t i = a.i();
    scalars(DType::i64, &i, 1, {});
  } else if (a.name() == "value_ints") {
    scalars(DType::i64, a.ints().data(), static_cast<std::size_t>(a.ints_size()), {a.ints_size()});
  } else {
    im.fail(n, "attribute '" + a.name() + "' is not supported (expected value, value_float(s) or value_int(s))");
  }
  im.define_constant(n, std::move(c));
}

}  // namespace

std::vector<OpRow> tensor_rows() {
  return {
      {"Transpose", kMinOpset, kMaxOpset, map_transpose}, {"Reshape", kMinOpset, kMaxOpset, map_reshape},
      {"Identity", kMinOpset, kMaxOpset, map_identity},   {"Dropout", kMinOpset, kMaxOpset, map_dropout},
      {"Flatten", kMinOpset, kMaxOpset, map_flatten},     {"Concat", kMinOpset, kMaxOpset, map_concat},
      {"Constant", 9, kMaxOpset, map_constant},
  };
}

}  // namespace kiln::onnx_import
