#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz corpora (fuzz/corpus/<target>/seed-*) from examples/ and tests/, and
small hand-made models, weights and arrays (Python standard library only). Run from the repository root;
fuzz_kplan's seeds come from kilnc (see docs/fuzzing.md). The committed corpora are these seeds plus what
the campaigns added, minimized with -merge=1."""
import glob, json, os, re, struct, hashlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.environ.get("KILN_SEEDS_OUT", os.path.join(ROOT, "fuzz", "corpus"))


def put(target, data, name=None):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    name = name or "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, bytes)."""
    header, blob = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def f32(n, scale=0.1):
    return struct.pack("<%df" % n, *[((i * 37 % 11) - 5) * scale for i in range(n)])


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def npy(descr, shape, data, fortran=False, version=1):
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (
        descr, "True" if fortran else "False", "".join("%d," % s for s in shape) if len(shape) != 1 else "%d," % shape[0])
    pre = 10 if version == 1 else 12
    header += " " * (-(pre + len(header) + 1) % 64) + "\n"
    if version == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(header)) + header.encode("utf-8") + data


# ---- a tiny transformer classifier and a tiny CNN with their weights (fuzz_c_api, fuzz_kplan sources) ----
TINY = """kiln: 1
name: tiny_classifier
weights: tiny.safetensors
inputs:
  tokens: {dtype: i64, shape: [batch, seq]}
outputs: [logits, probs]
blocks:
  layer:
    args: [x]
    params: [p]
    returns: [y]
    nodes:
      - {op: attention, in: [x, x, x], weights: "{p}.self_attn", heads: 2, out: a}
      - {op: add, in: [x, a], out: r1}
      - {op: layer_norm, in: [r1], weights: "{p}.norm1", eps: 1.0e-5, out: n1}
      - {op: linear, in: [n1], weights: "{p}.linear1", out: h}
      - {op: gelu, in: [h], out: h1}
      - {op: linear, in: [h1], weights: "{p}.linear2", out: f}
      - {op: add, in: [n1, f], out: r2}
      - {op: layer_norm, in: [r2], weights: "{p}.norm2", eps: 1.0e-5, out: y}
nodes:
  - {op: embedding, in: [tokens], weights: embedding, out: x0}
  - {block: layer, repeat: 2, in: [x0], p: "layers.{i}", out: x}
  - {op: reduce_mean, in: [x], axes: [1], out: pooled}
  - {op: linear, in: [pooled], weights: head, out: logits}
  - {op: softmax, in: [logits], axis: -1, out: probs}
"""
D, FF, V, C = 8, 16, 16, 3
tiny_w = [("embedding.weight", [V, D]), ("head.weight", [C, D]), ("head.bias", [C])]
for i in range(2):
    p = "layers.%d." % i
    tiny_w += [(p + "self_attn.in_proj_weight", [3 * D, D]), (p + "self_attn.in_proj_bias", [3 * D]),
               (p + "self_attn.out_proj.weight", [D, D]), (p + "self_attn.out_proj.bias", [D]),
               (p + "norm1.weight", [D]), (p + "norm1.bias", [D]), (p + "norm2.weight", [D]), (p + "norm2.bias", [D]),
               (p + "linear1.weight", [FF, D]), (p + "linear1.bias", [FF]),
               (p + "linear2.weight", [D, FF]), (p + "linear2.bias", [D])]
TINY_W = safetensors([(n, "F32", s, f32(numel(s))) for n, s in tiny_w], {"format": "pt"})

CNN = """kiln: 1
name: tiny_cnn
weights: tiny_cnn.safetensors
inputs:
  image: {dtype: f32, shape: [batch, 3, h, w]}
outputs: [logits]
nodes:
  - {op: conv2d, in: [image], weights: conv1, stride: [2, 2], padding: [1, 1], out: c}
  - {op: batch_norm, in: [c], weights: bn1, out: b}
  - {op: relu, in: [b], out: r}
  - {op: max_pool, in: [r], kernel: [3, 3], stride: [2, 2], padding: [1, 1], out: p}
  - {op: conv2d, in: [p], weights: conv2, padding: [1, 1], groups: 4, out: c2}
  - {op: add, in: [c2, p], out: s}
  - {op: global_avg_pool, in: [s], out: g}
  - {op: flatten, in: [g], out: f}
  - {op: linear, in: [f], weights: fc, out: logits}
"""
cnn_w = [("conv1.weight", [4, 3, 3, 3]), ("bn1.weight", [4]), ("bn1.bias", [4]), ("bn1.running_mean", [4]),
         ("bn1.running_var", [4]), ("conv2.weight", [4, 1, 3, 3]), ("conv2.bias", [4]), ("fc.weight", [5, 4]),
         ("fc.bias", [5])]
CNN_W = safetensors([(n, "F32", s, f32(numel(s)) if "var" not in n else struct.pack("<4f", 1, 2, 3, 4))
                     for n, s in cnn_w], {"format": "pt"})

