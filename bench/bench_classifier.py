#!/usr/bin/env python3
"""Benchmark Kiln against PyTorch on the reference Transformer-encoder classifier.

Both engines run the same model, the same weights and the same token ids in the same
invocation of this script, so the ratios printed are comparable even on a noisy machine.
Both run in this process: Kiln through its Python module (`import kiln` from build/python,
docs/python.md), each call timed with time.perf_counter exactly as PyTorch's are (the module's
own cost per call is a few microseconds: bench/bench_python_overhead.py measures it).

Models (the reference module tools/reference/classifier.py; 8 heads, 4 classes):
  a   d_model 128, 2 layers, dim_ff 512,  vocab 1000   examples/transformer_classifier/
  b   d_model 512, 6 layers, dim_ff 2048, vocab 10000  generated once into --cache-dir

Before the rows and again after them, for each thread count T, it runs
`kiln_matmul_peak --threads T 128,512,2048,ba` (bench/matmul_peak.cpp: one oneDNN f32 matmul built
like Kiln's linear, weights stored N x K) and prints the higher GFLOP/s of the two above the table
as the reference "matmul peak".

Per row (model, shape, threads) it measures:
  kiln -O2 ms      median of the round medians of `session.run({"tokens": x})` (in process, through
                   the kiln module) on kiln.Model.load(MODEL, opt_level=2).session(threads=T), a
                   latency-mode session: all optimization passes
  kiln -O0 ms      the same with opt_level=0: no passes, one kernel per op of the model as written
  -O2/-O0          kiln -O2 ms / kiln -O0 ms  (< 1 means the passes make Kiln faster)
  torch eager ms   nn.Module in eval mode under torch.no_grad(), torch.set_num_threads(T),
                   batch_first=True (the TransformerEncoderLayer fast path)
  torch script ms  torch.jit.script -> torch.jit.freeze -> torch.jit.optimize_for_inference
                   ("n/a" with the reason in the notes if that fails on this model)
  kiln/eager       kiln -O2 ms / torch eager ms  (< 1 means Kiln is faster)
  kiln GFLOP/s     matmul FLOPs of the model (2*M*N*K for the QKV projection, attention
                   scores, attention context, out projection, both FFN linears and the head)
                   divided by kiln -O2's median time
  kiln % of matmul peak   kiln GFLOP/s / the matmul peak measured with the same thread count
  max|Δprobs|      max abs difference between Kiln's probs (returned by session.run; the
                   larger of -O2 and -O0) and PyTorch eager's probs for the same tokens

At the end it prints the issue's targets as a checklist with the measured figure and PASS, FAIL
or n/a (row not in this run):
  d512/6L b16xs128 2 threads: kiln GFLOP/s >= 85% of the matmul peak (2 threads)
  d512/6L b1xs128  2 threads: kiln -O2 <= 0.75 x torch eager
  d128/2L b1xs32   1 and 2 threads: kiln -O2 <= 0.4 x torch eager

Medians are the element at index N//2 of the sorted timings, the same definition kilnc
and kiln_matmul_peak use; both engines' timings use time.perf_counter around each call after
W warm-up calls. Each row's N timed runs per engine are split into --rounds rounds (default 3) in
which the engines take turns (eager, script, kiln -O2, kiln -O0, then again), and each engine's
figure is the median of its round medians: a busy spell of the shared machine then lands on all
engines alike instead of on whichever was running.

KILN_GEMM=onednn in the environment makes Kiln run its linear products, attention and softmax on
oneDNN instead of Kiln's own kernels (ops/gemm.hpp): the way to measure what those kernels gain.

--kiln-variants NAME=ENV,... replaces all of the above by a comparison of Kiln -O2 with itself under
different environments (no PyTorch timing): e.g. "default=,avx2=KILN_MAX_ISA=avx2,onednn=KILN_GEMM=onednn"
times Kiln's default GEMM variant (AVX-512 on an AVX-512 host), its AVX2 variant and oneDNN's matmuls,
taking turns in --rounds rounds of --repeat/--rounds runs, and prints each median of round medians, its
ratio to the first variant and the load average; every variant's probs are checked against the first's.
Variants need a process each (an environment, or another build): this mode runs `kilnc run` (--kilnc)
and reads the median it prints.

Examples (from the repository root):
  /usr/bin/python3 bench/bench_classifier.py --quick
  /usr/bin/python3 bench/bench_classifier.py
  /usr/bin/python3 bench/bench_classifier.py --models b --shapes b16xs128 --threads 2 --repeat 10
  KILN_GEMM=onednn /usr/bin/python3 bench/bench_classifier.py --models b --shapes b1xs128 --threads 2
  /usr/bin/python3 bench/bench_classifier.py --models b --shapes b1xs128,b16xs128 --threads 2 \
      --kiln-variants "default=,avx2=KILN_MAX_ISA=avx2,onednn=KILN_GEMM=onednn" --rounds 5
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

T_PROCESS_START = time.perf_counter()  # before the slow imports (torch), for the wall time printed
sys.dont_write_bytecode = True  # do not leave __pycache__ folders in tools/reference

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(REPO_ROOT, "tools", "reference"))

import classifier  # noqa: E402
import safetensors_io  # noqa: E402

BLAS_ALTERNATIVE = "libblas.so.3-x86_64-linux-gnu"
OPENBLAS_OPENMP_PATH = "/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3"

MODELS = {
    "a": dict(label="a d128 L2", vocab=1000, d_model=128, num_layers=2, dim_ff=512, num_classes=4,
              yaml=os.path.join(REPO_ROOT, "examples", "transformer_classifier",
                                "transformer_classifier.yaml"),
              weights=os.path.join(REPO_ROOT, "examples", "transformer_classifier",
                                   "transformer_classifier.safetensors")),
    "b": dict(label="b d512 L6", vocab=10000, d_model=512, num_layers=6, dim_ff=2048, num_classes=4,
              seed=5120, generated="classifier_d512_l6"),
}

DEFAULT_SHAPES = "b1xs32,b1xs128,b16xs128"
DEFAULT_THREADS = "1,2"
DEFAULT_MAX_REPEAT = 200
DEFAULT_MIN_REPEAT = 9  # 3 rounds of 3 at least: slow rows (d512 b16) stay comparable between engines
MIN_RUNS_PER_ROUND = 3
DEFAULT_BUDGET_S = 1.5
DEFAULT_WARMUP = 3
SLOW_RUN_S = 0.3
NOISY_CPUS = 0.25          # rows where other processes used more CPU than this are flagged
KILN_OPT_LEVELS = (2, 0)   # opt_level 2 (all passes) and 0 (no passes), in this order
PEAK_SHAPE = "128,512,2048,ba"  # kiln_matmul_peak's reference shape: M,K,N, weights N x K (Kiln's layout)
PEAK_BUDGET_S = 0.5        # seconds of timed matmuls per thread count

# The targets, checked at the end of a run (Kiln -O2 figures).
#   kind "peak":  kiln GFLOP/s >= limit x the matmul peak at PEAK_SHAPE with the same threads
#   kind "eager": kiln ms <= limit x torch eager ms
TARGETS = [
    dict(model="b", shape=(16, 128), threads=2, kind="peak", limit=0.85,
         text="d512/6L b16xs128, 2 threads: whole-model GFLOP/s >= 85% of the single-matmul GFLOP/s "
              "at 128x512x2048"),
    dict(model="b", shape=(1, 128), threads=2, kind="eager", limit=0.75,
         text="d512/6L b1xs128, 2 threads: Kiln -O2 <= 0.75 x PyTorch eager"),
    dict(model="a", shape=(1, 32), threads=1, kind="eager", limit=0.4,
         text="d128/2L b1xs32, 1 thread: Kiln -O2 <= 0.4 x PyTorch eager"),
    dict(model="a", shape=(1, 32), threads=2, kind="eager", limit=0.4,
         text="d128/2L b1xs32, 2 threads: Kiln -O2 <= 0.4 x PyTorch eager"),
]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Environment: machine, BLAS
# ---------------------------------------------------------------------------

def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def machine_line():
    nproc = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = nproc
    load = ""
    try:
        load = ", load average %s" % " ".join("%.2f" % v for v in os.getloadavg())
    except OSError:
        pass
    return "Machine: %s, nproc %d (usable %d)%s" % (cpu_model(), nproc, usable, load)


def blas_report():
    """Returns (lines to print, is_openblas)."""
    lines = []
    selected = None
    try:
        q = subprocess.run(["update-alternatives", "--query", BLAS_ALTERNATIVE],
                           capture_output=True, text=True, timeout=10)
        for line in q.stdout.splitlines():
            if line.startswith("Value:"):
                selected = line.split(":", 1)[1].strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    # A small matmul makes sure the BLAS is mapped, then look at what this process really loaded.
    a = torch.ones(64, 64)
    _ = a @ a
    mapped = set()
    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and re.search(r"blas|mkl_rt|libmkl", parts[-1]):
                    mapped.add(parts[-1])
    except OSError:
        pass
    mapped = sorted(mapped)
    is_openblas = any("openblas" in p for p in mapped) or (
        not mapped and selected is not None and "openblas" in selected)
    lines.append("BLAS selected (update-alternatives %s): %s" % (BLAS_ALTERNATIVE, selected or "unknown"))
    lines.append("BLAS mapped into this process: %s" % (", ".join(mapped) if mapped else "none found"))
    if not is_openblas:
        lines.append("")
        lines.append("!" * 78)
        lines.append("WARNING: PyTorch is NOT using OpenBLAS. Debian's python3-torch then runs on the")
        lines.append("reference BLAS and is 10-28x slower than it really is: the torch columns below")
        lines.append("are NOT a fair peer. To fix (as root; this script does not change the system):")
        lines.append("  apt-get install libopenblas0-openmp")
        lines.append("  update-alternatives --set %s %s" % (BLAS_ALTERNATIVE, OPENBLAS_OPENMP_PATH))
        lines.append("!" * 78)
        lines.append("")
    elif not any("openblas-openmp" in p for p in mapped):
        lines.append("note: OpenBLAS is not the OpenMP build; torch.set_num_threads may not bound its "
                     "threads (fair setup: libopenblas0-openmp, `update-alternatives --set %s %s`)"
                     % (BLAS_ALTERNATIVE, OPENBLAS_OPENMP_PATH))
    return lines, is_openblas


class BackgroundLoad:
    """How many CPUs other processes kept busy between start() and stop(), from /proc/stat minus
    this process's and its waited-for children's CPU time."""

    HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    @staticmethod
    def _busy_s():
        try:
            with open("/proc/stat", encoding="utf-8") as f:
                v = [int(x) for x in f.readline().split()[1:]]
            # user nice system idle iowait irq softirq steal ...
            return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / BackgroundLoad.HZ
        except (OSError, ValueError, IndexError):
            return None

    @staticmethod
    def _own_s():
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def start(self):
        self.t0, self.busy0, self.own0 = time.perf_counter(), self._busy_s(), self._own_s()

    def stop(self):
        busy1, own1, t1 = self._busy_s(), self._own_s(), time.perf_counter()
        if self.busy0 is None or busy1 is None or t1 <= self.t0:
            return None
        return max(0.0, ((busy1 - self.busy0) - (own1 - self.own0)) / (t1 - self.t0))


def git_line():
    try:
        rev = subprocess.run(["git", "-C", REPO_ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO_ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        if rev:
            return "Kiln source: git %s%s" % (rev, " (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "Kiln source: unknown revision"


# ---------------------------------------------------------------------------
# Models, weights, tokens
# ---------------------------------------------------------------------------

def describe(cfg, seed):
    return ("vocab %d, d_model %d, %d layers, %d heads, dim_ff %d, %d classes, seed %d"
            % (cfg["vocab"], cfg["d_model"], cfg["num_layers"], classifier.NHEAD,
               cfg["dim_ff"], cfg["num_classes"], seed))


def ensure_generated(cfg, cache_dir):
    """Writes model.yaml + weights.safetensors for a generated model unless an up-to-date copy exists."""
    out_dir = os.path.join(cache_dir, cfg["generated"])
    yaml_path = os.path.join(out_dir, "model.yaml")
    weights_path = os.path.join(out_dir, "weights.safetensors")
    stamp_path = os.path.join(out_dir, "config.json")
    stamp = {k: cfg[k] for k in ("vocab", "d_model", "num_layers", "dim_ff", "num_classes", "seed")}
    stamp["nhead"] = classifier.NHEAD
    try:
        with open(stamp_path, encoding="utf-8") as f:
            if json.load(f) == stamp and os.path.isfile(yaml_path) and os.path.isfile(weights_path):
                return yaml_path, weights_path
    except (OSError, ValueError):
        pass
    log("generating %s (%s) into %s ..." % (cfg["label"], describe(cfg, cfg["seed"]), out_dir))
    os.makedirs(out_dir, exist_ok=True)
    model = classifier.build_model(cfg["seed"], cfg["vocab"], cfg["d_model"], cfg["num_layers"],
                                   cfg["dim_ff"], cfg["num_classes"])
    tmp = weights_path + ".tmp"
    safetensors_io.save_file(classifier.state_dict_numpy(model), tmp)
    os.replace(tmp, weights_path)
    with open(yaml_path, "w", encoding="utf-8", newline="\n") as f:
        f.write(classifier.model_yaml(describe(cfg, cfg["seed"]) + " (bench/bench_classifier.py)",
                                      "weights.safetensors", ["probs"], cfg["num_layers"]))
    with open(stamp_path, "w", encoding="utf-8") as f:
        json.dump(stamp, f)
    return yaml_path, weights_path


def load_torch_model(cfg, weights_path):
    """The reference module with its weights read back from the very file Kiln loads."""
    model = classifier.build_model(0, cfg["vocab"], cfg["d_model"], cfg["num_layers"],
                                   cfg["dim_ff"], cfg["num_classes"])
    tensors, _ = safetensors_io.load_file(weights_path)
    state = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in tensors.items()}
    model.load_state_dict(state, strict=True)
    return model.eval()


def matmul_flops(cfg, batch, seq):
    """2*M*N*K summed over the model's matrix products."""
    d, ff, c, layers = cfg["d_model"], cfg["dim_ff"], cfg["num_classes"], cfg["num_layers"]
    m = batch * seq
    per_layer = (2 * m * d * (3 * d)        # QKV projection
                 + 2 * batch * seq * seq * d  # scores: H heads x [S, hd] @ [hd, S]
                 + 2 * batch * seq * seq * d  # context: H heads x [S, S] @ [S, hd]
                 + 2 * m * d * d            # out projection
                 + 2 * m * d * ff           # linear1
                 + 2 * m * ff * d)          # linear2
    return layers * per_layer + 2 * batch * d * c  # + head


