// ONNX nn ops of issue 15 point 3 (frontends/onnx/map_nn.cpp): ConvTranspose, 1-D Conv, Resize's
// rounding, and the refusals: each error names the file, the node (FILE:INDEX+1:0, name, op type) and what
// was expected. Models are built here with the ONNX library's protobuf classes; references are computed
// here from ONNX's definitions.

#include <onnx/onnx_pb.h>

#include <cmath>
#include <string>
#include <vector>

#include "frontends/onnx/onnx_frontend.hpp"
#include "runtime/model_impl.hpp"
#include "onnx_builder.hpp"
#include "test_util.hpp"

using kiln::test::contains;
using kiln::test::error_of;

namespace {


// A model at `opset` with input x of `dims` (numbers or symbols) and output y (of `out_dims`).
using kiln::test::onnx_build::save;

void set_dims(onnx::ValueInfoProto* v, const std::vector<std::string>& dims) {
  kiln::test::onnx_build::set_tensor_type(v, onnx::TensorProto_DataType_FLOAT, dims);
}

onnx::ModelProto model_of(int opset, const std::vector<std::string>& dims, const std::vector<std::string>& out_dims) {
  onnx::ModelProto m = kiln::test::onnx_build::empty_model(opset, opset >= 9 ? 8 : 3, "nn");
  kiln::test::onnx_build::add_input(m, "x", onnx::TensorProto_DataType_FLOAT, dims);
  kiln::test::onnx_build::add_output(m, "y", onnx::TensorProto_DataType_FLOAT, out_dims);
  return m;
}

onnx::NodeProto* node(onnx::ModelProto& m, const std::string& op, const std::string& name,
                      std::initializer_list<std::string> ins, std::initializer_list<std::string> outs = {"y"}) {
  return kiln::test::onnx_build::add_node(m, op, name, ins, outs);
}

void ints(onnx::NodeProto* n, const std::string& key, std::vector<std::int64_t> v) {
  kiln::test::onnx_build::set_ints_attr(n, key, v);
}
void integer(onnx::NodeProto* n, const std::string& key, std::int64_t v) {
  kiln::test::onnx_build::set_int_attr(n, key, v);
}
void text(onnx::NodeProto* n, const std::string& key, const std::string& v) {
  kiln::test::onnx_build::set_string_attr(n, key, v);
}

void init_f32(onnx::ModelProto& m, const std::string& name, std::vector<std::int64_t> dims,
              const std::vector<float>& values) {
  kiln::test::onnx_build::add_f32(m, name, dims, values);
}
void init_i64(onnx::ModelProto& m, const std::string& name, std::vector<std::int64_t> dims,
              const std::vector<std::int64_t>& values) {
  kiln::test::onnx_build::add_i64(m, name, dims, values);
}


std::vector<float> ramp(std::size_t n, float scale) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = std::sin(static_cast<float>(i) * scale) + 0.1f * static_cast<float>(i % 7);
  return v;
}

// The error loading `m`, which must name the file, node `index` (0-based) and its name and op.
std::string load_error(const onnx::ModelProto& m, int index, const std::string& name, const std::string& op) {
  kiln::test::TempDir dir;
  const std::string path = save(dir, "model.onnx", m);
  std::string e = error_of([&] { kiln::Model::load(path); });
  INFO(e);
  CHECK(contains(e, path + ":" + std::to_string(index + 1) + ":0: error: node '" + name + "' (" + op + "): "));
  return e;
}

}  // namespace

