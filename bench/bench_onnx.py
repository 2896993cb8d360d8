#!/usr/bin/env python3
"""Benchmark Kiln against ONNX Runtime on the same .onnx files (ONNX Runtime is a bench-only peer).

For each model, each set of dims and each thread count T, both engines run the same file on the same
inputs, each in its own process, taking turns in --rounds rounds (Kiln, ORT, then ORT, Kiln, ...) of
--runs/--rounds timed runs after --warmup untimed ones; each engine's figure is the median of its round
medians, so that a busy spell of the shared machine lands on both alike (bench/bench_classifier.py's scheme).

  kiln ms    Kiln timed in process through its Python module (docs/python.md), in a process of its own:
             bench/kiln_runner.py (OMP_NUM_THREADS=T) loads kiln.Model.load(MODEL, opt_level=2),
             opens session(threads=T), runs W warm-up calls, then times R calls of
             session.run(inputs, outputs=...) (preallocated outputs, the loop `kilnc run --repeat`
             times; --new-outputs: session.run(inputs)) each with time.perf_counter; the median
             (element R//2 of the sorted times, kilnc's definition). The module adds about 1 µs
             per call (bench/bench_python_overhead.py)
             --kiln kilnc: the old way, `kilnc --threads T run MODEL -O2 --input ... --repeat R
             --warmup W` (--kilnc PATH: another build's kilnc) and the median it prints;
             --kiln module,kilnc: both, kilnc as one more engine in the rotation (its own columns)
  ort ms     bench/ort_runner.js under Node: onnxruntime-node's InferenceSession (intraOpNumThreads T,
             interOpNumThreads 1, sequential, graphOptimizationLevel 'all'), the median of R session.run
             calls timed with process.hrtime after W warm-up calls
  kiln/ort   kiln ms / ort ms (< 1: Kiln is faster)
  yaml twin  with MODEL.onnx,...,yaml=PATH.yaml: Kiln (timed the first --kiln way) on a YAML model of the
             same weights (bench/export_onnx_bench_models.py writes such twins) as one more engine in the
             rotation, and .onnx/YAML = kiln ms on the .onnx / kiln ms on the YAML model (issue 15:
             within 5%)
  kilnc ms   with --kiln module,kilnc: kilnc's median, and module/kilnc = kiln ms / kilnc ms
  max rel Δ  over every output: max|kiln - ort| / max(max|ort|, 1e-6) (the last round's outputs); the row is
             marked FAIL above 1e-4 (kilnc's outputs, with --kiln module,kilnc, too)

Inputs: random with --seed (floats standard normal, integers uniform in [0, --int-high)), shaped by the
model's graph inputs with each symbolic dim given by the model argument (MODEL.onnx,batch=2,seq=16) or by
--shape NAME=DIM; written once to .npy files that both engines read.

Installing the peer (never a dependency of Kiln: only this script and bench/ort_runner.js use it; Node.js
>= 16 and npm must be on PATH):

  cd /work && mkdir -p ortpeer && cd ortpeer && npm install --ignore-scripts onnxruntime-node

(the npm package ships libonnxruntime.so for linux-x64; --ignore-scripts skips its optional CUDA download).
--ort-dir points at that folder (default: ../ortpeer next to the repository, or $KILN_ORT_DIR).

Examples (from the repository root, after building Kiln and its Python module into build/):
  /usr/bin/python3 bench/bench_onnx.py tests/fixtures/onnx_torch/resnet_tiny/model.onnx,batch=1 \\
      tests/fixtures/onnx_torch/resnet_tiny/model.onnx,batch=8 --threads 1,2
  /usr/bin/python3 bench/bench_onnx.py model.onnx --shape batch=1 --shape seq=128 --threads 2 --runs 60
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnx

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
TIME_RE = re.compile(r"time per inference: median ([0-9.]+) ms, min ([0-9.]+) ms over (\d+) runs \((\d+) threads\)")
NP_TYPES = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.BOOL: np.bool_,
}
REL_TOL = 1e-4


def cpu_description():
    model, flags, family = platform.processor() or "unknown CPU", set(), ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                model = value.strip()
            if key.strip() == "Flags":
                flags = set(value.split())
            if key.strip() in ("CPU family", "Model"):
                family += " %s %s" % (key.strip().lower(), value.strip())
    except OSError:
        pass
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    return "%s%s (%s), %d logical CPUs" % (model, family, " ".join(isa) or "no AVX2", os.cpu_count() or 0)


def parse_model_arg(text, global_shapes):
    parts = text.split(",")
    shapes = dict(global_shapes)
    twin = None
    for p in parts[1:]:
        name, eq, value = p.partition("=")
        if not eq:
            raise SystemExit("model argument %r: expected PATH.onnx,NAME=DIM,...[,yaml=PATH.yaml]" % text)
        if name == "yaml":
            twin = value
        else:
            shapes[name] = int(value)
    return parts[0], shapes, twin


def make_inputs(path, shapes, seed, int_high, folder):
    model = onnx.load(path, load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    rng = np.random.default_rng(seed)
    files, dims_used = {}, {}
    for value in model.graph.input:
        if value.name in inits:
            continue
        tt = value.type.tensor_type
        dtype = NP_TYPES.get(tt.elem_type)
        if dtype is None:
            raise SystemExit("%s: input %s has element type %d, which this script does not generate"
                             % (path, value.name, tt.elem_type))
        dims = []
        for d in tt.shape.dim:
            if d.HasField("dim_value"):
                dims.append(d.dim_value)
            elif d.dim_param in shapes:
                dims.append(shapes[d.dim_param])
                dims_used[d.dim_param] = shapes[d.dim_param]
            else:
                raise SystemExit("%s: input %s has the symbolic dim %r: give it as %s,%s=N or --shape %s=N"
                                 % (path, value.name, d.dim_param, path, d.dim_param, d.dim_param))
        if dtype == np.float32:
            data = rng.standard_normal(dims).astype(np.float32)
        elif dtype == np.bool_:
            data = rng.integers(0, 2, dims).astype(np.bool_)
        else:
            data = rng.integers(0, int_high, dims).astype(dtype)
        f = os.path.join(folder, "in_%s.npy" % re.sub(r"[^A-Za-z0-9_.-]", "_", value.name))
        np.save(f, data)
        files[value.name] = f
    outputs = [o.name for o in model.graph.output]
    return files, outputs, dims_used


def run_kilnc(args, model, inputs, threads, runs, out_dir):
    cmd = [args.kilnc, "--threads", str(threads), "run", model, "-O2", "--repeat", str(runs), "--warmup",
           str(args.warmup), "--print-limit", "0", "--output-dir", out_dir]
    for name, f in inputs.items():
        cmd += ["--input", "%s=%s" % (name, f)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    if p.returncode != 0:
        raise RuntimeError("kilnc failed (exit %d): %s\n%s%s" % (p.returncode, " ".join(cmd), p.stdout[-2000:],
                                                                p.stderr[-2000:]))
    m = TIME_RE.search(p.stdout)
    if not m:
        raise RuntimeError("no timing line in kilnc's output:\n" + p.stdout[-2000:])
    return float(m.group(1))


def run_kiln_module(args, model, inputs, threads, runs, out_dir):
    """Kiln in process through the kiln module, in its own process (bench/kiln_runner.py)."""
    cmd = [sys.executable, os.path.join(REPO_ROOT, "bench", "kiln_runner.py"), "--model", model, "--threads",
           str(threads), "--opt-level", "2", "--warmup", str(args.warmup), "--runs", str(runs), "--output-dir",
           out_dir, "--kiln-python", args.kiln_python] + (["--new-outputs"] if args.new_outputs else [])
    for name, f in inputs.items():
        cmd += ["--input", "%s=%s" % (name, f)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    if p.returncode != 0:
        raise RuntimeError("kiln_runner failed (exit %d): %s\n%s%s" % (p.returncode, " ".join(cmd),
                                                                      p.stdout[-2000:], p.stderr[-2000:]))
    return float(json.loads(p.stdout.strip().splitlines()[-1])["median_ms"])


def run_kiln(args, how, model, inputs, threads, runs, out_dir):
    return (run_kilnc if how == "kilnc" else run_kiln_module)(args, model, inputs, threads, runs, out_dir)


def run_ort(args, model, inputs, threads, runs, out_dir):
    cmd = [args.node, os.path.join(REPO_ROOT, "bench", "ort_runner.js"), "--model", model, "--threads", str(threads),
           "--warmup", str(args.warmup), "--runs", str(runs), "--output-dir", out_dir]
    for name, f in inputs.items():
        cmd += ["--input", "%s=%s" % (name, f)]
    env = dict(os.environ, NODE_PATH=os.path.join(args.ort_dir, "node_modules"), OMP_NUM_THREADS=str(threads))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError("ort_runner failed (exit %d): %s\n%s" % (p.returncode, " ".join(cmd), p.stderr[-2000:]))
    result = json.loads(p.stdout.strip().splitlines()[-1])
    return float(result["median_ms"]), result.get("ort_version", "?")


def max_rel_diff(kiln_dir, ort_dir, outputs):
    worst = 0.0
    for name in outputs:
        a = np.load(os.path.join(kiln_dir, name + ".npy")).astype(np.float64)
        b = np.load(os.path.join(ort_dir, name + ".npy")).astype(np.float64)
        if a.shape != b.shape:
            return float("inf")
        scale = max(float(np.max(np.abs(b))) if b.size else 0.0, 1e-6)
        worst = max(worst, float(np.max(np.abs(a - b))) / scale if a.size else 0.0)
    return worst


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="PATH.onnx[,DIM=N,...]: a model and the sizes of its symbolic dims")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=DIM",
                   help="size of a symbolic dim for every model (a model argument's own sizes win)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts (default: %(default)s)")
    p.add_argument("--runs", type=int, default=60, help="timed runs per engine, split over the rounds (default 60)")
    p.add_argument("--rounds", type=int, default=3, help="rounds in which the engines take turns (default 3)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs per engine call (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--int-high", type=int, default=10, help="integer inputs are drawn from [0, N) (default 10)")
    p.add_argument("--kiln", default="module",
                   help="how Kiln is timed: 'module' (in process through the kiln Python module, in its own "
                        "process: bench/kiln_runner.py), 'kilnc' (kilnc run --repeat, e.g. another build's "
                        "with --kilnc), or 'module,kilnc' (both, in the same rotation) (default: %(default)s)")
    p.add_argument("--kiln-python", default=os.path.join(REPO_ROOT, "build", "python"),
                   help="folder holding the built kiln Python package (default: %(default)s)")
    p.add_argument("--new-outputs", action="store_true",
                   help="time session.run(inputs) (new outputs per call) instead of preallocated outputs")
    p.add_argument("--kilnc", default=os.path.join(REPO_ROOT, "build", "tools", "kilnc"),
                   help="the kilnc binary, for --kiln kilnc (default: %(default)s)")
    p.add_argument("--node", default="node", help="the Node.js binary (default: node on PATH)")
    p.add_argument("--ort-dir", default=os.environ.get("KILN_ORT_DIR", os.path.join(REPO_ROOT, "..", "ortpeer")),
                   help="folder where onnxruntime-node was npm-installed (default: %(default)s)")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = p.parse_args(argv)
    if not os.path.isdir(os.path.join(args.ort_dir, "node_modules", "onnxruntime-node")):
        p.error("onnxruntime-node not found under %s/node_modules: install it as this script's --help says"
                % args.ort_dir)
    ways = args.kiln.split(",")
    if not ways or any(w not in ("module", "kilnc") for w in ways) or len(set(ways)) != len(ways):
        p.error("--kiln: expected 'module', 'kilnc', 'module,kilnc' or 'kilnc,module', got %r" % args.kiln)
    if "kilnc" in ways and not os.access(args.kilnc, os.X_OK):
        p.error("kilnc not found at %s (build Kiln first, or give --kilnc)" % args.kilnc)
    if "module" in ways and not os.path.isfile(os.path.join(args.kiln_python, "kiln", "__init__.py")):
        p.error("the kiln Python module is not built in %s (build Kiln first: cmake -S . -B build && cmake --build "
                "build -j2; or give --kiln-python)" % args.kiln_python)
    main_way, extra_way = ways[0], (ways[1] if len(ways) > 1 else None)
    global_shapes = {}
    for s in args.shape:
        name, _, value = s.partition("=")
        global_shapes[name] = int(value)
    threads = [int(t) for t in args.threads.split(",")]
    per_round = max(1, args.runs // args.rounds)

    print("CPU: " + cpu_description())
    for way in ways:
        if way == "module":
            print("Kiln%s: in process through the kiln module (%s), in its own process (bench/kiln_runner.py); "
                  "%s timed with time.perf_counter" % (
                      " (kiln ms)" if way == main_way else " (module ms)", os.path.relpath(args.kiln_python),
                      "session.run(inputs)" if args.new_outputs else "session.run(inputs, outputs=...)"))
        else:
            print("Kiln%s: %s run --repeat (its own median)" % (" (kiln ms)" if way == main_way else " (kilnc ms)",
                                                                 os.path.relpath(args.kilnc)))
    print("load average before: %.2f %.2f %.2f" % os.getloadavg())
    rows, failed = [], False
    with tempfile.TemporaryDirectory(prefix="bench_onnx_") as tmp:
        for mi, spec in enumerate(args.models):
            path, shapes, twin = parse_model_arg(spec, global_shapes)
            folder = os.path.join(tmp, "m%d" % mi)
            os.makedirs(folder)
            inputs, outputs, dims = make_inputs(path, shapes, args.seed, args.int_high, folder)
            for t in threads:
                kiln_out, ort_out = os.path.join(folder, "kiln_%d" % t), os.path.join(folder, "ort_%d" % t)
                os.makedirs(kiln_out)
                os.makedirs(ort_out)
                kiln_ms, ort_ms, yaml_ms, extra_ms, version, error = [], [], [], [], "?", None
                extra_out = os.path.join(folder, "%s_%d" % (extra_way, t)) if extra_way else None
                engines = ["kiln", "ort"] + (["extra"] if extra_way else []) + (["yaml"] if twin else [])
                try:
                    for r in range(args.rounds):
                        order = engines if r % 2 == 0 else engines[::-1]
                        for engine in order:
                            if engine == "kiln":
                                kiln_ms.append(run_kiln(args, main_way, path, inputs, t, per_round, kiln_out))
                            elif engine == "extra":
                                os.makedirs(extra_out, exist_ok=True)
                                extra_ms.append(run_kiln(args, extra_way, path, inputs, t, per_round, extra_out))
                            elif engine == "yaml":
                                yaml_out = os.path.join(folder, "yaml_%d" % t)
                                os.makedirs(yaml_out, exist_ok=True)
                                yaml_ms.append(run_kiln(args, main_way, twin, inputs, t, per_round, yaml_out))
                            else:
                                ms, version = run_ort(args, path, inputs, t, per_round, ort_out)
                                ort_ms.append(ms)
                except RuntimeError as e:
                    lines = [l for l in str(e).splitlines() if l.strip()]
                    error = lines[-1].strip() if lines else "failed"  # Kiln's error (e.g. the unsupported op)
                row = dict(model=path, dims=dims, threads=t, ort_version=version, kiln=main_way)
                if error:
                    row["error"] = error
                    failed = True
                else:
                    row.update(kiln_ms=float(np.median(kiln_ms)), ort_ms=float(np.median(ort_ms)),
                               kiln_rounds=kiln_ms, ort_rounds=ort_ms,
                               max_rel_diff=max_rel_diff(kiln_out, ort_out, outputs))
                    if twin:
                        row.update(yaml_ms=float(np.median(yaml_ms)), yaml_rounds=yaml_ms,
                                   yaml_rel_diff=max_rel_diff(kiln_out, os.path.join(folder, "yaml_%d" % t), outputs))
                    if extra_way:
                        row.update(extra=extra_way, extra_ms=float(np.median(extra_ms)), extra_rounds=extra_ms,
                                   extra_rel_diff=max_rel_diff(extra_out, ort_out, outputs))
                        failed = failed or row["extra_rel_diff"] > REL_TOL
                    failed = failed or row["max_rel_diff"] > REL_TOL
                rows.append(row)
                print_row(row)
                sys.stdout.flush()

    print()
    extra_head = ("| %s ms | %s | %s max rel Δ " % (extra_way, "module/kilnc" if extra_way == "kilnc" else "kilnc/module",
                                                    extra_way)) if extra_way else ""
    print("| model | dims | threads | kiln ms | ORT ms | kiln/ORT | max rel Δ | kiln YAML twin ms | .onnx/YAML %s|"
          % extra_head)
    print("|---|---|---|---|---|---|---|---|---|" + ("---|---|---|" if extra_way else ""))
    for row in rows:
        dims = " ".join("%s=%d" % kv for kv in row["dims"].items()) or "-"
        name = row["model"]
        if "error" in row:
            print("| %s | %s | %d | n/a | n/a | n/a | %s | | |%s" % (name, dims, row["threads"], row["error"][:160],
                                                                   " | | |" if extra_way else ""))
            continue
        twin_cols = ("%.3f | %.3f" % (row["yaml_ms"], row["kiln_ms"] / row["yaml_ms"])) if "yaml_ms" in row else " | "
        extra_cols = (" %.3f | %.2f | %.1e%s |" % (row["extra_ms"], row["kiln_ms"] / row["extra_ms"],
                                                   row["extra_rel_diff"],
                                                   "" if row["extra_rel_diff"] <= REL_TOL else " FAIL")
                      if extra_way else "")
        print("| %s | %s | %d | %.3f | %.3f | %.2f | %.1e%s | %s |%s" % (
            name, dims, row["threads"], row["kiln_ms"], row["ort_ms"], row["kiln_ms"] / row["ort_ms"],
            row["max_rel_diff"], "" if row["max_rel_diff"] <= REL_TOL else " FAIL", twin_cols, extra_cols))
    print("ONNX Runtime %s (onnxruntime-node); medians of %d round medians, %d runs per round; load average "
          "after: %.2f %.2f %.2f" % ((rows[0].get("ort_version", "?") if rows else "?", args.rounds, per_round)
                                     + os.getloadavg()))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(dict(cpu=cpu_description(), rows=rows), f, indent=1)
    return 1 if failed else 0


def print_row(row):
    dims = " ".join("%s=%d" % kv for kv in row["dims"].items()) or "-"
    if "error" in row:
        print("%s [%s] %d threads: %s" % (row["model"], dims, row["threads"], row["error"]))
    else:
        print("%s [%s] %d threads: kiln %s ms, ort %s ms, max rel diff %.1e" % (
            row["model"], dims, row["threads"], " ".join("%.3f" % m for m in row["kiln_rounds"]),
            " ".join("%.3f" % m for m in row["ort_rounds"]), row["max_rel_diff"])
              + (", %s %s ms (max rel diff %.1e)" % (row["extra"], " ".join("%.3f" % m for m in row["extra_rounds"]),
                                                    row["extra_rel_diff"]) if "extra_ms" in row else "")
              + (", yaml twin %s ms (max rel diff to the .onnx %.1e)" % (" ".join("%.3f" % m for m in row["yaml_rounds"]),
                                                                      row["yaml_rel_diff"]) if "yaml_ms" in row else ""))


if __name__ == "__main__":
    sys.exit(main())
