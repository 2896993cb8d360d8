#!/usr/bin/env python3
"""Generate the fixtures for Kiln's `lstm`, `gru` and `rnn` ops from seeded PyTorch nn.LSTM / nn.GRU / nn.RNN layers.

Run from the repository root:

    /usr/bin/python3 tools/reference/make_rnn_fixtures.py

It (re)writes, deterministically (fixed seeds, one CPU thread), one folder per config under
tests/fixtures/rnn/:

    model.yaml            a one-node Kiln model: y, h_n[, c_n] = lstm|gru(x[, h0[, c0]])
    weights.safetensors   the layer's state_dict under the prefix `rnn.` (PyTorch names)
    x.npy                 float32 input, [batch, seq, in] (or [seq, batch, in] when batch_first is false)
    h0.npy, c0.npy        float32 initial states [layers*dirs, batch, hidden] (configs with a state)
    y.npy, h_n.npy, c_n.npy   PyTorch's outputs (eval mode)

Configs cover layers 1 and 2, uni- and bidirectional, seq 1 (a decoder step) and seq > 1, with and
without initial state, batch_first true and false, and layers without biases; seq 1 with state (the
decoder step) for 1 and 2 layers, with and without biases; nn.RNN (`rnn`, nonlinearity tanh and relu).

Self-check (the script fails if it does not hold): an independent float64 numpy implementation of the
PyTorch LSTM/GRU equations (gates i,f,g,o and r,z,n; n = tanh(W_in x + b_in + r * (W_hn h + b_hn));
layer k > 0 reads both directions of layer k-1 concatenated) matches PyTorch to < 1e-5.
"""

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import safetensors_io  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT_DIR = os.path.join(REPO_ROOT, "tests", "fixtures", "rnn")

# name, cell, input size, hidden, layers, bidirectional, batch, seq, initial state, batch_first, bias
CONFIGS = [
    ("lstm_l1_s1_state", "lstm", 6, 8, 1, False, 2, 1, True, True, True),
    ("lstm_l1_s7", "lstm", 5, 8, 1, False, 3, 7, False, True, True),
    ("lstm_l2_bi_s5_state", "lstm", 6, 7, 2, True, 2, 5, True, True, True),
    ("lstm_l2_s4_seqfirst_state", "lstm", 4, 6, 2, False, 3, 4, True, False, True),
    ("lstm_l1_bi_s1", "lstm", 3, 5, 1, True, 4, 1, False, True, True),
    ("lstm_l1_nobias_s3", "lstm", 5, 4, 1, False, 2, 3, True, True, False),
    ("lstm_l2_s1_state", "lstm", 6, 8, 2, False, 3, 1, True, True, True),
    ("lstm_l1_nobias_s1_state_seqfirst", "lstm", 5, 4, 1, False, 2, 1, True, False, False),
    ("gru_l1_s1_state", "gru", 6, 8, 1, False, 2, 1, True, True, True),
    ("gru_l2_s1_state", "gru", 6, 8, 2, False, 3, 1, True, True, True),
    ("gru_l1_nobias_s1_state", "gru", 5, 4, 1, False, 2, 1, True, True, False),
    ("gru_l1_s7", "gru", 5, 8, 1, False, 3, 7, False, True, True),
    ("gru_l2_bi_s5_state", "gru", 6, 7, 2, True, 2, 5, True, True, True),
    ("gru_l2_s4_seqfirst_state", "gru", 4, 6, 2, False, 3, 4, True, False, True),
    ("gru_l1_bi_s1", "gru", 3, 5, 1, True, 4, 1, False, True, True),
    ("rnn_tanh_l2_bi_s5_state", "rnn_tanh", 6, 7, 2, True, 2, 5, True, True, True),
    ("rnn_relu_l1_s4_seqfirst", "rnn_relu", 5, 8, 1, False, 3, 4, False, False, True),
    ("rnn_tanh_l1_nobias_s1_state", "rnn_tanh", 4, 6, 1, False, 2, 1, True, True, False),
]


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_rnn(cell, sd, x, h0, c0, layers, dirs, hidden, batch_first):
    """float64 reference of nn.LSTM / nn.GRU / nn.RNN (cell rnn_tanh, rnn_relu); x is [T, N, C] here."""
    sd = {k: v.astype(np.float64) for k, v in sd.items()}
    if batch_first:
        x = x.transpose(1, 0, 2)
    t_len, n = x.shape[0], x.shape[1]
    inp = x.astype(np.float64)
    h_n, c_n = [], []
    for layer in range(layers):
        outs = []
        for d in range(dirs):
            sfx = "_l%d%s" % (layer, "_reverse" if d else "")
            w_ih, w_hh = sd["weight_ih" + sfx], sd["weight_hh" + sfx]
            b_ih = sd.get("bias_ih" + sfx, np.zeros(w_ih.shape[0]))
            b_hh = sd.get("bias_hh" + sfx, np.zeros(w_ih.shape[0]))
            idx = layer * dirs + d
            h = h0[idx].astype(np.float64) if h0 is not None else np.zeros((n, hidden))
            c = c0[idx].astype(np.float64) if c0 is not None else np.zeros((n, hidden))
            y = np.zeros((t_len, n, hidden))
            steps = range(t_len - 1, -1, -1) if d else range(t_len)
            for t in steps:
                gi = inp[t] @ w_ih.T + b_ih
                gh = h @ w_hh.T + b_hh
                if cell.startswith("rnn"):
                    h = np.tanh(gi + gh) if cell == "rnn_tanh" else np.maximum(gi + gh, 0.0)
                elif cell == "lstm":
                    g = gi + gh
                    i, f, gg, o = np.split(g, 4, axis=1)
                    c = sigmoid(f) * c + sigmoid(i) * np.tanh(gg)
                    h = sigmoid(o) * np.tanh(c)
                else:
                    ir, iz, inn = np.split(gi, 3, axis=1)
                    hr, hz, hn = np.split(gh, 3, axis=1)
                    r, z = sigmoid(ir + hr), sigmoid(iz + hz)
                    nn_ = np.tanh(inn + r * hn)
                    h = (1 - z) * nn_ + z * h
                y[t] = h
            outs.append(y)
            h_n.append(h)
            c_n.append(c)
        inp = np.concatenate(outs, axis=2)
    y = inp.transpose(1, 0, 2) if batch_first else inp
    return y, np.stack(h_n), np.stack(c_n)


