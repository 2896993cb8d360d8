// concat (any axis; blocked along channels when every input fills whole blocks), flatten (a view) and
// resize (nearest, bilinear) against naive references. concat and flatten move bytes: exact.
// resize: bilinear mixes 4 values with weights summing to 1, error ~1e-7; tolerance 1e-5.

#include "ops/spatial.hpp"  // blocked_channel_layout(): the layout the passes pick on this CPU
#include "passes/pass.hpp"
#include "tests/ops/cnn_ref.hpp"

namespace {

using namespace kiln;
using namespace kiln::test;

using Ints = std::vector<std::int64_t>;

}  // namespace

TEST_CASE("concat over random shapes and axes") {
  Rng rng = make_rng(731);
  for (int i = 0; i < 16; ++i) {
    const int rank = static_cast<int>(random_int(rng, 1, 4));
    const int axis = static_cast<int>(random_int(rng, 0, rank - 1));
    Ints base = random_shape(rng, rank, 1, 7);
    std::vector<Tensor> xs;
    std::vector<Arg> args;
    for (int k = 0, n = static_cast<int>(random_int(rng, 1, 4)); k < n; ++k) {
      Ints s = base;
      s[axis] = random_int(rng, 1, 6);
      xs.push_back(random_f32(rng, s));
      args.push_back(in(xs.back()));
    }
    OpResult r = run_op("concat", args, {{"axis", Attr{std::int64_t{axis - (i % 2 ? rank : 0)}}}});
    INFO("concat of ", xs.size(), " along ", axis, " base ", dims_str(base), "\n", r.impl);
    CHECK(same_bytes(r.out, ref_concat(xs, axis)));
  }
}

TEST_CASE("concat along channels stays blocked when channels fill whole blocks") {
  Rng rng = make_rng(732);
  const std::int64_t block = channel_block(blocked_channel_layout());  // 8 or 16 channels, by CPU
  REQUIRE(block > 5);
  for (std::int64_t c2 : {block, std::int64_t{5}}) {
    Graph g;
    Tensor x = random_f32(rng, {2, 16, 5, 4}), w1 = random_f32(rng, {16, 16, 1, 1}), w2 = random_f32(rng, {c2, 16, 1, 1});
    Value* xv = g.add_value("x", TensorType{DType::f32, concrete_shape(x.shape())});
    g.inputs.push_back(xv);
    auto constant = [&](const char* name, const Tensor& t) {
      return g.add_constant(name, TensorType{DType::f32, concrete_shape(t.shape())}, ConstData{t.data(), t.bytes(), std::make_shared<Tensor>(t)});
    };
    Value* a = g.add_value("a", {});
    Value* b = g.add_value("b", {});
    Value* y = g.add_value("y", {});
    g.add_node("conv2d", "a", {xv, constant("w1", w1), nullptr}, {a}, {}, {});
    g.add_node("conv2d", "b", {xv, constant("w2", w2), nullptr}, {b}, {}, {});
    g.add_node("concat", "y", {a, b}, {y}, {}, {});
    g.outputs.push_back(y);
    g.infer_shapes();
    PipelineOptions options;
    options.opt_level = 1;
    run_pipeline(g, options);
    std::string describe;
    Tensor got = run_graph(g, {x}, &describe).at(0);
    INFO("second branch with ", c2, " channels\n", describe);
    // A whole block of channels: the concat runs blocked, reorders only at entry and exit; 5: both
    // branches go plain.
    const std::string shape = "f32[2," + std::to_string(16 + c2) + ",5,4]";
    CHECK(contains(describe, c2 == block ? "concat 'y' -> " + shape + "{" + blocked_channel_layout() + "}"
                                         : "concat 'y' -> " + shape + "  ["));
    CHECK(contains(describe, c2 == block ? "reorders: 2" : "reorders: 3"));
    CHECK(max_abs_error(got, ref_concat({ref_conv2d(x, w1, nullptr, {}), ref_conv2d(x, w2, nullptr, {})}, 1)) <= 1e-4);
  }
}

TEST_CASE("concat bad inputs") {
  Rng rng = make_rng(733);
  CHECK(error_of([&] { run_op("concat", {in(random_f32(rng, {2, 3})), in(random_f32(rng, {3, 3}))}); }) ==
        "error: concat 'out': input 1 f32[3,3] does not match input 0 f32[2,3] outside axis 1");
  CHECK(error_of([&] { run_op("concat", {in(random_f32(rng, {2, 3})), in(random_f32(rng, {2}))}); }) ==
        "error: concat 'out': input 1 f32[2] does not match input 0 f32[2,3] outside axis 1");
  CHECK(error_of([&] { run_op("concat", {in(random_f32(rng, {2, 3}))}, {{"axis", Attr{std::int64_t{2}}}}); }) ==
        "error: concat 'out': attribute 'axis' = 2 is out of range for rank 2 (expected -2..1)");
}