def parse_shape(text):
    m = re.fullmatch(r"b?(\d+)\s*x\s*s?(\d+)", text.strip().lower())
    if not m:
        raise argparse.ArgumentTypeError("shape '%s' is not BxS, e.g. b1xs32 or 16x128" % text)
    return int(m.group(1)), int(m.group(2))


def shape_label(shape):
    return "b%dxs%d" % shape


def make_tokens(cfg_key, cfg, batch, seq):
    seed = (sum(ord(ch) for ch in cfg_key) * 1000003 + batch * 7919 + seq) % (2 ** 31)
    return np.random.RandomState(seed).randint(0, cfg["vocab"], size=(batch, seq)).astype(np.int64)


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------

def median(times):
    s = sorted(times)
    return s[len(s) // 2]


def torch_warmup(fn, x, warmup):
    """Runs fn warmup times (at least once); returns the time of the last call in seconds."""
    last = 0.0
    with torch.no_grad():
        for _ in range(max(1, warmup)):
            t0 = time.perf_counter()
            fn(x)
            last = time.perf_counter() - t0
    return last


def torch_time(fn, x, repeat, stop_after_s=None):
    """Timings (ms) of `repeat` calls. With stop_after_s, stops early once that much time has passed
    and DEFAULT_MIN_REPEAT calls are done (the machine got busy). Returns (timings, calls)."""
    times = []
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn(x)
            t1 = time.perf_counter()
            times.append((t1 - t0) * 1e3)
            if (stop_after_s is not None and len(times) >= DEFAULT_MIN_REPEAT
                    and t1 - start > stop_after_s):
                break
    return times, len(times)


class KilnInProcess:
    """Kiln in this process through the kiln Python module: one Model per (file, opt level), one
    latency-mode Session per (model, threads), warmed up on first use; calls timed like PyTorch's."""

    def __init__(self, kiln_module):
        self.kiln = kiln_module
        self.models, self.sessions = {}, {}

    def session(self, yaml_path, opt_level, threads, tokens, warmup):
        key = (yaml_path, opt_level, threads)
        if key not in self.sessions:
            if (yaml_path, opt_level) not in self.models:
                self.models[(yaml_path, opt_level)] = self.kiln.Model.load(yaml_path, opt_level=opt_level)
            self.sessions[key] = self.models[(yaml_path, opt_level)].session(threads=threads)
        session = self.sessions[key]
        if (key, tokens.shape) not in self.sessions:
            self.sessions[(key, tokens.shape)] = True
            for _ in range(max(1, warmup)):  # the first call compiles the plan for this shape
                session.run({"tokens": tokens})
        return session

    def run(self, threads, opt_level, yaml_path, tokens, repeat, warmup):
        """Median ms of `repeat` timed calls, threads per call, the probs of the last call."""
        try:
            session = self.session(yaml_path, opt_level, threads, tokens, warmup)
            inputs = {"tokens": tokens}
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                out = session.run(inputs)
                times.append((time.perf_counter() - t0) * 1e3)
        except self.kiln.Error as e:
            raise RuntimeError("kiln: " + str(e))
        return median(times), session.threads_per_run, out["probs"]

    def drop(self, yaml_path):
        """Frees a model's sessions (before the next model)."""
        for k in [k for k in self.sessions if (k[0] if isinstance(k[0], str) else k[0][0]) == yaml_path]:
            del self.sessions[k]
        for k in [k for k in self.models if k[0] == yaml_path]:
            del self.models[k]


class Kilnc:
    TIME_RE = re.compile(r"time per inference: median ([0-9.]+) ms, min ([0-9.]+) ms over (\d+) runs \((\d+) threads\)")

    def __init__(self, path):
        self.path = path

    def run(self, threads, opt_level, yaml_path, tokens_path, repeat, warmup, out_dir, extra_env=None):
        """Median ms, threads kilnc reports, probs it wrote (or None)."""
        extra_env = dict(extra_env or {})
        path = extra_env.pop("KILNC", None) or self.path  # a variant may run another build (before/after)
        quantize = extra_env.pop("QUANTIZE", None)  # --quantize: kilnc run --quantize Q ("none": no flag)
        cmd = [path, "--threads", str(threads), "run", yaml_path, "-O%d" % opt_level,
               "--input", "tokens=" + tokens_path, "--repeat", str(repeat), "--warmup", str(warmup),
               "--print-limit", "0", "--output-dir", out_dir]
        if quantize and quantize != "none":
            cmd += ["--quantize", quantize]
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), **(extra_env or {}))
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if p.returncode != 0:
            raise RuntimeError("kilnc failed (exit %d): %s\n%s%s"
                               % (p.returncode, " ".join(cmd), p.stdout[-2000:], p.stderr[-2000:]))
        m = self.TIME_RE.search(p.stdout)
        if not m:
            raise RuntimeError("could not find the timing line in kilnc's output:\n" + p.stdout[-2000:])
        ms, reported_threads = float(m.group(1)), int(m.group(4))
        probs_path = os.path.join(out_dir, "probs.npy")
        probs = np.load(probs_path) if os.path.isfile(probs_path) else None
        return ms, reported_threads, probs


