#!/usr/bin/env python3
"""Decomposed Transformer-encoder classifier: the fixture for Kiln's pattern-fusion passes.

Purpose
-------
tests/fixtures/decomposed_d64/ holds a Transformer-encoder classifier whose YAML spells
everything out op by op: there is no `attention`, `layer_norm` or `gelu` op in it.

  * attention is linear q/k/v projections, reshape + transpose into heads, matmul,
    a multiply by the scalar 1/sqrt(head_dim), softmax, matmul, transpose + reshape back,
    and the output linear;
  * LayerNorm is reduce_mean, sub, pow 2, reduce_mean, add eps, sqrt, div, mul weight,
    add bias (biased variance, eps 1e-5);
  * GELU is the exact erf form 0.5 * h * (1 + erf(h / sqrt(2))).

Kiln run at -O0 executes the graph as written; at -O2 the pattern-fusion passes should
recognise these sub-graphs and replace them by fused kernels. Both runs must match the
PyTorch outputs stored next to the model (logits/probs for each tokens file), which
exercises the fusion passes end to end: a wrong match, a wrong operand order or a wrong
constant shows up as an output mismatch.

The PyTorch model (DecomposedClassifier) is written the same way as the YAML (separate
q/k/v projections, `* (1/sqrt(dh))`), but with nn.LayerNorm and the built-in exact GELU,
i.e. the fused forms. Scalar constants appear in the YAML as numbers inside `in:` lists
(`{op: mul, in: [s, 0.35355339059327373], out: ss}`), which Kiln reads as f32 constants.

Files written (deterministic: fixed torch / numpy seeds, one CPU thread):

  tests/fixtures/decomposed_d64/
      model.yaml                 Kiln YAML model (outputs: logits, probs)
      weights.safetensors        state_dict, names = PyTorch keys (layers.0.q_proj.weight, ...)
      tokens_b{B}_s{S}.npy       int64 [B, S] random ids in [0, vocab)
      logits_b{B}_s{S}.npy       float32 [B, 4] PyTorch logits
      probs_b{B}_s{S}.npy        float32 [B, 4] PyTorch softmax probabilities
    for (B, S) in (1, 8), (2, 13)

Self-checks (the script fails if one does not hold):
  * the safetensors file reads back bit-identical, with exactly the expected key set;
  * a float64 numpy interpreter that executes the generated model.yaml literally, op by
    op (decomposed attention, LayerNorm and GELU, scalar literals included), using every
    weight in the file, matches PyTorch float32: max |probs diff| < 1e-5, logits < 1e-4;
    and matches the same PyTorch model run in float64 to < 1e-9 (the decomposition is
    exact, not merely close).

Usage (from the repository root):

    /usr/bin/python3 tools/reference/make_fixtures.py                     # all fixtures
    /usr/bin/python3 tools/reference/make_fixtures.py --decomposed-only   # just this one
    /usr/bin/python3 tools/reference/decomposed.py [--root DIR] [--check-determinism]
"""

import argparse
import copy
import hashlib
import math
import os
import sys
import tempfile

import numpy as np
import torch
import yaml
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import safetensors_io  # noqa: E402

DIRNAME = "decomposed_d64"
SEED = 4242
VOCAB = 1000
D_MODEL = 64
NHEAD = 8
NUM_LAYERS = 2
DIM_FF = 256
NUM_CLASSES = 4
SHAPES = [(1, 8), (2, 13)]

LAYER_NORM_EPS = 1e-5
PROBS_TOL = 1e-5
LOGITS_TOL = 1e-4
FLOAT64_TOL = 1e-9


# ---------------------------------------------------------------------------
# PyTorch model
# ---------------------------------------------------------------------------

class DecomposedBlock(nn.Module):
    """Post-norm encoder layer with separate q/k/v projections and an exact-GELU FFN."""

    def __init__(self, d_model, nhead, dim_ff):
        super().__init__()
        self.nhead = nhead
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.norm1 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.fc1 = nn.Linear(d_model, dim_ff)
        self.fc2 = nn.Linear(dim_ff, d_model)
        self.norm2 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)

    def forward(self, x):
        b, s, e = x.shape
        h = self.nhead
        dh = e // h

        def heads(t):  # [B, S, E] -> [B, H, S, dh]; head i owns features [i*dh, (i+1)*dh)
            return t.reshape(b, s, h, dh).transpose(1, 2)

        q = heads(self.q_proj(x))
        k = heads(self.k_proj(x))
        v = heads(self.v_proj(x))
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(dh))
        p = torch.softmax(scores, dim=-1)
        ctx = (p @ v).transpose(1, 2).reshape(b, s, e)
        a = self.out_proj(ctx)
        x = self.norm1(x + a)
        f = self.fc2(nn.functional.gelu(self.fc1(x)))  # exact (erf) GELU
        return self.norm2(x + f)


