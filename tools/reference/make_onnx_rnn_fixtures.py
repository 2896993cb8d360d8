#!/usr/bin/env python3
"""ONNX LSTM, GRU and RNN nodes built with onnx.helper, checked against PyTorch's nn.LSTM / nn.GRU / nn.RNN.

Run from the repository root (torch 1.13, onnx 1.12):

    /usr/bin/python3 tools/reference/make_onnx_rnn_fixtures.py

It (re)writes, deterministically, tests/fixtures/onnx_rnn/NAME.onnx and NAME.INPUT.npy / NAME.OUTPUT.npy for
the cases below: what torch.onnx.export never writes (layout = 1, Y and Y_c as graph outputs, initial states
in layout 1, opset 7) and what the backend node tests lack (bidirectional, reverse, GRU with
linear_before_reset = 1, RNN with Relu). PyTorch has no reverse-only layer: the reference for direction =
reverse runs PyTorch forward on the reversed sequence and reverses its Y back. For the GRU with
linear_before_reset = 0, which PyTorch lacks, the reference is a float64 numpy implementation of the ONNX
spec's equations on the ONNX weights as they are; likewise for the LSTM with peepholes (P), whose numpy
reference is first checked with P = 0 against PyTorch.

The ONNX weights are random; the reference is PyTorch's layer holding the same weights, moved into
PyTorch's gate order from ONNX's as the ONNX spec states them (LSTM: ONNX i,o,f,c -> PyTorch i,f,g,o; GRU:
ONNX z,r,h -> PyTorch r,z,n; B = [Wb, Rb] -> bias_ih, bias_hh), and its outputs are rearranged into ONNX's
Y [seq, dirs, batch, hidden] (layout 0) or [batch, seq, dirs, hidden] (layout 1).
"""

import os

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT_DIR = os.path.join(REPO_ROOT, "tests", "fixtures", "onnx_rnn")

# PyTorch gate block t is ONNX block TORCH_FROM_ONNX[t].
TORCH_FROM_ONNX = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2], "RNN": [0]}

# name, op, opset, direction, layout, input size, hidden, batch, seq, bias, initial states, outputs
CASES = [
    ("lstm_bi_layout0_states", "LSTM", 14, "bidirectional", 0, 5, 6, 3, 4, True, True, ["Y", "Y_h", "Y_c"]),
    ("lstm_bi_layout1_states", "LSTM", 14, "bidirectional", 1, 4, 5, 2, 3, True, True, ["Y", "Y_h", "Y_c"]),
    ("lstm_fwd_opset7_nobias", "LSTM", 7, "forward", 0, 3, 4, 2, 5, False, False, ["Y", "Y_h"]),
    ("gru_bi_layout1_state", "GRU", 14, "bidirectional", 1, 4, 6, 3, 4, True, True, ["Y", "Y_h"]),
    ("gru_fwd_opset7", "GRU", 7, "forward", 0, 5, 3, 2, 3, True, False, ["Y_h"]),
    ("rnn_relu_bi_layout1_state", "RNN", 14, "bidirectional", 1, 4, 5, 3, 4, True, True, ["Y", "Y_h"]),
    ("rnn_tanh_fwd_opset7", "RNN", 7, "forward", 0, 3, 4, 2, 5, True, False, ["Y", "Y_h"]),
    ("lstm_reverse_layout1_states", "LSTM", 14, "reverse", 1, 4, 5, 2, 4, True, True, ["Y", "Y_h", "Y_c"]),
    ("gru_reverse_layout0", "GRU", 14, "reverse", 0, 3, 4, 3, 5, True, False, ["Y", "Y_h"]),
    ("gru_lbr0_bi_layout0_state", "GRU", 14, "bidirectional", 0, 4, 5, 2, 4, True, True, ["Y", "Y_h"]),
    ("lstm_peephole_bi_layout0_states", "LSTM", 14, "bidirectional", 0, 3, 4, 2, 5, True, True, ["Y", "Y_h", "Y_c"]),
]


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def onnx_lstm_peephole(X, W, R, B, P, h0, c0, direction):
    """float64 numpy of ONNX's LSTM with peepholes, from the ONNX weights as they are (gates i, o, f, c;
    P = [Pi, Po, Pf]; the spec's equations), layout 0."""
    seq, hidden = X.shape[0], R.shape[2]
    ys, hs, cs = [], [], []
    for d in range(W.shape[0]):
        Wi, Wo, Wf, Wc = np.split(W[d].astype(np.float64), 4)
        Ri, Ro, Rf, Rc = np.split(R[d].astype(np.float64), 4)
        Wbi, Wbo, Wbf, Wbc, Rbi, Rbo, Rbf, Rbc = np.split(B[d].astype(np.float64), 8)
        Pi, Po, Pf = np.split(P[d].astype(np.float64), 3)
        h, c = h0[d].astype(np.float64), c0[d].astype(np.float64)
        y = np.zeros((seq, X.shape[1], hidden))
        backwards = direction == "reverse" or (direction == "bidirectional" and d == 1)
        for t in (range(seq - 1, -1, -1) if backwards else range(seq)):
            x = X[t].astype(np.float64)
            i = sigmoid(x @ Wi.T + h @ Ri.T + Pi * c + Wbi + Rbi)
            f = sigmoid(x @ Wf.T + h @ Rf.T + Pf * c + Wbf + Rbf)
            cc = np.tanh(x @ Wc.T + h @ Rc.T + Wbc + Rbc)
            c = f * c + i * cc
            o = sigmoid(x @ Wo.T + h @ Ro.T + Po * c + Wbo + Rbo)
            h = o * np.tanh(c)
            y[t] = h
        ys.append(y)
        hs.append(h)
        cs.append(c)
    return (np.stack(ys, axis=1).astype(np.float32), np.stack(hs).astype(np.float32),
            np.stack(cs).astype(np.float32))