def matmul_peak(path, threads, shape, budget_s):
    """Runs kiln_matmul_peak --json for one shape; returns its result dict (gflops, median_ms, runs,
    impl, ...) plus background_cpus, or raises RuntimeError."""
    cmd = [path, "--json", "--threads", str(threads), "--budget", "%g" % budget_s, shape]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    bg = BackgroundLoad()
    bg.start()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    bg_cores = bg.stop()
    if p.returncode != 0:
        raise RuntimeError("kiln_matmul_peak failed (exit %d): %s\n%s%s"
                           % (p.returncode, " ".join(cmd), p.stdout[-2000:], p.stderr[-2000:]))
    try:
        result = json.loads(p.stdout)["results"][0]
    except (ValueError, KeyError, IndexError) as e:
        raise RuntimeError("could not read kiln_matmul_peak's JSON (%s):\n%s" % (e, p.stdout[-2000:]))
    result["background_cpus"] = bg_cores
    return result


def measure_peaks(path, thread_list, when, notes):
    """kiln_matmul_peak at PEAK_SHAPE for each thread count; returns the results, each with "when"."""
    out = []
    for threads in thread_list:
        log("matmul peak %s, %d thread%s, %s ..." % (PEAK_SHAPE, threads, "" if threads == 1 else "s", when))
        try:
            pk = matmul_peak(path, threads, PEAK_SHAPE, PEAK_BUDGET_S)
        except RuntimeError as e:
            log(str(e))
            notes.append("kiln_matmul_peak failed with %d threads %s: %s"
                         % (threads, when, str(e).splitlines()[0]))
            continue
        pk["when"] = when
        out.append(pk)
    return out