TEST_CASE("onnx ConvTranspose: groups, strides, dilations, pads and output_padding equal ONNX's definition") {
  // x [N,4,5,6], W [4, 3, 3, 2] in 2 groups: 6 output channels.
  const std::int64_t C = 4, G = 2, OG = 3, KH = 3, KW = 2, H = 5, W = 6;
  const std::int64_t sh = 2, sw = 3, dh = 2, dw = 1, pt = 1, pl = 0, pb = 2, pr = 1, oph = 1, opw = 2;
  const std::int64_t OH = (H - 1) * sh - pt - pb + dh * (KH - 1) + 1 + oph;
  const std::int64_t OW = (W - 1) * sw - pl - pr + dw * (KW - 1) + 1 + opw;
  onnx::ModelProto m = model_of(13, {"batch", "4", "5", "6"}, {"batch", "6", std::to_string(OH), std::to_string(OW)});
  const auto wv = ramp(static_cast<std::size_t>(C * OG * KH * KW), 0.37f);
  const auto bv = ramp(static_cast<std::size_t>(G * OG), 1.1f);
  init_f32(m, "W", {C, OG, KH, KW}, wv);
  init_f32(m, "B", {G * OG}, bv);
  auto* n = node(m, "ConvTranspose", "up", {"x", "W", "B"});
  integer(n, "group", G);
  ints(n, "strides", {sh, sw});
  ints(n, "dilations", {dh, dw});
  ints(n, "pads", {pt, pl, pb, pr});
  ints(n, "output_padding", {oph, opw});
  kiln::test::TempDir dir;
  kiln::Model model = kiln::Model::load(save(dir, "ct.onnx", m));
  // The pack-weights pass left the weight plain or packed it into a oneDNN format, which plans bind in place.
  for (const auto& nd : model.impl()->graph->nodes())
    if (nd->op == "conv_transpose2d") {
      const std::string& layout = nd->inputs[1]->type.layout;
      CHECK_MESSAGE((layout.empty() || layout.rfind("dnnl:", 0) == 0), layout);
    }
  kiln::Session session(model);
  for (std::int64_t batch : {2, 1}) {
    const auto xv = ramp(static_cast<std::size_t>(batch * C * H * W), 0.21f);
    auto x = kiln::Tensor::view(kiln::DType::f32, {batch, C, H, W}, const_cast<float*>(xv.data()));
    CHECK_FALSE(contains(session.explain({{"x", x}}), "packed weights:"));
    auto y = session.run({{"x", x}}).at("y");
    REQUIRE(y.shape() == std::vector<std::int64_t>{batch, G * OG, OH, OW});
    // ONNX: y[n, g*OG+o, i*sh - pt + kh*dh, j*sw - pl + kw*dw] += x[n, g*C/G+c, i, j] * W[g*C/G+c, o, kh, kw].
    std::vector<double> ref(static_cast<std::size_t>(batch * G * OG * OH * OW));
    for (std::int64_t b = 0; b < batch; ++b)
      for (std::int64_t oc = 0; oc < G * OG; ++oc)
        for (std::int64_t p = 0; p < OH * OW; ++p) ref[static_cast<std::size_t>((b * G * OG + oc) * OH * OW + p)] = bv[oc];
    for (std::int64_t b = 0; b < batch; ++b)
      for (std::int64_t ic = 0; ic < C; ++ic)
        for (std::int64_t i = 0; i < H; ++i)
          for (std::int64_t j = 0; j < W; ++j)
            for (std::int64_t o = 0; o < OG; ++o)
              for (std::int64_t kh = 0; kh < KH; ++kh)
                for (std::int64_t kw = 0; kw < KW; ++kw) {
                  const std::int64_t oy = i * sh - pt + kh * dh, ox = j * sw - pl + kw * dw;
                  if (oy < 0 || oy >= OH || ox < 0 || ox >= OW) continue;
                  const std::int64_t oc = (ic / (C / G)) * OG + o;
                  ref[static_cast<std::size_t>(((b * G * OG + oc) * OH + oy) * OW + ox)] +=
                      static_cast<double>(xv[static_cast<std::size_t>(((b * C + ic) * H + i) * W + j)]) *
                      wv[static_cast<std::size_t>(((ic * OG + o) * KH + kh) * KW + kw)];
                }
    double worst = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::fabs(y.data_as<float>()[i] - ref[i]));
    CHECK(worst <= 1e-4);  // sums of up to 12 products of values below 2
  }
  CHECK(session.plan_count() == 2);
}

TEST_CASE("onnx Conv 1-D runs as conv2d with a unit height and equals ONNX's definition") {
  const std::int64_t C = 3, O = 4, K = 3, L = 9, stride = 2, pad_b = 1, pad_e = 2;
  const std::int64_t OL = (L + pad_b + pad_e - K) / stride + 1;
  onnx::ModelProto m = model_of(13, {"batch", "3", "9"}, {"batch", "4", std::to_string(OL)});
  const auto wv = ramp(static_cast<std::size_t>(O * C * K), 0.53f);
  init_f32(m, "W", {O, C, K}, wv);
  auto* n = node(m, "Conv", "c1d", {"x", "W"});
  ints(n, "strides", {stride});
  ints(n, "pads", {pad_b, pad_e});
  kiln::test::TempDir dir;
  kiln::Model model = kiln::Model::load(save(dir, "c1d.onnx", m));
  CHECK(contains(model.ir(), "conv2d("));
  kiln::Session session(model);
  const auto xv = ramp(static_cast<std::size_t>(2 * C * L), 0.3f);
  auto y = session.run({{"x", kiln::Tensor::view(kiln::DType::f32, {2, C, L}, const_cast<float*>(xv.data()))}}).at("y");
  REQUIRE(y.shape() == std::vector<std::int64_t>{2, O, OL});
  double worst = 0;
  for (std::int64_t b = 0; b < 2; ++b)
    for (std::int64_t o = 0; o < O; ++o)
      for (std::int64_t t = 0; t < OL; ++t) {
        double s = 0;
        for (std::int64_t c = 0; c < C; ++c)
          for (std::int64_t k = 0; k < K; ++k) {
            const std::int64_t i = t * stride - pad_b + k;
            if (i >= 0 && i < L) s += static_cast<double>(xv[static_cast<std::size_t>((b * C + c) * L + i)]) * wv[static_cast<std::size_t>((o * C + c) * K + k)];
          }
        worst = std::max(worst, std::fabs(y.data_as<float>()[(b * O + o) * OL + t] - s));
      }
  CHECK(worst <= 1e-5);
}