class DecomposedClassifier(nn.Module):
    def __init__(self, vocab=VOCAB, d_model=D_MODEL, nhead=NHEAD, num_layers=NUM_LAYERS,
                 dim_ff=DIM_FF, num_classes=NUM_CLASSES):
        super().__init__()
        self.embedding = nn.Embedding(vocab, d_model)
        self.layers = nn.ModuleList(
            [DecomposedBlock(d_model, nhead, dim_ff) for _ in range(num_layers)])
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, tokens):
        x = self.embedding(tokens)
        for layer in self.layers:
            x = layer(x)
        pooled = x.mean(dim=1)
        logits = self.head(pooled)
        return logits, torch.softmax(logits, dim=-1)


def build_model(seed=SEED):
    """Seeded construction, eval mode, float32.

    After the default initialisation head.weight is multiplied by 4 (visibly non-uniform
    probabilities), and every LayerNorm gets weight = 1 + 0.1*randn, bias = 0.1*randn from a
    generator seeded with `seed` (so a fusion that dropped the affine part would be caught).
    """
    torch.manual_seed(seed)
    model = DecomposedClassifier().float().eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.head.weight.mul_(4.0)
        for layer in model.layers:
            for norm in (layer.norm1, layer.norm2):
                d = norm.weight.shape[0]
                norm.weight.copy_(1.0 + 0.1 * torch.randn(d, generator=gen))
                norm.bias.copy_(0.1 * torch.randn(d, generator=gen))
    return model


def run_torch(model, tokens):
    with torch.no_grad():
        logits, probs = model(torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.int64)))
    return logits.numpy(), probs.numpy()


def state_dict_numpy(model):
    return {k: v.detach().cpu().contiguous().numpy() for k, v in model.state_dict().items()}


def expected_keys(num_layers=NUM_LAYERS):
    keys = {"embedding.weight", "head.weight", "head.bias"}
    for i in range(num_layers):
        for mod in ("q_proj", "k_proj", "v_proj", "out_proj", "norm1", "fc1", "fc2", "norm2"):
            keys.add("layers.%d.%s.weight" % (i, mod))
            keys.add("layers.%d.%s.bias" % (i, mod))
    return keys


# ---------------------------------------------------------------------------
# Kiln YAML
# ---------------------------------------------------------------------------

def describe():
    return ("vocab %d, d_model %d, %d layers, %d heads, dim_ff %d, %d classes, seed %d"
            % (VOCAB, D_MODEL, NUM_LAYERS, NHEAD, DIM_FF, NUM_CLASSES, SEED))


def _layer_norm_nodes(src, norm, out, names):
    mu, d, d2, var, ve, sd, nrm, sc = names
    return [
        '{op: reduce_mean, in: [%s], axes: [-1], keepdims: true, out: %s}' % (src, mu),
        '{op: sub, in: [%s, %s], out: %s}' % (src, mu, d),
        '{op: pow, in: [%s], exponent: 2.0, out: %s}' % (d, d2),
        '{op: reduce_mean, in: [%s], axes: [-1], keepdims: true, out: %s}' % (d2, var),
        '{op: add, in: [%s, 1.0e-5], out: %s}' % (var, ve),
        '{op: sqrt, in: [%s], out: %s}' % (ve, sd),
        '{op: div, in: [%s, %s], out: %s}' % (d, sd, nrm),
        '{op: mul, in: [%s, "{p}.%s.weight"], out: %s}' % (nrm, norm, sc),
        '{op: add, in: [%s, "{p}.%s.bias"], out: %s}' % (sc, norm, out),
    ]


