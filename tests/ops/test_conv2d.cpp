// conv2d against a naive reference over random shapes: stride, padding (symmetric and not), dilation,
// groups (incl. depthwise), with and without bias, fused activation and residual; run as written
// (plain nchw, -O0) and after assign-layouts (blocked nChw8c, weights packed by the kernel).
// Tolerance 1e-4 absolute: up to 16*3*3 = 144 products of values in [-1, 1] summed in f32 (error
// ~1e-6 relative to the sum's magnitude); a wrong tap, group or padding errs by >= 1e-2.

#include "ops/spatial.hpp"  // blocked_channel_layout(): the layout the passes pick on this CPU
#include "tests/ops/cnn_ref.hpp"

namespace {

using namespace kiln;
using namespace kiln::test;

constexpr double kTol = 1e-4;

struct Case {
  std::vector<std::int64_t> x;  // N, C, H, W
  std::int64_t out_channels, kh, kw;
  ConvParams p;
  bool bias = true;
  std::string activation = "none";
  bool residual = false;
};

double check(Rng& rng, const Case& c, int opt_level) {
  const std::int64_t cg = c.x[1] / c.p.groups;
  Tensor x = random_f32(rng, c.x);
  Tensor w = random_f32(rng, {c.out_channels, cg, c.kh, c.kw});
  Tensor b = random_f32(rng, {c.out_channels});
  Tensor want = ref_conv2d(x, w, c.bias ? &b : nullptr, c.p);
  Tensor res = random_f32(rng, want.shape());
  if (c.residual) want = ref_binary('+', want, res);
  want = ref_activation(want, c.activation, -0.5, 0.7);
  AttrMap attrs{{"stride", Attr{c.p.stride}},
                {"padding", Attr{c.p.padding}},
                {"dilation", Attr{c.p.dilation}},
                {"groups", Attr{c.p.groups}},
                {"activation", Attr{c.activation}},
                {"clip_min", Attr{-0.5}},
                {"clip_max", Attr{0.7}}};
  std::vector<Arg> args = {in(x), weight(w), c.bias ? weight(b) : none()};
  if (c.residual) args.push_back(in(res));
  OpResult r = run_op("conv2d", args, attrs, opt_level);
  double err = max_abs_error(r.out, want);
  INFO("conv2d x ", dims_str(c.x), " w ", dims_str(w.shape()), " stride ", dims_str(c.p.stride), " pad ", dims_str(c.p.padding),
       " dilation ", dims_str(c.p.dilation), " groups ", c.p.groups, " act ", c.activation, c.residual ? " +residual" : "", " -O",
       opt_level, "\n", r.impl);
  CHECK(r.out.shape() == want.shape());
  CHECK(err <= kTol);
  return err;
}

Case random_case(Rng& rng) {
  Case c;
  std::int64_t groups = random_int(rng, 0, 2) == 0 ? random_int(rng, 2, 4) : 1;
  std::int64_t cg = random_int(rng, 1, 6);
  c.x = {random_int(rng, 1, 3), groups * cg, random_int(rng, 5, 13), random_int(rng, 5, 13)};
  c.out_channels = groups * random_int(rng, 1, 6);
  c.kh = random_int(rng, 1, 3);
  c.kw = random_int(rng, 1, 3);
  c.p.groups = groups;
  c.p.stride = {random_int(rng, 1, 3), random_int(rng, 1, 2)};
  c.p.dilation = {random_int(rng, 1, 2), random_int(rng, 1, 2)};
  std::int64_t ph = random_int(rng, 0, 2), pw = random_int(rng, 0, 2);
  c.p.padding = random_int(rng, 0, 1) ? std::vector<std::int64_t>{ph, pw, ph, pw} : std::vector<std::int64_t>{ph, pw, random_int(rng, 0, 2), 0};
  c.bias = random_int(rng, 0, 1) == 1;
  return c;
}

}  // namespace

TEST_CASE("conv2d over random shapes, plain and blocked") {
  Rng rng = make_rng(701);
  double worst = 0;
  for (int i = 0; i < 24; ++i) {
    Case c = random_case(rng);
    worst = std::max(worst, check(rng, c, 0));
    worst = std::max(worst, check(rng, c, 1));
  }
  MESSAGE("conv2d worst abs error " << worst);
}

