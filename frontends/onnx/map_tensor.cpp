// Layout and value plumbing: transpose, reshape, flatten, concat, identity, dropout, constants.

#include <algorithm>
#include <cstring>
#include <limits>

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

// Reshape's target, a constant or a shape value folded at import (map_shape.cpp), becomes an attribute valid
// for every binding of the symbolic dims: an entry equal to the input's dim at the same position -> 0,
// concrete -> itself, one other -> -1 (inferred). More symbolic entries than that take their size from a
// value that has it (reshape_dims); anything else is refused.
void map_reshape(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"allowzero"});
  Value* x = im.input(n, 0);
  const IntValue* s = im.known(n, 1);
  if (!s)
    im.fail(n,
            "the target shape (input 1) is computed from data at run time, a data-dependent shape (expected "
            "a constant, or a shape computed at import by Shape, Gather, Concat, ... from the input dims)");
  if (s->dims.size() != 1)
    im.fail(n, "expected a 1-D target shape, got a value of rank " + std::to_string(s->dims.size()));
  const bool allowzero = im.attr_int(n, "allowzero", 0) != 0;
  const int r = rank_of(x);
  std::vector<std::int64_t> shape;
  std::vector<std::size_t> others;  // symbolic entries that are not the input's dim at their position
  bool has_infer = false;
  for (std::size_t i = 0; i < s->elems.size(); ++i) {
    const Dim& e = s->elems[i];
    if (e.concrete()) {
      if (e.value == 0 && allowzero)
        im.fail(n, "allowzero = 1 with a 0 in the shape (a zero-sized dim) is not supported");
      if (e.value < -1) im.fail(n, "target shape " + s->str() + " has entry " + std::to_string(e.value));
      if (e.value == -1) {
        if (has_infer) im.fail(n, "target shape " + s->str() + " has more than one -1");
        has_infer = true;
      }
      shape.push_back(e.value);
    } else if (static_cast<int>(i) < r && same_dim(e, x->type.shape[i])) {
      shape.push_back(0);
    } else {
      others.push_back(i);
      shape.push_back(-1);
    }
  }
  // One entry may be inferred: the -1 if there is one, else a symbolic entry no value's axis has (a product
  // such as batch*seq), else the last. The rest take their size from a value's axis.
  std::size_t inferred = s->elems.size();
  if (!has_infer) {
    for (std::size_t i : others)
      if (!im.dim_source(s->elems[i]).first && inferred == s->elems.size()) inferred = i;
    if (inferred == s->elems.size() && !others.empty()) inferred = others.back();
  }
  std::vector<std::size_t> need_source;
  for (std::size_t i : others)
    if (i != inferred) need_source.push_back(i);
  std::vector<Value*> ins{x};
  std::vector<std::int64_t> dims;
  for (std::size_t i : need_source) {
    auto [v, axis] = im.dim_source(s->elems[i]);
    if (!v)
      im.fail(n, "target shape " + s->str() + " for input " + x->type.str() + ": entries " + std::to_string(i) + " (" +
                     s->elems[i].str() +
                     ") and another are symbolic, neither is the input's dim at its position nor the size of a "
                     "known value's axis, and only one dim can be inferred");
    auto it = std::find(ins.begin(), ins.end(), v);
    if (it == ins.end()) it = ins.insert(ins.end(), v);
    shape[i] = 0;
    dims.insert(dims.end(), {static_cast<std::int64_t>(i), it - ins.begin(), axis});
  }
  if (dims.empty()) im.emit(n, "reshape", {x}, {{"shape", shape}});
  else im.emit(n, "reshape_dims", ins, {{"shape", shape}, {"dims", dims}});
  // The attribute must give the folded target for every binding: checked on the inferred shape.
  const Value* y = im.output_value(n, 0);
  bool same = y && y->type.rank() == static_cast<int>(s->elems.size());
  for (std::size_t i = 0; same && i < s->elems.size(); ++i)
    same = s->elems[i].is(-1) || s->elems[i].is(0) || same_dim(s->elems[i], y->type.shape[i]);
  if (!same)
    im.fail(n, "reshaping " + x->type.str() + " to the target " + s->str() + " gives " +
                   (y ? y->type.str() : std::string("nothing")) + " (the target is not valid for every binding)");
}