if __name__ == "__main__":
    os.makedirs(os.path.join(ROOT, "fuzz", "models"), exist_ok=True)
    for name, text, w in (("tiny", TINY, TINY_W), ("tiny_cnn", CNN, CNN_W)):
        open(os.path.join(ROOT, "fuzz", "models", name + ".yaml"), "w").write(text)
        open(os.path.join(ROOT, "fuzz", "models", name + ".safetensors"), "wb").write(w)

    # fuzz_yaml: every model file of examples/ and tests/fixtures (not seq2seq), the tiny models, and the
    # model texts inside the YAML error tests.
    seq2seq = set(glob.glob(os.path.join(ROOT, "examples/date_translation/*.yaml")))
    for path in sorted(glob.glob(os.path.join(ROOT, "examples/*/*.yaml")) + glob.glob(os.path.join(ROOT, "tests/fixtures/**/*.yaml"), recursive=True)):
        if path not in seq2seq:
            put("fuzz_yaml", open(path).read())
    for text in (TINY, CNN):
        put("fuzz_yaml", text.replace("tiny.safetensors", "weights.safetensors").replace("tiny_cnn.safetensors", "resnet_tiny.safetensors"))
    raw = re.compile(r'R"\((.*?)\)"', re.S)
    for src in ["tests/test_errors_yaml.cpp", "tests/test_errors_cnn.cpp", "tests/test_errors_weights.cpp",
                "tests/test_graph.cpp", "tests/test_passes.cpp", "tests/test_pattern_fusions.cpp",
                "tests/test_layouts.cpp", "tests/test_cnn_passes.cpp", "tests/test_errors_runtime.cpp"]:
        p = os.path.join(ROOT, src)
        if os.path.exists(p):
            for m in raw.findall(open(p).read()):
                if "kiln:" in m or "nodes:" in m:
                    put("fuzz_yaml", m)

    # fuzz_seq2seq: the date_translation models and the seq2seq error tests' texts.
    for path in sorted(seq2seq):
        put("fuzz_seq2seq", open(path).read())
    for src in ["tests/test_errors_seq2seq.cpp", "tests/test_generate.cpp", "tests/test_generate_carry.cpp"]:
        p = os.path.join(ROOT, src)
        if os.path.exists(p):
            for m in raw.findall(open(p).read()):
                if "encoder" in m:
                    put("fuzz_seq2seq", m)

    # fuzz_c_api: YAML + "\n#safetensors\n" + weights; and the d64 fixture model (default weights).
    put("fuzz_c_api", TINY.encode() + b"\n#safetensors\n" + TINY_W)
    put("fuzz_c_api", CNN.encode() + b"\n#safetensors\n" + CNN_W)
    put("fuzz_c_api", open(os.path.join(ROOT, "tests/fixtures/classifier_d64_l2/model.yaml")).read())
    put("fuzz_c_api", "kiln: 1\nname: relu\ninputs:\n  x: {dtype: f32, shape: [n, 4]}\noutputs: [y]\nnodes:\n  - {op: relu, in: [x], out: y}\n")

    # fuzz_safetensors: the tiny weights, every dtype, scalars, empty tensors, metadata.
    put("fuzz_safetensors", TINY_W)
    put("fuzz_safetensors", CNN_W)
    put("fuzz_safetensors", safetensors([]))
    put("fuzz_safetensors", safetensors([("a", "F32", [], f32(1)), ("b", "F32", [0, 3], b""), ("c", "I64", [2], struct.pack("<2q", 1, -1))]))
    sizes = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I8": 1, "U8": 1, "BOOL": 1}
    put("fuzz_safetensors", safetensors([("t_" + k, k, [2, 3], bytes(range(6 * v))) for k, v in sizes.items()],
                                        {"format": "pt", "note": "all dtypes"}))

    # fuzz_npy: the small arrays of examples/ and tests/fixtures, and hand-made ones of each dtype/version.
    for path in sorted(glob.glob(os.path.join(ROOT, "examples/*/*.npy")) + glob.glob(os.path.join(ROOT, "tests/fixtures/**/*.npy"), recursive=True)):
        if os.path.getsize(path) <= 1024:
            put("fuzz_npy", open(path, "rb").read())
    for descr, size in (("<f4", 4), ("<f8", 8), ("<i8", 8), ("<i4", 4), ("|i1", 1), ("|u1", 1), ("|b1", 1), ("<f2", 2)):
        put("fuzz_npy", npy(descr, [2, 3], bytes(range(6 * size))))
    put("fuzz_npy", npy("<f4", [], f32(1)))
    put("fuzz_npy", npy("<f4", [0], b""))
    put("fuzz_npy", npy("<f4", [3, 2], f32(6), fortran=True))
    put("fuzz_npy", npy("<f4", [4], f32(4), version=2))
    put("fuzz_npy", npy("<i8", [1, 2, 1, 2], bytes(32), version=3))

    # fuzz_onnx: the ONNX fixtures under 32 KB (hand-made models, the onnx.helper LSTM/GRU nodes, torch exports).
    for path in sorted(glob.glob(os.path.join(ROOT, "tests/fixtures/**/*.onnx"), recursive=True)):
        if os.path.getsize(path) <= 32 * 1024:
            put("fuzz_onnx", open(path, "rb").read())
