// Shape arithmetic folded at import (docs/onnx.md "Shape arithmetic"): Shape, Size, Gather, Unsqueeze,
// Squeeze, Concat, Slice, Cast, Add/Sub/Mul/Div, Equal, Where, Reshape, Identity, ConstantOfShape and Range
// on import-time integer values (IntValue: elements are Kiln Dims, concrete or symbolic) compute new
// IntValues and emit no kernel. What consumes them (Reshape's target, Slice's bounds, Range's limit) is
// mapped in map_tensor.cpp with attributes that hold for every binding of the symbolic dims.

#include <algorithm>
#include <cstring>
#include <limits>

#include "frontends/onnx/importer.hpp"

namespace kiln::onnx_import {

// ---- symbolic dims as products ----

DimProduct DimProduct::of(const Dim& d) {
  DimProduct p;
  if (d.concrete()) {
    p.coef = d.value;
    return p;
  }
  std::size_t start = 0;
  while (true) {
    const std::size_t star = d.sym.find('*', start);
    std::string f = d.sym.substr(start, star == std::string::npos ? std::string::npos : star - start);
    if (!f.empty() && f.size() < 19 && std::all_of(f.begin(), f.end(), [](char c) { return c >= '0' && c <= '9'; }))
      p.coef = __builtin_mul_overflow(p.coef, std::stoll(f), &p.coef) ? 0 : p.coef;  // 0: matches nothing real
    else p.syms.push_back(f);
    if (star == std::string::npos) break;
    start = star + 1;
  }
  std::sort(p.syms.begin(), p.syms.end());
  return p;
}

Dim DimProduct::dim() const {
  if (syms.empty() || coef == 0) return Dim::of(coef);
  std::string s = coef == 1 ? "" : std::to_string(coef);
  for (const auto& f : syms) s += (s.empty() ? "" : "*") + f;
  return Dim::symbol(s);
}

bool same_dim(const Dim& a, const Dim& b) {
  if (a.concrete() || b.concrete()) return a == b;
  const DimProduct pa = DimProduct::of(a), pb = DimProduct::of(b);
  return pa.coef == pb.coef && pa.syms == pb.syms;
}

namespace {

std::int64_t numel_of_dims(const std::vector<std::int64_t>& dims) {
  std::int64_t n = 1;
  for (auto d : dims) n *= d;
  return n;
}

bool is_int(DType t) { return t == DType::i64 || t == DType::i32; }

// The node's axes: from attribute `axes` (before `input_from`) or from input `input` (from that opset on).
bool axes_of(Importer& im, const OnnxNode& n, int input_from, int input, std::vector<std::int64_t>* axes) {
  if (n.opset < input_from) {
    *axes = im.attr_ints(n, "axes");
    return true;
  }
  if (!im.has_input(n, input)) return true;
  const IntValue* a = im.known(n, input);
  if (!a || !a->concrete()) return false;
  axes->clear();
  for (const Dim& d : a->elems) axes->push_back(d.value);
  return true;
}

int norm_axis(Importer& im, const OnnxNode& n, std::int64_t axis, std::int64_t rank) {
  if (axis < -rank || axis >= rank)
    im.fail(n, "axis " + std::to_string(axis) + " is outside a shape value of rank " + std::to_string(rank));
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}

// Binary integer arithmetic on dims; fails, naming the node, where the result is not a product of symbols.
Dim arith(Importer& im, const OnnxNode& n, const Dim& a, const Dim& b) {
  const std::string& op = n.op();
  auto refuse = [&](const std::string& why) -> Dim {
    im.fail(n, "cannot fold " + a.str() + " " +
                   (op == "Add"   ? "+"
                    : op == "Sub" ? "-"
                    : op == "Mul" ? "*"
                                  : "/") +
                   " " + b.str() + " at import: " + why);
  };
  std::int64_t r = 0;
  if (a.concrete() && b.concrete()) {
    bool overflow = false;
    if (op == "Add") overflow = __builtin_add_overflow(a.value, b.value, &r);
    else if (op == "Sub") overflow = __builtin_sub_overflow(a.value, b.value, &r);
    else if (op == "Mul") overflow = __builtin_mul_overflow(a.value, b.value, &r);
    else if (b.value == 0) refuse("division by zero");
    else if (b.value == -1 && a.value == std::numeric_limits<std::int64_t>::min()) overflow = true;
    else r = a.value / b.value;  // ONNX's integer Div truncates (C semantics)
    if (overflow) refuse("the result overflows int64");
    return Dim::of(r);
  }
  DimProduct pa = DimProduct::of(a), pb = DimProduct::of(b);
  if (op == "Mul") {
    if (__builtin_mul_overflow(pa.coef, pb.coef, &r)) refuse("the result overflows int64");
    DimProduct p{r, pa.syms};
    p.syms.insert(p.syms.end(), pb.syms.begin(), pb.syms.end());
    std::sort(p.syms.begin(), p.syms.end());
    return p.dim();
  }
  if (op == "Div") {
    if (pb.coef == 0) refuse("division by zero");
    std::vector<std::string> rest;
    std::multiset<std::string> num(pa.syms.begin(), pa.syms.end());
    for (const auto& s : pb.syms) {
      auto it = num.find(s);
      if (it == num.end()) refuse("the divisor's symbol '" + s + "' is not a factor of the dividend");
      num.erase(it);
    }
    if (pa.coef % pb.coef != 0) refuse("the divisor's factor " + std::to_string(pb.coef) + " does not divide it");
    return DimProduct{pa.coef / pb.coef, {num.begin(), num.end()}}.dim();
  }
  if (op == "Add" && b.is(0)) return a;
  if (op == "Add" && a.is(0)) return b;
  if (op == "Sub" && b.is(0)) return a;
  if (op == "Sub" && same_dim(a, b)) return Dim::of(0);
  return refuse("a sum or difference of symbolic dims is not a dim Kiln can represent");
}

// Element-wise over two values of the same shape, or one holding a single element (broadcast).
template <typename F>
bool elementwise(const IntValue& a, const IntValue& b, IntValue* out, F f) {
  const std::size_t na = a.elems.size(), nb = b.elems.size();
  if (na != nb && na != 1 && nb != 1) return false;
  const std::size_t count = na == 1 ? nb : na;  // one element broadcasts, also onto none
  out->dims = na == 1 && nb != 1 ? b.dims : a.dims;
  if (na == nb && a.dims.size() < b.dims.size()) out->dims = b.dims;
  for (std::size_t k = 0; k < count; ++k) out->elems.push_back(f(a.elems[na == 1 ? 0 : k], b.elems[nb == 1 ? 0 : k]));
  return true;
}

bool fold_shape(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"start", "end"});
  std::vector<Dim> dims;
  if (Value* v = im.value_of(n, 0)) {
    dims = v->type.shape;
    im.note_dims_of(v);
  } else if (const IntValue* k = im.known(n, 0)) {
    for (auto d : k->dims) dims.push_back(Dim::of(d));
  } else if (const ConstTensor* c = im.constant(n, 0)) {
    dims = concrete_shape(c->dims);
  } else {
    return false;
  }
  const auto r = static_cast<std::int64_t>(dims.size());
  std::int64_t start = n.opset >= 15 ? im.attr_int(n, "start", 0) : 0;
  std::int64_t end = n.opset >= 15 ? im.attr_int(n, "end", r) : r;
  if (n.opset < 15 && (im.attr(n, "start") || im.attr(n, "end")))
    im.fail(n, "attributes 'start' and 'end' are Shape's from opset 15 on");
  auto clamp = [&](std::int64_t i) { return std::clamp(i < 0 ? i + r : i, std::int64_t{0}, r); };
  start = clamp(start);
  end = std::max(start, clamp(end));
  IntValue out;
  out.elems.assign(dims.begin() + start, dims.begin() + end);
  out.dims = {end - start};
  im.define_known(n, 0, std::move(out));
  return true;
}