// Slice: opsets 10+ read starts/ends/axes/steps from inputs (constants or shape values), 7-9 from
// attributes. An end equal to a symbolic dim is "to the end".
void map_slice(Importer& im, const OnnxNode& n) {
  Value* x = im.input(n, 0);
  const int r = rank_of(x);
  std::vector<std::int64_t> axes, starts, ends, steps;
  auto read = [&](int i, const char* what, std::vector<std::int64_t>* out, bool is_end) {
    const IntValue* v = im.known(n, i);
    if (!v)
      im.fail(n, std::string("the ") + what + " (input " + std::to_string(i) +
                     ") are computed from data at run time (expected constants or shapes computed at import)");
    for (const Dim& d : v->elems) {
      if (!d.concrete() && !is_end)
        im.fail(n,
                std::string("the ") + what + " " + v->str() + " hold a symbolic dim (expected concrete " + what + ")");
      out->push_back(d.concrete() ? d.value : 0);  // a symbolic end is resolved below against its axis
    }
  };
  std::vector<Dim> sym_ends;
  if (n.opset < 10) {
    im.only_attrs(n, {"starts", "ends", "axes"});
    starts = im.attr_ints(n, "starts");
    ends = im.attr_ints(n, "ends");
    axes = im.attr_ints(n, "axes");
  } else {
    im.only_attrs(n, {});
    read(1, "starts", &starts, false);
    read(2, "ends", &ends, true);
    if (const IntValue* e = im.known(n, 2)) sym_ends = e->elems;
    if (im.has_input(n, 3)) read(3, "axes", &axes, false);
    if (im.has_input(n, 4)) read(4, "steps", &steps, false);
  }
  if (axes.empty())
    for (std::size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<std::int64_t>(i));
  if (starts.size() != axes.size() || ends.size() != axes.size() || (!steps.empty() && steps.size() != axes.size()))
    im.fail(n, "starts, ends, axes and steps differ in length");
  for (std::size_t k = 0; k < sym_ends.size() && k < axes.size(); ++k) {
    if (sym_ends[k].concrete()) continue;
    const std::int64_t a = axes[k] < 0 ? axes[k] + r : axes[k];
    if (a < 0 || a >= r || !same_dim(sym_ends[k], x->type.shape[static_cast<std::size_t>(a)]))
      im.fail(n, "end " + sym_ends[k].str() + " is symbolic and not the size of axis " + std::to_string(axes[k]) +
                     " of " + x->type.str() + " (the slice's size would depend on the binding)");
    ends[k] = std::numeric_limits<std::int64_t>::max();
  }
  if (steps.empty()) steps.assign(axes.size(), 1);
  im.emit(n, "slice", {x}, {{"axes", axes}, {"starts", starts}, {"ends", ends}, {"steps", steps}});
}

// Gather: an embedding lookup (constant f32 [V,D] table, integer ids computed at run time: nn.Embedding),
// or Kiln's gather with constant indices (a scalar index drops the axis). On shape values it folds.
void map_gather(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"axis"});
  std::int64_t axis = im.attr_int(n, "axis", 0);
  const ConstTensor* table = im.constant(n, 0);
  if (im.computed(n, 1)) {
    Value* ids = im.input(n, 1);
    if (!table || table->dtype != DType::f32 || table->dims.size() != 2 || (axis != 0 && axis != -2))
      im.fail(n,
              "indices computed at run time are supported only into a constant f32 [V, D] table along axis 0 "
              "(an embedding), got " +
                  std::string(table ? "a constant " + std::string(dtype_name(table->dtype)) +
                                          shape_str(concrete_shape(table->dims))
                                    : "a computed tensor") +
                  " along axis " + std::to_string(axis));
    if (ids->type.dtype != DType::i64 && ids->type.dtype != DType::i32)
      im.fail(n, "expected int64 or int32 indices, got " + ids->type.str());
    return im.emit(n, "embedding", {ids, im.input(n, 0)}, {});
  }
  const IntValue* idx = im.known(n, 1);
  if (!idx) im.fail(n, "expected indices (input 1)");
  if (!idx->concrete()) im.fail(n, "indices " + idx->str() + " are symbolic (expected concrete indices)");
  std::vector<std::int64_t> list;
  for (const Dim& d : idx->elems) list.push_back(d.value);
  Value* x = im.input(n, 0);
  if (idx->dims.size() <= 1)
    return im.emit(n, "gather", {x}, {{"axis", axis}, {"indices", list}, {"scalar", idx->dims.empty()}});
  // Indices of rank >= 2: a gather of the flat list, then a reshape splitting that axis into the indices'
  // dims (the dims after it must be concrete, but one).
  const int r = rank_of(x);
  const std::int64_t a = axis < 0 ? axis + r : axis;
  if (a < 0 || a >= r) im.fail(n, "axis " + std::to_string(axis) + " is outside " + x->type.str());
  Value* flat = im.emit_temp(n, "gather", "flat", {x}, {{"axis", a}, {"indices", list}, {"scalar", false}});
  std::vector<std::int64_t> shape(static_cast<std::size_t>(a), 0);
  shape.insert(shape.end(), idx->dims.begin(), idx->dims.end());
  bool inferred = false;
  for (int i = static_cast<int>(a) + 1; i < r; ++i) {
    const Dim& d = x->type.shape[static_cast<std::size_t>(i)];
    if (!d.concrete() && inferred)
      im.fail(n, "indices of rank " + std::to_string(idx->dims.size()) + " need the dims after the axis of " +
                     x->type.str() + " concrete but one");
    inferred = inferred || !d.concrete();
    shape.push_back(d.concrete() ? d.value : -1);
  }
  im.emit(n, "reshape", {flat}, {{"shape", shape}});
}

