#!/usr/bin/env python3
"""Time one Kiln model in process through the kiln Python module (docs/python.md); prints one JSON line.

The benchmark scripts that compare Kiln with a peer in another runtime (bench/bench_onnx.py against ONNX
Runtime, bench/bench_cnn.py against OpenCV DNN) run this script as Kiln's own process, the way
bench/ort_runner.js is ONNX Runtime's, so that the engines never share a process (nor an OpenMP runtime)
and take turns in rounds. It imports only NumPy and kiln.

What it times, the same loop as `kilnc run --repeat R --warmup W`:
  model = kiln.Model.load(MODEL, opt_level=O); session = model.session(threads=T) (latency mode)
  outputs = session.run(inputs)                       the first warm-up call (compiles the plan)
  session.run(inputs, outputs=outputs)  x (W - 1)     the other warm-up calls
  session.run(inputs, outputs=outputs)  x R           each timed with time.perf_counter
i.e. with preallocated outputs (Kiln writes into the arrays of the first call: no allocation per call),
as kilnc's loop does; --new-outputs times `session.run(inputs)` instead (new output arrays per call).
The median is element R//2 of the sorted times (kilnc's definition). The module's own cost per call is
about 1 µs (bench/bench_python_overhead.py).

Prints {"median_ms", "min_ms", "runs", "threads_per_run", "kiln_version", "module", "call", "load_ms",
"load_min_ms", "load_runs", "first_ms"} on one line; --output-dir writes each output of the last call to
DIR/NAME.npy ('/' in a name becomes '_', as kilnc).

Loading, the way `kilnc bench` times it (bench/bench_load.py): --load-runs N times N calls of
kiln.Model.load (load_ms: their median, element N//2; the last model is the one run); --load-only stops
there. first_ms is the first session.run (the one that compiles the plan for these shapes). An input not
given with --input is zeros of its dtype, its symbolic dims sized by --shape NAME=DIM (as `kilnc bench`).

  PYTHONPATH=build/python OMP_NUM_THREADS=2 /usr/bin/python3 bench/kiln_runner.py --model M.onnx \\
      --input x=x.npy --threads 2 --runs 20 --warmup 5
"""

import argparse
import json
import os
import sys
import time

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a .yaml, .onnx or .kplan model")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy", help="an input (repeatable)")
    p.add_argument("--threads", type=int, default=0, help="the session's threads (0: all cores)")
    p.add_argument("--opt-level", type=int, default=2, help="kiln.Model.load's opt_level (default 2)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls, the first included (default 3)")
    p.add_argument("--runs", type=int, default=10, help="timed calls (default 10)")
    p.add_argument("--new-outputs", action="store_true",
                   help="time session.run(inputs), new output arrays per call, instead of preallocated outputs")
    p.add_argument("--output-dir", help="write each output of the last call to DIR/NAME.npy")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=DIM",
                   help="size of a symbolic dim, for inputs not given with --input (zeros) (repeatable)")
    p.add_argument("--load-runs", type=int, default=1, help="time this many kiln.Model.load calls (default 1)")
    p.add_argument("--load-only", action="store_true", help="only load (--load-runs times), run nothing")
    p.add_argument("--kiln-python", default=os.path.join(REPO_ROOT, "build", "python"),
                   help="folder holding the built kiln package (default: %(default)s)")
    args = p.parse_args(argv)

    import numpy as np

    sys.path.insert(0, os.path.abspath(args.kiln_python))
    try:
        import kiln
    except ImportError as e:
        print("kiln_runner: cannot import the kiln module from %s (%s); build it first: cmake -S . -B build && "
              "cmake --build build -j2" % (args.kiln_python, e), file=sys.stderr)
        return 2
    inputs = {}
    for spec in args.input:
        name, eq, path = spec.partition("=")
        if not eq or not name or not path:
            p.error("--input expects NAME=FILE.npy, got %r" % spec)
        inputs[name] = np.load(path)
    dims = {}
    for spec in args.shape:
        name, eq, value = spec.partition("=")
        if not eq or not name or not value.isdigit():
            p.error("--shape expects NAME=DIM, got %r" % spec)
        dims[name] = int(value)
    result = dict(kiln_version=kiln.__version__, module=kiln._kiln.__file__)
    try:
        load_times = []
        for _ in range(max(1, args.load_runs)):
            t0 = time.perf_counter()
            model = kiln.Model.load(args.model, opt_level=args.opt_level)
            load_times.append((time.perf_counter() - t0) * 1e3)
        load_times.sort()
        result.update(load_ms=load_times[len(load_times) // 2], load_min_ms=load_times[0], load_runs=len(load_times))
        if args.load_only:
            print(json.dumps(result))
            return 0
        for info in model.inputs:
            if info.name in inputs:
                continue
            if info.dtype is None:
                p.error("input %r is %s: give it with --input" % (info.name, info.dtype_name))
            shape = []
            for d in info.shape:
                if isinstance(d, str) and d not in dims:
                    p.error("input %r has the dim %r: give its size with --shape %s=N, or the input with --input"
                            % (info.name, d, d))
                shape.append(dims[d] if isinstance(d, str) else d)
            inputs[info.name] = np.zeros(shape, info.dtype)  # zeros: valid token ids and values alike
        session = model.session(threads=args.threads)
        t0 = time.perf_counter()
        outputs = session.run(inputs)  # also the first warm-up call: compiles the plan for these shapes
        result["first_ms"] = (time.perf_counter() - t0) * 1e3
        for name, array in list(outputs.items()):
            if not array.flags.writeable:  # not expected (Kiln's own buffers), but never write into it
                outputs[name] = np.empty_like(array)
        if args.new_outputs:
            def call():
                return session.run(inputs)
        else:
            def call():
                return session.run(inputs, outputs=outputs)
        for _ in range(args.warmup - 1):
            call()
        times = []
        last = outputs
        for _ in range(args.runs):
            t0 = time.perf_counter()
            last = call()
            times.append((time.perf_counter() - t0) * 1e3)
    except kiln.Error as e:
        print("kiln_runner: %s" % e, file=sys.stderr)  # Kiln's message names the file
        return 1
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
        for name, array in last.items():
            np.save(os.path.join(args.output_dir, name.replace("/", "_") + ".npy"), array)
    times.sort()
    result.update(median_ms=times[len(times) // 2] if times else None, min_ms=times[0] if times else None,
                  runs=len(times), threads_per_run=session.threads_per_run,
                  call="session.run(inputs)" if args.new_outputs else "session.run(inputs, outputs=...)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
