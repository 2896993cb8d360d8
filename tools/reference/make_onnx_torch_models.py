#!/usr/bin/env python3
"""Export small PyTorch models with torch.onnx.export (opset 14) as fixtures for Kiln's ONNX importer.

Run from the repository root (torch 1.13, onnx 1.12):

    /usr/bin/python3 tools/reference/make_onnx_torch_models.py

It (re)writes, deterministically (fixed seeds, one CPU thread), one folder per model under
tests/fixtures/onnx_torch/NAME/:

    model.onnx       torch.onnx.export(..., opset_version=14), dynamic batch (and seq for the RNNs),
                     weights inside the file (each model's folder stays under 300 KB)
    INPUT.npy        one file per graph input, at batch 2 (the test also runs batch 1: the first rows)
    OUTPUT.npy       PyTorch's outputs for those inputs (eval mode)

Models:

    resnet_tiny      tools/reference/cnn_models.py's ResNetTiny at widths (8, 16, 32) (the default widths
                     weigh 700 KB), image [batch, 3, 32, 32] -> logits [batch, 10]
    mobilenet_tiny   cnn_models.py's MobileNetTiny without its last inverted-residual block (360 KB with it),
                     ReLU6 exported as Clip(0, 6); image [batch, 3, 32, 32] -> logits
    lstm_tagger      tokens [batch, seq] int64 -> nn.Embedding(20, 16) -> nn.LSTM(16, 24, batch_first) with
                     explicit h0, c0 [1, batch, 24] (torch exports zero states as Shape/Gather/ConstantOfShape
                     otherwise) -> nn.Linear(24, 10): logits [batch, seq, 10], h_n, c_n
    gru_bi           features [batch, seq, 12] -> nn.GRU(12, 16, bidirectional, batch_first) with explicit
                     h0 [2, batch, 16] -> nn.Linear(32, 6): out [batch, seq, 6], h_n

Each export is checked with onnx.checker, and its ops are printed (the importer's coverage is in docs/onnx.md).

With --bench DIR it instead exports, for bench/bench_onnx.py, the full cnn_models.build() models (default
widths, all blocks; 700 and 360 KB, so not committed) as DIR/resnet_tiny.onnx and DIR/mobilenet_tiny.onnx
(dynamic batch, image [batch, 3, 224, 224]), and the two RNN models above as DIR/lstm_tagger.onnx and
DIR/gru_bi.onnx (dynamic batch and seq).
"""

import argparse

import os
import sys

import numpy as np
import onnx
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cnn_models  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT_DIR = os.path.join(REPO_ROOT, "tests", "fixtures", "onnx_torch")
OPSET = 14
MAX_BYTES = 300 * 1024


class LstmTagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 16)
        self.rnn = nn.LSTM(16, 24, batch_first=True)
        self.out = nn.Linear(24, 10)

    def forward(self, tokens, h0, c0):
        y, (h, c) = self.rnn(self.embed(tokens), (h0, c0))
        return self.out(y), h, c


