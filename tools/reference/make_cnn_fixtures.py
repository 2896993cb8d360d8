#!/usr/bin/env python3
"""Generate the CNN examples and their PyTorch fixtures (see tools/reference/cnn_models.py).

Run from the repository root:

    /usr/bin/python3 tools/reference/make_cnn_fixtures.py [--onnx DIR]

It (re)writes, deterministically (fixed seeds, one CPU thread), for NAME in resnet_tiny, mobilenet_tiny:

  examples/NAME/
      NAME.yaml              Kiln YAML model (input image [batch, 3, h, w], output logits [batch, 10])
      NAME.safetensors       the state_dict (num_batches_tracked left out: unused at inference)
      image_b2.npy           float32 [2, 3, 64, 64] random input
      logits_b2.npy          float32 [2, 10] PyTorch eval-mode logits for it
      image_b1_odd.npy       float32 [1, 3, 57, 50] (odd sizes: rounding of every stride-2 stage)
      logits_b1_odd.npy      float32 [1, 10]

With --onnx DIR it also exports each model with torch.onnx.export to DIR/NAME.onnx (224x224, batch
dynamic) for the OpenCV DNN benchmark (bench/bench_cnn.py); these files are not committed. Opset 10:
OpenCV 4.6 reads Clip (ReLU6) only in its one-input form, with min and max as attributes.

Self-check: every safetensors file read back with the hand-written reader equals the state_dict.
"""

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cnn_models  # noqa: E402
import safetensors_io  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SEEDS = {"resnet_tiny": 7001, "mobilenet_tiny": 7002}

RESNET_YAML = """\
kiln: 1
name: resnet_tiny
doc: >
  ResNet-18-style classifier at small widths (tools/reference/cnn_models.py, ResNetTiny): 7x7/2 stem,
  3x3/2 max pool, three stages of two BasicBlocks (16, 32, 64 channels), global average pool, linear head.
weights: resnet_tiny.safetensors
inputs:
  image: {dtype: f32, shape: [batch, 3, h, w]}
outputs: [logits]
blocks:
  basic:                      # BasicBlock, stride 1, identity shortcut
    args: [x]
    params: [p]
    returns: [y]
    nodes:
      - {op: conv2d, in: [x], weights: "{p}.conv1", padding: [1, 1], out: c1}
      - {op: batch_norm, in: [c1], weights: "{p}.bn1", out: b1}
      - {op: relu, in: [b1], out: r1}
      - {op: conv2d, in: [r1], weights: "{p}.conv2", padding: [1, 1], out: c2}
      - {op: batch_norm, in: [c2], weights: "{p}.bn2", out: b2}
      - {op: add, in: [b2, x], out: s}
      - {op: relu, in: [s], out: y}
  down:                       # BasicBlock, stride 2, 1x1 conv + BN shortcut
    args: [x]
    params: [p]
    returns: [y]
    nodes:
      - {op: conv2d, in: [x], weights: "{p}.conv1", stride: [2, 2], padding: [1, 1], out: c1}
      - {op: batch_norm, in: [c1], weights: "{p}.bn1", out: b1}
      - {op: relu, in: [b1], out: r1}
      - {op: conv2d, in: [r1], weights: "{p}.conv2", padding: [1, 1], out: c2}
      - {op: batch_norm, in: [c2], weights: "{p}.bn2", out: b2}
      - {op: conv2d, in: [x], weights: "{p}.downsample.0", stride: [2, 2], out: d}
      - {op: batch_norm, in: [d], weights: "{p}.downsample.1", out: db}
      - {op: add, in: [b2, db], out: s}
      - {op: relu, in: [s], out: y}
nodes:
  - {op: conv2d, in: [image], weights: conv1, stride: [2, 2], padding: [3, 3], out: c}
  - {op: batch_norm, in: [c], weights: bn1, out: b}
  - {op: relu, in: [b], out: r}
  - {op: max_pool, in: [r], kernel: [3, 3], stride: [2, 2], padding: [1, 1], out: p}
  - {block: basic, repeat: 2, in: [p], p: "layer1.{i}", name: layer1, out: l1}
  - {block: down, in: [l1], p: layer2.0, name: layer2.0, out: l2a}
  - {block: basic, in: [l2a], p: layer2.1, name: layer2.1, out: l2}
  - {block: down, in: [l2], p: layer3.0, name: layer3.0, out: l3a}
  - {block: basic, in: [l3a], p: layer3.1, name: layer3.1, out: l3}
  - {op: global_avg_pool, in: [l3], out: g}
  - {op: flatten, in: [g], out: f}
  - {op: linear, in: [f], weights: fc, out: logits}
"""