TEST_CASE("onnx Resize nearest with round_prefer_ceil equals ONNX's half-pixel rounding, ties included") {
  // 2 -> 7 rows puts output row 3 on a tie (source 0.5), 3 -> 8 columns has none.
  onnx::ModelProto m = model_of(13, {"1", "1", "2", "3"}, {"1", "1", "7", "8"});
  init_i64(m, "sizes", {4}, {1, 1, 7, 8});
  auto* n = node(m, "Resize", "up", {"x", "", "", "sizes"});
  text(n, "mode", "nearest");
  text(n, "nearest_mode", "round_prefer_ceil");
  kiln::test::TempDir dir;
  kiln::Session session(kiln::Model::load(save(dir, "resize.onnx", m)));
  const std::vector<float> xv = {1, 2, 3, 4, 5, 6};
  auto y = session.run({{"x", kiln::Tensor::view(kiln::DType::f32, {1, 1, 2, 3}, const_cast<float*>(xv.data()))}}).at("y");
  REQUIRE(y.shape() == std::vector<std::int64_t>{1, 1, 7, 8});
  auto src = [](std::int64_t o, std::int64_t in, std::int64_t out) {
    const double x = (static_cast<double>(o) + 0.5) * static_cast<double>(in) / static_cast<double>(out) - 0.5;
    return std::clamp<std::int64_t>(static_cast<std::int64_t>(std::floor(x + 0.5)), 0, in - 1);  // ties up
  };
  for (std::int64_t i = 0; i < 7; ++i)
    for (std::int64_t j = 0; j < 8; ++j)
      CHECK_MESSAGE(y.data_as<float>()[i * 8 + j] == xv[static_cast<std::size_t>(src(i, 2, 7) * 3 + src(j, 3, 8))],
                    "at " << i << "," << j);
}

TEST_CASE("onnx Resize: the cases equal to Kiln's default semantics run on oneDNN, the others on Kiln's kernel") {
  auto resize_model = [](const std::string& mode, const std::string& coord, const std::string& nearest) {
    onnx::ModelProto m = model_of(13, {"1", "2", "4", "4"}, {"1", "2", "8", "8"});
    init_f32(m, "scales", {4}, {1, 1, 2, 2});
    auto* n = node(m, "Resize", "rs", {"x", "", "scales"});
    text(n, "mode", mode);
    if (!coord.empty()) text(n, "coordinate_transformation_mode", coord);
    if (!nearest.empty()) text(n, "nearest_mode", nearest);
    return m;
  };
  std::vector<float> xv(32);
  for (std::size_t i = 0; i < xv.size(); ++i) xv[i] = static_cast<float>(i % 5) - 1.5f;
  auto x = kiln::Tensor::view(kiln::DType::f32, {1, 2, 4, 4}, xv.data());
  auto kernel_of = [&](const onnx::ModelProto& m) {
    kiln::test::TempDir dir;
    kiln::Session session(kiln::Model::load(save(dir, "rs.onnx", m)));
    return session.explain({{"x", x}});
  };
  // Integer upscaling: round_prefer_floor (ONNX's default) has no ties, asymmetric + floor picks the same pixels.
  CHECK_FALSE(contains(kernel_of(resize_model("nearest", "", "")), "kiln:resize"));
  CHECK_FALSE(contains(kernel_of(resize_model("nearest", "asymmetric", "floor")), "kiln:resize"));
  CHECK_FALSE(contains(kernel_of(resize_model("linear", "pytorch_half_pixel", "")), "kiln:resize"));
  CHECK(contains(kernel_of(resize_model("linear", "align_corners", "")), "kiln:resize"));
  CHECK(contains(kernel_of(resize_model("cubic", "", "")), "kiln:resize"));
  CHECK(contains(kernel_of(resize_model("nearest", "", "ceil")), "kiln:resize"));
}

TEST_CASE("onnx Resize linear with align_corners equals ONNX's definition") {
  onnx::ModelProto m = model_of(13, {"1", "1", "3", "4"}, {"1", "1", "5", "7"});
  init_i64(m, "sizes", {4}, {1, 1, 5, 7});
  auto* n = node(m, "Resize", "ac", {"x", "", "", "sizes"});
  text(n, "mode", "linear");
  text(n, "coordinate_transformation_mode", "align_corners");
  kiln::test::TempDir dir;
  kiln::Session session(kiln::Model::load(save(dir, "ac.onnx", m)));
  const auto xv = ramp(12, 0.7f);
  auto y = session.run({{"x", kiln::Tensor::view(kiln::DType::f32, {1, 1, 3, 4}, const_cast<float*>(xv.data()))}}).at("y");
  REQUIRE(y.shape() == std::vector<std::int64_t>{1, 1, 5, 7});
  auto at = [&](double r, double c) {  // bilinear at source (r, c)
    const auto r0 = static_cast<std::int64_t>(std::floor(r)), c0 = static_cast<std::int64_t>(std::floor(c));
    const std::int64_t r1 = std::min<std::int64_t>(r0 + 1, 2), c1 = std::min<std::int64_t>(c0 + 1, 3);
    const double fr = r - static_cast<double>(r0), fc = c - static_cast<double>(c0);
    auto v = [&](std::int64_t i, std::int64_t j) { return static_cast<double>(xv[static_cast<std::size_t>(i * 4 + j)]); };
    return (1 - fr) * ((1 - fc) * v(r0, c0) + fc * v(r0, c1)) + fr * ((1 - fc) * v(r1, c0) + fc * v(r1, c1));
  };
  double worst = 0;
  for (std::int64_t i = 0; i < 5; ++i)
    for (std::int64_t j = 0; j < 7; ++j)
      worst = std::max(worst, std::fabs(y.data_as<float>()[i * 7 + j] -
                                        at(static_cast<double>(i) * 2 / 4, static_cast<double>(j) * 3 / 6)));
  CHECK(worst <= 1e-5);
}