bool fold_size(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {});
  Value* v = im.value_of(n, 0);
  if (!v) return false;
  im.note_dims_of(v);
  Dim p = Dim::of(1);
  for (const Dim& d : v->type.shape) p = DimProduct::of(mul_dims(p, d)).dim();
  im.define_known(n, 0, IntValue{{}, {p}});
  return true;
}

bool fold_gather(Importer& im, const OnnxNode& n) {
  const IntValue* data = im.known(n, 0);
  const IntValue* idx = data ? im.known(n, 1) : nullptr;
  if (!data || !idx || data->dtype == DType::boolean) return false;
  im.only_attrs(n, {"axis"});
  if (data->dims.size() != 1) return false;  // a constant int table: Kiln's gather on a constant
  norm_axis(im, n, im.attr_int(n, "axis", 0), 1);
  IntValue out{idx->dims, {}, data->dtype};
  const auto size = static_cast<std::int64_t>(data->elems.size());
  for (const Dim& i : idx->elems) {
    if (!i.concrete()) im.fail(n, "index " + i.str() + " is symbolic (expected concrete indices into a shape value)");
    if (i.value < -size || i.value >= size)
      im.fail(n, "index " + std::to_string(i.value) + " is out of range for the shape value " + data->str() + " of " +
                     std::to_string(size) + " elements");
    out.elems.push_back(data->elems[static_cast<std::size_t>(i.value < 0 ? i.value + size : i.value)]);
  }
  im.define_known(n, 0, std::move(out));
  return true;
}