TEST_CASE("conv2d in the shapes CNNs use: stem, 3x3, 1x1, depthwise, strided") {
  Rng rng = make_rng(702);
  std::vector<Case> cases = {
      {{2, 3, 17, 19}, 16, 7, 7, {{2, 2}, {3, 3, 3, 3}, {1, 1}, 1}},          // stem: 3 channels, plain in, blocked out
      {{1, 16, 9, 9}, 16, 3, 3, {{1, 1}, {1, 1, 1, 1}, {1, 1}, 1}},           // 3x3 block conv
      {{2, 16, 9, 9}, 32, 1, 1, {{2, 2}, {0, 0, 0, 0}, {1, 1}, 1}},           // 1x1 strided shortcut
      {{1, 24, 10, 10}, 24, 3, 3, {{2, 2}, {1, 1, 1, 1}, {1, 1}, 24}},        // depthwise, strided
      {{1, 16, 8, 8}, 32, 3, 3, {{1, 1}, {2, 2, 2, 2}, {2, 2}, 2}},           // grouped, dilated
      {{1, 12, 6, 7}, 20, 3, 3, {{1, 1}, {1, 1, 1, 1}, {1, 1}, 1}},           // channels not a multiple of 8
  };
  double worst = 0;
  for (Case c : cases)
    for (int level : {0, 1}) worst = std::max(worst, check(rng, c, level));
  MESSAGE("conv2d CNN shapes worst abs error " << worst);
}

TEST_CASE("conv2d with activation and residual post-ops") {
  Rng rng = make_rng(703);
  double worst = 0;
  for (const char* act : {"relu", "clip", "silu", "sigmoid", "tanh", "none"})
    for (bool residual : {false, true}) {
      Case c{{2, 16, 7, 6}, 16, 3, 3, {{1, 1}, {1, 1, 1, 1}, {1, 1}, 1}, true, act, residual};
      for (int level : {0, 1}) worst = std::max(worst, check(rng, c, level));
    }
  MESSAGE("conv2d post-ops worst abs error " << worst);
}

TEST_CASE("conv2d with fewer input channels than one block and a residual: src reordered to plain in the kernel") {
  // -O1 runs it blocked (its output and residual in the blocked layout); the kernel then reorders src to
  // plain nchw in its scratch, where oneDNN has a jit kernel (it has none reading 4 or 8 channels blocked).
  Rng rng = make_rng(705);
  double worst = 0;
  for (std::int64_t channels : {3, 4, 8})
    for (const char* act : {"relu", "none"}) {
      Case c{{2, channels, 9, 7}, 16, 3, 3, {{1, 1}, {1, 1, 1, 1}, {1, 1}, 1}, true, act, true};
      for (int level : {0, 1}) worst = std::max(worst, check(rng, c, level));
    }
  MESSAGE("conv2d few channels + residual worst abs error " << worst);
}

TEST_CASE("conv2d runs blocked after assign-layouts, with a jit kernel") {
  Rng rng = make_rng(704);
  OpResult r = run_op("conv2d", {in(random_f32(rng, {1, 16, 8, 8})), weight(random_f32(rng, {16, 16, 3, 3})), none()},
                      {{"padding", Attr{std::vector<std::int64_t>{1, 1}}}}, 1);
  INFO(r.impl);
  CHECK(contains(r.impl, "conv2d 'out' -> f32[1,16,8,8]{" + blocked_channel_layout() + "}"));
  CHECK(contains(r.impl, "jit"));
  CHECK(contains(r.impl, "reorders: 2"));  // in and out of this one-node graph
}