def model_yaml():
    """Text of tests/fixtures/decomposed_d64/model.yaml."""
    dh = D_MODEL // NHEAD
    scale = 1.0 / math.sqrt(dh)
    sqrt2 = math.sqrt(2.0)
    block = [
        "# self-attention: %d heads of %d, scores scaled by 1/sqrt(%d)" % (NHEAD, dh, dh),
        '{op: linear, in: [x], weights: "{p}.q_proj", out: q}',
        '{op: linear, in: [x], weights: "{p}.k_proj", out: k}',
        '{op: linear, in: [x], weights: "{p}.v_proj", out: v}',
        '{op: reshape, in: [q], shape: [0, 0, %d, -1], out: q4}' % NHEAD,
        '{op: transpose, in: [q4], perm: [0, 2, 1, 3], out: qh}',
        '{op: reshape, in: [k], shape: [0, 0, %d, -1], out: k4}' % NHEAD,
        '{op: transpose, in: [k4], perm: [0, 2, 3, 1], out: kt}',
        '{op: reshape, in: [v], shape: [0, 0, %d, -1], out: v4}' % NHEAD,
        '{op: transpose, in: [v4], perm: [0, 2, 1, 3], out: vh}',
        '{op: matmul, in: [qh, kt], out: s}',
        '{op: mul, in: [s, %r], out: ss}' % scale,
        '{op: softmax, in: [ss], axis: -1, out: pr}',
        '{op: matmul, in: [pr, vh], out: c}',
        '{op: transpose, in: [c], perm: [0, 2, 1, 3], out: ct}',
        '{op: reshape, in: [ct], shape: [0, 0, %d], out: cm}' % D_MODEL,
        '{op: linear, in: [cm], weights: "{p}.out_proj", out: a}',
        '{op: add, in: [x, a], out: r1}',
        "# norm1: LayerNorm written out (biased variance, eps 1e-5)",
    ]
    block += _layer_norm_nodes("r1", "norm1", "n1",
                               ["mu", "d", "d2", "var", "ve", "sd", "nrm", "sc"])
    block += [
        "# feed-forward with exact GELU written out: 0.5 * h * (1 + erf(h / sqrt(2)))",
        '{op: linear, in: [n1], weights: "{p}.fc1", out: h}',
        '{op: div, in: [h, %r], out: hs}' % sqrt2,
        '{op: erf, in: [hs], out: he}',
        '{op: add, in: [he, 1.0], out: h1}',
        '{op: mul, in: [h, h1], out: h2}',
        '{op: mul, in: [h2, 0.5], out: g}',
        '{op: linear, in: [g], weights: "{p}.fc2", out: f}',
        '{op: add, in: [n1, f], out: r2}',
        "# norm2: LayerNorm written out",
    ]
    block += _layer_norm_nodes("r2", "norm2", "y",
                               ["mu2", "dd", "dd2", "var2", "ve2", "sd2", "nrm2", "sc2"])

    lines = [
        "# Generated by tools/reference/decomposed.py (run by tools/reference/make_fixtures.py):",
        "# decomposed Transformer-encoder classifier, %s." % describe(),
        "# Attention, LayerNorm and GELU are written out op by op (no attention, layer_norm or gelu",
        "# ops): -O0 runs them as written, -O2 fuses them; both must match the PyTorch outputs.",
        "kiln: 1",
        "name: decomposed_classifier",
        "weights: weights.safetensors",
        "inputs:",
        "  tokens: {dtype: i64, shape: [batch, seq]}",
        "outputs: [logits, probs]",
        "blocks:",
        "  encoder_layer:",
        "    args: [x]",
        "    params: [p]",
        "    returns: [y]",
        "    nodes:",
    ]
    for item in block:
        lines.append("      " + item if item.startswith("#") else "      - " + item)
    lines += [
        "nodes:",
        "  - {op: embedding, in: [tokens], weights: embedding, out: x0}",
        '  - {block: encoder_layer, repeat: %d, in: [x0], p: "layers.{i}", out: x}' % NUM_LAYERS,
        "  - {op: reduce_mean, in: [x], axes: [1], out: pooled}",
        "  - {op: linear, in: [pooled], weights: head, out: logits}",
        "  - {op: softmax, in: [logits], axis: -1, out: probs}",
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# float64 numpy interpreter for the YAML (literal, op by op)
# ---------------------------------------------------------------------------

_erf = np.vectorize(math.erf, otypes=[np.float64])

# op -> (allowed attributes, weight suffixes when `weights:` is given)
_OPS = {
    "embedding": ((), ("weight",)),
    "linear": ((), ("weight", "bias")),
    "matmul": ((), None),
    "add": ((), None), "sub": ((), None), "mul": ((), None), "div": ((), None),
    "relu": ((), None), "tanh": ((), None), "sigmoid": ((), None), "exp": ((), None),
    "sqrt": ((), None), "erf": ((), None),
    "pow": (("exponent",), None),
    "softmax": (("axis",), None),
    "reduce_mean": (("axes", "keepdims"), None),
    "reduce_sum": (("axes", "keepdims"), None),
    "transpose": (("perm",), None),
    "reshape": (("shape",), None),
}


def _softmax(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True)


def _reshape(x, shape):
    dims = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(dims)  # numpy infers the single -1


def _apply(op, ins, attrs):
    if op == "embedding":
        return ins[1][ins[0]]
    if op == "linear":
        y = ins[0] @ ins[1].T
        return y + ins[2] if len(ins) > 2 else y
    if op == "matmul":
        return np.matmul(ins[0], ins[1])
    if op in ("add", "sub", "mul", "div"):
        fn = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}[op]
        return fn(ins[0], ins[1])
    if op == "relu":
        return np.maximum(ins[0], 0.0)
    if op == "tanh":
        return np.tanh(ins[0])
    if op == "sigmoid":
        return 1.0 / (1.0 + np.exp(-ins[0]))
    if op == "exp":
        return np.exp(ins[0])
    if op == "sqrt":
        return np.sqrt(ins[0])
    if op == "erf":
        return _erf(ins[0])
    if op == "pow":
        return np.power(ins[0], float(attrs["exponent"]))
    if op == "softmax":
        return _softmax(ins[0], int(attrs.get("axis", -1)))
    if op in ("reduce_mean", "reduce_sum"):
        fn = np.mean if op == "reduce_mean" else np.sum
        return fn(ins[0], axis=tuple(attrs["axes"]), keepdims=bool(attrs.get("keepdims", False)))
    if op == "transpose":
        return np.transpose(ins[0], attrs["perm"])
    if op == "reshape":
        return _reshape(ins[0], attrs["shape"])
    raise AssertionError("op %r not supported by the reference interpreter" % op)