bool fold_unsqueeze(Importer& im, const OnnxNode& n, bool squeeze) {
  const IntValue* x = im.known(n, 0);
  if (!x) return false;
  im.only_attrs(
      n, n.opset < 13 ? std::initializer_list<std::string_view>{"axes"} : std::initializer_list<std::string_view>{});
  std::vector<std::int64_t> axes;
  if (!axes_of(im, n, 13, 1, &axes)) im.fail(n, "expected constant axes");
  IntValue out = *x;
  if (squeeze) {
    const auto r = static_cast<std::int64_t>(x->dims.size());
    std::vector<bool> drop(x->dims.size(), false);
    for (auto a : axes) drop[static_cast<std::size_t>(norm_axis(im, n, a, r))] = true;
    out.dims.clear();
    for (std::size_t i = 0; i < x->dims.size(); ++i) {
      if (axes.empty()) drop[i] = x->dims[i] == 1;
      else if (drop[i] && x->dims[i] != 1)
        im.fail(n, "cannot squeeze axis " + std::to_string(i) + " of size " + std::to_string(x->dims[i]));
      if (!drop[i]) out.dims.push_back(x->dims[i]);
    }
  } else {
    const auto r = static_cast<std::int64_t>(x->dims.size() + axes.size());
    std::vector<bool> ins(static_cast<std::size_t>(r), false);
    for (auto a : axes) {
      const int k = norm_axis(im, n, a, r);
      if (ins[static_cast<std::size_t>(k)]) im.fail(n, "axis " + std::to_string(a) + " is given twice");
      ins[static_cast<std::size_t>(k)] = true;
    }
    out.dims.clear();
    std::size_t src = 0;
    for (std::int64_t i = 0; i < r; ++i) out.dims.push_back(ins[static_cast<std::size_t>(i)] ? 1 : x->dims[src++]);
  }
  im.define_known(n, 0, std::move(out));
  return true;
}

bool fold_concat(Importer& im, const OnnxNode& n) {
  std::vector<const IntValue*> ins;
  for (int i = 0; i < n.proto.input_size(); ++i) {
    const IntValue* v = im.known(n, i);
    if (!v || v->dims.size() != 1) return false;
    ins.push_back(v);
  }
  im.only_attrs(n, {"axis"});
  norm_axis(im, n, im.attr_int(n, "axis", 0), 1);
  IntValue out{{0}, {}, ins.empty() ? DType::i64 : ins[0]->dtype};
  for (const IntValue* v : ins) out.elems.insert(out.elems.end(), v->elems.begin(), v->elems.end());
  out.dims = {static_cast<std::int64_t>(out.elems.size())};
  im.define_known(n, 0, std::move(out));
  return true;
}