def mobilenet_yaml():
    """Written out node by node: each depthwise conv's `groups` is its own channel count."""
    lines = [
        "kiln: 1",
        "name: mobilenet_tiny",
        "doc: >",
        "  MobileNetV2-style classifier (tools/reference/cnn_models.py, MobileNetTiny): 3x3/2 stem, inverted",
        "  residual blocks (1x1 expand, 3x3 depthwise, 1x1 project; residual add when the shape is kept),",
        "  1x1 conv to 128 channels, global average pool, linear head. ReLU6 is clip [0, 6].",
        "weights: mobilenet_tiny.safetensors",
        "inputs:",
        "  image: {dtype: f32, shape: [batch, 3, h, w]}",
        "outputs: [logits]",
        "nodes:",
        "  - {op: conv2d, in: [image], weights: stem.0, stride: [2, 2], padding: [1, 1], out: s0}",
        "  - {op: batch_norm, in: [s0], weights: stem.1, out: s1}",
        "  - {op: clip, in: [s1], min: 0.0, max: 6.0, out: x0}",
    ]
    x = "x0"
    for k, (cin, cout, stride, expand) in enumerate(cnn_models.MOBILENET_BLOCKS):
        p = f"blocks.{k}.conv"
        hidden = cin * expand
        i = 0
        src = x
        if expand != 1:
            lines += [
                f"  - {{op: conv2d, in: [{src}], weights: {p}.0, out: b{k}e}}",
                f"  - {{op: batch_norm, in: [b{k}e], weights: {p}.1, out: b{k}eb}}",
                f"  - {{op: clip, in: [b{k}eb], min: 0.0, max: 6.0, out: b{k}er}}",
            ]
            src, i = f"b{k}er", 3
        lines += [
            f"  - {{op: conv2d, in: [{src}], weights: {p}.{i}, stride: [{stride}, {stride}], padding: [1, 1], groups: {hidden}, out: b{k}d}}",
            f"  - {{op: batch_norm, in: [b{k}d], weights: {p}.{i + 1}, out: b{k}db}}",
            f"  - {{op: clip, in: [b{k}db], min: 0.0, max: 6.0, out: b{k}dr}}",
            f"  - {{op: conv2d, in: [b{k}dr], weights: {p}.{i + 3}, out: b{k}p}}",
            f"  - {{op: batch_norm, in: [b{k}p], weights: {p}.{i + 4}, out: b{k}pb}}",
        ]
        if stride == 1 and cin == cout:
            lines.append(f"  - {{op: add, in: [{x}, b{k}pb], out: x{k + 1}}}")
        else:
            lines[-1] = lines[-1].replace(f"out: b{k}pb", f"out: x{k + 1}")
        x = f"x{k + 1}"
    lines += [
        f"  - {{op: conv2d, in: [{x}], weights: head.0, out: h0}}",
        "  - {op: batch_norm, in: [h0], weights: head.1, out: h1}",
        "  - {op: clip, in: [h1], min: 0.0, max: 6.0, out: h2}",
        "  - {op: global_avg_pool, in: [h2], out: g}",
        "  - {op: flatten, in: [g], out: f}",
        "  - {op: linear, in: [f], weights: fc, out: logits}",
    ]
    return "\n".join(lines) + "\n"


def save(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, array, allow_pickle=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", metavar="DIR", help="also export NAME.onnx files to DIR (for bench/)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for name, seed in SEEDS.items():
        model = cnn_models.build(name, seed)
        folder = os.path.join(REPO_ROOT, "examples", name)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, name + ".yaml"), "w", encoding="utf-8", newline="\n") as f:
            f.write(RESNET_YAML if name == "resnet_tiny" else mobilenet_yaml())
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
        weights = os.path.join(folder, name + ".safetensors")
        safetensors_io.save_file(state, weights)
        back, _ = safetensors_io.load_file(weights)
        assert set(back) == set(state), f"{weights}: keys differ"
        for k, v in state.items():
            assert torch.equal(torch.as_tensor(np.asarray(back[k])), v), f"{weights}: {k} differs after reading back"
        rng = np.random.default_rng(seed)
        for tag, shape in (("b2", (2, 3, 64, 64)), ("b1_odd", (1, 3, 57, 50))):
            image = rng.standard_normal(shape).astype(np.float32)
            with torch.no_grad():
                logits = model(torch.from_numpy(image)).numpy()
            save(os.path.join(folder, f"image_{tag}.npy"), image)
            save(os.path.join(folder, f"logits_{tag}.npy"), logits.astype(np.float32))
        print(f"{name}: {sum(v.numel() for v in state.values())} parameters, {os.path.getsize(weights)} bytes of weights")
        if args.onnx:
            os.makedirs(args.onnx, exist_ok=True)
            path = os.path.join(args.onnx, name + ".onnx")
            torch.onnx.export(model, torch.randn(1, 3, 224, 224), path, input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=10)
            print(f"  exported {path}")


if __name__ == "__main__":
    main()