std::vector<std::int64_t> axes_input(Importer& im, const OnnxNode& n, bool* given) {
  *given = true;
  if (n.opset < 13) {
    im.only_attrs(n, {"axes"});
    *given = im.attr(n, "axes") != nullptr;
    return im.attr_ints(n, "axes");
  }
  im.only_attrs(n, {});
  if (!im.has_input(n, 1)) {
    *given = false;
    return {};
  }
  const IntValue* a = im.known(n, 1);
  if (!a || !a->concrete()) im.fail(n, "expected constant axes (input 1)");
  std::vector<std::int64_t> axes;
  for (const Dim& d : a->elems) axes.push_back(d.value);
  return axes;
}

void map_squeeze(Importer& im, const OnnxNode& n) {
  Value* x = im.input(n, 0);
  bool given = false;
  std::vector<std::int64_t> axes = axes_input(im, n, &given);
  if (!given) {  // every axis of size 1: known only when no dim is symbolic
    for (int a = 0; a < rank_of(x); ++a) {
      const Dim& d = x->type.shape[static_cast<std::size_t>(a)];
      if (!d.concrete())
        im.fail(n, "without axes, Squeeze removes every dim of size 1, and dim " + std::to_string(a) + " of " +
                       x->type.str() + " is symbolic (expected the axes given)");
      if (d.value == 1) axes.push_back(a);
    }
  }
  im.emit(n, "squeeze", {x}, {{"axes", axes}});
}

void map_unsqueeze(Importer& im, const OnnxNode& n) {
  Value* x = im.input(n, 0);
  bool given = false;
  std::vector<std::int64_t> axes = axes_input(im, n, &given);
  if (!given) im.fail(n, "expected axes");
  im.emit(n, "unsqueeze", {x}, {{"axes", axes}});
}

// Expand: broadcast to a shape (constant or folded). Where the result is the input's shape, the identity;
// else x + zeros of the broadcast dims (concrete), which Kiln's add broadcasts.
void map_expand(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {});
  Value* x = im.input(n, 0);
  const IntValue* s = im.known(n, 1);
  if (!s) im.fail(n, "the shape (input 1) is computed from data at run time (a data-dependent shape)");
  const int r = std::max(rank_of(x), static_cast<int>(s->elems.size()));
  std::vector<std::int64_t> zeros;
  bool identity = rank_of(x) == r;
  for (int i = 0; i < r; ++i) {
    const int xi = i - (r - rank_of(x)), si = i - (r - static_cast<int>(s->elems.size()));
    const Dim d = xi >= 0 ? x->type.shape[static_cast<std::size_t>(xi)] : Dim::of(1);
    const Dim t = si >= 0 ? s->elems[static_cast<std::size_t>(si)] : Dim::of(1);
    if (t.concrete() && t.value < 0) im.fail(n, "the shape " + s->str() + " has a negative dim");
    if (t.is(1) || same_dim(t, d)) {
      zeros.push_back(1);
    } else if (d.is(1) && t.concrete()) {
      zeros.push_back(t.value);
      identity = false;
    } else {
      im.fail(n, "cannot expand " + x->type.str() + " to " + s->str() + ": dim " + std::to_string(i) + " is " +
                     d.str() + " and the target " + t.str() +
                     (t.concrete() ? "" : " (a symbolic target over a size-1 dim is not supported)"));
    }
  }
  if (identity) return im.emit(n, "dropout", {x}, {{"p", 0.0}});
  if (x->type.dtype != DType::f32) im.fail(n, "expected f32 data to broadcast, got " + x->type.str());
  const auto bytes = checked::tensor_bytes(zeros, 4);
  if (!bytes || *bytes > (std::int64_t{1} << 30))
    im.fail(n, "expanding to " + s->str() + " needs a broadcast constant of more than 1 GiB");
  auto buf = aligned_buffer(static_cast<std::size_t>(*bytes));
  std::memset(buf.get(), 0, static_cast<std::size_t>(*bytes));
  Value* z = im.add_constant(n.proto.output(0) + "/zeros", TensorType{DType::f32, concrete_shape(zeros)},
                             ConstData{buf.get(), static_cast<std::size_t>(*bytes), std::shared_ptr<const void>(buf)});
  im.emit(n, "add", {x, z}, {});
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
      {"Constant", 9, kMaxOpset, map_constant},           {"Slice", kMinOpset, kMaxOpset, map_slice},
      {"Gather", kMinOpset, kMaxOpset, map_gather},       {"Squeeze", kMinOpset, kMaxOpset, map_squeeze},
      {"Unsqueeze", kMinOpset, kMaxOpset, map_unsqueeze}, {"Expand", 8, kMaxOpset, map_expand},
  };
}

}  // namespace kiln::onnx_import
