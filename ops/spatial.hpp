#pragma once
// Shape-rule helpers shared by the spatial ops (conv2d, the pools, resize): reading [h, w] attribute
// pairs and the output size of a sliding window, also over symbolic sizes.

#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "ops/common.hpp"
#include "ops/isa.hpp"

namespace kiln {

/// Largest stride, dilation, kernel or padding entry accepted (sums and doubles of them stay far from
/// overflowing std::int64_t; found by fuzz_kplan, docs/fuzzing.md).
inline constexpr std::int64_t kMaxWindowAttr = 2147483647;

/// An [h, w] int attribute; `fallback` when the attribute is empty. Fails unless it has two entries
/// all >= `min` and <= kMaxWindowAttr.
inline std::vector<std::int64_t> attr_pair(const ShapeCtx& ctx, const char* attr, std::int64_t min,
                                           const std::vector<std::int64_t>& fallback = {}) {
  std::vector<std::int64_t> v = ctx.node().attr_ints(attr);
  if (v.empty()) v = fallback;
  if (v.size() != 2)
    ctx.fail(std::string("attribute '") + attr + "' must have 2 entries [h, w], got " + attr_str(Attr{v}));
  for (auto x : v) {
    if (x < min)
      ctx.fail(std::string("attribute '") + attr + "' entries must be >= " + std::to_string(min) + ", got " +
               attr_str(Attr{v}));
    if (x > kMaxWindowAttr)
      ctx.fail(std::string("attribute '") + attr + "' entries must be <= " + std::to_string(kMaxWindowAttr) + ", got " +
               attr_str(Attr{v}));
  }
  return v;
}

/// Padding as [top, left, bottom, right]: the attribute holds [h, w] (symmetric, as in PyTorch) or
/// [top, left, bottom, right].
inline std::vector<std::int64_t> attr_padding(const ShapeCtx& ctx) {
  std::vector<std::int64_t> p = ctx.node().attr_ints("padding");
  if (p.size() == 2) p = {p[0], p[1], p[0], p[1]};
  if (p.size() != 4)
    ctx.fail("attribute 'padding' must have 2 entries [h, w] or 4 [top, left, bottom, right], got " +
             attr_str(Attr{ctx.node().attr_ints("padding")}));
  for (auto x : p)
    if (x < 0 || x > kMaxWindowAttr)
      ctx.fail("attribute 'padding' entries must be >= 0" +
               std::string(x < 0 ? "" : " and <= " + std::to_string(kMaxWindowAttr)) + ", got " +
               attr_str(Attr{ctx.node().attr_ints("padding")}));
  return p;
}

/// Output size of a window of `k` taps spaced `dilation` apart, moved by `stride` over `in` padded by
/// `pad_total`: floor((in + pad_total - dilation*(k-1) - 1) / stride) + 1. Symbolic sizes give a
/// canonical expression, so branches that compute the same size (3x3 pad 1 and 1x1 pad 0, both
/// stride 2) get equal dims.
inline Dim window_out(const ShapeCtx& ctx, const Dim& in, std::int64_t k, std::int64_t stride, std::int64_t pad_total,
                      std::int64_t dilation, const char* axis) {
  // In 128 bits: `k` comes from a weight's dims and `in` from a declared shape, either up to INT64_MAX.
  const __int128 span = static_cast<__int128>(dilation) * (static_cast<__int128>(k) - 1) + 1;
  const __int128 a128 = static_cast<__int128>(pad_total) - span;
  const __int128 max = std::numeric_limits<std::int64_t>::max();
  auto str = [](__int128 v) {
    return v > max ? std::string("more than ") + std::to_string(static_cast<std::int64_t>(max))
                   : std::to_string(static_cast<std::int64_t>(v));
  };
  if (in.concrete()) {
    const __int128 padded = static_cast<__int128>(in.value) + a128;
    if (padded < 0)
      ctx.fail("the " + std::string(axis) + " window (" + str(span) +
               " with dilation) is larger than the padded input (" + str(static_cast<__int128>(in.value) + pad_total) +
               ")");
    if (padded >= max) ctx.fail("the " + std::string(axis) + " of the padded input is too large (" + str(padded) + ")");
    return Dim::of(static_cast<std::int64_t>(padded / stride + 1));
  }
  if (a128 <= -max || a128 >= max)
    ctx.fail("the " + std::string(axis) + " window (" + str(span) + " with dilation) is too large");
  const auto a = static_cast<std::int64_t>(a128);
  auto offset = [](std::int64_t v) { return v == 0 ? std::string() : (v > 0 ? "+" : "") + std::to_string(v); };
  if (stride == 1) return a + 1 == 0 ? in : Dim::symbol(in.sym + offset(a + 1));
  return Dim::symbol("(" + in.sym + offset(a) + ")/" + std::to_string(stride) + "+1");
}

/// Fails unless input i is an f32 tensor of rank 4 ([N, C, H, W]).
inline void expect_nchw(const ShapeCtx& ctx, std::size_t i) {
  expect_f32(ctx, i);
  if (ctx.in(i).rank() != 4) {
    const auto& spec = ctx.node().schema->inputs.at(i);
    ctx.fail("expected input '" + spec.name + "' of rank 4 [N,C,H,W], got " + ctx.in(i).str());
  }
}

}  // namespace kiln

namespace kiln {

/// The blocked channel layout oneDNN's fast convolutions use on this CPU: nChw16c with AVX-512,
/// nChw8c otherwise (AVX2: 8 floats per register).
inline const std::string& blocked_channel_layout() {
  static const std::string layout = [] {
    return std::string(isa::onednn_level() == isa::Level::avx512 ? "nChw16c" : "nChw8c");
  }();
  return layout;
}

/// The channel block of a blocked layout name (8 for nChw8c), 0 for plain.
inline std::int64_t channel_block(const std::string& layout) {
  if (layout == "nChw8c") return 8;
  if (layout == "nChw16c") return 16;
  return 0;
}

/// Ops that accept whatever layout their (same-shape) inputs have and whose kernels are oneDNN
/// primitives working in any layout: the layout of input 0 (pooling, batch_norm, resize).
inline std::string layout_of_src(const Node& node) { return node.inputs.at(0)->type.layout; }

/// The operands of a convolution (conv2d, conv_transpose2d): src [N,C,H,W] with concrete C, a constant
/// rank-4 f32 weight (`weight_dims` names its dims in messages), `groups` >= 1. Returns C and groups.
inline std::pair<std::int64_t, std::int64_t> expect_conv_operands(const ShapeCtx& ctx, int src, int weight,
                                                                  const char* weight_dims) {
  const Node& n = ctx.node();
  expect_nchw(ctx, static_cast<std::size_t>(src));
  expect_f32(ctx, weight);
  if (ctx.in(weight).rank() != 4)
    ctx.fail(std::string("expected weight of rank 4 ") + weight_dims + ", got " + ctx.in(weight).str());
  if (!n.inputs[static_cast<std::size_t>(weight)]->is_constant())
    ctx.fail("expected weight to be a constant (a weights tensor), got the computed value '" +
             n.inputs[static_cast<std::size_t>(weight)]->name + "'");
  const std::int64_t groups = n.attr_int("groups");
  if (groups < 1) ctx.fail("attribute 'groups' must be >= 1, got " + std::to_string(groups));
  const Dim& c = ctx.in(src).shape[1];
  if (!c.concrete()) ctx.fail("expected a concrete channel count in dim 1 of input 'src', got " + ctx.in(src).str());
  return {c.value, groups};
}

}  // namespace kiln