bool fold_slice(Importer& im, const OnnxNode& n) {
  const IntValue* x = im.known(n, 0);
  if (!x || x->dims.size() != 1) return false;
  std::vector<std::int64_t> starts, ends, axes{0}, steps{1};
  auto ints = [&](int i, std::vector<std::int64_t>* out) {
    const IntValue* v = im.known(n, i);
    if (!v || !v->concrete()) im.fail(n, "expected input " + std::to_string(i) + " to be constant");
    out->clear();
    for (const Dim& d : v->elems) out->push_back(d.value);
  };
  if (n.opset < 10) {
    im.only_attrs(n, {"starts", "ends", "axes"});
    starts = im.attr_ints(n, "starts");
    ends = im.attr_ints(n, "ends");
    axes = im.attr_ints(n, "axes", {0});
  } else {
    im.only_attrs(n, {});
    ints(1, &starts);
    ints(2, &ends);
    if (im.has_input(n, 3)) ints(3, &axes);
    if (im.has_input(n, 4)) ints(4, &steps);
  }
  if (starts.size() != 1 || ends.size() != 1 || axes.size() != 1 || steps.size() != 1)
    im.fail(n, "expected one axis for a slice of the 1-D shape value " + x->str());
  norm_axis(im, n, axes[0], 1);
  const auto dim = static_cast<std::int64_t>(x->elems.size());
  const std::int64_t step = steps[0];
  if (step == 0) im.fail(n, "step 0 (expected a non-zero step)");
  auto clampi = [&](std::int64_t v, std::int64_t lo, std::int64_t hi) {
    if (v < 0) v += dim;
    return std::clamp(v, lo, hi);
  };
  std::int64_t s = step > 0 ? clampi(starts[0], 0, dim) : clampi(starts[0], -1, dim - 1);
  std::int64_t e = step > 0 ? clampi(ends[0], 0, dim) : clampi(ends[0], -1, dim - 1);
  IntValue out{{0}, {}, x->dtype};
  for (std::int64_t i = s; step > 0 ? i < e : i > e; i += step)
    out.elems.push_back(x->elems[static_cast<std::size_t>(i)]);
  out.dims = {static_cast<std::int64_t>(out.elems.size())};
  im.define_known(n, 0, std::move(out));
  return true;
}

bool fold_cast(Importer& im, const OnnxNode& n) {
  const IntValue* x = im.known(n, 0);
  if (!x) return false;
  im.only_attrs(n, {"to"});
  DType to;
  const auto t = static_cast<int>(im.attr_int(n, "to", 0));
  if (!dtype_of(t, &to)) im.fail(n, "cannot cast to " + onnx_type_name(t));
  if (is_int(to) || to == DType::boolean) {
    IntValue out = *x;
    out.dtype = to;
    if (to == DType::boolean)
      for (Dim& d : out.elems) {
        if (!d.concrete()) im.fail(n, "cannot cast the symbolic dim " + d.str() + " to bool");
        d = Dim::of(d.value != 0);
      }
    im.define_known(n, 0, std::move(out));
    return true;
  }
  if (!x->concrete())
    im.fail(n, "the shape value " + x->str() + " holds symbolic dims; cast to " + std::string(dtype_name(to)) +
                   " it would be data that depends on the shape binding (Kiln folds integer shape values only)");
  return false;  // a concrete int constant cast to float: Cast's data mapping
}

