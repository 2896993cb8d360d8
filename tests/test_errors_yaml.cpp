// Malformed model files: every error names the file, line and column, and says what was expected.
// Messages have the form `FILE:LINE:COL: error: WHAT` (docs/yaml-format.md).

#include <string>

#include "frontends/yaml/yaml_frontend.hpp"
#include "test_util.hpp"

using kiln::test::error_of;
using kiln::test::source_path;

namespace {

// Weights: tests/fixtures/classifier_d64_l2/weights.safetensors (d_model 64, dim_ff 256, vocab 1000, 4 classes).
std::string fixture_dir() { return source_path("tests/fixtures/classifier_d64_l2"); }

// The message of the error that parsing `text` as "model.yaml" throws.
std::string parse_error(const std::string& text) {
  return error_of([&] { kiln::parse_yaml_model(text, "model.yaml", fixture_dir()); });
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

TEST_CASE("yaml error: the fixture itself parses") {
  // The baseline every error case below departs from.
  auto g = kiln::load_yaml_model(source_path("tests/fixtures/classifier_d64_l2/model.yaml"));
  CHECK(g->name == "transformer_classifier");
}

// ---- the file as a whole ----

TEST_CASE("yaml error: invalid YAML syntax") {
  std::string msg = parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, 4]}
outputs: [y]
)");
  CHECK(starts_with(msg, "model.yaml:3:1: error: invalid YAML: "));
  CHECK(contains(msg, "end of map flow not found"));

  // An alias to an anchor that does not exist.
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b]}}
outputs: [y]
nodes: [{op: relu, in: *q, out: y}]
)") == "model.yaml:4:24: error: invalid YAML: the referenced anchor is not defined");
}

TEST_CASE("yaml error: top level is not a mapping") {
  CHECK(parse_error("- a\n- b\n") ==
        "model.yaml:1:1: error: expected a mapping with keys kiln, name, inputs, outputs, nodes, got a list");
  CHECK(parse_error("hello\n") ==
        "model.yaml:1:1: error: expected a mapping with keys kiln, name, inputs, outputs, nodes, got a scalar");
  CHECK(parse_error("") ==
        "model.yaml:1:1: error: expected a mapping with keys kiln, name, inputs, outputs, nodes, got an empty document");
}

TEST_CASE("yaml error: unknown top-level key") {
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, 4]}}
outputs: [y]
nodes:
  - {op: relu, in: x, out: y}
extra: 3
)") == "model.yaml:6:1: error: unknown top-level key 'extra' (expected one of: kiln, name, doc, weights, quantize, inputs, "
       "outputs, blocks, nodes)");
}

TEST_CASE("yaml error: missing or unsupported kiln version") {
  CHECK(parse_error(R"(inputs: {x: {dtype: f32, shape: [b, 4]}}
outputs: [y]
nodes:
  - {op: relu, in: x, out: y}
)") == "model.yaml:1:1: error: missing required key 'kiln'");
  CHECK(parse_error(R"(kiln: 2
inputs: {x: {dtype: f32, shape: [b, 4]}}
outputs: [y]
nodes:
  - {op: relu, in: x, out: y}
)") == "model.yaml:1:7: error: unsupported format version 2 (this Kiln reads version 1)");
  CHECK(parse_error(R"(kiln: one
inputs: {x: {dtype: f32, shape: [b, 4]}}
outputs: [y]
nodes:
  - {op: relu, in: x, out: y}
)") == "model.yaml:1:7: error: expected the format version to be an integer, got 'one'");
}

TEST_CASE("yaml error: sections of the wrong kind") {
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b]}}
outputs: [y]
nodes: 5
)") == "model.yaml:4:8: error: 'nodes' must be a list of nodes");
  CHECK(parse_error(R"(kiln: 1
inputs: 3
outputs: [y]
nodes: []
)") == "model.yaml:2:9: error: 'inputs' must map each input name to {dtype, shape}");
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b]}}
outputs: []
nodes: []
)") == "model.yaml:3:10: error: 'outputs' must be a non-empty list of value names");
}

// ---- inputs ----

TEST_CASE("yaml error: bad input dtype") {
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f31, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: relu, in: [x], out: y}
)") == "model.yaml:2:21: error: unknown dtype 'f31' (expected f32, f16, bf16, f64, i64, i32, i8, u8 or bool)");
}