class GruBi(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(12, 16, bidirectional=True, batch_first=True)
        self.out = nn.Linear(32, 6)

    def forward(self, features, h0):
        y, h = self.rnn(features, h0)
        return self.out(y), h


def resnet_tiny():
    torch.manual_seed(11)
    model = cnn_models.ResNetTiny(widths=(8, 16, 32))
    cnn_models.randomize_batch_norms(model, torch.Generator().manual_seed(12))
    return model.eval()


def mobilenet_tiny():
    torch.manual_seed(21)
    model = cnn_models.MobileNetTiny()
    model.blocks = nn.Sequential(*list(model.blocks)[:-1])  # the last block (64 -> 64, 256 wide) weighs 140 KB
    cnn_models.randomize_batch_norms(model, torch.Generator().manual_seed(22))
    return model.eval()


def lstm_tagger():
    torch.manual_seed(31)
    return LstmTagger().eval()


def gru_bi():
    torch.manual_seed(41)
    return GruBi().eval()


def image_inputs(rng):
    return {"image": rng.standard_normal((2, 3, 32, 32)).astype(np.float32)}


# name, builder, inputs(rng), output names, dynamic axes
MODELS = [
    ("resnet_tiny", resnet_tiny, image_inputs, ["logits"], {"image": {0: "batch"}, "logits": {0: "batch"}}),
    ("mobilenet_tiny", mobilenet_tiny, image_inputs, ["logits"], {"image": {0: "batch"}, "logits": {0: "batch"}}),
    (
        "lstm_tagger",
        lstm_tagger,
        lambda rng: {
            "tokens": rng.integers(0, 20, (2, 5)).astype(np.int64),
            "h0": rng.standard_normal((1, 2, 24)).astype(np.float32),
            "c0": rng.standard_normal((1, 2, 24)).astype(np.float32),
        },
        ["logits", "h_n", "c_n"],
        {
            "tokens": {0: "batch", 1: "seq"},
            "h0": {1: "batch"},
            "c0": {1: "batch"},
            "logits": {0: "batch", 1: "seq"},
            "h_n": {1: "batch"},
            "c_n": {1: "batch"},
        },
    ),
    (
        "gru_bi",
        gru_bi,
        lambda rng: {
            "features": rng.standard_normal((2, 5, 12)).astype(np.float32),
            "h0": rng.standard_normal((2, 2, 16)).astype(np.float32),
        },
        ["out", "h_n"],
        {"features": {0: "batch", 1: "seq"}, "h0": {1: "batch"}, "out": {0: "batch", 1: "seq"}, "h_n": {1: "batch"}},
    ),
]


def save(path, array):
    with open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(array))


def export_bench(folder):
    os.makedirs(folder, exist_ok=True)
    for name in ("resnet_tiny", "mobilenet_tiny"):
        path = os.path.join(folder, name + ".onnx")
        with torch.no_grad():
            torch.onnx.export(cnn_models.build(name, 1), (torch.randn(1, 3, 224, 224),), path, opset_version=OPSET,
                              input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
        print(path)
    for name, builder, make_inputs, output_names, dynamic in MODELS[2:]:
        path = os.path.join(folder, name + ".onnx")
        args = tuple(torch.from_numpy(v) for v in make_inputs(np.random.default_rng(0)).values())
        with torch.no_grad():
            torch.onnx.export(builder(), args, path, opset_version=OPSET, input_names=list(make_inputs(
                np.random.default_rng(0))), output_names=output_names, dynamic_axes=dynamic)
        print(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", metavar="DIR", help="export the full-size models for bench/bench_onnx.py to DIR")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.bench:
        return export_bench(args.bench)
    for index, (name, builder, make_inputs, output_names, dynamic) in enumerate(MODELS):
        model = builder()
        rng = np.random.default_rng(100 + index)
        inputs = make_inputs(rng)
        folder = os.path.join(OUT_DIR, name)
        os.makedirs(folder, exist_ok=True)
        args = tuple(torch.from_numpy(v) for v in inputs.values())
        path = os.path.join(folder, "model.onnx")
        with torch.no_grad():
            outputs = model(*args)
            if isinstance(outputs, torch.Tensor):
                outputs = (outputs,)
            torch.onnx.export(
                model,
                args,
                path,
                opset_version=OPSET,
                input_names=list(inputs),
                output_names=output_names,
                dynamic_axes=dynamic,
                do_constant_folding=True,
            )
        onnx.checker.check_model(onnx.load(path))
        for k, v in inputs.items():
            save(os.path.join(folder, k + ".npy"), v)
        for k, v in zip(output_names, outputs):
            save(os.path.join(folder, k + ".npy"), v.numpy())
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
        assert size < MAX_BYTES, f"{folder}: {size} bytes, over {MAX_BYTES}"
        ops = sorted({n.op_type for n in onnx.load(path).graph.node})
        print(f"{name}: {size} bytes, ops: {' '.join(ops)}")


if __name__ == "__main__":
    main()
