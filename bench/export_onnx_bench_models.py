#!/usr/bin/env python3
"""Write the Transformer classifiers of bench/bench_classifier.py, and a BERT-base-sized one, as twins:
a Kiln YAML model + safetensors and the same weights exported with torch.onnx.export (opset 14, dynamic
batch and seq), so that bench/bench_onnx.py can time Kiln on the .onnx against ONNX Runtime on the same
file, and Kiln on the .onnx against Kiln on the YAML model (issue 15: within 5%).

    /usr/bin/python3 bench/export_onnx_bench_models.py [--out DIR] [--models a,b,c]

Models (the seed classifier of tools/reference/classifier.py: embedding, post-norm ReLU encoder layers,
mean pooling, Linear head, softmax; output `probs`):
  a  d128, 2 layers, 8 heads, ff 512, vocab 1000: the weights of examples/transformer_classifier
  b  d512, 6 layers, 8 heads, ff 2048, vocab 10000, seed 5120 (bench_classifier.py's model b)
  c  d768, 12 layers, 12 heads, ff 3072, vocab 30522, seed 7680: BERT-base's size (random weights)
Each goes to DIR/NAME/{model.yaml, weights.safetensors, model.onnx} (DIR default /tmp/kiln-onnx-bench);
files already there for the same config are kept.
"""

import argparse
import json
import os
import sys

sys.dont_write_bytecode = True
import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
import classifier  # noqa: E402
import safetensors_io  # noqa: E402

MODELS = {
    "a": dict(name="classifier_d128_l2", vocab=1000, d_model=128, num_layers=2, dim_ff=512, heads=8, seed=0,
              weights=os.path.join(ROOT, "examples", "transformer_classifier", "transformer_classifier.safetensors")),
    "b": dict(name="classifier_d512_l6", vocab=10000, d_model=512, num_layers=6, dim_ff=2048, heads=8, seed=5120),
    "c": dict(name="encoder_d768_l12", vocab=30522, d_model=768, num_layers=12, dim_ff=3072, heads=12, seed=7680),
}


def write(cfg, out_dir):
    folder = os.path.join(out_dir, cfg["name"])
    stamp = {k: cfg[k] for k in ("vocab", "d_model", "num_layers", "dim_ff", "heads", "seed")}
    paths = {k: os.path.join(folder, f) for k, f in
             (("yaml", "model.yaml"), ("weights", "weights.safetensors"), ("onnx", "model.onnx"))}
    try:
        with open(os.path.join(folder, "config.json")) as f:
            if json.load(f) == stamp and all(os.path.isfile(p) for p in paths.values()):
                return paths
    except (OSError, ValueError):
        pass
    os.makedirs(folder, exist_ok=True)
    model = classifier.build_model(cfg["seed"], cfg["vocab"], cfg["d_model"], cfg["num_layers"], cfg["dim_ff"], 4,
                                   nhead=cfg["heads"])
    if "weights" in cfg:
        tensors, _ = safetensors_io.load_file(cfg["weights"])
        model.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in tensors.items()})
    else:
        # nn.TransformerEncoder deep-copies one layer, so every layer starts with the same weights, and
        # torch.onnx.export then stores them once (it deduplicates equal initializers): the .onnx would read
        # one layer's weights N times while the YAML model reads N copies. Perturb each tensor so that the
        # layers differ, as in a trained model.
        gen = torch.Generator().manual_seed(cfg["seed"])
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.02 * torch.randn(p.shape, generator=gen))
    model.eval()
    safetensors_io.save_file(classifier.state_dict_numpy(model), paths["weights"])
    with open(paths["yaml"], "w", encoding="utf-8") as f:
        f.write(classifier.model_yaml("%s (bench/export_onnx_bench_models.py)" % cfg["name"], "weights.safetensors",
                                      ["probs"], cfg["num_layers"], heads=cfg["heads"]))

    class ProbsOnly(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, tokens):
            return self.m(tokens)[1]

    dummy = torch.zeros((2, 16), dtype=torch.int64)
    # With gradients enabled torch does not take its fused encoder fast path, which has no ONNX export.
    torch.onnx.export(ProbsOnly(model), (dummy,), paths["onnx"], opset_version=14, input_names=["tokens"],
                      output_names=["probs"], dynamic_axes={"tokens": {0: "batch", 1: "seq"}, "probs": {0: "batch"}},
                      do_constant_folding=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(stamp, f)
    return paths


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/kiln-onnx-bench")
    ap.add_argument("--models", default="a,b,c")
    args = ap.parse_args()
    for key in args.models.split(","):
        paths = write(MODELS[key], args.out)
        print("%s: %s" % (key, " ".join(paths[k] for k in ("yaml", "onnx"))))


if __name__ == "__main__":
    main()