def onnx_gru_lbr0(X, W, R, B, h0, direction):
    """float64 numpy of ONNX's GRU with linear_before_reset = 0, from the ONNX weights as they are (gates
    z, r, h; the spec's equations), layout 0: X [seq, batch, in], h0 [dirs, batch, hidden]."""
    seq, hidden = X.shape[0], R.shape[2]
    ys, hs = [], []
    for d in range(W.shape[0]):
        Wz, Wr, Wh = np.split(W[d].astype(np.float64), 3)
        Rz, Rr, Rh = np.split(R[d].astype(np.float64), 3)
        Wbz, Wbr, Wbh, Rbz, Rbr, Rbh = np.split(B[d].astype(np.float64), 6)
        h = h0[d].astype(np.float64)
        y = np.zeros((seq, X.shape[1], hidden))
        backwards = direction == "reverse" or (direction == "bidirectional" and d == 1)
        for t in (range(seq - 1, -1, -1) if backwards else range(seq)):
            x = X[t].astype(np.float64)
            z = sigmoid(x @ Wz.T + h @ Rz.T + Wbz + Rbz)
            r = sigmoid(x @ Wr.T + h @ Rr.T + Wbr + Rbr)
            hh = np.tanh(x @ Wh.T + (r * h) @ Rh.T + Rbh + Wbh)
            h = (1 - z) * hh + z * h
            y[t] = h
        ys.append(y)
        hs.append(h)
    return np.stack(ys, axis=1).astype(np.float32), np.stack(hs).astype(np.float32)


def torch_order(op, blocks, hidden):
    """[G*hidden, ...] in ONNX's gate order -> PyTorch's."""
    parts = [blocks[k * hidden:(k + 1) * hidden] for k in range(len(TORCH_FROM_ONNX[op]))]
    return np.concatenate([parts[k] for k in TORCH_FROM_ONNX[op]], axis=0)


def save(path, array):
    with open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(array))