TEST_CASE("onnx error: Resize refuses what Kiln's resize does not compute, naming the attribute") {
  auto resize = [](int opset, const std::string& mode, std::vector<float> scales, std::vector<std::int64_t> sizes) {
    onnx::ModelProto m = model_of(opset, {"1", "2", "4", "4"}, {"1", "2", "a", "b"});
    if (!scales.empty()) init_f32(m, "scales", {4}, scales);
    if (!sizes.empty()) init_i64(m, "sizes", {4}, sizes);
    auto* n = opset < 11 ? node(m, "Resize", "rs", {"x", "scales"})
                         : node(m, "Resize", "rs", {"x", "", scales.empty() ? "" : "scales", sizes.empty() ? "" : "sizes"});
    text(n, "mode", mode);
    return m;
  };
  CHECK(contains(load_error(resize(10, "cubic", {1, 1, 2, 2}, {}), 0, "rs", "Resize"),
                 "expected mode nearest, linear, got cubic"));
  CHECK(contains(load_error(resize(13, "area", {1, 1, 2, 2}, {}), 0, "rs", "Resize"),
                 "expected mode nearest, linear or cubic, got area"));
  CHECK(contains(load_error(resize(13, "nearest", {}, {1, 1, 2, 2}), 0, "rs", "Resize"),
                 "expected N and C unchanged (scale 1), got sizes resizing dim 1"));
  CHECK(contains(load_error(resize(13, "nearest", {1, 2, 2, 2}, {}), 0, "rs", "Resize"),
                 "expected N and C unchanged (scale 1), got scales resizing dim 1"));
  // tf_crop_and_resize needs its roi as a constant.
  onnx::ModelProto crop = model_of(13, {"1", "2", "4", "4"}, {"1", "2", "3", "3"});
  auto* roi = crop.mutable_graph()->add_input();
  roi->set_name("roi");
  set_dims(roi, {"8"});
  init_i64(crop, "sizes", {4}, {1, 2, 3, 3});
  auto* n = node(crop, "Resize", "crop", {"x", "roi", "", "sizes"});
  text(n, "mode", "linear");
  text(n, "coordinate_transformation_mode", "tf_crop_and_resize");
  CHECK(contains(load_error(crop, 0, "crop", "Resize"), "expected roi (input 1) to be a constant"));
  // Symbolic spatial sizes with a fractional scale.
  onnx::ModelProto sym = model_of(13, {"1", "2", "h", "w"}, {"1", "2", "a", "b"});
  init_f32(sym, "scales", {4}, {1, 1, 1.5f, 1.5f});
  text(node(sym, "Resize", "frac", {"x", "", "scales"}), "mode", "linear");
  CHECK(contains(load_error(sym, 0, "frac", "Resize"), "a fractional scale needs the input's spatial size to be concrete"));
}

TEST_CASE("onnx error: Conv and pools refuse auto_pad SAME on symbolic sizes, and ceil_mode that counts padding") {
  onnx::ModelProto conv = model_of(13, {"batch", "1", "h", "w"}, {"batch", "1", "h", "w"});
  init_f32(conv, "W", {1, 1, 3, 3}, std::vector<float>(9, 1.0f));
  text(node(conv, "Conv", "same", {"x", "W"}), "auto_pad", "SAME_UPPER");
  CHECK(contains(load_error(conv, 0, "same", "Conv"),
                 "auto_pad SAME_UPPER needs the input's spatial size to be concrete (the pads depend on it), got "
                 "f32[batch,1,h,w]"));
  onnx::ModelProto pool = model_of(13, {"1", "1", "4", "4"}, {"1", "1", "2", "2"});
  auto* p = node(pool, "AveragePool", "avg", {"x"});
  ints(p, "kernel_shape", {3, 3});
  ints(p, "strides", {2, 2});
  integer(p, "ceil_mode", 1);
  integer(p, "count_include_pad", 1);
  CHECK(contains(load_error(pool, 0, "avg", "AveragePool"), "expected ceil_mode 0 with count_include_pad 1"));
  onnx::ModelProto p3 = model_of(13, {"1", "1", "4", "4", "4"}, {"1", "1", "3", "3", "3"});
  ints(node(p3, "MaxPool", "mp3", {"x"}), "kernel_shape", {2, 2, 2});
  CHECK(contains(load_error(p3, 0, "mp3", "MaxPool"), "(3-D windows are not supported)"));
}

TEST_CASE("onnx error: ConvTranspose refuses an output_shape far beyond its output and SAME before opset 11") {
  onnx::ModelProto m = model_of(13, {"1", "1", "3", "3"}, {"1", "2", "10", "8"});
  init_f32(m, "W", {1, 2, 3, 3}, std::vector<float>(18, 1.0f));
  auto* n = node(m, "ConvTranspose", "ct", {"x", "W"});
  ints(n, "strides", {3, 2});
  ints(n, "output_shape", {13, 8});
  CHECK(contains(load_error(m, 0, "ct", "ConvTranspose"),
                 "output_shape 13 exceeds the transposed convolution of f32[1,1,3,3] (9) by more than an output "
                 "padding below the stride can add"));
  onnx::ModelProto old = model_of(10, {"1", "1", "3", "3"}, {"1", "2", "3", "3"});
  init_f32(old, "W", {1, 2, 3, 3}, std::vector<float>(18, 1.0f));
  text(node(old, "ConvTranspose", "ct10", {"x", "W"}), "auto_pad", "SAME_UPPER");
  CHECK(contains(load_error(old, 0, "ct10", "ConvTranspose"), "expected auto_pad NOTSET or VALID before opset 11"));
}

