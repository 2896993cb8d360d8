// max_pool, avg_pool (count_include_pad both ways), global_avg_pool against naive references over
// random shapes, plain and blocked (after a 1x1 conv that makes the input nChw8c at -O1).
// Tolerance 1e-5: max is exact; averages sum at most 9 (or H*W <= 169) values of |x| <= 1.

#include "ops/spatial.hpp"  // blocked_channel_layout(): the layout the passes pick on this CPU
#include "passes/pass.hpp"
#include "tests/ops/cnn_ref.hpp"

namespace {

using namespace kiln;
using namespace kiln::test;

using Ints = std::vector<std::int64_t>;

}  // namespace

TEST_CASE("max_pool and avg_pool over random shapes") {
  Rng rng = make_rng(721);
  double worst = 0;
  for (int i = 0; i < 30; ++i) {
    Ints shape = {random_int(rng, 1, 3), random_int(rng, 1, 17), random_int(rng, 3, 13), random_int(rng, 3, 13)};
    Ints k = {random_int(rng, 1, 3), random_int(rng, 1, 3)};
    Ints st = {random_int(rng, 1, 3), random_int(rng, 1, 3)};
    Ints pad = {random_int(rng, 0, k[0] / 2), random_int(rng, 0, k[1] / 2)};
    const std::string kind = i % 3 == 0 ? "max" : "avg";
    const bool include = i % 3 == 1;
    Tensor x = random_f32(rng, shape);
    AttrMap attrs{{"kernel", Attr{k}}, {"stride", Attr{st}}, {"padding", Attr{pad}}};
    if (kind == "avg") attrs["count_include_pad"] = Attr{include};
    Tensor want = ref_pool(x, kind, k, st, {pad[0], pad[1], pad[0], pad[1]}, include);
    OpResult r = run_op(kind + "_pool", {in(x)}, attrs);
    double err = max_abs_error(r.out, want);
    INFO(kind, "_pool ", dims_str(shape), " kernel ", dims_str(k), " stride ", dims_str(st), " pad ", dims_str(pad),
         include ? " include_pad" : "", "\n", r.impl);
    CHECK(r.out.shape() == want.shape());
    CHECK(err <= 1e-5);
    worst = std::max(worst, err);
  }
  MESSAGE("pool worst abs error " << worst);
}

TEST_CASE("pooling defaults: stride = kernel, global_avg_pool keeps 1x1") {
  Rng rng = make_rng(722);
  Tensor x = random_f32(rng, {2, 5, 8, 9});
  OpResult r = run_op("max_pool", {in(x)}, {{"kernel", Attr{Ints{2, 2}}}});
  CHECK(r.out.shape() == Ints{2, 5, 4, 4});
  CHECK(max_abs_error(r.out, ref_pool(x, "max", {2, 2}, {2, 2}, {0, 0, 0, 0}, false)) == 0);
  OpResult g = run_op("global_avg_pool", {in(x)});
  CHECK(g.out.shape() == Ints{2, 5, 1, 1});
  CHECK(max_abs_error(g.out, ref_pool(x, "avg", {8, 9}, {8, 9}, {0, 0, 0, 0}, true)) <= 1e-5);
  OpResult s = run_op("global_avg_pool", {in(x, {Dim::symbol("batch"), Dim::of(5), Dim::symbol("h"), Dim::symbol("w")})});
  CHECK(s.inferred.str() == "f32[batch,5,1,1]");
}

TEST_CASE("pools run in the blocked layout after a convolution") {
  Rng rng = make_rng(723);
  for (const char* op : {"max_pool", "avg_pool", "global_avg_pool"}) {
    Graph g;
    Tensor x = random_f32(rng, {2, 16, 9, 7}), cw = random_f32(rng, {16, 16, 1, 1});
    Value* xv = g.add_value("x", TensorType{DType::f32, concrete_shape(x.shape())});
    g.inputs.push_back(xv);
    Value* w = g.add_constant("cw", TensorType{DType::f32, concrete_shape(cw.shape())}, ConstData{cw.data(), cw.bytes(), std::make_shared<Tensor>(cw)});
    Value* c = g.add_value("c", {});
    Value* y = g.add_value("y", {});
    g.add_node("conv2d", "c", {xv, w, nullptr}, {c}, {}, {});
    AttrMap attrs;
    if (std::string(op) != "global_avg_pool") attrs = {{"kernel", Attr{Ints{3, 3}}}, {"stride", Attr{Ints{2, 2}}}, {"padding", Attr{Ints{1, 1}}}};
    g.add_node(op, "y", {c}, {y}, attrs, {});
    g.outputs.push_back(y);
    g.infer_shapes();
    PipelineOptions options;
    options.opt_level = 1;
    run_pipeline(g, options);
    std::string describe;
    Tensor got = run_graph(g, {x}, &describe).at(0);
    INFO(op, "\n", describe);
    CHECK(contains(describe, std::string(op) + " 'y' -> f32[2,16,"));
    CHECK(contains(describe, "{" + blocked_channel_layout() + "}  [jit"));
    CHECK(contains(describe, "reorders: 2"));  // the graph's entry and exit only
    Tensor conv = ref_conv2d(x, cw, nullptr, {});
    Tensor want = std::string(op) == "global_avg_pool" ? ref_pool(conv, "avg", {9, 7}, {9, 7}, {0, 0, 0, 0}, true)
                                                       : ref_pool(conv, std::string(op) == "max_pool" ? "max" : "avg", {3, 3}, {2, 2}, {1, 1, 1, 1}, true);
    CHECK(max_abs_error(got, want) <= 1e-4);
  }
}