TEST_CASE("yaml error: bad dim in an input shape") {
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, -3, 64]}}
outputs: [y]
nodes:
  - {op: relu, in: [x], out: y}
)") == "model.yaml:2:37: error: expected a dim: a non-negative integer or a symbol name such as 'batch', got '-3'");
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, 1.5, 64]}}
outputs: [y]
nodes:
  - {op: relu, in: [x], out: y}
)") == "model.yaml:2:37: error: expected a dim: a non-negative integer or a symbol name such as 'batch', got '1.5'");
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: 5}}
outputs: [y]
nodes:
  - {op: relu, in: [x], out: y}
)") == "model.yaml:2:33: error: the shape of input 'x' must be a list of dims");
}

TEST_CASE("yaml error: input declared twice") {
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b]}, x: {dtype: f32, shape: [b]}}
outputs: [y]
nodes:
  - {op: relu, in: x, out: y}
)") == "model.yaml:2:39: error: input 'x' is declared twice");
}

// ---- nodes ----

TEST_CASE("yaml error: unknown op lists the known ops") {
  std::string msg = parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, 4]}}
outputs: [y]
nodes:
  - {op: frobnicate, in: x, out: y}
)");
  CHECK(starts_with(msg, "model.yaml:5:10: error: unknown op 'frobnicate' (known ops: "));
  for (const char* op : {"add", "attention", "embedding", "layer_norm", "linear", "reduce_mean", "relu", "softmax"})
    CHECK_MESSAGE(contains(msg, op), op);
}

TEST_CASE("yaml error: malformed node") {
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b]}}
outputs: [y]
nodes: [{in: x, out: y}]
)") == "model.yaml:4:9: error: node has neither 'op' nor 'block'");
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b]}}
outputs: [y]
nodes: [{op: relu, in: x}]
)") == "model.yaml:4:9: error: missing required key 'out'");
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b]}}
outputs: [y]
nodes: [{op: relu, in: x, out: y}, 7]
)") == "model.yaml:4:36: error: expected a node: a mapping with 'op' (or 'block'), 'in' and 'out'");
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b]}}
outputs: [y]
nodes: [{op: [relu], in: x, out: y}]
)") == "model.yaml:4:14: error: expected an op name (a scalar), got a list");
}

TEST_CASE("yaml error: unknown attribute") {
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, 4]}}
outputs: [y]
nodes:
  - {op: relu, in: x, out: y, alpha: 2}
)") == "model.yaml:5:31: error: relu 'y': unknown attribute 'alpha' (it takes none)");
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, 4]}}
outputs: [y]
nodes:
  - {op: softmax, in: x, out: y, dim: 1}
)") == "model.yaml:5:34: error: softmax 'y': unknown attribute 'dim' (expected one of: axis)");
}

TEST_CASE("yaml error: missing required attribute") {
  // attention without heads (its weights are all there).
  CHECK(parse_error(R"(kiln: 1
weights: weights.safetensors
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: attention, in: [x, x, x], weights: transformer_encoder.layers.0.self_attn, out: y}
)") == "model.yaml:6:5: error: attention 'y': missing required attribute 'heads' (int)");
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: reduce_mean, in: x, out: y}
)") == "model.yaml:5:5: error: reduce_mean 'y': missing required attribute 'axes' (int list)");
}

TEST_CASE("yaml error: mistyped attribute") {
  CHECK(parse_error(R"(kiln: 1
weights: weights.safetensors
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: attention, in: [x, x, x], weights: transformer_encoder.layers.0.self_attn, heads: abc, out: y}
)") == "model.yaml:6:92: error: attention 'y': attribute 'heads' expects int, got 'abc'");
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: reduce_mean, in: x, axes: 1, out: y}
)") == "model.yaml:5:36: error: reduce_mean 'y': attribute 'axes' expects int list, got '1'");
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: layer_norm, in: x, eps: [1], out: y}
)") == "model.yaml:5:34: error: layer_norm 'y': attribute 'eps' expects float, got a list");
  // A list attribute with a bad element names the element.
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: reduce_mean, in: x, axes: [1, b], out: y}
)") == "model.yaml:5:36: error: reduce_mean 'y': attribute 'axes' expects int list, got a list holding 'b'");
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: reduce_mean, in: x, axes: [1], keepdims: maybe, out: y}
)") == "model.yaml:5:51: error: reduce_mean 'y': attribute 'keepdims' expects bool, got 'maybe'");
}

TEST_CASE("yaml error: undefined value in 'in'") {
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: relu, in: [z], out: y}
)") == "model.yaml:5:21: error: undefined value 'z' (not an input, an earlier output, or a weight in the weights file "
       "(none is named: add 'weights:'))");
  std::string msg = parse_error(R"(kiln: 1
weights: weights.safetensors
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: add, in: [x, embedding.wieght], out: y}
)");
  CHECK(msg == "model.yaml:6:23: error: undefined value 'embedding.wieght' (not an input, an earlier output, or a weight in '" +
                   fixture_dir() + "/weights.safetensors')");
}