TEST_CASE("onnx error: constant inputs the nn ops need, and their values, are checked") {
  // TopK's K computed, not a constant.
  onnx::ModelProto topk = model_of(13, {"2", "5"}, {"2", "k"});
  auto* kin = topk.mutable_graph()->add_input();
  kin->set_name("K");
  kin->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto_DataType_INT64);
  kin->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(1);
  node(topk, "TopK", "top", {"x", "K"}, {"y", "idx"});
  auto* idx_out = topk.mutable_graph()->add_output();
  idx_out->set_name("idx");
  set_dims(idx_out, {"2", "k"});
  CHECK(contains(load_error(topk, 0, "top", "TopK"), "expected K (input 1) to be a constant"));
  // Pad with negative pads (cropping).
  onnx::ModelProto pad = model_of(13, {"2", "5"}, {"2", "4"});
  init_i64(pad, "pads", {4}, {0, -1, 0, 0});
  node(pad, "Pad", "crop", {"x", "pads"});
  CHECK(contains(load_error(pad, 0, "crop", "Pad"), "expected pads >= 0 (negative pads, which crop, are not supported)"));
  // Pad's mode wrap.
  onnx::ModelProto wrap = model_of(13, {"2", "5"}, {"2", "7"});
  init_i64(wrap, "pads", {4}, {0, 1, 0, 1});
  text(node(wrap, "Pad", "wrap", {"x", "pads"}), "mode", "wrap");
  CHECK(contains(load_error(wrap, 0, "wrap", "Pad"), "expected mode constant, edge or reflect, got wrap"));
  // Split into parts the sizes do not match.
  onnx::ModelProto split = model_of(13, {"2", "5"}, {"2", "2"});
  node(split, "Split", "halves", {"x"}, {"y", "z"});
  integer(split.mutable_graph()->mutable_node(0), "axis", 1);
  CHECK(contains(load_error(split, 0, "halves", "Split"), "expected dim 1 of f32[2,5] to split into 2 equal parts"));
  // Reflect padding as wide as the dim: Kiln's pad refuses it, naming the node.
  onnx::ModelProto refl = model_of(13, {"2", "3"}, {"2", "9"});
  init_i64(refl, "pads", {4}, {0, 3, 0, 3});
  text(node(refl, "Pad", "mirror", {"x", "pads"}), "mode", "reflect");
  kiln::test::TempDir dir;
  const std::string path = save(dir, "refl.onnx", refl);
  std::string e = error_of([&] { kiln::Model::load(path); });
  INFO(e);
  CHECK(contains(e, path + ":1:0: error: pad 'mirror': reflect padding must be smaller than the dim it pads"));
}

TEST_CASE("onnx GatherElements: an index out of range fails the run, naming the node") {
  onnx::ModelProto m = model_of(13, {"2", "3"}, {"2", "2"});
  init_i64(m, "idx", {2, 2}, {0, 2, 1, 3});
  integer(node(m, "GatherElements", "pick", {"x", "idx"}), "axis", 1);
  kiln::test::TempDir dir;
  kiln::Session session(kiln::Model::load(save(dir, "ge.onnx", m)));
  const std::vector<float> xv = {1, 2, 3, 4, 5, 6};
  std::string e = error_of([&] {
    session.run({{"x", kiln::Tensor::view(kiln::DType::f32, {2, 3}, const_cast<float*>(xv.data()))}});
  });
  INFO(e);
  CHECK(contains(e, "gather_elements 'pick': index 3 at flat position 3 is out of range [-3, 3)"));
}

TEST_CASE("onnx Trilu and Tile of constants fold at compile time into the constant they compute") {
  // A causal mask: Trilu (lower) of a constant, tiled over 2 heads, added to x.
  onnx::ModelProto m = model_of(14, {"batch", "2", "3", "3"}, {"batch", "2", "3", "3"});
  init_f32(m, "ones", {1, 1, 3, 3}, std::vector<float>(9, 1.0f));
  init_i64(m, "reps", {4}, {1, 2, 1, 1});
  integer(node(m, "Trilu", "lower", {"ones"}, {"tri"}), "upper", 0);
  node(m, "Tile", "heads", {"tri", "reps"}, {"mask"});
  node(m, "Add", "masked", {"x", "mask"});
  kiln::test::TempDir dir;
  const std::string path = save(dir, "mask.onnx", m);
  kiln::Model model = kiln::Model::load(path);
  CHECK_FALSE(contains(model.ir(), "trilu("));
  CHECK_FALSE(contains(model.ir(), "tile("));
  kiln::LoadOptions o0;
  o0.opt_level = 0;
  CHECK(contains(kiln::Model::load(path, o0).ir(), "trilu("));
  kiln::Session session(model);
  std::vector<float> xv(18, 0.5f);
  auto y = session.run({{"x", kiln::Tensor::view(kiln::DType::f32, {1, 2, 3, 3}, xv.data())}}).at("y");
  for (std::int64_t h = 0; h < 2; ++h)
    for (std::int64_t i = 0; i < 3; ++i)
      for (std::int64_t j = 0; j < 3; ++j) CHECK(y.data_as<float>()[(h * 3 + i) * 3 + j] == (j <= i ? 1.5f : 0.5f));
}

