#!/usr/bin/env python3
"""Generate the small ONNX fixtures of tests/test_onnx_import.cpp (no PyTorch: onnx.helper + numpy).

Run from the repository root:

    /usr/bin/python3 tools/reference/make_onnx_fixtures.py

It (re)writes, deterministically (fixed seed), tests/fixtures/onnx/:

  mlp_matmul.onnx     x [batch, 4] -> MatMul, Add, Relu, MatMul, Add -> y [batch, 3] (opset 13; weights in
                      raw_data)
  mlp_gemm.onnx       the same weights as Gemm (transB=1, bias) -> Relu -> Gemm (transB=0, bias), batch dim
                      named 'p2o.DynamicDimension.0' (not an identifier); W2 in float_data, not raw_data
  x.npy, y.npy        float32 [2, 4] input and the numpy-computed output of both models
  unsupported.onnx    Det, Hardmax (no Kiln mapping) and a custom-domain op, between supported nodes
  undefined_input.onnx  MatMul reading 'W', which nothing defines (no initializer, no input)
  softmax_axis1_opset11.onnx  Softmax(axis=1) on [batch, 3, 5] at opset 11 (flattens dims 1..: refused)
  external.onnx + external.bin  MatMul whose weight lies in an external data file (offset 16); its
                      output for x.npy is y_external.npy
  external_bad.onnx   the same tensor, with an offset past the end of external.bin
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join("tests", "fixtures", "onnx")


def save(model, name):
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(OUT, name))


def model_of(graph, opset=13):
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="kiln-fixtures")
    m.ir_version = 8
    return m


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(15)
    w1 = rng.standard_normal((4, 8)).astype(np.float32)
    b1 = rng.standard_normal(8).astype(np.float32)
    w2 = rng.standard_normal((8, 3)).astype(np.float32)
    b2 = rng.standard_normal(3).astype(np.float32)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    y = np.maximum(x @ w1 + b1, 0) @ w2 + b2
    np.save(os.path.join(OUT, "x.npy"), x)
    np.save(os.path.join(OUT, "y.npy"), y.astype(np.float32))

    # MatMul + Add + Relu, twice.
    g = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W1"], ["h0"], name="fc1"),
            helper.make_node("Add", ["h0", "b1"], ["h1"], name="fc1_bias"),
            helper.make_node("Relu", ["h1"], ["h2"], name="act"),
            helper.make_node("MatMul", ["h2", "W2"], ["h3"], name="fc2"),
            helper.make_node("Add", ["h3", "b2"], ["y"], name="fc2_bias"),
        ],
        "mlp_matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(b1, "b1"),
         numpy_helper.from_array(w2, "W2"), numpy_helper.from_array(b2, "b2")],
    )
    save(model_of(g), "mlp_matmul.onnx")

    # Gemm (transB=1: torch's Linear export) + Relu + Gemm (transB=0, B in float_data).
    batch = "p2o.DynamicDimension.0"
    g = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "W1t", "b1"], ["h1"], name="fc1", transB=1),
            helper.make_node("Relu", ["h1"], ["h2"], name="act"),
            helper.make_node("Gemm", ["h2", "W2", "b2"], ["y"], name="fc2"),
        ],
        "mlp_gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])],
        [numpy_helper.from_array(np.ascontiguousarray(w1.T), "W1t"), numpy_helper.from_array(b1, "b1"),
         helper.make_tensor("W2", TensorProto.FLOAT, w2.shape, w2.flatten().tolist(), raw=False),
         numpy_helper.from_array(b2, "b2")],
    )
    save(model_of(g, opset=11), "mlp_gemm.onnx")

    # Three nodes Kiln cannot import among supported ones.
    g = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["a"], name="first"),
            helper.make_node("Det", ["a"], ["b"], name="det"),
            helper.make_node("Hardmax", ["b"], ["c"], name="hardmax"),
            helper.make_node("FancyOp", ["c"], ["d"], name="custom", domain="com.example"),
            helper.make_node("Relu", ["d"], ["y"], name="last"),
        ],
        "unsupported",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.example", 1)])
    m.ir_version = 8
    save(m, "unsupported.onnx")

    # A node input that nothing defines (the checker would refuse it too; Kiln names the node first).
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["a"], name="act"), helper.make_node("MatMul", ["a", "W"], ["y"], name="fc")],
        "undefined_input",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
    )
    onnx.save(model_of(g), os.path.join(OUT, "undefined_input.onnx"))

    g = helper.make_graph(
        [helper.make_node("Softmax", ["x"], ["y"], name="probs", axis=1)],
        "softmax_axis1",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, 5])],
    )
    save(model_of(g, opset=11), "softmax_axis1_opset11.onnx")

    # External data: W1 at offset 16 of external.bin (after 16 bytes of padding).
    with open(os.path.join(OUT, "external.bin"), "wb") as f:
        f.write(b"\0" * 16 + w1.tobytes())

    def external_model(offset):
        w = TensorProto(name="W1", data_type=TensorProto.FLOAT, dims=w1.shape)
        w.data_location = TensorProto.EXTERNAL
        for k, v in (("location", "external.bin"), ("offset", str(offset)), ("length", str(w1.nbytes))):
            e = w.external_data.add()
            e.key, e.value = k, v
        g = helper.make_graph(
            [helper.make_node("MatMul", ["x", "W1"], ["y"], name="fc1")],
            "external",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
            [w],
        )
        return model_of(g)

    onnx.save(external_model(16), os.path.join(OUT, "external.onnx"))
    onnx.save(external_model(64), os.path.join(OUT, "external_bad.onnx"))
    np.save(os.path.join(OUT, "y_external.npy"), (x @ w1).astype(np.float32))


if __name__ == "__main__":
    main()