TEST_CASE("yaml error: value defined twice") {
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: relu, in: [x], out: y}
  - {op: relu, in: [x], out: y}
)") == "model.yaml:6:30: error: value 'y' is defined twice");
  // Redefining an input is the same mistake.
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: relu, in: [x], out: y}
  - {op: relu, in: [x], out: x}
)") == "model.yaml:6:30: error: value 'x' is defined twice");
}

TEST_CASE("yaml error: output not computed") {
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y, z]
nodes:
  - {op: relu, in: [x], out: y}
)") == "model.yaml:3:14: error: output 'z' is not a value computed by the model");
}

TEST_CASE("yaml error: wrong number of node inputs") {
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: add, in: [x], out: y}
)") == "model.yaml:5:5: error: add 'y': missing input 'b'");
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: add, in: [x, x, x], out: y}
)") == "model.yaml:5:19: error: add 'y': takes at most 2 input(s), 'in' names 3");
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: embedding, in: [x], out: y}
)") == "model.yaml:5:5: error: embedding 'y': missing input 'weight' (a weight: give 'weights: PREFIX' for PREFIX.weight)");
}

// ---- shapes ----

TEST_CASE("yaml error: shape mismatch in add") {
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [batch, seq, 64]}, w: {dtype: f32, shape: [batch, seq, 32]}}
outputs: [y]
nodes:
  - {op: add, in: [x, w], out: y}
)") == "model.yaml:5:5: error: add 'y': cannot broadcast shapes [batch,seq,64] and [batch,seq,32] (dim 2: 64 vs 32)");
}

TEST_CASE("yaml error: linear weight does not match the input's features") {
  CHECK(parse_error(R"(kiln: 1
weights: weights.safetensors
inputs: {x: {dtype: f32, shape: [b, s, 32]}}
outputs: [y]
nodes:
  - {op: linear, in: [x], weights: transformer_encoder.layers.0.linear1, out: y}
)") == "model.yaml:6:5: error: linear 'y': expected weight of shape [*,32] for input f32[b,s,32], got [256,64]");
}

TEST_CASE("yaml error: dtype mismatch") {
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: i64, shape: [b, s]}}
outputs: [y]
nodes: [{op: relu, in: x, out: y}]
)") == "model.yaml:4:9: error: relu 'y': expected input 'src' of type f32, got i64[b,s]");
}

// ---- weights ----

TEST_CASE("yaml error: missing weight under a weights prefix") {
  CHECK(parse_error(R"(kiln: 1
weights: weights.safetensors
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: linear, in: [x], weights: transformer_encoder.layers.9.linear1, out: y}
)") == "model.yaml:6:36: error: linear 'y': missing weight 'transformer_encoder.layers.9.linear1.weight' in '" +
           fixture_dir() + "/weights.safetensors'");
  // No weights file at all.
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: linear, in: [x], weights: output_layer, out: y}
)") == "model.yaml:5:36: error: linear 'y': missing weight 'output_layer.weight' in the weights file (none is named: "
       "add 'weights:')");
}

TEST_CASE("yaml error: weight of the wrong shape") {
  // layer_norm on a 64-wide input given linear1's [256] bias as its weight (positionally: src, weight, bias).
  CHECK(parse_error(R"(kiln: 1
weights: weights.safetensors
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: layer_norm, in: [x, transformer_encoder.layers.0.linear1.bias], out: y}
)") == "model.yaml:6:5: error: layer_norm 'y': expected weight of shape [64], got [256] "
       "('transformer_encoder.layers.0.linear1.bias')");
  // ... and through a weights prefix whose tensors belong to a linear layer.
  CHECK(parse_error(R"(kiln: 1
weights: weights.safetensors
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: layer_norm, in: [x], weights: transformer_encoder.layers.0.linear1, out: y}
)") == "model.yaml:6:5: error: layer_norm 'y': expected weight of shape [64], got [256,64] "
       "('transformer_encoder.layers.0.linear1.weight')");
}