TEST_CASE("onnx error: computed inputs the nn ops need constant, and shapes they refuse, name the node") {
  auto with_int_input = [](onnx::ModelProto& m, const std::string& name) {
    auto* in = m.mutable_graph()->add_input();
    in->set_name(name);
    auto* tt = in->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto_DataType_INT64);
    tt->mutable_shape()->add_dim()->set_dim_value(1);
  };
  onnx::ModelProto cumsum = model_of(14, {"2", "5"}, {"2", "5"});
  with_int_input(cumsum, "axis");
  node(cumsum, "CumSum", "running", {"x", "axis"});
  CHECK(contains(load_error(cumsum, 0, "running", "CumSum"), "expected axis (input 1) to be a constant"));
  onnx::ModelProto trilu = model_of(14, {"3", "3"}, {"3", "3"});
  with_int_input(trilu, "k");
  node(trilu, "Trilu", "band", {"x", "k"});
  CHECK(contains(load_error(trilu, 0, "band", "Trilu"), "expected k (input 1) to be a constant"));
  onnx::ModelProto tile = model_of(13, {"3"}, {"6"});
  with_int_input(tile, "reps");
  node(tile, "Tile", "twice", {"x", "reps"});
  CHECK(contains(load_error(tile, 0, "twice", "Tile"), "expected repeats (input 1) to be a constant"));
  onnx::ModelProto split = model_of(13, {"2", "6"}, {"2", "2"});
  init_i64(split, "sizes", {3}, {2, 2, 2});
  integer(node(split, "Split", "parts", {"x", "sizes"}, {"y", "z"}), "axis", 1);
  CHECK(contains(load_error(split, 0, "parts", "Split"), "expected one split size per output (2), got 3"));
  onnx::ModelProto inorm = model_of(13, {"2", "3"}, {"2", "3"});
  init_f32(inorm, "s", {3}, {1, 1, 1});
  init_f32(inorm, "b", {3}, {0, 0, 0});
  node(inorm, "InstanceNormalization", "inorm", {"x", "s", "b"});
  CHECK(contains(load_error(inorm, 0, "inorm", "InstanceNormalization"),
                 "expected an input of rank >= 3 [N,C,...], got f32[2,3]"));
  onnx::ModelProto gmp = model_of(13, {"1", "3"}, {"1", "3"});
  node(gmp, "GlobalMaxPool", "gmax", {"x"});
  CHECK(contains(load_error(gmp, 0, "gmax", "GlobalMaxPool"),
                 "expected an input [N,C,...] with at least one spatial dim, got f32[1,3]"));
  onnx::ModelProto ln = model_of(17, {"batch", "seq", "4"}, {"batch", "seq", "4"});
  init_f32(ln, "w", {1}, {1});
  integer(node(ln, "LayerNormalization", "ln", {"x", "w"}), "axis", 1);
  CHECK(contains(load_error(ln, 0, "ln", "LayerNormalization"),
                 "expected concrete dims from axis 1 on (normalized together), got f32[batch,seq,4]"));
  onnx::ModelProto lrn = model_of(13, {"1", "4", "3", "3"}, {"1", "4", "3", "3"});
  integer(node(lrn, "LRN", "norm", {"x"}), "size", 4);
  CHECK(contains(load_error(lrn, 0, "norm", "LRN"), "expected an odd size, got 4"));
  onnx::ModelProto ct = model_of(13, {"1", "1", "3", "3"}, {"1", "1", "5", "5"});
  auto* w = ct.mutable_graph()->add_input();
  w->set_name("W");
  set_dims(w, {"1", "1", "3", "3"});
  node(ct, "ConvTranspose", "deconv", {"x", "W"});
  CHECK(contains(load_error(ct, 0, "deconv", "ConvTranspose"), "expected a constant weight"));
  onnx::ModelProto conv = model_of(13, {"1", "1", "5"}, {"1", "1", "3"});
  auto* cw = conv.mutable_graph()->add_input();
  cw->set_name("W");
  set_dims(cw, {"1", "1", "k"});
  node(conv, "Conv", "c1d", {"x", "W"});
  CHECK(contains(load_error(conv, 0, "c1d", "Conv"), "expected a constant weight"));
  onnx::ModelProto pool = model_of(13, {"1", "1", "5", "5"}, {"1", "1", "3", "3"});
  auto* p = node(pool, "MaxPool", "mp", {"x"});
  ints(p, "kernel_shape", {2, 2});
  ints(p, "strides", {2, 2});
  integer(p, "ceil_mode", 1);
  text(p, "auto_pad", "SAME_UPPER");
  CHECK(contains(load_error(pool, 0, "mp", "MaxPool"), "expected ceil_mode 0 with auto_pad SAME_UPPER"));
  // Pads beyond half the kernel: MaxPool pads explicitly first; AveragePool without count_include_pad cannot.
  for (const std::string op : {"MaxPool", "AveragePool"}) {
    onnx::ModelProto big = model_of(13, {"1", "1", "5", "5"}, {"1", "1", "7", "7"});
    auto* b = node(big, op, "wide", {"x"});
    ints(b, "kernel_shape", {3, 3});
    ints(b, "pads", {2, 2, 2, 2});
    kiln::test::TempDir dir;
    const std::string path = save(dir, "wide.onnx", big);
    if (op == "MaxPool") {
      kiln::Model model = kiln::Model::load(path);
      CHECK(contains(model.ir(), "= pad(%x)"));
      continue;
    }
    std::string e = error_of([&] { kiln::Model::load(path); });
    INFO(e);
    CHECK(contains(e, path + ":1:0: error: avg_pool 'wide': attribute 'padding' [2,2,2,2] must be at most half the kernel"));
  }
}