# ---------------------------------------------------------------------------
# PyTorch variants
# ---------------------------------------------------------------------------

def eager_fast_path_taken(model, x):
    """True if nn.TransformerEncoderLayer's fused fast path ran, per the profiler."""
    try:
        with torch.no_grad(), torch.autograd.profiler.profile() as prof:
            model(x)
        names = {e.name for e in prof.function_events}
        return any("_transformer_encoder_layer_fwd" in n for n in names)
    except Exception:  # noqa: BLE001 - diagnostics only
        return None


def make_script(model, example):
    """script -> freeze -> optimize_for_inference; returns (module, None) or (None, reason)."""
    import warnings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.script(model)
            frozen = torch.jit.freeze(scripted.eval())
            optimized = torch.jit.optimize_for_inference(frozen)
            with torch.no_grad():
                optimized(example)
        return optimized, None
    except Exception as e:  # noqa: BLE001 - reported in the notes
        first = (str(e).strip().splitlines() or [""])[0]
        return None, "%s: %s" % (type(e).__name__, first[:200])


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def csv_list(text):
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="a,b",
                   help="comma-separated models among: %s (default: %%(default)s)" % ", ".join(MODELS))
    p.add_argument("--shapes", default=DEFAULT_SHAPES,
                   help="comma-separated BxS shapes, e.g. b1xs32,b16xs128 (default: %(default)s)")
    p.add_argument("--threads", default=DEFAULT_THREADS,
                   help="comma-separated thread counts (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=None,
                   help="timed runs per measurement for every engine and row. Default: automatic, "
                        "%d at most, fewer (not below %d) for rows whose warm-up run shows a "
                        "measurement would take over %.1f s" % (DEFAULT_MAX_REPEAT, DEFAULT_MIN_REPEAT,
                                                               DEFAULT_BUDGET_S))
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed runs before timing, for every engine. Default: 3, or 2 in rows "
                        "where the first PyTorch run takes over %.1f s" % SLOW_RUN_S)
    p.add_argument("--rounds", type=int, default=3,
                   help="split each row's timed runs into this many rounds, engines taking turns in "
                        "each, so that the shared machine's busy spells hit every engine alike "
                        "(default: %(default)s; 1: each engine's runs back to back)")
    p.add_argument("--quick", action="store_true",
                   help="just model a, shape b1xs32, threads 1 and 2")
    p.add_argument("--kiln-python", default=os.path.join(REPO_ROOT, "build", "python"),
                   help="folder holding the built kiln Python package (default: %(default)s)")
    p.add_argument("--kilnc", default=os.path.join(REPO_ROOT, "build", "tools", "kilnc"),
                   help="path to the kilnc binary, for --kiln-variants (default: %(default)s)")
    p.add_argument("--matmul-peak", default=os.path.join(REPO_ROOT, "build", "bench", "kiln_matmul_peak"),
                   help="path to the kiln_matmul_peak binary (default: %(default)s)")
    p.add_argument("--cache-dir", default=os.path.join(REPO_ROOT, "build", "bench"),
                   help="where generated models (weights + YAML) are kept (default: %(default)s)")
    p.add_argument("--no-script", action="store_true", help="skip the TorchScript column")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--kiln-variants", metavar="NAME=ENV,...",
                   help="compare Kiln -O2 under environments instead (no PyTorch): NAME=VAR=VALUE[;VAR=VALUE] "
                        "per variant, e.g. 'default=,avx2=KILN_MAX_ISA=avx2,onednn=KILN_GEMM=onednn'; "
                        "KILNC=PATH runs that kilnc instead (another build: before=KILNC=/tmp/old/kilnc,after=)")
    p.add_argument("--quantize", metavar="Q,...",
                   help="compare Kiln -O2 with the weights quantized (kilnc run --quantize Q; 'none': the f32 "
                        "weights), e.g. 'none,int8,bf16'; no PyTorch, like --kiln-variants (each variant runs "
                        "each Q); max|Δprobs| is against the first")
    args = p.parse_args(argv)
    args.variants = None
    if args.kiln_variants:
        args.variants = []
        for item in csv_list(args.kiln_variants):
            name, _, env_text = item.partition("=")
            env = {}
            for assignment in [a for a in env_text.split(";") if a]:
                var, eq, value = assignment.partition("=")
                if not eq or not var:
                    p.error("--kiln-variants: '%s' is not VAR=VALUE (in '%s')" % (assignment, item))
                env[var] = value
            if not name:
                p.error("--kiln-variants: '%s' has no name" % item)
            args.variants.append((name, env))
    if args.quantize:
        formats = csv_list(args.quantize)
        for q in formats:
            if q not in ("none", "int8", "bf16"):
                p.error("--quantize: unknown format '%s' (expected none, int8 or bf16)" % q)
        base = args.variants or [("kiln", {})]
        args.variants = [(q if len(base) == 1 else "%s/%s" % (name, q), dict(env, QUANTIZE=q))
                         for name, env in base for q in formats]
    if args.quick:
        args.models, args.shapes, args.threads = "a", "b1xs32", "1,2"
    args.model_keys = csv_list(args.models)
    for k in args.model_keys:
        if k not in MODELS:
            p.error("unknown model '%s' (known: %s)" % (k, ", ".join(MODELS)))
    try:
        args.shape_list = [parse_shape(s) for s in csv_list(args.shapes)]
    except argparse.ArgumentTypeError as e:
        p.error(str(e))
    try:
        args.thread_list = [int(t) for t in csv_list(args.threads)]
    except ValueError:
        p.error("--threads expects comma-separated integers")
    if not args.model_keys or not args.shape_list or not args.thread_list or min(args.thread_list) < 1:
        p.error("need at least one model, shape and positive thread count")
    if args.repeat is not None and args.repeat < 1:
        p.error("--repeat must be >= 1")
    if args.warmup is not None and args.warmup < 1:
        p.error("--warmup must be >= 1")
    return args