TEST_CASE("flatten is a view merging the trailing dims") {
  Rng rng = make_rng(734);
  Tensor x = random_f32(rng, {2, 3, 4, 5});
  OpResult r = run_op("flatten", {in(x)});
  CHECK(r.out.shape() == Ints{2, 60});
  CHECK(std::equal(x.data_as<float>(), x.data_as<float>() + x.numel(), r.out.data_as<float>()));
  CHECK(run_op("flatten", {in(x)}, {{"axis", Attr{std::int64_t{2}}}}).out.shape() == Ints{2, 3, 20});
  CHECK(run_op("flatten", {in(x)}, {{"axis", Attr{std::int64_t{0}}}}).out.shape() == Ints{120});
  OpResult s = run_op("flatten", {in(random_f32(rng, {3, 8, 1, 1}), {Dim::symbol("batch"), Dim::of(8), Dim::of(1), Dim::of(1)})});
  CHECK(s.inferred.str() == "f32[batch,8]");
  CHECK(error_of([&] { run_op("flatten", {in(x)}, {{"axis", Attr{std::int64_t{4}}}}); }) ==
        "error: flatten 'out': attribute 'axis' = 4 is out of range for rank 4 (expected -4..3)");
}

TEST_CASE("resize nearest and linear over random shapes, by size and by scale") {
  Rng rng = make_rng(735);
  double worst = 0;
  for (int i = 0; i < 20; ++i) {
    Ints shape = {random_int(rng, 1, 2), random_int(rng, 1, 9), random_int(rng, 1, 9), random_int(rng, 1, 9)};
    const std::string mode = i % 2 ? "linear" : "nearest";
    Tensor x = random_f32(rng, shape);
    std::int64_t oh, ow;
    AttrMap attrs{{"mode", Attr{mode}}};
    if (i % 4 < 2) {
      oh = random_int(rng, 1, 17);
      ow = random_int(rng, 1, 17);
      attrs["size"] = Attr{Ints{oh, ow}};
    } else {
      std::int64_t sh = random_int(rng, 1, 3), sw = random_int(rng, 1, 3);
      oh = shape[2] * sh;
      ow = shape[3] * sw;
      attrs["scale"] = Attr{std::vector<double>{static_cast<double>(sh), static_cast<double>(sw)}};
    }
    OpResult r = run_op("resize", {in(x)}, attrs);
    Tensor want = ref_resize(x, mode, oh, ow);
    double err = max_abs_error(r.out, want);
    INFO("resize ", mode, " ", dims_str(shape), " -> ", oh, "x", ow, "\n", r.impl);
    CHECK(r.out.shape() == want.shape());
    CHECK(err <= 1e-5);
    worst = std::max(worst, err);
  }
  MESSAGE("resize worst abs error " << worst);
  OpResult s = run_op("resize", {in(random_f32(rng, {1, 2, 3, 4}), {Dim::symbol("batch"), Dim::of(2), Dim::symbol("h"), Dim::symbol("w")})},
                      {{"scale", Attr{std::vector<double>{2.0, 2.0}}}});
  CHECK(s.inferred.str() == "f32[batch,2,h*2,w*2]");
}

TEST_CASE("resize bad inputs") {
  Rng rng = make_rng(736);
  Tensor x = random_f32(rng, {1, 2, 3, 4});
  CHECK(error_of([&] { run_op("resize", {in(x)}); }) == "error: resize 'out': expected exactly one of the attributes 'size' and 'scale'");
  CHECK(error_of([&] { run_op("resize", {in(x)}, {{"size", Attr{Ints{4, 4}}}, {"mode", Attr{std::string("area")}}}); }) ==
        "error: resize 'out': attribute 'mode' must be \"nearest\", \"linear\" or \"cubic\", got \"area\"");
  CHECK(error_of([&] {
    run_op("resize", {in(x)}, {{"size", Attr{Ints{4, 4}}}, {"coordinate_mode", Attr{std::string("tf_crop_and_resize")}}});
  }) == "error: resize 'out': coordinate_mode tf_crop_and_resize needs attribute 'roi' [h_start, w_start, h_end, w_end], got []");
  CHECK(error_of([&] { run_op("resize", {in(x)}, {{"scale", Attr{std::vector<double>{0.1, 1.0}}}}); }) ==
        "error: resize 'out': scaling f32[1,2,3,4] by [0.1,1.0] leaves no pixels");
}

TEST_CASE("clip and silu") {
  Rng rng = make_rng(737);
  Tensor x = random_f32(rng, {2, 3, 4, 5}, -8.f, 8.f);
  CHECK(max_abs_error(run_op("clip", {in(x)}).out, ref_activation(x, "clip", 0, 6)) == 0);
  CHECK(max_abs_error(run_op("clip", {in(x)}, {{"min", Attr{-1.0}}, {"max", Attr{2.5}}}).out, ref_activation(x, "clip", -1, 2.5)) == 0);
  CHECK(max_abs_error(run_op("silu", {in(x)}).out, ref_activation(x, "silu")) <= 1e-5);
  CHECK(error_of([&] { run_op("clip", {in(x)}, {{"min", Attr{3.0}}, {"max", Attr{2.0}}}); }) ==
        "error: clip 'out': attribute 'min' (3.0) must be <= 'max' (2.0)");
}