def yaml_for(name, cell, in_size, hidden, layers, bidir, state, batch_first):
    dirs = 2 if bidir else 1
    x_shape = "[batch, seq, %d]" % in_size if batch_first else "[seq, batch, %d]" % in_size
    lines = [
        "kiln: 1",
        "name: %s" % name,
        "weights: weights.safetensors",
        "inputs:",
        "  x: {dtype: f32, shape: %s}" % x_shape,
    ]
    ins = ["x"]
    if state:
        lines.append("  h0: {dtype: f32, shape: [%d, batch, %d]}" % (layers * dirs, hidden))
        ins.append("h0")
        if cell == "lstm":
            lines.append("  c0: {dtype: f32, shape: [%d, batch, %d]}" % (layers * dirs, hidden))
            ins.append("c0")
    outs = ["y", "h_n"] + (["c_n"] if cell == "lstm" else [])
    lines.append("outputs: [%s]" % ", ".join(outs))
    lines.append("nodes:")
    attrs = "num_layers: %d, bidirectional: %s, batch_first: %s" % (
        layers, "true" if bidir else "false", "true" if batch_first else "false")
    op = cell
    if cell.startswith("rnn"):
        op, attrs = "rnn", attrs + ", nonlinearity: " + cell[4:]
    lines.append("  - {op: %s, in: [%s], weights: rnn, %s, out: [%s]}" % (
        op, ", ".join(ins), attrs, ", ".join(outs)))
    return "\n".join(lines) + "\n"


def make(cfg):
    name, cell, in_size, hidden, layers, bidir, batch, seq, state, batch_first, bias = cfg
    seed = sum(ord(ch) for ch in name)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if cell.startswith("rnn"):
        mod = torch.nn.RNN(in_size, hidden, num_layers=layers, nonlinearity=cell[4:], bidirectional=bidir,
                           batch_first=batch_first, bias=bias).eval()
    else:
        cls = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
        mod = cls(in_size, hidden, num_layers=layers, bidirectional=bidir, batch_first=batch_first, bias=bias).eval()
    dirs = 2 if bidir else 1
    x_shape = (batch, seq, in_size) if batch_first else (seq, batch, in_size)
    x = rng.uniform(-1, 1, size=x_shape).astype(np.float32)
    h0 = rng.uniform(-1, 1, size=(layers * dirs, batch, hidden)).astype(np.float32) if state else None
    c0 = rng.uniform(-1, 1, size=(layers * dirs, batch, hidden)).astype(np.float32) if state and cell == "lstm" else None
    with torch.no_grad():
        if cell == "lstm":
            args = (torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0))) if state else (torch.from_numpy(x),)
            y, (h_n, c_n) = mod(*args)
        else:
            args = (torch.from_numpy(x), torch.from_numpy(h0)) if state else (torch.from_numpy(x),)
            y, h_n = mod(*args)
            c_n = None
    sd = {k: v.detach().numpy().copy() for k, v in mod.state_dict().items()}

    ry, rh, rc = numpy_rnn(cell, sd, x, h0, c0, layers, dirs, hidden, batch_first)
    err = max(np.abs(ry - y.numpy()).max(), np.abs(rh - h_n.numpy()).max(),
              np.abs(rc - c_n.numpy()).max() if c_n is not None else 0.0)
    if err > 1e-5:
        raise SystemExit("%s: numpy reference differs from PyTorch by %g" % (name, err))

    d = os.path.join(OUT_DIR, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "model.yaml"), "w") as f:
        f.write(yaml_for(name, cell, in_size, hidden, layers, bidir, state, batch_first))
    safetensors_io.save_file({"rnn." + k: v for k, v in sd.items()}, os.path.join(d, "weights.safetensors"))
    arrays = {"x": x, "y": y.numpy(), "h_n": h_n.numpy()}
    if state:
        arrays["h0"] = h0
    if c0 is not None:
        arrays["c0"] = c0
    if c_n is not None:
        arrays["c_n"] = c_n.numpy()
    for k, v in arrays.items():
        np.save(os.path.join(d, k + ".npy"), np.ascontiguousarray(v, dtype=np.float32), allow_pickle=False)
    print("%-28s numpy-vs-torch %.2g" % (name, err))


def main():
    torch.set_num_threads(1)
    for cfg in CONFIGS:
        make(cfg)


if __name__ == "__main__":
    main()