def fmt_ms(v):
    if v is None:
        return "n/a"
    return "%.3f" % v if v < 10 else "%.2f" % v if v < 100 else "%.1f" % v


def fmt_gflops(v):
    if v is None:
        return "n/a"
    return "%.1f" % v if v >= 1 else "%.2f" % v


def fmt_ratio(v):
    return "n/a" if v is None else "%.2f" % v


def fmt_pct(v):
    return "n/a" if v is None else "%.0f%%" % (100 * v) if v >= 0.1 else "%.1f%%" % (100 * v)


def ratio(a, b):
    return None if a is None or b is None or b <= 0 else a / b


def row_label(r):
    return "%s %s t%d" % (r["model"], r["shape"], r["threads"])


def check_targets(rows, peaks):
    """The issue's targets as (status, text, measured) with status PASS, FAIL or n/a."""
    out = []
    for t in TARGETS:
        shape = shape_label(t["shape"])
        text = t["text"]
        row = next((r for r in rows if r["model_key"] == t["model"] and r["shape"] == shape
                    and r["threads"] == t["threads"]), None)
        if row is None:
            out.append(("n/a", text, "not measured: needs model %s, shape %s, %d thread%s in the run"
                        % (t["model"], shape, t["threads"], "" if t["threads"] == 1 else "s")))
            continue
        noisy = ""
        if row["background_cpus"] is not None and row["background_cpus"] > NOISY_CPUS:
            noisy = " (noisy row: other processes used %.2f CPU)" % row["background_cpus"]
        if t["kind"] == "peak":
            peak = peaks.get(t["threads"])
            value = ratio(row["gflops"], peak["gflops"] if peak else None)
            if value is None:
                out.append(("n/a", text, "not measured (Kiln or the matmul peak failed)"))
                continue
            ok = value >= t["limit"]
            measured = "%s GFLOP/s = %s of %s GFLOP/s" % (fmt_gflops(row["gflops"]), fmt_pct(value),
                                                          fmt_gflops(peak["gflops"]))
            if peak["background_cpus"] is not None and peak["background_cpus"] > NOISY_CPUS:
                noisy += " (noisy peak: other processes used %.2f CPU)" % peak["background_cpus"]
            if value > 1.0:
                noisy += " (above 100%: the matmul peak was probably measured low; rerun)"
        else:
            value = row["ratio"]
            if value is None:
                out.append(("n/a", text, "not measured (kiln failed)"))
                continue
            ok = value <= t["limit"]
            measured = "%.2f x (%s ms vs %s ms)" % (value, fmt_ms(row["kiln_ms"]), fmt_ms(row["eager_ms"]))
        out.append(("PASS" if ok else "FAIL", text, measured + noisy))
    return out


