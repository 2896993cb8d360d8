#!/usr/bin/env python3
"""Throughput (inferences/s) of the d=128 classifier with 1, 2 and 4 concurrent callers, Kiln vs PyTorch.

Model: examples/transformer_classifier (d_model 128, 2 layers, 8 heads, dim_ff 512), batch 1 x seq 32 by
default, the same weights for both engines (PyTorch's module is tools/reference/classifier.py with its
weights read from the very .safetensors file Kiln loads, as bench/bench_classifier.py does).

Kiln: build/bench/kiln_bench_concurrency (bench/concurrency.cpp): ONE kiln::Session shared by C caller
threads, each calling the allocation-free Session::run in a loop for --seconds, with the session limited
to --cores cores, in both threading modes:
  throughput   up to `cores` requests side by side, each on one thread
  latency      one request at a time on all `cores` threads (the others wait)
PyTorch: C Python threads calling the nn.Module (eval, no_grad) in a loop for --seconds, with
torch.set_num_threads(T) for T = 1 (each request on one thread, like Kiln's throughput mode) and T = cores
(like Kiln's latency mode). Both are run inside `taskset` limited to the first `cores` CPUs when taskset
exists, so that neither can use more cores than the other.

Prints a table of inferences/s and Kiln/PyTorch ratios. Example (from the repository root):
  /usr/bin/python3 bench/bench_concurrency.py
  /usr/bin/python3 bench/bench_concurrency.py --callers 1,2,4 --cores 2 --seconds 3
"""

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_classifier as bc  # noqa: E402  (also puts tools/reference on sys.path)
import numpy as np  # noqa: E402
import torch  # noqa: E402


def torch_rate(model, callers, threads, batch, seq, seconds):
    torch.set_num_threads(threads)
    xs = [torch.from_numpy(bc.make_tokens("a%d" % c, bc.MODELS["a"], batch, seq)) for c in range(callers)]
    with torch.no_grad():
        for x in xs:
            for _ in range(10):
                model(x)
    counts = [0] * callers
    stop = threading.Event()
    start = threading.Barrier(callers + 1)

    def worker(c):
        x = xs[c]
        start.wait()
        n = 0
        with torch.no_grad():
            while not stop.is_set():
                model(x)
                n += 1
        counts[c] = n

    pool = [threading.Thread(target=worker, args=(c,)) for c in range(callers)]
    for t in pool:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    return sum(counts) * batch / (time.perf_counter() - t0)


def kiln_rate(exe, yaml_path, callers, cores, mode, batch, seq, seconds, pin):
    cmd = pin + [exe, yaml_path, "--batch", str(batch), "--seq", str(seq), "--callers", str(callers),
                 "--cores", str(cores), "--mode", mode, "--seconds", str(seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(out.split(":")[1].split()[0])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--callers", default="1,2,4")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seq", type=int, default=32)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--build-dir", default=os.path.join(bc.REPO_ROOT, "build"))
    args = p.parse_args()
    callers = [int(c) for c in args.callers.split(",")]
    exe = os.path.join(args.build_dir, "bench", "kiln_bench_concurrency")
    if not os.path.exists(exe):
        sys.exit("error: %s not found (cmake --build build --target kiln_bench_concurrency)" % exe)
    cfg = bc.MODELS["a"]
    pin = []
    if shutil.which("taskset"):
        cpus = sorted(os.sched_getaffinity(0))[: args.cores]
        pin = ["taskset", "-c", ",".join(str(c) for c in cpus)]
        os.sched_setaffinity(0, cpus)  # PyTorch in this process: the same cores
    print(bc.machine_line())
    for line in bc.blas_report()[0]:
        print(line)
    print("model a d128 L2, batch %d x seq %d, %d cores%s, %.1f s per cell; the machine is shared, so "
          "compare ratios within this run" % (args.batch, args.seq, args.cores,
                                               " (taskset -c %s)" % pin[2] if pin else "", args.seconds))
    model = bc.load_torch_model(cfg, cfg["weights"])
    rows = []
    for c in callers:
        k_thr = kiln_rate(exe, cfg["yaml"], c, args.cores, "throughput", args.batch, args.seq, args.seconds, pin)
        k_lat = kiln_rate(exe, cfg["yaml"], c, args.cores, "latency", args.batch, args.seq, args.seconds, pin)
        t_1 = torch_rate(model, c, 1, args.batch, args.seq, args.seconds)
        t_n = torch_rate(model, c, args.cores, args.batch, args.seq, args.seconds)
        rows.append((c, k_thr, k_lat, t_1, t_n))
    hdr = ("callers", "kiln throughput", "kiln latency", "torch T=1", "torch T=%d" % args.cores,
           "kiln thr / torch T=1", "kiln lat / torch T=%d" % args.cores)
    print("inferences/s:")
    print("  ".join("%-20s" % h for h in hdr))
    for c, k_thr, k_lat, t_1, t_n in rows:
        vals = [str(c), "%.0f" % k_thr, "%.0f" % k_lat, "%.0f" % t_1, "%.0f" % t_n,
                "%.2fx" % (k_thr / t_1), "%.2fx" % (k_lat / t_n)]
        print("  ".join("%-20s" % v for v in vals))
    serial = rows[0][1] if rows and rows[0][0] == 1 else None
    if serial:
        for c, k_thr, *_ in rows[1:]:
            print("kiln throughput mode, %d callers vs 1: %.2fx the inferences/s (>= 1: not slower in total than "
                  "serial)" % (c, k_thr / serial))


if __name__ == "__main__":
    main()
