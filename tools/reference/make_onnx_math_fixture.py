#!/usr/bin/env python3
"""Generate tests/fixtures/onnx/math/ for tests/test_onnx_math.cpp: a small PyTorch module exported with
torch.onnx.export (opset 14) whose graph uses the element-wise, logic and reduction ops of
frontends/onnx/map_math.cpp and map_logic.cpp as torch writes them (an int64 padding mask through Equal,
Not, Cast, Where; LeakyRelu, HardSwish, Elu, Selu, Softplus, HardSigmoid, PRelu, Clip; ReduceSum,
ReduceMax, ReduceMean; Max, Abs, Neg, Log, Reciprocal; Greater, LessOrEqual, And).

Run from the repository root:

    /usr/bin/python3 tools/reference/make_onnx_math_fixture.py

It (re)writes, deterministically (fixed seed):

  model.onnx        ids int64 [batch, 5, 1], x float32 [batch, 5, 6] -> a float32 [batch, 6],
                    b float32 [batch, 5], c bool [batch, 5, 1]
  ids.npy, x.npy    the inputs (batch 2)
  a.npy, b.npy, c.npy  PyTorch's outputs for them
"""

import os

import numpy as np
import torch

OUT = os.path.join("tests", "fixtures", "onnx", "math")


class MaskMath(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(6, 6)
        self.prelu = torch.nn.PReLU(5)

    def forward(self, ids, x):
        pad = ids == 0  # Equal on int64 ids
        keep = (~pad).float()  # Not, Cast
        h = self.lin(x)
        h = torch.nn.functional.leaky_relu(h, 0.1)
        h = torch.nn.functional.hardswish(h) + torch.nn.functional.elu(h) + torch.nn.functional.selu(h)
        h = torch.nn.functional.softplus(h) - torch.nn.functional.hardsigmoid(h)
        h = self.prelu(h)
        h = h.clamp(-2.0, 3.0)
        scores = h.masked_fill(pad, -1e4)  # Where
        lengths = keep.sum(dim=1)
        mean = (scores * keep).sum(dim=1) / lengths
        a = torch.maximum(scores.amax(dim=1), mean)
        b = torch.abs(-scores).log1p().reciprocal().mean(dim=-1)
        c = (ids > 3) & (ids <= 7)
        return a, b, c


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    m = MaskMath().eval()
    with torch.no_grad():
        m.prelu.weight.copy_(torch.tensor([0.25, -0.5, 0.1, 0.3, 2.0]))
    ids = torch.tensor([[5, 3, 9, 0, 0], [1, 8, 2, 7, 0]]).unsqueeze(-1)
    x = torch.randn(2, 5, 6)
    torch.onnx.export(m, (ids, x), os.path.join(OUT, "model.onnx"), opset_version=14,
                      input_names=["ids", "x"], output_names=["a", "b", "c"],
                      dynamic_axes={"ids": {0: "batch"}, "x": {0: "batch"}})
    with torch.no_grad():
        a, b, c = m(ids, x)
    np.save(os.path.join(OUT, "ids.npy"), ids.numpy())
    np.save(os.path.join(OUT, "x.npy"), x.numpy())
    np.save(os.path.join(OUT, "a.npy"), a.numpy())
    np.save(os.path.join(OUT, "b.npy"), b.numpy())
    np.save(os.path.join(OUT, "c.npy"), c.numpy())


if __name__ == "__main__":
    main()