TEST_CASE("onnx TopK along a middle axis, smallest first, and a symbolic axis bound below K fails the plan") {
  onnx::ModelProto m = model_of(13, {"2", "n", "3"}, {"2", "2", "3"});
  init_i64(m, "K", {1}, {2});
  auto* n = node(m, "TopK", "low", {"x", "K"}, {"y", "idx"});
  integer(n, "axis", 1);
  integer(n, "largest", 0);
  auto* idx = m.mutable_graph()->add_output();
  idx->set_name("idx");
  set_dims(idx, {"2", "2", "3"});
  idx->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto_DataType_INT64);
  kiln::test::TempDir dir;
  kiln::Session session(kiln::Model::load(save(dir, "topk.onnx", m)));
  // x[b, i, j] = (i * 7 + j * 3 + b) % 5, n = 4.
  std::vector<float> xv(24);
  for (std::int64_t b = 0; b < 2; ++b)
    for (std::int64_t i = 0; i < 4; ++i)
      for (std::int64_t j = 0; j < 3; ++j) xv[static_cast<std::size_t>((b * 4 + i) * 3 + j)] = static_cast<float>((i * 7 + j * 3 + b) % 5);
  auto out = session.run({{"x", kiln::Tensor::view(kiln::DType::f32, {2, 4, 3}, xv.data())}});
  const kiln::Tensor& y = out.at("y");
  const kiln::Tensor& ix = out.at("idx");
  REQUIRE(y.shape() == std::vector<std::int64_t>{2, 2, 3});
  for (std::int64_t b = 0; b < 2; ++b)
    for (std::int64_t j = 0; j < 3; ++j) {
      // The two smallest of column (b, :, j), ties to the lower index.
      std::vector<std::pair<float, std::int64_t>> col;
      for (std::int64_t i = 0; i < 4; ++i) col.emplace_back(xv[static_cast<std::size_t>((b * 4 + i) * 3 + j)], i);
      std::stable_sort(col.begin(), col.end(), [](const auto& a, const auto& c) { return a.first < c.first; });
      for (std::int64_t t = 0; t < 2; ++t) {
        CHECK(y.data_as<float>()[(b * 2 + t) * 3 + j] == col[static_cast<std::size_t>(t)].first);
        CHECK(ix.data_as<std::int64_t>()[(b * 2 + t) * 3 + j] == col[static_cast<std::size_t>(t)].second);
      }
    }
  std::string e = error_of([&] { session.run({{"x", kiln::Tensor::view(kiln::DType::f32, {2, 1, 3}, xv.data())}}); });
  INFO(e);
  CHECK(contains(e, "topk.onnx:1:0: error: topk 'low': attribute 'k' = 2 must be between 1 and the size of dim 1 (1)"));
}

TEST_CASE("onnx ConvTranspose with whole channel blocks runs blocked at -O2 and equals its plain run at -O0") {
  onnx::ModelProto m = model_of(13, {"batch", "16", "6", "5"}, {"batch", "16", "12", "10"});
  init_f32(m, "W", {16, 16, 4, 4}, ramp(16 * 16 * 16, 0.11f));
  init_f32(m, "B", {16}, ramp(16, 0.9f));
  auto* n = node(m, "ConvTranspose", "up", {"x", "W", "B"});
  ints(n, "strides", {2, 2});
  ints(n, "pads", {1, 1, 1, 1});
  kiln::test::TempDir dir;
  const std::string path = save(dir, "up.onnx", m);
  kiln::Model blocked = kiln::Model::load(path);
  CHECK(contains(blocked.ir(), "conv_transpose2d("));
  CHECK(contains(blocked.ir(), "layout=\"nChw"));  // the blocked layout of this CPU (nChw8c or nChw16c)
  kiln::LoadOptions o0;
  o0.opt_level = 0;
  kiln::Model plain = kiln::Model::load(path, o0);
  CHECK_FALSE(contains(plain.ir(), "layout=\"nChw"));
  const auto xv = ramp(2 * 16 * 6 * 5, 0.05f);
  auto x = kiln::Tensor::view(kiln::DType::f32, {2, 16, 6, 5}, const_cast<float*>(xv.data()));
  kiln::Session a(blocked), b(plain);
  CHECK(kiln::test::max_abs_diff(a.run({{"x", x}}).at("y"), b.run({{"x", x}}).at("y")) <= 1e-4);  // sums of 64 products
}

