#!/usr/bin/env python3
"""Benchmark greedy decoding on the date-translation Transformer: Kiln vs PyTorch, same weights, same run.

Model: examples/date_translation/transformer.yaml + transformer.safetensors (torch.nn.Transformer, d_model
64, 4 heads, 2+2 layers), the reference module tools/reference/date_transformer.py.

For each batch size B (default 1 and 16) and thread count T (default 1 and 2) it generates exactly
--tokens tokens (default 32; the end token is ignored) for B date strings and reports the decoder loop's
time per generated token (the encoder runs once before the loop and is reported apart):
  kiln         bench binary kiln_generate_bench (kiln::Generator: KV cache, one decoder plan for all steps)
  torch recompute   nn.Transformer's decoder over the whole prefix at every step, last position's logits
                    (the plain PyTorch loop)
  torch incremental a hand-written PyTorch loop with the same weights: K/V caches preallocated to the
                    maximum length, cross-attention keys/values computed once (F.linear, matmul, softmax)
Each figure is the median over --repeat runs after one warm-up; tokens/s = B * tokens / loop time.
Then it generates --flat-tokens (default 64) tokens at batch 1 and compares the median step time of
tokens 8-15 with that of tokens 57-64 (flat within 20% shows the cache works; the recompute loop grows).
Sanity checks: the incremental loop's tokens equal the recompute loop's.

--model PATH times Kiln alone on another seq2seq model, e.g. 'decode-bench', the d256 3+3-layer
8000-token Transformer of issue 16 (tools/reference/make_decode_bench_model.py): per batch size, every
(--quantize format, thread count) takes turns over --rounds rounds; it prints ms per token, tokens/s, the
speed-up over the first thread count, the median step time (robust to the stalls a busy machine puts
into a 2-thread loop), the weight bytes and the peak RSS of kiln_generate_bench.
--quantize none,int8,bf16 passes each format to kiln_generate_bench --quantize (both modes).

  scripts/build.sh && /usr/bin/python3 bench/bench_generate.py [--threads 1] [--batches 1,16] [--repeat 20]
  /usr/bin/python3 bench/bench_generate.py --model decode-bench --threads 1,2 --batches 1,16 --rounds 5 --repeat 5
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
sys.dont_write_bytecode = True
import dates  # noqa: E402
import date_transformer as ref  # noqa: E402

TEXTS = ["Thursday, November 26, 2026", "nov 26 2026", "26/11/26", "1999.12.31", "3rd of March, 1951",
         "Sat 1 Jan 2000", "07-08-2049", "OCTOBER 5, 1987"]  # the same as bench/generate_bench.cpp


def sources(batch):
    return [TEXTS[i % len(TEXTS)] for i in range(batch)]


@torch.no_grad()
def recompute_loop(model, texts, tokens):
    """Returns (loop seconds, per-step seconds, tokens)."""
    src, pad = ref.batch_sources(texts)
    memory = model.encode(src, pad)
    ys = torch.full((len(texts), 1), dates.BOS, dtype=torch.int64)
    steps = []
    t0 = time.perf_counter()
    for _ in range(tokens):
        s0 = time.perf_counter()
        nxt = model.decode(ys, memory, pad)[:, -1].argmax(-1)
        ys = torch.cat([ys, nxt.unsqueeze(1)], 1)
        steps.append(time.perf_counter() - s0)
    return time.perf_counter() - t0, steps, ys[:, 1:]


class Incremental:
    """Greedy decoding with per-layer K/V caches [B,H,Tmax,dh] and cross-attention K/V computed once."""

    def __init__(self, model):
        self.m = model
        self.dec = model.transformer.decoder
        self.h = ref.NHEAD
        self.e = ref.D_MODEL
        self.dh = self.e // self.h

    def heads(self, x):  # [B,T,E] -> [B,H,T,dh]
        b, t, _ = x.shape
        return x.view(b, t, self.h, self.dh).transpose(1, 2)

    @torch.no_grad()
    def run(self, texts, tokens):
        m, e = self.m, self.e
        src, pad = ref.batch_sources(texts)
        memory = m.encode(src, pad)
        b = len(texts)
        mask = torch.zeros(pad.shape).masked_fill(pad, float("-inf"))[:, None, None, :]
        cross, caches = [], []
        for layer in self.dec.layers:
            w, bias = layer.multihead_attn.in_proj_weight, layer.multihead_attn.in_proj_bias
            k = self.heads(F.linear(memory, w[e:2 * e], bias[e:2 * e]))
            v = self.heads(F.linear(memory, w[2 * e:], bias[2 * e:]))
            cross.append((k, v))
            caches.append((torch.zeros(b, self.h, tokens, self.dh), torch.zeros(b, self.h, tokens, self.dh)))
        tok = torch.full((b,), dates.BOS, dtype=torch.int64)
        out = torch.empty(b, tokens, dtype=torch.int64)
        scale = 1.0 / (self.dh ** 0.5)
        steps = []
        t0 = time.perf_counter()
        for t in range(tokens):
            s0 = time.perf_counter()
            x = (m.tgt_embed(tok) + m.tgt_pos.weight[t]).unsqueeze(1)  # [B,1,E]
            for layer, (ck, cv), (kc, vc) in zip(self.dec.layers, cross, caches):
                sa = layer.self_attn
                q, k, v = F.linear(x, sa.in_proj_weight, sa.in_proj_bias).split(e, -1)
                kc[:, :, t] = k.view(b, self.h, self.dh)
                vc[:, :, t] = v.view(b, self.h, self.dh)
                p = torch.softmax(self.heads(q) @ kc[:, :, :t + 1].transpose(-1, -2) * scale, -1)
                a = (p @ vc[:, :, :t + 1]).transpose(1, 2).reshape(b, 1, e)
                x = layer.norm1(x + sa.out_proj(a))
                ca = layer.multihead_attn
                q = F.linear(x, ca.in_proj_weight[:e], ca.in_proj_bias[:e])
                p = torch.softmax(self.heads(q) @ ck.transpose(-1, -2) * scale + mask, -1)
                a = (p @ cv).transpose(1, 2).reshape(b, 1, e)
                x = layer.norm2(x + ca.out_proj(a))
                x = layer.norm3(x + layer.linear2(F.relu(layer.linear1(x))))
            logits = m.generator(self.dec.norm(x))[:, 0]
            tok = logits.argmax(-1)
            out[:, t] = tok
            steps.append(time.perf_counter() - s0)
        return time.perf_counter() - t0, steps, out


DATE_MODEL = os.path.join(ROOT, "examples/date_translation/transformer.yaml")
DECODE_BENCH_DIR = "/tmp/kiln-decode-bench"  # tools/reference/make_decode_bench_model.py's default


def kiln_run(binary, batch, tokens, threads, repeat, model=DATE_MODEL, quantize="none"):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [binary, model, "--batch", str(batch), "--tokens", str(tokens), "--repeat", str(repeat),
           "--threads", str(threads)]
    if quantize != "none":  # a build without quantization refuses the flag ("quantize: not supported ...")
        cmd += ["--quantize", quantize]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit("error: %s failed (exit %d): %s" % (" ".join(cmd), p.returncode, (p.stderr or p.stdout).strip()))
    return json.loads(p.stdout)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def resolve_model(arg):
    """--model: a model file, a folder holding model.yaml, or 'decode-bench' (written on first use)."""
    if arg == "decode-bench":
        arg = DECODE_BENCH_DIR
        if not os.path.isfile(os.path.join(arg, "model.yaml")):
            subprocess.run([sys.executable, os.path.join(ROOT, "tools/reference/make_decode_bench_model.py"), arg],
                           check=True)
    path = os.path.join(arg, "model.yaml") if os.path.isdir(arg) else arg
    if not os.path.isfile(path):
        sys.exit("error: no model at %s (write it with tools/reference/make_decode_bench_model.py DIR)" % path)
    return path


def kiln_table(args):
    """--model: Kiln alone on any seq2seq model; every (quantize, threads) of a batch size takes turns in
    --rounds rounds (the order alternates), each figure the median of the round medians."""
    model = resolve_model(args.model)
    formats = args.quantize.split(",")
    threads_list = [int(x) for x in args.threads.split(",")]
    builds = [("kiln", args.kiln_bench)] + ([("before", args.compare_kiln)] if args.compare_kiln else [])
    print("model: %s" % model)
    print("machine: %s, %d cores, load average %s" % (cpu_name(), os.cpu_count(), loadavg()))
    print("greedy decoding, %d tokens, decoder loop ms per token: median of %d round medians (%d runs each)"
          % (args.tokens, args.rounds, args.repeat))
    print()
    print("| batch | quantize | build | threads | ms/token | tokens/s | vs %d thread(s) | median step ms | "
          "decoder weights MB | encoder weights MB | peak RSS MB | round medians |" % threads_list[0])
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for batch in [int(x) for x in args.batches.split(",")]:
        configs = [(q, b, t) for q in formats for b in builds for t in threads_list]
        ms = {c: [] for c in configs}
        step = {c: [] for c in configs}  # per run: the median over the tokens of each token's median step
        info = {}
        for rnd in range(args.rounds):
            for c in (configs if rnd % 2 == 0 else configs[::-1]):
                q, (name, path), t = c
                if args.wait_quiet:
                    waited, busy = wait_quiet(args.wait_quiet)
                    log("batch %d round %d %s/%s/%dT: waited %.0f s for a quiet machine (others %.0f%% busy)"
                        % (batch, rnd + 1, q, name, t, waited, 100 * busy))
                k = kiln_run(path, batch, args.tokens, t, args.repeat, model, q)
                ms[c].append(k["loop_ms"] / args.tokens)
                step[c].append(median(k["step_ms"]))
                info[c] = k
        for c in configs:
            q, (name, _), t = c
            m, k = median(ms[c]), info[c]
            one = median(ms[(q, (name, dict(builds)[name]), threads_list[0])])
            print("| %d | %s | %s | %d | %.4f | %.0f | %.2fx | %.4f | %.1f | %.1f | %.1f | %s |" % (
                batch, q, name, t, m, batch * 1e3 / m, one / m, median(step[c]), k.get("decoder_weight_bytes", 0) / 1e6,
                k.get("encoder_weight_bytes", 0) / 1e6,
                k.get("peak_rss_bytes", 0) / 1e6, ", ".join("%.4f" % v for v in ms[c])), flush=True)
    print()
    print("load average after: %s" % loadavg())
    return 0


def cpu_busy(seconds):
    """Fraction of all CPUs busy over the next `seconds` (from /proc/stat; this script itself sleeps)."""
    def read():
        with open("/proc/stat", encoding="utf-8") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    t0, i0 = read()
    time.sleep(seconds)
    t1, i1 = read()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def wait_quiet(max_wait_s, threshold=0.10):
    """--wait-quiet: waits until other processes kept the CPUs under `threshold` busy for 1 s (at most
    max_wait_s); returns (seconds waited, busy fraction of the last second)."""
    t0 = time.time()
    busy = cpu_busy(1.0)
    while busy > threshold and time.time() - t0 < max_wait_s:
        busy = cpu_busy(1.0)
    return time.time() - t0, busy


def cpu_name():
    """The model name with the family and model numbers ("AMD EPYC (family 26 model 2)") and AVX-512."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if not line.strip():
                    break
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return "unknown CPU"
    return "%s (family %s model %s%s)" % (fields.get("model name", "?"), fields.get("cpu family", "?"),
                                           fields.get("model", "?"),
                                           ", avx512f" if "avx512f" in fields.get("flags", "").split() else "")