def _subst(text, params):
    for k, v in params.items():
        text = text.replace("{%s}" % k, v)
    return text


class YamlInterpreter:
    """Executes a Kiln YAML model in float64 numpy, node by node, as written."""

    def __init__(self, text, weights):
        self.doc = yaml.safe_load(text)
        self.weights = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
        self.used = set()
        self.ops_seen = set()

    def _value(self, env, name, params):
        if isinstance(name, bool):
            raise AssertionError("boolean in an in: list")
        if isinstance(name, (int, float)):
            return np.float64(name)  # scalar literal
        name = _subst(name, params)
        if name in env:
            return env[name]
        if name in self.weights:
            self.used.add(name)
            return self.weights[name]
        raise AssertionError("undefined value %r" % name)

    def _run_nodes(self, nodes, env, params):
        for node in nodes:
            node = dict(node)
            outs = node.pop("out")
            outs = [outs] if isinstance(outs, str) else list(outs)
            outs = [_subst(o, params) for o in outs]
            node.pop("name", None)
            if "block" in node:
                block = self.doc["blocks"][node.pop("block")]
                repeat = int(node.pop("repeat", 1))
                vals = [self._value(env, n, params) for n in node.pop("in")]
                call_params = node  # the rest are string params
                for i in range(repeat):
                    inner = {k: _subst(str(v), {"i": str(i)}) for k, v in call_params.items()}
                    inner["i"] = str(i)
                    assert set(call_params) == set(block.get("params", [])), call_params
                    local = dict(zip(block["args"], vals))
                    assert len(local) == len(vals)
                    self._run_nodes(block["nodes"], local, inner)
                    vals = [local[r] for r in block["returns"]]
                assert len(vals) == len(outs)
                env.update(zip(outs, vals))
                continue
            op = node.pop("op")
            self.ops_seen.add(op)
            allowed, suffixes = _OPS[op]
            ins = [self._value(env, n, params) for n in node.pop("in")]
            prefix = node.pop("weights", None)
            if prefix is not None:
                prefix = _subst(prefix, params)
                for suf in suffixes:
                    full = prefix + "." + suf
                    if full in self.weights:
                        self.used.add(full)
                        ins.append(self.weights[full])
            extra = set(node) - set(allowed)
            assert not extra, "%s: unknown attributes %s" % (op, sorted(extra))
            result = _apply(op, ins, node)
            assert len(outs) == 1
            assert outs[0] not in env, "value %r defined twice" % outs[0]
            env[outs[0]] = result

    def run(self, **inputs):
        env = dict(inputs)
        self._run_nodes(self.doc["nodes"], env, {})
        return [env[o] for o in self.doc["outputs"]]


# ---------------------------------------------------------------------------
# fixture
# ---------------------------------------------------------------------------

def check_weights(full_path, state_dict):
    keys = set(state_dict)
    want = expected_keys()
    if keys != want:
        raise AssertionError("state_dict keys differ: extra %s, missing %s"
                             % (sorted(keys - want), sorted(want - keys)))
    loaded, metadata = safetensors_io.load_file(full_path)
    assert metadata == {"format": "pt"}, metadata
    assert set(loaded) == keys
    for name, ref in state_dict.items():
        got = loaded[name]
        assert got.dtype == np.float32 and got.shape == ref.shape, name
        assert got.tobytes() == ref.tobytes(), "%s: bytes differ after round trip" % name