TEST_CASE("onnx GlobalMaxPool and GlobalAveragePool over 1-D and 3-D inputs") {
  for (const std::string op : {"GlobalMaxPool", "GlobalAveragePool"})
    for (const std::vector<std::string>& dims :
         {std::vector<std::string>{"batch", "3", "5"}, std::vector<std::string>{"batch", "3", "2", "3", "4"}}) {
      std::vector<std::string> out = {"batch", "3"};
      out.resize(dims.size(), "1");
      onnx::ModelProto m = model_of(13, dims, out);
      node(m, op, "g", {"x"});
      kiln::test::TempDir dir;
      kiln::Session session(kiln::Model::load(save(dir, "g.onnx", m)));
      std::vector<std::int64_t> shape = {2, 3};
      std::int64_t spatial = 1;
      for (std::size_t d = 2; d < dims.size(); ++d) {
        shape.push_back(std::stoll(dims[d]));
        spatial *= shape.back();
      }
      const auto xv = ramp(static_cast<std::size_t>(6 * spatial), 0.77f);
      auto y = session.run({{"x", kiln::Tensor::view(kiln::DType::f32, shape, const_cast<float*>(xv.data()))}}).at("y");
      std::vector<std::int64_t> want = {2, 3};
      want.resize(dims.size(), 1);
      REQUIRE(y.shape() == want);
      for (std::int64_t p = 0; p < 6; ++p) {
        double mx = -1e30, sum = 0;
        for (std::int64_t i = 0; i < spatial; ++i) {
          const double v = xv[static_cast<std::size_t>(p * spatial + i)];
          mx = std::max(mx, v);
          sum += v;
        }
        const double expect = op == "GlobalMaxPool" ? mx : sum / static_cast<double>(spatial);
        CHECK(std::fabs(y.data_as<float>()[p] - expect) <= 1e-5);
      }
    }
}

TEST_CASE("onnx ops at older opsets: Pad 10 and Split 11 take attributes, TopK 9 its k, Upsample 7 its scales") {
  kiln::test::TempDir dir;
  std::vector<float> xv = {1, 2, 3, 4, 5, 6};
  auto x23 = kiln::Tensor::view(kiln::DType::f32, {2, 3}, xv.data());
  {  // Pad 10: pads [0, 1, 0, 2] and value 9 as attributes.
    onnx::ModelProto m = model_of(10, {"2", "3"}, {"2", "6"});
    auto* n = node(m, "Pad", "pad10", {"x"});
    ints(n, "pads", {0, 1, 0, 2});
    auto* v = n->add_attribute();
    v->set_name("value");
    v->set_type(onnx::AttributeProto_AttributeType_FLOAT);
    v->set_f(9);
    kiln::Session s(kiln::Model::load(save(dir, "pad10.onnx", m)));
    auto y = s.run({{"x", x23}}).at("y");
    const std::vector<float> want = {9, 1, 2, 3, 9, 9, 9, 4, 5, 6, 9, 9};
    REQUIRE(y.shape() == std::vector<std::int64_t>{2, 6});
    for (std::size_t i = 0; i < want.size(); ++i) CHECK(y.data_as<float>()[i] == want[i]);
  }
  {  // Split 11: the sizes as the 'split' attribute, on axis 1.
    onnx::ModelProto m = model_of(11, {"2", "3"}, {"2", "1"});
    auto* n = node(m, "Split", "split11", {"x"}, {"y", "z"});
    integer(n, "axis", 1);
    ints(n, "split", {1, 2});
    auto* z = m.mutable_graph()->add_output();
    z->set_name("z");
    set_dims(z, {"2", "2"});
    kiln::Session s(kiln::Model::load(save(dir, "split11.onnx", m)));
    auto out = s.run({{"x", x23}});
    const std::vector<float> wy = {1, 4}, wz = {2, 3, 5, 6};
    for (std::size_t i = 0; i < wy.size(); ++i) CHECK(out.at("y").data_as<float>()[i] == wy[i]);
    for (std::size_t i = 0; i < wz.size(); ++i) CHECK(out.at("z").data_as<float>()[i] == wz[i]);
  }
  {  // TopK 9: k as an attribute, along the last axis.
    onnx::ModelProto m = model_of(9, {"2", "3"}, {"2", "2"});
    auto* n = node(m, "TopK", "top9", {"x"}, {"y", "i"});
    integer(n, "k", 2);
    auto* i = m.mutable_graph()->add_output();
    i->set_name("i");
    set_dims(i, {"2", "2"});
    i->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto_DataType_INT64);
    kiln::Session s(kiln::Model::load(save(dir, "top9.onnx", m)));
    auto out = s.run({{"x", x23}});
    const std::vector<float> wy = {3, 2, 6, 5};
    const std::vector<std::int64_t> wi = {2, 1, 2, 1};
    for (std::size_t k = 0; k < wy.size(); ++k) {
      CHECK(out.at("y").data_as<float>()[k] == wy[k]);
      CHECK(out.at("i").data_as<std::int64_t>()[k] == wi[k]);
    }
  }
  {  // Upsample 7: scales as an attribute, nearest (asymmetric, rounding down) by 2 and 3.
    onnx::ModelProto m = model_of(7, {"1", "1", "2", "2"}, {"1", "1", "4", "6"});
    auto* n = node(m, "Upsample", "up7", {"x"});
    auto* sc = n->add_attribute();
    sc->set_name("scales");
    sc->set_type(onnx::AttributeProto_AttributeType_FLOATS);
    for (float f : {1.f, 1.f, 2.f, 3.f}) sc->add_floats(f);
    kiln::Session s(kiln::Model::load(save(dir, "up7.onnx", m)));
    std::vector<float> xs = {1, 2, 3, 4};
    auto y = s.run({{"x", kiln::Tensor::view(kiln::DType::f32, {1, 1, 2, 2}, xs.data())}}).at("y");
    REQUIRE(y.shape() == std::vector<std::int64_t>{1, 1, 4, 6});
    for (std::int64_t r = 0; r < 4; ++r)
      for (std::int64_t c = 0; c < 6; ++c) CHECK(y.data_as<float>()[r * 6 + c] == xs[static_cast<std::size_t>(r / 2 * 2 + c / 3)]);
  }
}