bool fold_binary(Importer& im, const OnnxNode& n) {
  const IntValue* a = im.known(n, 0);
  const IntValue* b = a ? im.known(n, 1) : nullptr;
  if (!a || !b || !is_int(a->dtype) || !is_int(b->dtype)) return false;
  im.only_attrs(n, {});
  IntValue out;
  out.dtype = a->dtype;
  if (!elementwise(*a, *b, &out, [&](const Dim& x, const Dim& y) { return arith(im, n, x, y); }))
    im.fail(n, "shape values " + a->str() + " and " + b->str() + " differ in size (expected equal, or one element)");
  im.define_known(n, 0, std::move(out));
  return true;
}

bool fold_equal(Importer& im, const OnnxNode& n) {
  const IntValue* a = im.known(n, 0);
  const IntValue* b = a ? im.known(n, 1) : nullptr;
  if (!a || !b) return false;
  im.only_attrs(n, {});
  IntValue out;
  out.dtype = DType::boolean;
  if (!elementwise(*a, *b, &out, [&](const Dim& x, const Dim& y) {
        if (same_dim(x, y)) return Dim::of(1);
        if (x.concrete() && y.concrete()) return Dim::of(0);
        im.fail(n, "cannot decide at import whether " + x.str() + " equals " + y.str() +
                       " (the answer depends on the shape binding)");
      }))
    im.fail(n, "shape values " + a->str() + " and " + b->str() + " differ in size (expected equal, or one element)");
  im.define_known(n, 0, std::move(out));
  return true;
}

bool fold_where(Importer& im, const OnnxNode& n) {
  const IntValue* c = im.known(n, 0);
  const IntValue* x = c ? im.known(n, 1) : nullptr;
  const IntValue* y = x ? im.known(n, 2) : nullptr;
  if (!c || !x || !y || !is_int(x->dtype)) return false;
  im.only_attrs(n, {});
  IntValue sel;
  IntValue out;
  out.dtype = x->dtype;
  auto fail_size = [&] { im.fail(n, "condition and shape values differ in size (expected equal, or one element)"); };
  if (!elementwise(*x, *y, &sel, [](const Dim& p, const Dim&) { return p; })) fail_size();
  const std::size_t nc = c->elems.size(), ns = sel.elems.size();
  if (nc != ns && nc != 1 && ns != 1) fail_size();
  const std::size_t count = nc == 1 ? ns : nc;
  for (std::size_t k = 0; k < count; ++k) {
    const Dim& cond = c->elems[c->elems.size() == 1 ? 0 : k];
    const bool pick_x = cond.value != 0;
    const IntValue* from = pick_x ? x : y;
    out.elems.push_back(from->elems[from->elems.size() == 1 ? 0 : k]);
  }
  out.dims = nc == count && (ns != count || c->dims.size() >= sel.dims.size()) ? c->dims : sel.dims;
  im.define_known(n, 0, std::move(out));
  return true;
}

bool fold_reshape(Importer& im, const OnnxNode& n) {
  const IntValue* x = im.known(n, 0);
  const IntValue* s = x ? im.known(n, 1) : nullptr;
  if (!x || !s || !s->concrete()) return false;
  im.only_attrs(n, {"allowzero"});
  IntValue out = *x;
  out.dims.clear();
  std::int64_t infer_at = -1, known = 1;
  for (std::size_t i = 0; i < s->elems.size(); ++i) {
    std::int64_t d = s->elems[i].value;
    if (d == 0 && im.attr_int(n, "allowzero", 0) == 0) {
      if (i >= x->dims.size()) im.fail(n, "shape entry 0 at " + std::to_string(i) + " copies a dim the input lacks");
      d = x->dims[i];
    }
    if (d == -1) infer_at = static_cast<std::int64_t>(i);
    else if (d < 0 || __builtin_mul_overflow(known, d, &known))
      im.fail(n, "cannot reshape a shape value to " + s->str());
    out.dims.push_back(d);
  }
  const auto total = static_cast<std::int64_t>(x->elems.size());
  if (infer_at >= 0 && known > 0) out.dims[static_cast<std::size_t>(infer_at)] = total / known;
  if (numel_of_dims(out.dims) != total)
    im.fail(n, "cannot reshape a shape value of " + std::to_string(total) + " elements to " + s->str());
  im.define_known(n, 0, std::move(out));
  return true;
}

