// reshape: the same elements under a new shape; a view, so no kernel runs (torch.reshape on a
// contiguous tensor). In `shape`, 0 copies the input's dim at that position and -1 is inferred.
//   %q4 = reshape(%q) {shape=[0,0,8,-1]} : (f32[batch,seq,128]) -> f32[batch,seq,8,16]
// reshape_dims: the same, where some target dims are other values' dims (ONNX imports, where the target
// is computed from shapes: [seq*batch,64] -> [seq,batch,64] needs two symbolic dims). `dims` holds triples
// (position, input, axis): output dim `position` is input `input`'s dim `axis` (its `shape` entry is 0).
//   %y = reshape_dims(%x, %tokens) {shape=[0,-1,64], dims=[0,1,1]} : (f32[seq*batch,64], i64[batch,seq])
//        -> f32[seq,batch,64]

#include <algorithm>
#include <map>

#include "graph/checked.hpp"
#include "ops/common.hpp"

namespace kiln {
namespace {

// A symbolic size as a concrete factor times a sorted list of symbol factors ("batch*seq" -> {batch, seq}).
struct Product {
  std::int64_t known = 1;
  std::vector<std::string> symbols;
  // False (leaving `known` as it was) when the concrete factor would exceed INT64_MAX.
  [[nodiscard]] bool times(const Dim& d) {
    if (d.concrete()) {
      auto p = checked::mul(known, d.value);
      if (!p) return false;
      known = *p;
      return true;
    }
    std::size_t start = 0;
    while (true) {
      std::size_t star = d.sym.find('*', start);
      std::string f = d.sym.substr(start, star == std::string::npos ? std::string::npos : star - start);
      // A concrete factor of a derived dim ("8*batch", as mul_dims writes it) is part of `known`.
      if (!f.empty() && f.size() < 19 && std::all_of(f.begin(), f.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        auto p = checked::mul(known, std::stoll(f));
        if (!p) return false;
        known = *p;
      } else {
        symbols.push_back(std::move(f));
      }
      if (star == std::string::npos) break;
      start = star + 1;
    }
    return true;
  }
};

std::vector<TensorType> infer_with(const ShapeCtx& ctx, const std::map<std::size_t, Dim>& fixed) {
  const TensorType& x = ctx.in(0);
  const auto& target = ctx.node().attr_ints("shape");
  Product in, out;
  auto too_large = [&](const std::string& what) {
    ctx.fail(what + " has more than " + std::to_string(checked::kMaxSize) + " elements");
  };
  for (const auto& d : x.shape)
    if (!in.times(d)) too_large("input " + x.str());
  Shape shape;
  int infer_at = -1;
  for (std::size_t i = 0; i < target.size(); ++i) {
    std::int64_t t = target[i];
    if (auto f = fixed.find(i); f != fixed.end()) {
      if (t != 0) ctx.fail("attribute 'shape' entry " + std::to_string(i) + " is taken from 'dims' and must be 0");
      shape.push_back(f->second);
      if (!out.times(f->second)) too_large("attribute 'shape' " + attr_str(target));
    } else if (t == -1) {
      if (infer_at >= 0) ctx.fail("attribute 'shape' has more than one -1");
      infer_at = static_cast<int>(i);
      shape.push_back(Dim::of(-1));
    } else if (t == 0) {
      if (i >= x.shape.size())
        ctx.fail("attribute 'shape' copies dim " + std::to_string(i) + " (0) of an input of rank " +
                 std::to_string(x.rank()));
      shape.push_back(x.shape[i]);
      if (!out.times(x.shape[i])) too_large("attribute 'shape' " + attr_str(target));
    } else if (t > 0) {
      shape.push_back(Dim::of(t));
      if (!out.times(Dim::of(t))) too_large("attribute 'shape' " + attr_str(target));
    } else {
      ctx.fail("attribute 'shape' has invalid entry " + std::to_string(t) + " (expected > 0, 0 to copy, or -1)");
    }
  }
  // Cancel symbols that appear on both sides.
  std::sort(in.symbols.begin(), in.symbols.end());
  std::sort(out.symbols.begin(), out.symbols.end());
  std::vector<std::string> in_only, out_only;
  std::set_difference(in.symbols.begin(), in.symbols.end(), out.symbols.begin(), out.symbols.end(),
                      std::back_inserter(in_only));
  std::set_difference(out.symbols.begin(), out.symbols.end(), in.symbols.begin(), in.symbols.end(),
                      std::back_inserter(out_only));
  auto mismatch = [&] {
    ctx.fail("cannot reshape " + x.str() + " to " + attr_str(ctx.node().attr("shape")) + ": element counts differ");
  };
  if (!out_only.empty()) mismatch();
  if (infer_at >= 0) {
    if (out.known == 0 || in.known % out.known != 0) mismatch();
    Dim d = Dim::of(in.known / out.known);
    for (const auto& s : in_only) d = mul_dims(d, Dim::symbol(s));
    shape[infer_at] = d;
  } else if (!in_only.empty() || in.known != out.known) {
    mismatch();
  }
  return {TensorType{x.dtype, shape}};
}

std::vector<TensorType> infer(const ShapeCtx& ctx) { return infer_with(ctx, {}); }

std::vector<TensorType> infer_dims(const ShapeCtx& ctx) {
  const auto& dims = ctx.node().attr_ints("dims");
  const auto& target = ctx.node().attr_ints("shape");
  if (dims.size() % 3 != 0) ctx.fail("attribute 'dims' must hold (position, input, axis) triples");
  std::map<std::size_t, Dim> fixed;
  for (std::size_t k = 0; k < dims.size(); k += 3) {
    const std::int64_t pos = dims[k], in = dims[k + 1], axis = dims[k + 2];
    if (pos < 0 || pos >= static_cast<std::int64_t>(target.size()) || fixed.count(static_cast<std::size_t>(pos)))
      ctx.fail("attribute 'dims' names position " + std::to_string(pos) + ", outside 'shape' or twice");
    if (in < 1 || in >= static_cast<std::int64_t>(ctx.num_inputs()) || !ctx.has(static_cast<std::size_t>(in)))
      ctx.fail("attribute 'dims' names input " + std::to_string(in) + " (expected 1.." +
               std::to_string(ctx.num_inputs() - 1) + ")");
    const TensorType& ref = ctx.in(static_cast<std::size_t>(in));
    if (axis < 0 || axis >= ref.rank())
      ctx.fail("attribute 'dims' names axis " + std::to_string(axis) + " of input " + std::to_string(in) + " " +
               ref.str());
    fixed.emplace(static_cast<std::size_t>(pos), ref.shape[static_cast<std::size_t>(axis)]);
  }
  return infer_with(ctx, fixed);
}

}  // namespace

const OpSchema& op_reshape() {
  static const OpSchema s{
      .name = "reshape",
      .doc = "same elements, new shape; 0 copies the input dim, -1 is inferred (a view: no copy)",
      .inputs = {{"src"}},
      .attrs = {AttrSpec{"shape", AttrType::Ints, std::nullopt, "target shape"}},
      .infer = infer,
      .view_of = 0,
  };
  return s;
}

const OpSchema& op_reshape_dims() {
  static const OpSchema s{
      .name = "reshape_dims",
      .doc = "reshape whose target takes some dims from other inputs' dims (ONNX shape arithmetic); a view",
      .inputs = {{"src"}, {"like"}},
      .variadic = true,
      .attrs = {AttrSpec{"shape", AttrType::Ints, std::nullopt, "target shape, as reshape's"},
                AttrSpec{"dims", AttrType::Ints, std::nullopt,
                         "(position, input, axis) triples: output dim position is that input's dim"}},
      .infer = infer_dims,
      .view_of = 0,
  };
  return s;
}

}  // namespace kiln