def load_average():
    try:
        with open("/proc/loadavg", encoding="utf-8") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def compare_variants(args, kilnc, tmp_root):
    """--kiln-variants, --quantize: Kiln -O2 under each environment, taking turns in rounds; prints a table."""
    names = [name for name, _ in args.variants]
    rows = []
    if args.quantize:  # a kilnc without --quantize (or a CPU without the format) fails here, clearly
        key = args.model_keys[0]
        cfg = dict(MODELS[key])
        yaml_path = ensure_generated(cfg, os.path.abspath(args.cache_dir))[0] if "generated" in cfg else cfg["yaml"]
        tokens_path = os.path.join(tmp_root, "tokens_probe.npy")
        np.save(tokens_path, make_tokens(key, cfg, 1, 8), allow_pickle=False)
        for name, env in args.variants:
            try:
                kilnc.run(1, 2, yaml_path, tokens_path, 1, 1, os.path.join(tmp_root, "probe"), env)
            except RuntimeError as e:
                print("error: variant %s (--quantize %s) does not run: %s" % (name, env.get("QUANTIZE"), e),
                      file=sys.stderr)
                return 2
    for key in args.model_keys:
        cfg = dict(MODELS[key])
        if "generated" in cfg:
            yaml_path, _ = ensure_generated(cfg, os.path.abspath(args.cache_dir))
        else:
            yaml_path = cfg["yaml"]
        for batch, seq in args.shape_list:
            tokens_path = os.path.join(tmp_root, "tokens_%s_b%d_s%d.npy" % (key, batch, seq))
            np.save(tokens_path, make_tokens(key, cfg, batch, seq), allow_pickle=False)
            for threads in args.thread_list:
                label = "%s %s t%d" % (cfg["label"], shape_label((batch, seq)), threads)
                rounds = max(1, args.rounds)
                per_round = max(1, (args.repeat or 30) // rounds)
                warmup = args.warmup or DEFAULT_WARMUP
                medians = {name: [] for name in names}
                probs = {}
                loads = [load_average()]
                for rnd in range(rounds):
                    order = names if rnd % 2 == 0 else names[::-1]  # alternate who goes first
                    for name in order:
                        env = dict(args.variants)[name]
                        out_dir = os.path.join(tmp_root, "out_%s_%s_b%d_s%d_t%d" % (name, key, batch, seq, threads))
                        ms, _, pr = kilnc.run(threads, 2, yaml_path, tokens_path, per_round, warmup, out_dir, env)
                        medians[name].append(ms)
                        probs[name] = pr
                    loads.append(load_average())
                    log("  %s round %d: %s; load %s" % (label, rnd + 1, ", ".join(
                        "%s %.3f ms" % (n, medians[n][-1]) for n in names), loads[-1]))
                first = names[0]
                diffs = {n: (None if probs[n] is None or probs[first] is None
                             else float(np.max(np.abs(probs[n].astype(np.float64) - probs[first]))))
                         for n in names}
                rows.append(dict(label=label, ms={n: median(medians[n]) for n in names},
                                 rounds={n: medians[n] for n in names}, diffs=diffs, loads=loads,
                                 per_round=per_round, rounds_n=rounds))
    print("Kiln -O2 per variant (median of %s round medians, ms; ratio to %s; load average before the "
          "first round .. after the last):" % ("/".join(str(r["rounds_n"]) for r in rows[:1]), names[0]))
    print()
    print("| row | " + " | ".join("%s ms" % n for n in names) + " | "
          + " | ".join("%s/%s" % (n, names[0]) for n in names[1:]) + " | load average |")
    print("|---|" + "---:|" * (2 * len(names) - 1) + "---|")
    for r in rows:
        print("| %s | %s | %s | %s .. %s |" % (
            r["label"], " | ".join(fmt_ms(r["ms"][n]) for n in names),
            " | ".join(fmt_ratio(ratio(r["ms"][n], r["ms"][names[0]])) for n in names[1:]),
            r["loads"][0], r["loads"][-1]))
    print()
    for r in rows:
        print("%s: %d runs per round; round medians %s; max|Δprobs| vs %s: %s" % (
            r["label"], r["per_round"], "; ".join("%s %s" % (n, ", ".join(fmt_ms(v) for v in r["rounds"][n]))
                                                  for n in names),
            names[0], ", ".join("%s %s" % (n, "n/a" if r["diffs"][n] is None else "%.1e" % r["diffs"][n])
                                for n in names[1:])))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(dict(header=[machine_line()], variants=args.kiln_variants, rows=rows), f, indent=2)
    return 0


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    kilnc_path = os.path.abspath(args.kilnc)
    peak_path = os.path.abspath(args.matmul_peak)
    needed = [("kiln_matmul_peak", peak_path)] + ([("kilnc", kilnc_path)] if args.variants else [])
    for name, path in needed:
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            print("error: %s not found at %s; build it first: cmake -S . -B build && cmake --build build -j2"
                  % (name, path), file=sys.stderr)
            return 2
    tmp_root = tempfile.mkdtemp(prefix="kiln_bench_")
    # Run private copies so that a concurrent rebuild of build/ cannot swap a binary mid-run.
    peak_copy = os.path.join(tmp_root, "kiln_matmul_peak")
    shutil.copy2(peak_path, peak_copy)
    if args.variants:
        kilnc_copy = os.path.join(tmp_root, "kilnc")
        shutil.copy2(kilnc_path, kilnc_copy)
        kilnc = Kilnc(kilnc_copy)
        kilnc_built = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(kilnc_path)))
        print(machine_line(), flush=True)
        print("kilnc: %s (built %s); %s" % (os.path.relpath(kilnc_path, os.getcwd()), kilnc_built, git_line()))
        try:
            return compare_variants(args, kilnc, tmp_root)
        finally:
            shutil.rmtree(tmp_root, ignore_errors=True)

    sys.path.insert(0, os.path.abspath(args.kiln_python))
    try:
        import kiln
    except ImportError as e:
        print("error: cannot import the kiln module from %s (%s); build it first: cmake -S . -B build && "
              "cmake --build build -j2" % (args.kiln_python, e), file=sys.stderr)
        shutil.rmtree(tmp_root, ignore_errors=True)
        return 2
    kiln_in_process = KilnInProcess(kiln)
    module_built = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(kiln._kiln.__file__)))
    header = [machine_line(),
              "PyTorch %s, numpy %s, python %s" % (torch.__version__, np.__version__, sys.version.split()[0])]
    blas_lines, _ = blas_report()
    header += blas_lines
    header.append("Kiln: in this process, the kiln module %s %s (built %s); %s"
                  % (kiln.__version__, os.path.relpath(kiln._kiln.__file__, os.getcwd()), module_built, git_line()))
    for line in header:
        print(line, flush=True)
    print(flush=True)

    rows, notes, peaks, peak_runs = [], [], {}, []
    try:
        peak_runs = measure_peaks(peak_copy, args.thread_list, "before the rows", notes)
        for key in args.model_keys:
            cfg = dict(MODELS[key])
            if "generated" in cfg:
                yaml_path, weights_path = ensure_generated(cfg, os.path.abspath(args.cache_dir))
            else:
                yaml_path, weights_path = cfg["yaml"], cfg["weights"]
            log("model %s: %s" % (cfg["label"], os.path.relpath(yaml_path, REPO_ROOT)))
            model = load_torch_model(cfg, weights_path)

            first = torch.from_numpy(make_tokens(key, cfg, *args.shape_list[0]))
            torch.set_num_threads(args.thread_list[0])
            fast = eager_fast_path_taken(model, first)
            notes.append("model %s: PyTorch eager TransformerEncoderLayer fast path %s"
                         % (cfg["label"], {True: "taken", False: "NOT taken", None: "unknown"}[fast]))
            script, why = (None, "skipped (--no-script)") if args.no_script else make_script(model, first)
            if script is None:
                notes.append("model %s: TorchScript frozen + optimize_for_inference: n/a (%s)"
                             % (cfg["label"], why))

            for batch, seq in args.shape_list:
                tokens = make_tokens(key, cfg, batch, seq)
                x = torch.from_numpy(tokens)  # shares the array Kiln reads
                flops = matmul_flops(cfg, batch, seq)
                for threads in args.thread_list:
                    label = "%s %s t%d" % (cfg["label"], shape_label((batch, seq)), threads)
                    bg = BackgroundLoad()
                    bg.start()
                    torch.set_num_threads(threads)
                    eager = model
                    warmup = args.warmup
                    if warmup is None:
                        warmup = 2 if torch_warmup(eager, x, 1) > SLOW_RUN_S else DEFAULT_WARMUP
                        last_s = torch_warmup(eager, x, warmup - 1)
                    else:
                        last_s = torch_warmup(eager, x, warmup)
                    if args.repeat is not None:
                        repeat = args.repeat
                    else:
                        repeat = int(min(DEFAULT_MAX_REPEAT,
                                         max(DEFAULT_MIN_REPEAT, DEFAULT_BUDGET_S / max(last_s, 1e-6))))
                    log("  %s t%d: %d runs after %d warm-up ..." % (shape_label((batch, seq)), threads,
                                                                    repeat, warmup))
                    # Rounds: every engine runs `per_round` timed calls per round, engines taking turns,
                    # so that a busy spell of the shared machine hits all of them alike. Each engine's
                    # figure is the median of its round medians (kilnc reports one median per call).
                    rounds = max(1, min(args.rounds, repeat // MIN_RUNS_PER_ROUND))
                    per_round = max(1, repeat // rounds)
                    # automatic repeat: if the machine gets busy, stop round 1 at 4x its share of the
                    # budget and use the number of runs done for every engine and round
                    first_round, per_round = torch_time(
                        eager, x, per_round, None if args.repeat is not None else 4 * DEFAULT_BUDGET_S / rounds)
                    repeat = per_round * rounds
                    with torch.no_grad():
                        torch_probs = model(x)[1].numpy()
                    log("  %s t%d: %d rounds of %d runs per engine" % (shape_label((batch, seq)), threads,
                                                                      rounds, per_round))
                    eager_rounds, script_rounds = [median(first_round)], []
                    kiln_rounds = {opt: [] for opt in KILN_OPT_LEVELS}
                    kiln_probs, failed = {}, set()
                    for rnd in range(rounds):
                        if rnd > 0:
                            eager_rounds.append(median(torch_time(eager, x, per_round)[0]))
                        if script is not None:
                            if rnd == 0:
                                torch_warmup(script, x, warmup)
                            script_rounds.append(median(torch_time(script, x, per_round)[0]))
                        for opt in KILN_OPT_LEVELS:
                            if opt in failed:
                                continue
                            try:
                                ms, kiln_threads, probs = kiln_in_process.run(threads, opt, yaml_path, tokens,
                                                                              per_round, warmup)
                            except RuntimeError as e:
                                log(str(e))
                                notes.append("%s: kiln -O%d failed: %s" % (label, opt, str(e).splitlines()[0]))
                                failed.add(opt)
                                continue
                            if kiln_threads != threads:
                                notes.append("%s: asked kiln -O%d for %d threads, its session uses %d"
                                             % (label, opt, threads, kiln_threads))
                            kiln_rounds[opt].append(ms)
                            kiln_probs[opt] = probs
                    eager_ms = median(eager_rounds)
                    script_ms = median(script_rounds) if script_rounds else None
                    if script is not None:
                        with torch.no_grad():
                            sd = float(np.max(np.abs(script(x)[1].numpy() - torch_probs)))
                        if sd > 1e-5:
                            notes.append("%s: TorchScript probs differ from eager by %.2e" % (label, sd))

                    kiln = {}
                    for opt in KILN_OPT_LEVELS:
                        ms = median(kiln_rounds[opt]) if kiln_rounds[opt] else None
                        probs = kiln_probs.get(opt)
                        if probs is None or probs.shape != torch_probs.shape:
                            diff = None
                            if ms is not None:
                                notes.append("%s: kiln -O%d returned no probs of shape %s"
                                             % (label, opt, list(torch_probs.shape)))
                        else:
                            diff = float(np.max(np.abs(probs.astype(np.float64) - torch_probs)))
                        kiln[opt] = (ms, diff)
                    bg_cores = bg.stop()
                    kiln_ms, diff2 = kiln[2]
                    kiln_o0_ms, diff0 = kiln[0]
                    diffs = [d for d in (diff2, diff0) if d is not None]
                    gflops = None if kiln_ms is None else flops / (kiln_ms * 1e-3) / 1e9
                    rows.append(dict(model=cfg["label"], model_key=key, shape=shape_label((batch, seq)),
                                     threads=threads, background_cpus=bg_cores,
                                     kiln_ms=kiln_ms, kiln_o0_ms=kiln_o0_ms,
                                     o2_over_o0=ratio(kiln_ms, kiln_o0_ms),
                                     eager_ms=eager_ms, script_ms=script_ms,
                                     ratio=ratio(kiln_ms, eager_ms), gflops=gflops,
                                     flops=flops, max_dprobs=max(diffs) if diffs else None,
                                     max_dprobs_o2=diff2, max_dprobs_o0=diff0,
                                     repeat=repeat, warmup=warmup, rounds=rounds))
                    log("    kiln -O2 %s ms, -O0 %s ms, eager %s ms, script %s ms; other processes busy on %s CPUs"
                        % (fmt_ms(kiln_ms), fmt_ms(kiln_o0_ms), fmt_ms(eager_ms), fmt_ms(script_ms),
                           "?" if bg_cores is None else "%.2f" % bg_cores))
            model = script = None  # free before the next model
            kiln_in_process.drop(yaml_path)
        # The peak again after the rows: the higher of the two is used, so that one unlucky moment
        # (the machine briefly busy) does not make the whole model look better than its matmuls.
        peak_runs += measure_peaks(peak_copy, args.thread_list, "after the rows", notes)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)

    for threads in args.thread_list:
        done = [pk for pk in peak_runs if pk["threads"] == threads]
        peaks[threads] = max(done, key=lambda pk: pk["gflops"]) if done else None
    for r in rows:
        pk = peaks.get(r["threads"])
        r["pct_of_peak"] = ratio(r["gflops"], pk["gflops"] if pk else None)

    shape_text = "x".join(PEAK_SHAPE.split(",")[:3])
    print("oneDNN matmul peak (`kiln_matmul_peak %s`: one f32 matmul %s, weights stored N x K as Kiln "
          "stores them; measured in this run):" % (PEAK_SHAPE, shape_text))
    for threads in args.thread_list:
        pk = peaks.get(threads)
        if pk is None:
            print("- %d thread%s: n/a (failed)" % (threads, "" if threads == 1 else "s"))
            continue
        noisy = ""
        if pk["background_cpus"] is not None and pk["background_cpus"] > NOISY_CPUS:
            noisy = "; WARNING: other processes used %.2f CPU meanwhile" % pk["background_cpus"]
        both = ", ".join("%s %s" % (fmt_gflops(p_["gflops"]), p_["when"])
                         for p_ in peak_runs if p_["threads"] == threads)
        print("- %d thread%s: **%s GFLOP/s** (median %s ms over %d runs, %s; the higher of: %s%s)"
              % (threads, "" if threads == 1 else "s", fmt_gflops(pk["gflops"]), fmt_ms(pk["median_ms"]),
                 pk["runs"], pk["impl"], both, noisy))
    print()
    print("| model | shape | threads | kiln -O2 ms | kiln -O0 ms | -O2/-O0 | torch eager ms | torch script ms "
          "| kiln/eager ratio | kiln GFLOP/s | kiln % of matmul peak | max\\|Δprobs\\| |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |"
              % (r["model"], r["shape"], r["threads"], fmt_ms(r["kiln_ms"]), fmt_ms(r["kiln_o0_ms"]),
                 fmt_ratio(r["o2_over_o0"]), fmt_ms(r["eager_ms"]), fmt_ms(r["script_ms"]),
                 fmt_ratio(r["ratio"]), fmt_gflops(r["gflops"]), fmt_pct(r["pct_of_peak"]),
                 "n/a" if r["max_dprobs"] is None else "%.1e" % r["max_dprobs"]))
    print()
    plans = sorted(set((r["repeat"], r["rounds"], r["warmup"]) for r in rows))
    if len(plans) == 1:
        print("Timed runs per engine and row: %d in %d rounds, each after %d warm-up runs (same for every "
              "engine)." % plans[0])
    else:
        print("Timed runs in rounds (after warm-up runs) per engine, the same for every engine in a row: %s."
              % ", ".join("%s: %d in %d (%d)" % (row_label(r), r["repeat"], r["rounds"], r["warmup"])
                          for r in rows))
    for n in notes:
        print("Note: " + n)
    loads = [r["background_cpus"] for r in rows if r["background_cpus"] is not None]
    if loads:
        nproc = os.cpu_count() or 1
        noisy = [r for r in rows if r["background_cpus"] is not None and r["background_cpus"] > NOISY_CPUS]
        print("Other processes kept %.2f-%.2f of %d CPUs busy while rows ran (mean %.2f)."
              % (min(loads), max(loads), nproc, sum(loads) / len(loads)))
        if noisy:
            print("WARNING: rows measured while other processes used > %.2f CPU (timings, and especially "
                  "multi-thread ones, are unreliable there; rerun when the machine is idle): %s."
                  % (NOISY_CPUS, "; ".join("%s (%.2f)" % (row_label(r), r["background_cpus"]) for r in noisy)))
    slower = [r for r in rows if r["ratio"] is not None and r["ratio"] > 1.0]
    if slower:
        print("Kiln slower than PyTorch eager in %d of %d rows: %s."
              % (len(slower), len(rows), "; ".join("%s x%.2f" % (row_label(r), r["ratio"]) for r in slower)))
    elif rows:
        print("Kiln is at least as fast as PyTorch eager in every row.")

    targets = check_targets(rows, peaks)
    print()
    print("Targets (Kiln -O2, from this run):")
    for status, text, measured in targets:
        print("- [%s] %-4s %s: %s" % ("x" if status == "PASS" else " ", status, text, measured))
    counts = {k: sum(1 for t in targets if t[0] == k) for k in ("PASS", "FAIL", "n/a")}
    print("%d of %d targets pass, %d fail, %d not measured."
          % (counts["PASS"], len(targets), counts["FAIL"], counts["n/a"]))
    print("Wall time of this benchmark: %.0f s." % (time.perf_counter() - T_PROCESS_START))

    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(dict(header=header, matmul_peak=dict(shape=PEAK_SHAPE, by_threads=peaks, runs=peak_runs),
                           rows=rows,
                           notes=notes,
                           targets=[dict(status=s_, target=t_, measured=m_) for s_, t_, m_ in targets]),
                      f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
