#!/usr/bin/env python3
"""Load time of a plan file (.kplan) against loading the same model from YAML.

Uses the d_model 512 / 6-layer classifier that bench_classifier.py generates (its generator, same
cache folder), compiles it with `kilnc compile` (-O2, no bound dims) and then, alternating the two
files for --rounds rounds, times N loads in one fresh process (median reported). Kiln is timed in
process through its Python module (docs/python.md): bench/kiln_runner.py --load-only --load-runs N
times N calls of kiln.Model.load(FILE) with time.perf_counter (--kiln kilnc: the old way, `kilnc bench
FILE --load-only --load-runs N` and the median it prints). Both files are read once before timing, so
both are timed from the page cache. Prints the median of the per-round medians for each and their
ratio, and the issue's target (plan load < 50 ms) as PASS or FAIL.

Loading a YAML model maps the weights without reading them (pages are touched by the first run),
while loading a plan file reads every byte once to verify its checksum. So it also reports the time
to the first output: one load plus the first run at batch 1 x seq 128 (which compiles that plan; zero
tokens) in a fresh process, median over the rounds: kiln_runner.py's load_ms + first_ms (--kiln
kilnc: `kilnc bench FILE --runs 1 --warmup 0`'s load and first run).

  /usr/bin/python3 bench/bench_load.py [--rounds 5] [--load-runs 10] [--kiln kilnc [--kilnc PATH]]
"""

import argparse
import json
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_classifier  # noqa: E402  (its generator and model table)

REPO_ROOT = bench_classifier.REPO_ROOT


def kiln_runner(args, path, extra):
    cmd = [sys.executable, os.path.join(HERE, "kiln_runner.py"), "--model", path, "--kiln-python",
           args.kiln_python] + extra
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit("kiln_runner failed (exit %d): %s\n%s%s" % (p.returncode, " ".join(cmd), p.stdout[-2000:],
                                                                    p.stderr[-2000:]))
    return json.loads(p.stdout.strip().splitlines()[-1])


def load_ms(args, path, runs):
    if args.kiln == "module":
        return kiln_runner(args, path, ["--load-only", "--load-runs", str(runs)])["load_ms"]
    out = subprocess.run([args.kilnc, "bench", path, "--load-only", "--load-runs", str(runs)],
                         check=True, capture_output=True, text=True).stdout
    m = re.search(r"load: median ([0-9.]+) ms", out)
    if not m:
        raise SystemExit("unexpected kilnc bench output:\n" + out)
    return float(m.group(1))


def first_output_ms(args, path):
    if args.kiln == "module":
        r = kiln_runner(args, path, ["--shape", "batch=1", "--shape", "seq=128", "--runs", "0", "--warmup", "1"])
        return r["load_ms"] + r["first_ms"]
    out = subprocess.run([args.kilnc, "bench", path, "--runs", "1", "--warmup", "0", "--shape", "batch=1",
                          "--shape", "seq=128"], check=True, capture_output=True, text=True).stdout
    load = re.search(r"load: median ([0-9.]+) ms", out)
    first = re.search(r"first run ([0-9.]+) ms", out)
    if not load or not first:
        raise SystemExit("unexpected kilnc bench output:\n" + out)
    return float(load.group(1)) + float(first.group(1))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kilnc", default=os.path.join(REPO_ROOT, "build", "tools", "kilnc"),
                   help="kilnc, to compile the plan (and to time with --kiln kilnc) (default: %(default)s)")
    p.add_argument("--kiln", choices=["module", "kilnc"], default="module",
                   help="time loads through the kiln module (bench/kiln_runner.py) or kilnc bench (default: %(default)s)")
    p.add_argument("--kiln-python", default=os.path.join(REPO_ROOT, "build", "python"),
                   help="folder holding the built kiln Python package (default: %(default)s)")
    p.add_argument("--cache-dir", default=os.path.join(REPO_ROOT, "build", "bench"))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--load-runs", type=int, default=10)
    args = p.parse_args()

    cfg = bench_classifier.MODELS["b"]
    yaml_path, weights_path = bench_classifier.ensure_generated(cfg, os.path.abspath(args.cache_dir))
    plan_path = os.path.join(os.path.dirname(yaml_path), "model.kplan")
    subprocess.run([args.kilnc, "compile", yaml_path, "-o", plan_path, "--quiet"], check=True)
    print(bench_classifier.machine_line())
    print("model: %s (%s)" % (cfg["label"], yaml_path))
    print("sizes: weights %d bytes, plan %d bytes" % (os.path.getsize(weights_path), os.path.getsize(plan_path)))
    print("Kiln timed %s" % ("in process through the kiln module (%s, bench/kiln_runner.py: kiln.Model.load and "
                             "session.run timed with time.perf_counter)" % os.path.relpath(args.kiln_python)
                             if args.kiln == "module" else "by `%s bench`" % os.path.relpath(args.kilnc)))
    load_ms(args, yaml_path, 1)  # page cache
    load_ms(args, plan_path, 1)
    yaml_t, plan_t, yaml_f, plan_f = [], [], [], []
    for _ in range(args.rounds):
        yaml_t.append(load_ms(args, yaml_path, args.load_runs))
        plan_t.append(load_ms(args, plan_path, args.load_runs))
        yaml_f.append(first_output_ms(args, yaml_path))
        plan_f.append(first_output_ms(args, plan_path))
    for t in (yaml_t, plan_t, yaml_f, plan_f):
        t.sort()
    y, k = yaml_t[len(yaml_t) // 2], plan_t[len(plan_t) // 2]
    print("load from YAML (frontend + passes): median %.2f ms  (rounds: %s)" % (y, " ".join("%.2f" % t for t in yaml_t)))
    print("load from .kplan (mmap + checksum): median %.2f ms  (rounds: %s)" % (k, " ".join("%.2f" % t for t in plan_t)))
    print("plan / YAML: %.3f  (YAML / plan: %.1fx)" % (k / y, y / k))
    yf, kf = yaml_f[len(yaml_f) // 2], plan_f[len(plan_f) // 2]
    print("load + first run (b1 x s128) from YAML:   median %.2f ms" % yf)
    print("load + first run (b1 x s128) from .kplan: median %.2f ms" % kf)
    print("plan / YAML (to the first output): %.3f" % (kf / yf))
    print("target: plan load < 50 ms: %s" % ("PASS" if k < 50 else "FAIL"))


if __name__ == "__main__":
    main()