def loadavg():
    return " ".join("%.2f" % v for v in os.getloadavg())


def median(xs):
    return sorted(xs)[len(xs) // 2]


def timed(fn, repeat):
    fn()  # warm-up
    loops, steps = [], []
    for _ in range(repeat):
        loop, step, _ = fn()
        loops.append(loop)
        steps.append(step)
    per_step = [median([s[t] for s in steps]) for t in range(len(steps[0]))]
    return median(loops), per_step


def compare_builds(args):
    """--compare-kiln: ms per generated token of two builds, taking turns in rounds (the order alternates)."""
    builds = [("before", args.compare_kiln), ("after", args.kiln_bench)]
    print("machine: %d cores, load average %.1f" % (os.cpu_count(), os.getloadavg()[0]))
    print("greedy decoding, %d tokens, decoder loop ms per token: median of %d round medians (%d runs each)"
          % (args.tokens, args.rounds, args.repeat))
    print("| batch | threads | before | after | after/before |")
    print("|---:|---:|---:|---:|---:|")
    for threads in [int(x) for x in args.threads.split(",")]:
        for batch in [int(x) for x in args.batches.split(",")]:
            ms = {name: [] for name, _ in builds}
            for rnd in range(args.rounds):
                for name, path in (builds if rnd % 2 == 0 else builds[::-1]):
                    ms[name].append(kiln_run(path, batch, args.tokens, threads, args.repeat)["loop_ms"] / args.tokens)
            b, a = median(ms["before"]), median(ms["after"])
            print("| %d | %d | %.4f | %.4f | %.3f |" % (batch, threads, b, a, a / b), flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--flat-tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--kiln-bench", default=os.path.join(ROOT, "build", "bench", "kiln_generate_bench"))
    ap.add_argument("--compare-kiln", metavar="PATH",
                    help="only compare Kiln with another build of kiln_generate_bench (before/after a change): "
                         "both take turns over --rounds rounds of --repeat runs; no PyTorch")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", metavar="PATH",
                    help="time Kiln alone on this seq2seq model (a .yaml, a folder with model.yaml, or "
                         "'decode-bench': tools/reference/make_decode_bench_model.py's model, written to %s on "
                         "first use); no PyTorch; with --compare-kiln, both builds" % DECODE_BENCH_DIR)
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                    help="with --model: before each run, wait up to S seconds until other processes kept the CPUs "
                         "under 10%% busy for a second (a shared machine's builds stall 2-thread runs)")
    ap.add_argument("--quantize", default="none",
                    help="weight formats for Kiln, comma-separated: none, int8, bf16 (kiln_generate_bench "
                         "--quantize; the PyTorch loops stay f32)")
    args = ap.parse_args()
    for q in args.quantize.split(","):
        if q not in ("none", "int8", "bf16"):
            ap.error("--quantize: unknown format '%s' (expected none, int8 or bf16)" % q)
    if args.model:
        return kiln_table(args)
    if args.compare_kiln:
        return compare_builds(args)
    model = ref.load_model()
    inc = Incremental(model)
    # Sanity: the incremental loop decodes what the recompute loop decodes.
    texts = sources(16)
    _, _, a = recompute_loop(model, texts, 12)
    _, _, b = inc.run(texts, 12)
    assert torch.equal(a, b), "incremental loop differs from the recompute loop"
    print("incremental PyTorch loop reproduces the recompute loop's tokens (16 sources, 12 tokens)")
    print("machine: %d cores, load average %.1f (shared: compare ratios from this run only)" % (os.cpu_count(), os.getloadavg()[0]))
    print()
    hdr = "%-6s %-3s | %-22s | %-22s | %-22s | %-9s %-9s" % ("batch", "T", "kiln ms/tok (tok/s)", "torch recompute", "torch incremental",
                                                          "k/recomp", "k/incr")
    print("greedy decoding, %d tokens, decoder loop time per generated token (median of %d):" % (args.tokens, args.repeat))
    print(hdr)
    print("-" * len(hdr))
    results = {}
    for threads in [int(x) for x in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for batch in [int(x) for x in args.batches.split(",")]:
            texts = sources(batch)
            kiln_ms = {}
            for q in args.quantize.split(","):
                k = kiln_run(args.kiln_bench, batch, args.tokens, threads, args.repeat, quantize=q)
                kiln_ms[q] = k["loop_ms"] / args.tokens
            rec, _ = timed(lambda: recompute_loop(model, texts, args.tokens), args.repeat)
            incr, _ = timed(lambda: inc.run(texts, args.tokens), args.repeat)
            rec_ms, inc_ms = 1e3 * rec / args.tokens, 1e3 * incr / args.tokens
            first = args.quantize.split(",")[0]
            results[(batch, threads)] = (kiln_ms[first], rec_ms, inc_ms)
            cell = lambda ms: "%.4f (%8.0f)" % (ms, batch * 1e3 / ms)
            for q, ms in kiln_ms.items():
                print("%-6d %-3d | %-22s | %-22s | %-22s | %-9.3f %-9.3f%s" % (
                    batch, threads, cell(ms), cell(rec_ms), cell(inc_ms), ms / rec_ms, ms / inc_ms,
                    "" if q == "none" else "  (kiln --quantize %s)" % q))
    print()
    n = args.flat_tokens
    threads = int(args.threads.split(",")[0])
    torch.set_num_threads(threads)
    k = kiln_run(args.kiln_bench, 1, n, threads, args.repeat)
    _, rec_steps = timed(lambda: recompute_loop(model, sources(1), n), max(3, args.repeat // 4))
    window = lambda s, a, b: median(s[a:b])
    k_early, k_late = window(k["step_ms"], 7, 15), window(k["step_ms"], n - 8, n)
    r_early, r_late = 1e3 * window(rec_steps, 7, 15), 1e3 * window(rec_steps, n - 8, n)
    print("time per step, batch 1, %d threads: median of tokens 8-15 vs tokens %d-%d" % (threads, n - 7, n))
    print("  kiln            %.4f ms -> %.4f ms  (x%.2f)" % (k_early, k_late, k_late / k_early))
    print("  torch recompute %.4f ms -> %.4f ms  (x%.2f)" % (r_early, r_late, r_late / r_early))
    print()
    print("targets:")
    for threads in [int(x) for x in args.threads.split(",")]:
        if (1, threads) in results:
            kiln_ms, rec_ms, inc_ms = results[(1, threads)]
            print("  batch 1, %d threads: kiln <= 0.15 x recompute: %.3f %s;  kiln <= 0.5 x incremental: %.3f %s" % (
                threads, kiln_ms / rec_ms, "PASS" if kiln_ms <= 0.15 * rec_ms else "FAIL", kiln_ms / inc_ms,
                "PASS" if kiln_ms <= 0.5 * inc_ms else "FAIL"))
    flat = k_late / k_early
    print("  time per token flat within 20%% from token 8 to token %d: x%.2f %s" % (n, flat, "PASS" if abs(flat - 1) <= 0.2 else "FAIL"))


if __name__ == "__main__":
    main()