def make(case, rng):
    name, op, opset, direction, layout, features, hidden, batch, seq, bias, states, outputs = case
    gates = len(TORCH_FROM_ONNX[op])
    dirs = 2 if direction == "bidirectional" else 1
    W = rng.uniform(-0.5, 0.5, (dirs, gates * hidden, features)).astype(np.float32)
    R = rng.uniform(-0.5, 0.5, (dirs, gates * hidden, hidden)).astype(np.float32)
    B = rng.uniform(-0.5, 0.5, (dirs, 2 * gates * hidden)).astype(np.float32)
    x_shape = (batch, seq, features) if layout else (seq, batch, features)
    s_shape = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
    feeds = {"X": rng.standard_normal(x_shape).astype(np.float32)}
    if states:
        feeds["initial_h"] = rng.standard_normal(s_shape).astype(np.float32)
        if op == "LSTM":
            feeds["initial_c"] = rng.standard_normal(s_shape).astype(np.float32)

    # The reference: PyTorch's layer, seq-first, states [dirs, batch, hidden].
    relu = "relu" in name
    if op == "RNN":
        layer = torch.nn.RNN(features, hidden, nonlinearity="relu" if relu else "tanh", bias=bias,
                             bidirectional=dirs == 2)
    else:
        cls = torch.nn.LSTM if op == "LSTM" else torch.nn.GRU
        layer = cls(features, hidden, bias=bias, bidirectional=dirs == 2)
    with torch.no_grad():
        for d in range(dirs):
            sfx = "_reverse" if d else ""
            getattr(layer, "weight_ih_l0" + sfx).copy_(torch.from_numpy(torch_order(op, W[d], hidden)))
            getattr(layer, "weight_hh_l0" + sfx).copy_(torch.from_numpy(torch_order(op, R[d], hidden)))
            if bias:
                rows = gates * hidden
                getattr(layer, "bias_ih_l0" + sfx).copy_(torch.from_numpy(torch_order(op, B[d, :rows], hidden)))
                getattr(layer, "bias_hh_l0" + sfx).copy_(torch.from_numpy(torch_order(op, B[d, rows:], hidden)))
        x = torch.from_numpy(feeds["X"])
        if layout:
            x = x.transpose(0, 1)
        if direction == "reverse":  # PyTorch has no reverse-only layer: run forward on the reversed sequence
            x = x.flip(0)
        st = None
        if states:
            h0 = torch.from_numpy(feeds["initial_h"])
            h0 = h0.transpose(0, 1).contiguous() if layout else h0
            if op == "LSTM":
                c0 = torch.from_numpy(feeds["initial_c"])
                st = (h0, c0.transpose(0, 1).contiguous() if layout else c0)
            else:
                st = h0
        y, hn = layer(x, st)
        cn = None
        if op == "LSTM":
            hn, cn = hn
    if direction == "reverse":
        y = y.flip(0)  # ONNX's Y is in input order: step t holds the state after reading x[t..seq-1]
    y = y.numpy().reshape(seq, batch, dirs, hidden)  # PyTorch concatenates the directions on the last axis
    results = {
        "Y": y.transpose(1, 0, 2, 3) if layout else y.transpose(0, 2, 1, 3),
        "Y_h": hn.numpy().transpose(1, 0, 2) if layout else hn.numpy(),
    }
    if cn is not None:
        results["Y_c"] = cn.numpy().transpose(1, 0, 2) if layout else cn.numpy()
    lbr0 = "lbr0" in name  # PyTorch has no such GRU: the reference is the numpy one, from the ONNX weights
    if lbr0:
        assert layout == 0 and states and bias
        results["Y"], results["Y_h"] = onnx_gru_lbr0(feeds["X"], W, R, B, feeds["initial_h"], direction)
    P = None
    if "peephole" in name:  # PyTorch has no peepholes either: numpy of the spec, checked with P = 0 against PyTorch
        assert layout == 0 and states and bias and op == "LSTM"
        zero = onnx_lstm_peephole(feeds["X"], W, R, B, np.zeros((dirs, 3 * hidden)), feeds["initial_h"],
                                  feeds["initial_c"], direction)
        assert max(np.abs(zero[0] - results["Y"]).max(), np.abs(zero[2] - cn.numpy()).max()) < 1e-5
        P = rng.uniform(-0.5, 0.5, (dirs, 3 * hidden)).astype(np.float32)
        results["Y"], results["Y_h"], results["Y_c"] = onnx_lstm_peephole(
            feeds["X"], W, R, B, P, feeds["initial_h"], feeds["initial_c"], direction)

    # The ONNX model: symbolic batch and seq.
    dims_x = ["batch", "seq", features] if layout else ["seq", "batch", features]
    dims_s = ["batch", dirs, hidden] if layout else [dirs, "batch", hidden]
    dims_y = ["batch", "seq", dirs, hidden] if layout else ["seq", dirs, "batch", hidden]
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R")]
    node_inputs = ["X", "W", "R", "B" if bias else ""]
    if bias:
        inits.append(numpy_helper.from_array(B, "B"))
    if states:
        node_inputs += ["", "initial_h"] + (["initial_c"] if op == "LSTM" else [])
    if P is not None:
        node_inputs.append("P")
        inits.append(numpy_helper.from_array(P, "P"))
    while node_inputs[-1] == "":
        node_inputs.pop()
    all_outputs = ["Y", "Y_h", "Y_c"] if op == "LSTM" else ["Y", "Y_h"]
    node_outputs = [o if o in outputs else "" for o in all_outputs]
    while node_outputs[-1] == "":
        node_outputs.pop()
    attrs = {"hidden_size": hidden, "direction": direction}
    if opset >= 14:
        attrs["layout"] = layout
    if op == "GRU":
        attrs["linear_before_reset"] = 0 if lbr0 else 1
    if relu:
        attrs["activations"] = ["Relu"] * dirs
    node = helper.make_node(op, node_inputs, node_outputs, name=name, **attrs)
    graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, dims_x)]
    graph_inputs += [helper.make_tensor_value_info(k, TensorProto.FLOAT, dims_s) for k in feeds if k != "X"]
    graph_outputs = [
        helper.make_tensor_value_info(o, TensorProto.FLOAT, dims_y if o == "Y" else dims_s) for o in outputs
    ]
    graph = helper.make_graph([node], name, graph_inputs, graph_outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="kiln")
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(OUT_DIR, name + ".onnx"))
    for k, v in feeds.items():
        save(os.path.join(OUT_DIR, f"{name}.{k}.npy"), v)
    for o in outputs:
        save(os.path.join(OUT_DIR, f"{name}.{o}.npy"), results[o])
    print(name, {o: results[o].shape for o in outputs})


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    rng = np.random.default_rng(7)
    for case in CASES:
        make(case, rng)


if __name__ == "__main__":
    main()
