// Malformed CNN models: errors name the file, line and column of the node and what was expected
// (weights of examples/resnet_tiny).

#include <string>

#include "frontends/yaml/yaml_frontend.hpp"
#include "test_util.hpp"

using kiln::test::error_of;
using kiln::test::source_path;

namespace {

std::string parse_error(const std::string& nodes, const std::string& input = "[batch, 3, h, w]") {
  const std::string text = "kiln: 1\nweights: resnet_tiny.safetensors\ninputs:\n  image: {dtype: f32, shape: " + input +
                           "}\noutputs: [y]\nnodes:\n" + nodes;
  return error_of([&] { kiln::parse_yaml_model(text, "model.yaml", source_path("examples/resnet_tiny")); });
}

}  // namespace

TEST_CASE("cnn errors: conv2d") {
  // layer1.0.conv1 expects 16 input channels; the image has 3.
  CHECK(parse_error("  - {op: conv2d, in: [image], weights: layer1.0.conv1, out: y}\n") ==
        "model.yaml:7:5: error: conv2d 'y': expected weight of shape [16,3,kh,kw] for 3 input channels in 1 group(s), got [16,16,3,3]");
  CHECK(parse_error("  - {op: conv2d, in: [image], weights: conv1, stride: [2], out: y}\n") ==
        "model.yaml:7:5: error: conv2d 'y': attribute 'stride' must have 2 entries [h, w], got [2]");
  CHECK(parse_error("  - {op: conv2d, in: [image], weights: conv1, groups: 2, out: y}\n") ==
        "model.yaml:7:5: error: conv2d 'y': attribute 'groups' = 2 must divide the input channels (3) and the output channels (16)");
  CHECK(parse_error("  - {op: conv2d, in: [image], weights: conv1, stride: two, out: y}\n") ==
        "model.yaml:7:55: error: conv2d 'y': attribute 'stride' expects int list, got 'two'");
  CHECK(parse_error("  - {op: conv2d, in: [image], weights: conv9, out: y}\n") ==
        "model.yaml:7:40: error: conv2d 'y': missing weight 'conv9.weight' in '" + source_path("examples/resnet_tiny/resnet_tiny.safetensors") + "'");
  CHECK(parse_error("  - {op: conv2d, in: [image], weights: conv1, out: y}\n", "[batch, 3, 5, 5]") ==
        "model.yaml:7:5: error: conv2d 'y': the height window (7 with dilation) is larger than the padded input (5)");
  CHECK(parse_error("  - {op: conv2d, in: [image], weights: conv1, out: y}\n", "[batch, c, 8, 8]") ==
        "model.yaml:7:5: error: conv2d 'y': expected a concrete channel count in dim 1 of input 'src', got f32[batch,c,8,8]");
}

TEST_CASE("cnn errors: batch_norm, pools, concat, flatten") {
  CHECK(parse_error("  - {op: batch_norm, in: [image], weights: bn1, out: y}\n") ==
        "model.yaml:7:5: error: batch_norm 'y': expected weight of shape [3], got [16] ('bn1.weight')");
  CHECK(parse_error("  - {op: max_pool, in: [image], kernel: [3, 3], padding: [2, 2], out: y}\n") ==
        "model.yaml:7:5: error: max_pool 'y': attribute 'padding' [2,2] must be at most half the kernel [3,3]");
  CHECK(parse_error("  - {op: avg_pool, in: [image], out: y}\n") ==
        "model.yaml:7:5: error: avg_pool 'y': missing required attribute 'kernel' (int list)");
  CHECK(parse_error("  - {op: conv2d, in: [image], weights: conv1, stride: [2, 2], out: c}\n"
                    "  - {op: concat, in: [image, c], out: y}\n") ==
        "model.yaml:8:5: error: concat 'y': input 1 f32[batch,16,(h-7)/2+1,(w-7)/2+1] does not match input 0 f32[batch,3,h,w] outside axis 1");
  CHECK(parse_error("  - {op: flatten, in: [image], axis: 5, out: y}\n") ==
        "model.yaml:7:5: error: flatten 'y': attribute 'axis' = 5 is out of range for rank 4 (expected -4..3)");
  CHECK(parse_error("  - {op: resize, in: [image], mode: area, size: [4, 4], out: y}\n") ==
        "model.yaml:7:5: error: resize 'y': attribute 'mode' must be \"nearest\", \"linear\" or \"cubic\", got \"area\"");
}