TEST_CASE("yaml error: weights file cannot be opened or is not a weights file") {
  CHECK(parse_error(R"(kiln: 1
weights: nothere.safetensors
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: relu, in: [x], out: y}
)") == "model.yaml:2:10: error: cannot load weights: " + fixture_dir() +
           "/nothere.safetensors: cannot open weights file: No such file or directory");
  CHECK(parse_error(R"(kiln: 1
weights: .
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: relu, in: [x], out: y}
)") == "model.yaml:2:10: error: cannot load weights: " + fixture_dir() + "/.: not a regular file");
  // The model file itself is no safetensors file: its first 8 bytes read as a huge header length.
  std::string msg = parse_error(R"(kiln: 1
weights: model.yaml
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: relu, in: [x], out: y}
)");
  CHECK(starts_with(msg, "model.yaml:2:10: error: cannot load weights: " + fixture_dir() + "/model.yaml: header length "));
  CHECK(contains(msg, "(truncated or not a safetensors file)"));
  CHECK(parse_error(R"(kiln: 1
weights: [a]
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: relu, in: [x], out: y}
)") == "model.yaml:2:10: error: expected a weights file path (a scalar), got a list");
}

// ---- blocks ----

TEST_CASE("yaml error: unknown block") {
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {block: nope, in: [x], out: y}
)") == "model.yaml:5:13: error: unknown block 'nope' (the model defines no blocks)");
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
blocks:
  blk: {args: [a], returns: [c], nodes: [{op: relu, in: a, out: c}]}
nodes:
  - {block: nope, in: [x], out: y}
)") == "model.yaml:7:13: error: unknown block 'nope' (defined: blk)");
}

TEST_CASE("yaml error: wrong number of block inputs or outputs") {
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
blocks:
  blk: {args: [a], returns: [c], nodes: [{op: relu, in: a, out: c}]}
nodes:
  - {block: blk, in: [x, x], out: y}
)") == "model.yaml:7:22: error: block 'blk' takes 1 input(s) (a), 'in' names 2");
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
blocks:
  blk: {args: [a], returns: [c], nodes: [{op: relu, in: a, out: c}]}
nodes:
  - {block: blk, in: [x], out: [y, z]}
)") == "model.yaml:7:32: error: block 'blk' returns 1 value(s) (c), 'out' names 2");
}

TEST_CASE("yaml error: unknown block param in a string") {
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
blocks:
  blk:
    args: [a]
    params: [p]
    returns: [c]
    nodes:
      - {op: relu, in: a, name: "{q}.r", out: c}
nodes:
  - {block: blk, in: [x], p: hi, out: y}
)") == "model.yaml:10:33: error: unknown parameter '{q}' (this block has: i, p)");
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
blocks:
  blk:
    args: [a]
    params: [p]
    returns: [c]
    nodes:
      - {op: relu, in: a, name: "{p", out: c}
nodes:
  - {block: blk, in: [x], p: hi, out: y}
)") == "model.yaml:10:33: error: unclosed '{' in '{p'");
}

TEST_CASE("yaml error: block parameters") {
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
blocks:
  blk: {args: [a], returns: [c], nodes: [{op: relu, in: a, out: c}]}
nodes:
  - {block: blk, in: [x], out: y, zz: 3}
)") == "model.yaml:7:35: error: block 'blk' has no parameter 'zz'");
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
blocks:
  blk: {args: [a], params: [p], returns: [c], nodes: [{op: relu, in: a, out: c}]}
nodes:
  - {block: blk, in: [x], out: y}
)") == "model.yaml:7:5: error: block 'blk': missing parameter 'p'");
}

TEST_CASE("yaml error: block body mistakes") {
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
blocks:
  blk: {args: [a], returns: [c], nodes: [{op: relu, in: a, out: d}]}
nodes:
  - {block: blk, in: [x], out: y}
)") == "model.yaml:5:3: error: block 'blk' returns 'c', which none of its nodes defines");
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
blocks:
  blk: {args: [a], returns: [c], nodes: [{block: blk, in: a, out: c}]}
nodes:
  - {block: blk, in: [x], out: y}
)") == "model.yaml:5:42: error: blocks nest deeper than 16 levels (a block that calls itself?)");
}

TEST_CASE("yaml error: repeat is not a positive integer") {
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
blocks:
  blk: {args: [a], returns: [c], nodes: [{op: relu, in: a, out: c}]}
nodes:
  - {block: blk, in: [x], repeat: two, out: y}
)") == "model.yaml:7:35: error: expected 'repeat' to be an integer, got 'two'");
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
blocks:
  blk: {args: [a], returns: [c], nodes: [{op: relu, in: a, out: c}]}
nodes:
  - {block: blk, in: [x], repeat: 0, out: y}
)") == "model.yaml:7:35: error: 'repeat' must be between 1 and 4096");
}

// ---- op-specific attribute checks ----