bool fold_identity(Importer& im, const OnnxNode& n) {
  if (im.computed(n, 0) || !im.has_input(n, 0)) return false;
  if (!im.known(n, 0) && !im.constant(n, 0)) return false;
  im.only_attrs(n, {});
  im.alias(n, 0, 0);
  return true;
}

// ConstantOfShape and Range with concrete inputs: constants.
bool fold_constant_of_shape(Importer& im, const OnnxNode& n) {
  const IntValue* s = im.known(n, 0);
  if (!s || !s->concrete()) return false;
  im.only_attrs(n, {"value"});
  ConstTensor fill;
  if (const auto* a = im.attr(n, "value")) {
    fill = im.read_tensor(a->t(), n.label() + ": value");
    if (fill.numel() != 1) im.fail(n, "expected 'value' to hold one element, got " + std::to_string(fill.numel()));
  } else {
    fill.dtype = DType::f32;
    auto buf = aligned_buffer(4);
    std::memset(buf.get(), 0, 4);
    fill.data = ConstData{buf.get(), 4, std::shared_ptr<const void>(buf)};
  }
  std::vector<std::int64_t> dims;
  for (const Dim& d : s->elems) {
    if (d.value < 0) im.fail(n, "shape " + s->str() + " has a negative dim");
    dims.push_back(d.value);
  }
  const std::size_t esize = dtype_size(fill.dtype);
  auto bytes = checked::tensor_bytes(dims, esize);
  if (!bytes || *bytes > (std::int64_t{1} << 30))
    im.fail(n, "shape " + s->str() + " is too large for a constant made at import (more than 1 GiB)");
  if (is_int(fill.dtype) && numel_of_dims(dims) <= Importer::kMaxKnownElems) {
    const std::int64_t v = fill.dtype == DType::i64 ? *static_cast<const std::int64_t*>(fill.data.data)
                                                    : *static_cast<const std::int32_t*>(fill.data.data);
    IntValue out{dims, std::vector<Dim>(static_cast<std::size_t>(numel_of_dims(dims)), Dim::of(v)), fill.dtype};
    im.define_known(n, 0, std::move(out));
    return true;
  }
  auto buf = aligned_buffer(static_cast<std::size_t>(*bytes));
  for (std::int64_t k = 0; k < numel_of_dims(dims); ++k)
    std::memcpy(static_cast<unsigned char*>(buf.get()) + k * static_cast<std::int64_t>(esize), fill.data.data, esize);
  ConstTensor c{fill.dtype, dims,
                ConstData{buf.get(), static_cast<std::size_t>(*bytes), std::shared_ptr<const void>(buf)}};
  im.define_constant(n, std::move(c));
  return true;
}

bool fold_range(Importer& im, const OnnxNode& n) {
  const IntValue* start = im.known(n, 0);
  const IntValue* limit = im.known(n, 1);
  const IntValue* delta = im.known(n, 2);
  if (!start || !limit || !delta || !start->concrete() || !limit->concrete() || !delta->concrete()) return false;
  im.only_attrs(n, {});
  for (const IntValue* v : {start, limit, delta})
    if (v->elems.size() != 1 || !v->dims.empty()) im.fail(n, "expected scalar start, limit and delta");
  const std::int64_t s = start->elems[0].value, l = limit->elems[0].value, d = delta->elems[0].value;
  if (d == 0) im.fail(n, "delta is 0");
  const auto span = static_cast<__int128>(l) - s + d + (d > 0 ? -1 : 1);
  const auto count128 = std::max<__int128>(0, span / d);
  if (count128 > Importer::kMaxKnownElems)
    im.fail(n, "a range of more than " + std::to_string(Importer::kMaxKnownElems) +
                   " elements is larger than import-time values may be");
  const auto count = static_cast<std::int64_t>(count128);
  IntValue out{{count}, {}, start->dtype};
  for (std::int64_t i = 0; i < count; ++i) out.elems.push_back(Dim::of(s + i * d));
  im.define_known(n, 0, std::move(out));
  return true;
}