def make_fixture(w, worst=None):
    """Write tests/fixtures/decomposed_d64 through `w` (make_fixtures.Writer); run the checks.

    Returns (max logits diff, max probs diff) of the YAML interpreter against PyTorch float32,
    and folds them into `worst` ([logits, probs]) when given.
    """
    rel_dir = os.path.join("tests", "fixtures", DIRNAME)
    print("%s  (decomposed attention / LayerNorm / GELU; %s)" % (rel_dir, describe()))
    model = build_model()
    model64 = copy.deepcopy(model).double()
    sd = state_dict_numpy(model)
    text = model_yaml()
    w.text(os.path.join(rel_dir, "model.yaml"), text)
    st_rel = os.path.join(rel_dir, "weights.safetensors")
    w.safetensors(st_rel, sd)
    check_weights(os.path.join(w.root, st_rel), sd)

    rng = np.random.RandomState(SEED)
    max_dl = max_dp = 0.0
    for batch, seq in SHAPES:
        tag = "b%d_s%d" % (batch, seq)
        tokens = rng.randint(0, VOCAB, size=(batch, seq)).astype(np.int64)
        logits, probs = run_torch(model, tokens)
        logits64, probs64 = run_torch(model64, tokens)
        interp = YamlInterpreter(text, sd)
        ref_logits, ref_probs = interp.run(tokens=tokens)
        assert interp.used == set(sd), "weights not used by the YAML: %s" % sorted(set(sd) - interp.used)
        forbidden = interp.ops_seen & {"attention", "layer_norm", "gelu"}
        assert not forbidden, "fused ops in the decomposed YAML: %s" % sorted(forbidden)
        assert logits.shape == (batch, NUM_CLASSES) and probs.shape == (batch, NUM_CLASSES)
        assert logits.dtype == np.float32 and probs.dtype == np.float32
        dl = float(np.max(np.abs(ref_logits - logits.astype(np.float64))))
        dp = float(np.max(np.abs(ref_probs - probs.astype(np.float64))))
        d64 = float(max(np.max(np.abs(ref_logits - logits64)), np.max(np.abs(ref_probs - probs64))))
        print("  %-34s max|logits diff| = %.3e   max|probs diff| = %.3e   (vs torch f64: %.1e)"
              % (tag, dl, dp, d64))
        assert dp < PROBS_TOL, "%s: probs differ from the YAML interpreter by %g" % (tag, dp)
        assert dl < LOGITS_TOL, "%s: logits differ from the YAML interpreter by %g" % (tag, dl)
        assert d64 < FLOAT64_TOL, "%s: YAML interpreter differs from torch float64 by %g" % (tag, d64)
        max_dl, max_dp = max(max_dl, dl), max(max_dp, dp)
        w.npy(os.path.join(rel_dir, "tokens_%s.npy" % tag), tokens)
        w.npy(os.path.join(rel_dir, "logits_%s.npy" % tag), logits)
        w.npy(os.path.join(rel_dir, "probs_%s.npy" % tag), probs)
    if worst is not None:
        worst[0] = max(worst[0], max_dl)
        worst[1] = max(worst[1], max_dp)
    return max_dl, max_dp


def _digests(root):
    base = os.path.join(root, "tests", "fixtures", DIRNAME)
    out = {}
    for name in sorted(os.listdir(base)):
        with open(os.path.join(base, name), "rb") as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=os.path.abspath(
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")),
        help="repository root to write into (default: %(default)s)")
    parser.add_argument("--check-determinism", action="store_true",
                        help="also generate twice into temporary folders and compare sha256")
    args = parser.parse_args(argv)

    import make_fixtures  # the Writer; imported here to keep this module importable on its own

    torch.set_num_threads(1)
    w = make_fixtures.Writer(os.path.abspath(args.root))
    make_fixture(w)
    for rel, size in w.written:
        print("  %-50s %10d" % (rel, size))
    if args.check_determinism:
        runs = []
        for _ in range(2):
            with tempfile.TemporaryDirectory() as tmp:
                make_fixture(make_fixtures.Writer(tmp))
                runs.append(_digests(tmp))
        here = _digests(os.path.abspath(args.root))
        assert runs[0] == runs[1] == here, "fixture is not deterministic"
        for name, digest in here.items():
            print("  sha256 %s  %s" % (digest, name))
        print("deterministic: 3 runs, identical sha256 for all %d files" % len(here))
    return 0


if __name__ == "__main__":
    sys.exit(main())
