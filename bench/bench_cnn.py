#!/usr/bin/env python3
"""Benchmark Kiln against PyTorch eager and OpenCV DNN on the two CNN examples.

Models: examples/resnet_tiny and examples/mobilenet_tiny (tools/reference/cnn_models.py). All three
engines run the same weights on the same random image batch in one invocation, so the ratios are
comparable even on a noisy machine.

Each engine runs in its own process: Kiln in bench/kiln_runner.py, OpenCV in kiln_opencv_bench, PyTorch
in this script's process (they never share a process, nor an OpenMP runtime).

Per row (model, batch at 224x224, threads) it measures:
  kiln -O2 ms    Kiln timed in process through its Python module (docs/python.md): bench/kiln_runner.py,
                 with OMP_NUM_THREADS=T (GOMP_SPINCOUNT as in the environment), loads
                 kiln.Model.load(MODEL, opt_level=2), opens session(threads=T), runs W warm-up calls
                 and times N calls of session.run({"image": x}, outputs=...) (preallocated outputs,
                 the loop `kilnc run --repeat` times) each with time.perf_counter, as PyTorch's calls
                 are timed here; the module adds about 1 µs per call (bench/bench_python_overhead.py).
                 --kiln kilnc: the old way, the median `kilnc --threads T run MODEL -O2 --input
                 image=... --repeat N --warmup W` prints (--kilnc PATH: another build's kilnc);
                 --kiln module,kilnc adds that as a column "kilnc -O2 ms" to compare the two
  kiln -O0 ms    the same at -O0 (the graph as written: plain nchw, no fusion)
  torch ms       the nn.Module in eval mode under torch.no_grad(), torch.set_num_threads(T)
  opencv ms      build/bench/kiln_opencv_bench on the model exported to ONNX by
                 tools/reference/make_cnn_fixtures.py --onnx (cv::setNumThreads(T), OpenCV backend);
                 "n/a" when that program was not built (OpenCV not found)
  kiln/torch, kiln/opencv   kiln -O2 ms / the peer's ms  (< 1: Kiln is faster)
  min ms         the fastest of the N runs of each engine, and the ratios of those: on a shared machine
                 the medians carry the other load (OpenMP's barriers wait for a descheduled thread),
                 the minimums show what each engine does when it has the cores
  max|Δ|         max abs difference of Kiln's and OpenCV's logits from PyTorch's
Medians: element N//2 of the sorted timings of N runs after W warm-up runs, for every engine.
At the end: the issue's targets (kiln -O2 <= 0.8 x torch and <= 0.8 x opencv at 2 threads) as PASS/FAIL.

  /usr/bin/python3 bench/bench_cnn.py                       # both models, batch 1 and 8, 1 and 2 threads
  /usr/bin/python3 bench/bench_cnn.py --quick               # batch 1 only, fewer runs
  /usr/bin/python3 bench/bench_cnn.py --models resnet_tiny --batches 8 --threads 2 --repeat 10
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(REPO_ROOT, "tools", "reference"))
import cnn_models  # noqa: E402
import make_cnn_fixtures  # noqa: E402
import safetensors_io  # noqa: E402

TIME_RE = re.compile(r"time per inference: median ([0-9.]+) ms, min ([0-9.]+) ms")


def kilnc_time(kilnc, yaml_path, image_path, threads, level, repeat, warmup, out_dir):
    cmd = [kilnc, "--threads", str(threads), "run", yaml_path, "-O%d" % level, "--input", "image=" + image_path,
           "--repeat", str(repeat), "--warmup", str(warmup), "--print-limit", "0", "--output-dir", out_dir]
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    if p.returncode != 0:
        raise RuntimeError("kilnc failed: %s\n%s%s" % (" ".join(cmd), p.stdout[-2000:], p.stderr[-2000:]))
    m = TIME_RE.search(p.stdout)
    return (float(m.group(1)), float(m.group(2))), np.load(os.path.join(out_dir, "logits.npy"))


def kiln_module_time(kiln_python, yaml_path, image_path, threads, level, repeat, warmup, out_dir):
    """Kiln in process through the kiln module, in a process of its own (bench/kiln_runner.py)."""
    cmd = [sys.executable, os.path.join(REPO_ROOT, "bench", "kiln_runner.py"), "--model", yaml_path, "--input",
           "image=" + image_path, "--threads", str(threads), "--opt-level", str(level), "--runs", str(repeat),
           "--warmup", str(warmup), "--output-dir", out_dir, "--kiln-python", kiln_python]
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    if p.returncode != 0:
        raise RuntimeError("kiln_runner failed: %s\n%s%s" % (" ".join(cmd), p.stdout[-2000:], p.stderr[-2000:]))
    r = json.loads(p.stdout.strip().splitlines()[-1])
    return (r["median_ms"], r["min_ms"]), np.load(os.path.join(out_dir, "logits.npy"))


def torch_time(model, x, threads, repeat, warmup):
    torch.set_num_threads(threads)
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            out = model(x)
            times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return (times[len(times) // 2], times[0]), out.numpy()


def opencv_time(prog, onnx, raw, shape, threads, repeat, warmup, out_path, classes):
    cmd = [prog, onnx, raw, ",".join(map(str, shape)), str(threads), str(repeat), str(warmup), out_path]
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    if p.returncode != 0:
        raise RuntimeError("kiln_opencv_bench failed: %s\n%s%s" % (" ".join(cmd), p.stdout[-2000:], p.stderr[-2000:]))
    m = re.search(r"median_ms ([0-9.]+) min_ms ([0-9.]+)", p.stdout)
    return (float(m.group(1)), float(m.group(2))), np.fromfile(out_path, dtype=np.float32).reshape(shape[0], classes)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(make_cnn_fixtures.SEEDS))
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeat", type=int, default=0, help="runs per engine and row (default: by batch, 30 or 10)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="batch 1 only, 10 runs")
    ap.add_argument("--build-dir", default=os.path.join(REPO_ROOT, "build"))
    ap.add_argument("--kiln", default="module", choices=["module", "kilnc", "module,kilnc"],
                    help="how Kiln is timed: in process through the kiln module (build/python, in its own "
                         "process), by kilnc run --repeat, or both (kilnc -O2 as an extra column) (default: %(default)s)")
    ap.add_argument("--kilnc", help="the kilnc binary for --kiln kilnc (default: BUILD_DIR/tools/kilnc)")
    args = ap.parse_args()
    if args.quick:
        args.batches, args.repeat = [1], args.repeat or 10
    kilnc = args.kilnc or os.path.join(args.build_dir, "tools", "kilnc")
    kiln_python = os.path.join(args.build_dir, "python")
    ways = args.kiln.split(",")
    if "kilnc" in ways and not os.access(kilnc, os.X_OK):
        ap.error("kilnc not found at %s (build Kiln first, or give --kilnc)" % kilnc)
    if "module" in ways and not os.path.isfile(os.path.join(kiln_python, "kiln", "__init__.py")):
        ap.error("the kiln Python module is not built in %s (build Kiln first)" % kiln_python)

    def kiln_time(way, *rest):
        if way == "kilnc":
            return kilnc_time(kilnc, *rest)
        return kiln_module_time(kiln_python, *rest)

    ocv = os.path.join(args.build_dir, "bench", "kiln_opencv_bench")
    have_ocv = os.path.isfile(ocv)
    tmp = tempfile.mkdtemp(prefix="kiln_bench_cnn_")
    if have_ocv:
        subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tools", "reference", "make_cnn_fixtures.py"), "--onnx", tmp],
                       check=True, capture_output=True)
    print("machine: %s, %d CPUs; torch %s (%s)" % (os.uname().machine, os.cpu_count(), torch.__version__,
                                                  "mkldnn on" if torch.backends.mkldnn.is_available() else "mkldnn off"))
    if ways[0] == "module":
        print("kiln: in process through the kiln module (%s), in its own process (bench/kiln_runner.py); "
              "session.run(inputs, outputs=...) timed with time.perf_counter" % os.path.relpath(kiln_python))
    else:
        print("kiln: %s run --repeat (its own median and min)" % os.path.relpath(kilnc))
    if len(ways) > 1:
        print("kilnc -O2 ms: %s run --repeat, its median" % os.path.relpath(kilnc))
    extra = len(ways) > 1
    print()
    print("| model | batch | threads | kiln -O2 ms | kiln -O0 ms | torch ms | opencv ms | kiln/torch | kiln/opencv "
          "| min ms: kiln, torch, opencv | min ratios kiln/torch, kiln/opencv | max abs diff kiln, opencv vs torch |"
          + (" kilnc -O2 ms | module/kilnc |" if extra else ""))
    print("|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if extra else ""))
    rows = []
    for name in args.models:
        folder = os.path.join(REPO_ROOT, "examples", name)
        yaml_path = os.path.join(folder, name + ".yaml")
        model = cnn_models.build(name, make_cnn_fixtures.SEEDS[name])
        state, _ = safetensors_io.load_file(os.path.join(folder, name + ".safetensors"))
        model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
        for batch in args.batches:
            shape = (batch, 3, args.size, args.size)
            image = np.random.default_rng(batch).standard_normal(shape).astype(np.float32)
            image_path = os.path.join(tmp, "image_%s_b%d.npy" % (name, batch))
            np.save(image_path, image)
            raw = image_path + ".f32"
            image.tofile(raw)
            repeat = args.repeat or (30 if batch == 1 else 10)
            for threads in args.threads:
                (k2, k2min), out_k = kiln_time(ways[0], yaml_path, image_path, threads, 2, repeat, args.warmup, tmp)
                (k0, _), _ = kiln_time(ways[0], yaml_path, image_path, threads, 0, repeat, args.warmup, tmp)
                if extra:
                    (kc, _), out_c = kiln_time(ways[1], yaml_path, image_path, threads, 2, repeat, args.warmup, tmp)
                    if float(np.abs(out_c - out_k).max()) > 1e-4:
                        print("warning: %s b%d t%d: kilnc's logits differ from the module's by %.1e"
                              % (name, batch, threads, float(np.abs(out_c - out_k).max())))
                (tt, ttmin), out_t = torch_time(model, torch.from_numpy(image), threads, repeat, args.warmup)
                (oc, ocmin), out_o = (opencv_time(ocv, os.path.join(tmp, name + ".onnx"), raw, shape, threads, repeat,
                                                  args.warmup, os.path.join(tmp, "out.f32"), out_t.shape[1])
                                      if have_ocv else ((None, None), None))
                dk = float(np.abs(out_k - out_t).max())
                do = float(np.abs(out_o - out_t).max()) if out_o is not None else None
                rows.append((name, batch, threads, k2, tt, oc))
                na = "n/a"
                print("| %s | %d | %d | %.2f | %.2f | %.2f | %s | %.2f | %s | %.2f, %.2f, %s | %.2f, %s | %.1e, %s |" % (
                    name, batch, threads, k2, k0, tt, "%.2f" % oc if oc else na, k2 / tt, "%.2f" % (k2 / oc) if oc else na,
                    k2min, ttmin, "%.2f" % ocmin if ocmin else na, k2min / ttmin, "%.2f" % (k2min / ocmin) if ocmin else na,
                    dk, "%.1e" % do if do is not None else na)
                      + (" %.2f | %.2f |" % (kc, k2 / kc) if extra else ""), flush=True)
    print()
    print("targets (2 threads): kiln -O2 <= 0.8 x torch eager and <= 0.8 x opencv dnn")
    for name, batch, threads, k2, tt, oc in rows:
        if threads != 2:
            continue
        for peer, ms in (("torch", tt), ("opencv", oc)):
            verdict = "n/a" if ms is None else ("PASS" if k2 <= 0.8 * ms else "FAIL")
            ratio = "n/a" if ms is None else "%.2f" % (k2 / ms)
            print("  %s b%d vs %s: %s x  %s" % (name, batch, peer, ratio, verdict))


if __name__ == "__main__":
    main()