// Shape, Size and ConstantOfShape mapped when they did not fold: the reason.
void map_shape_op(Importer& im, const OnnxNode& n) {
  im.fail(n, "expected input 0 to be a graph value or a constant (internal: Shape did not fold)");
}
void map_constant_of_shape(Importer& im, const OnnxNode& n) {
  const IntValue* s = im.known(n, 0);
  if (!s) im.fail(n, "the shape is computed from data at run time (a data-dependent shape Kiln cannot plan)");
  im.fail(n, "the shape " + s->str() +
                 " holds symbolic dims: a constant of a shape-dependent size is not supported (expected a "
                 "concrete shape)");
}

// Range(0, n, 1) with n a symbolic dim of some value: Kiln's positions along that value's axis.
void map_range(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {});
  const IntValue* start = im.known(n, 0);
  const IntValue* limit = im.known(n, 1);
  const IntValue* delta = im.known(n, 2);
  if (!start || !limit || !delta)
    im.fail(n,
            "start, limit and delta must be known at import (constants or shape values); a range computed "
            "from data has a data-dependent size");
  if (!start->concrete() || start->elems.size() != 1 || start->elems[0].value != 0 || !delta->concrete() ||
      delta->elems.size() != 1 || delta->elems[0].value != 1 || limit->elems.size() != 1)
    im.fail(n, "with a symbolic limit " + limit->str() + ", expected start 0 and delta 1 (torch.arange(n))");
  auto [source, axis] = im.dim_source(limit->elems[0]);
  if (!source)
    im.fail(n,
            "the limit " + limit->str() + " is not the size of any value's axis (expected torch.arange(x.shape[i]))");
  im.emit(n, "positions", {source}, {{"axis", std::int64_t{axis}}});
}

// Equal and Where that did not fold: their inputs are data.
void map_fold_only(Importer& im, const OnnxNode& n) {
  im.fail(n, "Kiln folds " + n.op() +
                 " only on shapes and integer constants known at import; here an input is computed from data at "
                 "run time");
}

}  // namespace

const std::vector<OpRow>& fold_only_rows() {
  static const std::vector<OpRow> rows{{"Equal", 11, kMaxOpset, map_fold_only}, {"Where", 9, kMaxOpset, map_fold_only}};
  return rows;
}

bool fold_node(Importer& im, const OnnxNode& n) {
  if (!is_default_domain(n.proto.domain())) return false;
  const std::string& op = n.op();
  if (op == "Shape") return fold_shape(im, n);
  if (op == "Size") return fold_size(im, n);
  if (op == "Gather") return fold_gather(im, n);
  if (op == "Unsqueeze") return fold_unsqueeze(im, n, false);
  if (op == "Squeeze") return fold_unsqueeze(im, n, true);
  if (op == "Concat") return fold_concat(im, n);
  if (op == "Slice") return fold_slice(im, n);
  if (op == "Cast") return fold_cast(im, n);
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") return fold_binary(im, n);
  if (op == "Equal") return fold_equal(im, n);
  if (op == "Where") return fold_where(im, n);
  if (op == "Reshape") return fold_reshape(im, n);
  if (op == "Identity") return fold_identity(im, n);
  if (op == "ConstantOfShape") return fold_constant_of_shape(im, n);
  if (op == "Range") return fold_range(im, n);
  return false;
}

std::vector<OpRow> shape_rows() {
  return {
      {"Shape", kMinOpset, kMaxOpset, map_shape_op},
      {"Size", kMinOpset, kMaxOpset, map_shape_op},
      {"ConstantOfShape", 9, kMaxOpset, map_constant_of_shape},
      {"Range", 11, kMaxOpset, map_range},
  };
}

}  // namespace kiln::onnx_import