TEST_CASE("pool bad inputs") {
  Rng rng = make_rng(724);
  Tensor x = random_f32(rng, {1, 2, 4, 4});
  CHECK(error_of([&] { run_op("max_pool", {in(x)}); }) == "error: max_pool 'out': missing required attribute 'kernel' (int list)");
  CHECK(error_of([&] { run_op("max_pool", {in(x)}, {{"kernel", Attr{Ints{3}}}}); }) ==
        "error: max_pool 'out': attribute 'kernel' must have 2 entries [h, w], got [3]");
  CHECK(error_of([&] { run_op("avg_pool", {in(x)}, {{"kernel", Attr{Ints{2, 2}}}, {"padding", Attr{Ints{2, 0}}}}); }) ==
        "error: avg_pool 'out': attribute 'padding' [2,0] must be at most half the kernel [2,2]");
  CHECK(error_of([&] { run_op("max_pool", {in(x)}, {{"kernel", Attr{Ints{5, 5}}}}); }) ==
        "error: max_pool 'out': the height window (5 with dilation) is larger than the padded input (4)");
  CHECK(error_of([&] { run_op("global_avg_pool", {in(random_f32(rng, {2, 3}))}); }) ==
        "error: global_avg_pool 'out': expected input 'src' of rank 4 [N,C,H,W], got f32[2,3]");
}

TEST_CASE("blocked ops on channel counts that do not fill the last block (padded blocks)") {
  // 12 channels: nChw8c holds them in 2 blocks, 4 channels of padding; nChw16c in 1 block, 4 of padding. conv -> batch_norm -> clip ->
  // max_pool -> add -> resize -> global_avg_pool, all blocked at -O1.
  Rng rng = make_rng(725);
  Graph g;
  Tensor x = random_f32(rng, {2, 16, 9, 8}), cw = random_f32(rng, {12, 16, 1, 1});
  Tensor w = random_f32(rng, {12}, 0.5f, 2.f), b = random_f32(rng, {12}), mean = random_f32(rng, {12}), var = random_f32(rng, {12}, 0.2f, 2.f);
  auto constant = [&](const char* name, const Tensor& t) {
    return g.add_constant(name, TensorType{DType::f32, concrete_shape(t.shape())}, ConstData{t.data(), t.bytes(), std::make_shared<Tensor>(t)});
  };
  Value* xv = g.add_value("x", TensorType{DType::f32, concrete_shape(x.shape())});
  g.inputs.push_back(xv);
  std::vector<Value*> v;
  for (const char* name : {"c", "bn", "r", "p", "s", "u", "y"}) v.push_back(g.add_value(name, {}));
  g.add_node("conv2d", "c", {xv, constant("cw", cw), nullptr}, {v[0]}, {}, {});
  g.add_node("batch_norm", "bn", {v[0], constant("w", w), constant("b", b), constant("m", mean), constant("v", var)}, {v[1]}, {}, {});
  g.add_node("clip", "r", {v[1]}, {v[2]}, {{"min", Attr{-0.5}}, {"max", Attr{0.5}}}, {});
  g.add_node("max_pool", "p", {v[2]}, {v[3]}, {{"kernel", Attr{Ints{2, 2}}}}, {});
  g.add_node("add", "s", {v[3], v[3]}, {v[4]}, {}, {});
  g.add_node("resize", "u", {v[4]}, {v[5]}, {{"mode", Attr{std::string("linear")}}, {"size", Attr{Ints{7, 5}}}}, {});
  g.add_node("global_avg_pool", "y", {v[5]}, {v[6]}, {}, {});
  g.outputs.push_back(v[6]);
  g.infer_shapes();
  PipelineOptions options;
  options.opt_level = 1;
  run_pipeline(g, options);
  std::string describe;
  Tensor got = run_graph(g, {x}, &describe).at(0);
  INFO(describe);
  REQUIRE(12 % channel_block(blocked_channel_layout()) != 0);
  CHECK(contains(describe, "resize 'u' -> f32[2,12,7,5]{" + blocked_channel_layout() + "}"));
  CHECK(contains(describe, "reorders: 2"));
  Tensor t = ref_conv2d(x, cw, nullptr, {});
  t = ref_activation(ref_batch_norm(t, &w, &b, mean, var, 1e-5), "clip", -0.5, 0.5);
  t = ref_pool(t, "max", {2, 2}, {2, 2}, {0, 0, 0, 0}, false);
  t = ref_resize(ref_binary('+', t, t), "linear", 7, 5);
  t = ref_pool(t, "avg", {7, 5}, {7, 5}, {0, 0, 0, 0}, true);
  CHECK(max_abs_error(got, t) <= 1e-5);
}