TEST_CASE("yaml error: attention heads must divide the embedding dim") {
  CHECK(parse_error(R"(kiln: 1
weights: weights.safetensors
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: attention, in: [x, x, x], weights: transformer_encoder.layers.0.self_attn, heads: 7, out: y}
)") == "model.yaml:6:5: error: attention 'y': attribute 'heads' = 7 must be positive and divide the embedding dim 64");
}

TEST_CASE("yaml error: reshape with two -1") {
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: reshape, in: [x], shape: [-1, -1], out: y}
)") == "model.yaml:5:5: error: reshape 'y': attribute 'shape' has more than one -1");
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: reshape, in: [x], shape: [-5], out: y}
)") == "model.yaml:5:5: error: reshape 'y': attribute 'shape' has invalid entry -5 (expected > 0, 0 to copy, or -1)");
}

TEST_CASE("yaml error: transpose perm is not a permutation") {
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: transpose, in: [x], perm: [0, 0, 2], out: y}
)") == "model.yaml:5:5: error: transpose 'y': attribute 'perm' is not a permutation (axis 0 twice)");
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: transpose, in: [x], perm: [0, 1], out: y}
)") == "model.yaml:5:5: error: transpose 'y': attribute 'perm' has 2 entries for an input of rank 3");
}

TEST_CASE("yaml error: axis out of range") {
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: softmax, in: [x], axis: 3, out: y}
)") == "model.yaml:5:5: error: softmax 'y': attribute 'axis' = 3 is out of range for rank 3 (expected -3..2)");
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: reduce_mean, in: x, axes: [7], out: y}
)") == "model.yaml:5:5: error: reduce_mean 'y': attribute 'axes' = 7 is out of range for rank 3 (expected -3..2)");
}

TEST_CASE("yaml error: load_yaml_model on a missing file names it") {
  std::string path = source_path("tests/fixtures/no_such_model.yaml");
  CHECK(error_of([&] { kiln::load_yaml_model(path); }) == path + ": error: cannot open model file: No such file or directory");
}

TEST_CASE("yaml error: value names clash across blocks, weights and inputs") {
  // Two unnamed calls of the same block create the same internal value names.
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [z]
blocks:
  blk: {args: [a], returns: [c], nodes: [{op: relu, in: a, out: d}, {op: relu, in: d, out: c}]}
nodes:
  - {block: blk, in: [x], out: y}
  - {block: blk, in: [y], out: z}
)") == "model.yaml:5:65: error: value 'blk/d' (in the block call at model.yaml:8:5) has the same name as the value "
       "defined at model.yaml:5:65 (in the block call at model.yaml:7:5); give each call of a block a distinct 'name'");
  // Named calls are fine.
  CHECK_NOTHROW(kiln::parse_yaml_model(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [z]
blocks:
  blk: {args: [a], returns: [c], nodes: [{op: relu, in: a, out: d}, {op: relu, in: d, out: c}]}
nodes:
  - {block: blk, in: [x], out: y}
  - {block: blk, name: second, in: [y], out: z}
)",
                                       "model.yaml", fixture_dir()));
  // A top-level value spelled like a block-internal one.
  CHECK(parse_error(R"(kiln: 1
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
blocks:
  blk: {args: [a], returns: [c], nodes: [{op: relu, in: a, out: c}, {op: relu, in: c, out: d}]}
nodes:
  - {op: relu, in: x, out: "blk/d"}
  - {block: blk, in: [x], out: y}
)") == "model.yaml:5:92: error: value 'blk/d' (in the block call at model.yaml:8:5) has the same name as the value "
       "defined at model.yaml:7:28; give each call of a block a distinct 'name'");
  // A value named like a weight that a later node loads.
  CHECK(parse_error(R"(kiln: 1
weights: weights.safetensors
inputs: {x: {dtype: f32, shape: [b, s, 64]}}
outputs: [y]
nodes:
  - {op: relu, in: x, out: output_layer.weight}
  - {op: linear, in: [x], weights: output_layer, out: y}
)") == "model.yaml:7:36: error: weight 'output_layer.weight' has the same name as the value defined at model.yaml:6:28");
  // An input named like a weight.
  CHECK(parse_error(R"(kiln: 1
weights: weights.safetensors
inputs: {embedding.weight: {dtype: i64, shape: [b, s]}}
outputs: [y]
nodes:
  - {op: embedding, in: [embedding.weight], weights: embedding, out: y}
)") == "model.yaml:6:54: error: weight 'embedding.weight' has the same name as the value defined at model.yaml:3:10");
}
