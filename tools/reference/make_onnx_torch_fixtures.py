#!/usr/bin/env python3
"""Export small PyTorch Transformers with torch.onnx.export for tests/test_onnx_torch_models.cpp.

Run from the repository root (torch 1.13, onnx 1.12):

    /usr/bin/python3 tools/reference/make_onnx_torch_fixtures.py

It (re)writes tests/fixtures/onnx_torch/NAME/ for each model, deterministically (fixed seeds):

  model.onnx                 opset 14, dynamic_axes {0: batch, 1: seq} on the input (and the outputs' batch)
  tokens_bB_sS.npy           int64 input ids for two batch/seq sizes (b2_s7 and b3_s12)
  OUTPUT_bB_sS.npy           PyTorch's float32 outputs for them

Models:
  classifier    the seed classifier of tools/reference/classifier.py (post-norm ReLU encoder, 2 layers,
                d_model 64, 8 heads, mean pooling, Linear head, softmax); vocab 100 and dim_ff 128 instead of
                classifier_d64_l2's 1000 and 256 so that the file stays under 300 KB. Outputs: logits, probs.
  encoder_cls   nn.TransformerEncoderLayer(norm_first=True, activation="gelu"), 2 layers, d_model 64, 4 heads,
                dim_ff 128, after an embedding; reads the CLS token x[:, 0] and a Linear head. Output: logits.
  date_encoder  the encoder of tools/reference/date_transformer.py with its trained weights
                (examples/date_translation/transformer.safetensors): token + learned position embeddings
                (torch.arange(seq)), the encoder's first layer and its final norm (both layers would make the
                file 490 KB), no padding mask. Output: memory.
"""

import inspect
import os
import sys

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import classifier  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "onnx_torch")
SIZES = [(2, 7), (3, 12)]


def no_nested():
    kwargs = {}
    if "enable_nested_tensor" in inspect.signature(nn.TransformerEncoder.__init__).parameters:
        kwargs["enable_nested_tensor"] = False
    return kwargs


class EncoderCls(nn.Module):
    def __init__(self, vocab=100, d_model=64, nhead=4, layers=2, dim_ff=128, classes=3):
        super().__init__()
        self.embedding = nn.Embedding(vocab, d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_ff, dropout=0.1, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, **no_nested())
        self.head = nn.Linear(d_model, classes)

    def forward(self, tokens):
        x = self.encoder(self.embedding(tokens))
        return self.head(x[:, 0])


class DateEncoder(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.m = model

    def forward(self, src):
        pos = torch.arange(src.shape[1]).unsqueeze(0)
        x = self.m.src_embed(src) + self.m.src_pos(pos)
        enc = self.m.transformer.encoder
        return enc.norm(enc.layers[0](x))


def export(name, model, vocab, outputs, seed):
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    model = model.float().eval()
    dummy = torch.zeros((2, 5), dtype=torch.int64)
    axes = {"tokens": {0: "batch", 1: "seq"}}
    for o in outputs:
        axes[o] = {0: "batch"}
    # With gradients enabled: torch's fast path (aten::_transformer_encoder_layer_fwd, no ONNX export) runs
    # only without them.
    torch.onnx.export(model, (dummy,), os.path.join(folder, "model.onnx"), opset_version=14,
                      input_names=["tokens"], output_names=outputs, dynamic_axes=axes, do_constant_folding=True)
    rng = np.random.default_rng(seed)
    for b, s in SIZES:
        tokens = rng.integers(0, vocab, (b, s)).astype(np.int64)
        np.save(os.path.join(folder, "tokens_b%d_s%d.npy" % (b, s)), tokens)
        with torch.no_grad():
            res = model(torch.from_numpy(tokens))
        if not isinstance(res, tuple):
            res = (res,)
        for o, r in zip(outputs, res):
            np.save(os.path.join(folder, "%s_b%d_s%d.npy" % (o, b, s)), r.numpy().astype(np.float32))


def main():
    torch.set_num_threads(1)
    export("classifier", classifier.build_model(1234, 100, 64, 2, 128, 4), 100, ["logits", "probs"], 1)
    torch.manual_seed(99)
    export("encoder_cls", EncoderCls(), 100, ["logits"], 2)
    import date_transformer  # noqa: E402
    import dates  # noqa: E402
    export("date_encoder", DateEncoder(date_transformer.load_model()), len(dates.VOCAB), ["memory"], 3)


if __name__ == "__main__":
    main()
