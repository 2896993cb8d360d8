// reshape: the same elements under a new shape; a view, so no kernel runs (torch.reshape on a
// contiguous tensor). In `shape`, 0 copies the input's dim at that position and -1 is inferred.
//   %q4 = reshape(%q) {shape=[0,0,8,-1]} : (f32[batch,seq,128]) -> f32[batch,seq,8,16]

#include <algorithm>

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
      symbols.push_back(d.sym.substr(start, star == std::string::npos ? std::string::npos : star - start));
      if (star == std::string::npos) break;
      start = star + 1;
    }
    return true;
  }
};

std::vector<TensorType> infer(const ShapeCtx& ctx) {
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
    if (t == -1) {
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

}  // namespace kiln