TEST_CASE("conv2d shape rule and bad inputs") {
  Rng rng = make_rng(705);
  Tensor x = random_f32(rng, {1, 4, 8, 8});
  auto err = [&](std::vector<Arg> args, AttrMap attrs = {}) { return error_of([&] { run_op("conv2d", args, attrs); }); };
  CHECK(err({in(x), weight(random_f32(rng, {8, 3, 3, 3})), none()}) ==
        "error: conv2d 'out': expected weight of shape [8,4,kh,kw] for 4 input channels in 1 group(s), got [8,3,3,3]");
  CHECK(err({in(x), weight(random_f32(rng, {6, 2, 3, 3})), none()}, {{"groups", Attr{std::int64_t{4}}}}) ==
        "error: conv2d 'out': attribute 'groups' = 4 must divide the input channels (4) and the output channels (6)");
  CHECK(err({in(x), weight(random_f32(rng, {8, 4, 3, 3})), weight(random_f32(rng, {7}))}) ==
        "error: conv2d 'out': expected bias of shape [8], got [7] ('w2')");
  CHECK(err({in(x), weight(random_f32(rng, {8, 4, 9, 9})), none()}) ==
        "error: conv2d 'out': the height window (9 with dilation) is larger than the padded input (8)");
  CHECK(err({in(x), weight(random_f32(rng, {8, 4, 3, 3})), none()}, {{"stride", Attr{std::vector<std::int64_t>{0, 1}}}}) ==
        "error: conv2d 'out': attribute 'stride' entries must be >= 1, got [0,1]");
  // Found by fuzz_kplan (docs/fuzzing.md): huge padding overflowed pad[0] + pad[2] (signed: undefined behaviour).
  CHECK(err({in(x), weight(random_f32(rng, {8, 4, 3, 3})), none()},
            {{"padding", Attr{std::vector<std::int64_t>{8791307947603918849, 8791307947603918849}}}}) ==
        "error: conv2d 'out': attribute 'padding' entries must be >= 0 and <= 2147483647, got "
        "[8791307947603918849,8791307947603918849]");
  CHECK(err({in(x), weight(random_f32(rng, {8, 4, 3, 3})), none()}, {{"dilation", Attr{std::vector<std::int64_t>{1, 4294967296}}}}) ==
        "error: conv2d 'out': attribute 'dilation' entries must be <= 2147483647, got [1,4294967296]");
  CHECK(err({in(x), weight(random_f32(rng, {8, 4, 3, 3})), none()}, {{"padding", Attr{std::vector<std::int64_t>{1, 1, 1}}}}) ==
        "error: conv2d 'out': attribute 'padding' must have 2 entries [h, w] or 4 [top, left, bottom, right], got [1,1,1]");
  CHECK(err({in(x), weight(random_f32(rng, {8, 4, 3, 3})), none()}, {{"activation", Attr{std::string("gelu")}}}) ==
        "error: conv2d 'out': attribute 'activation' must be one of none, relu, clip, silu, sigmoid, tanh, leaky_relu, elu, hard_swish, softplus; got \"gelu\"");
  CHECK(err({in(random_f32(rng, {4, 8, 8})), weight(random_f32(rng, {8, 4, 3, 3})), none()}) ==
        "error: conv2d 'out': expected input 'src' of rank 4 [N,C,H,W], got f32[4,8,8]");
  CHECK(err({in(x), in(random_f32(rng, {8, 4, 3, 3})), none()}) ==
        "error: conv2d 'out': expected weight to be a constant (a weights tensor), got the computed value 'in1'");
}

TEST_CASE("conv2d output sizes over symbolic dims: equal sizes get equal expressions") {
  Rng rng = make_rng(706);
  Tensor x = random_f32(rng, {1, 8, 9, 10});
  Shape sym = {Dim::symbol("batch"), Dim::of(8), Dim::symbol("h"), Dim::symbol("w")};
  OpResult a = run_op("conv2d", {in(x, sym), weight(random_f32(rng, {8, 8, 3, 3})), none()},
                      {{"stride", Attr{std::vector<std::int64_t>{2, 2}}}, {"padding", Attr{std::vector<std::int64_t>{1, 1}}}});
  OpResult b = run_op("conv2d", {in(x, sym), weight(random_f32(rng, {8, 8, 1, 1})), none()}, {{"stride", Attr{std::vector<std::int64_t>{2, 2}}}});
  CHECK(a.inferred.str() == "f32[batch,8,(h-1)/2+1,(w-1)/2+1]");
  CHECK(b.inferred == a.inferred);
  CHECK(a.out.shape() == std::vector<std::int64_t>{1, 8, 5, 5});
  OpResult same = run_op("conv2d", {in(x, sym), weight(random_f32(rng, {8, 8, 3, 3})), none()}, {{"padding", Attr{std::vector<std::int64_t>{1, 1}}}});
  CHECK(same.inferred.str() == "f32[batch,8,h,w]");
}
