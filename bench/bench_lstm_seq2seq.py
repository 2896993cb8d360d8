#!/usr/bin/env python3
"""Greedy decoding speed of the LSTM encoder-decoder with attention: Kiln vs PyTorch, same weights,
same sources, same run.

    scripts/build.sh && /usr/bin/python3 bench/bench_lstm_seq2seq.py [--threads 1,2] [--repeat 20]

Model: examples/date_translation/lstm.yaml (train_lstm.py; lstm.safetensors).
Per row (batch B in 1 and 16, threads T) both engines encode the first B held-out sources (padded with
<pad> to the longest, masked in the attention) and then generate exactly 32 tokens greedily (argmax, no
early stop), feeding each token back:
  torch        the incremental PyTorch loop: one `model.decode` call (nn.LSTM on one step with (h, c)
               carried, dot attention, the two combine linears, output linear) plus argmax per token,
               torch.set_num_threads(T), eval mode, no_grad
  kiln         build/bench/kiln_lstm_seq2seq: the runtime's generation loop (kiln::Generator, greedy,
               stop_at_end = false): the encoder graph once, then the decoder step graph once per token
               with h/c carried by the runtime; per token = the mean of Generator::step_ms()
Columns: median ms per generated token (decode loop time / 32) over --repeat runs, tokens/s for the
batch (B / ms per token), the Kiln/torch ratio (target <= 0.3), and whether the first row's 32 tokens
are identical in both engines. Encoder times are printed too (not part of the per-token figure).
The machine is shared and noisy: compare ratios from the same run.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
EXAMPLE = os.path.join(REPO_ROOT, "examples", "date_translation")
sys.path.insert(0, EXAMPLE)

import train_lstm  # noqa: E402
from train_lstm import dates  # noqa: E402

TOKENS = 32


@torch.no_grad()
def torch_greedy(model, src, tokens):
    """Returns (encoder ms, decode loop ms, first row ids)."""
    t0 = time.perf_counter()
    memory, h, c, mask = model.encode(src)
    t1 = time.perf_counter()
    tok = torch.full((src.shape[0], 1), dates.BOS, dtype=torch.long)
    first = []
    for _ in range(tokens):
        logits, h, c = model.decode(tok, h, c, memory, mask)
        tok = logits[:, -1].argmax(-1, keepdim=True)
        first.append(int(tok[0, 0]))
    t2 = time.perf_counter()
    return (t1 - t0) * 1e3, (t2 - t1) * 1e3, first


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--kiln", default=os.path.join(REPO_ROOT, "build", "bench", "kiln_lstm_seq2seq"))
    args = ap.parse_args()
    model = train_lstm.load(os.path.join(EXAMPLE, "lstm.safetensors"))
    _, held_out = dates.make_splits(seed=1234, n_train=0, n_held_out=2000)
    print("LSTM encoder-decoder (bi-LSTM 2x64 encoder, LSTM 128 decoder, dot attention), greedy %d tokens; "
          "median over %d runs" % (TOKENS, args.repeat))
    print("%-6s %-7s %12s %12s %12s %10s %10s %9s %s" % ("batch", "threads", "torch ms/tok", "kiln ms/tok",
                                                        "kiln tok/s", "kiln/torch", "torch enc", "kiln enc", "same tokens"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for threads in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(threads)
            for batch in [int(b) for b in args.batches.split(",")]:
                src = train_lstm.pad_batch([train_lstm.source_ids(s) for s, _ in held_out[:batch]])
                path = os.path.join(tmp, "src_b%d.npy" % batch)
                np.save(path, src)
                src_t = torch.from_numpy(src)
                torch_greedy(model, src_t, TOKENS)  # warm-up
                enc, dec = [], []
                for _ in range(args.repeat):
                    e, d, first = torch_greedy(model, src_t, TOKENS)
                    enc.append(e)
                    dec.append(d / TOKENS)
                env = dict(os.environ, OMP_NUM_THREADS=str(threads))
                out = subprocess.run([args.kiln, os.path.join(EXAMPLE, "lstm.yaml"), path, "--tokens", str(TOKENS), "--repeat", str(args.repeat),
                                      "--threads", str(threads)], capture_output=True, text=True, env=env, check=True).stdout
                fields = out.split()
                k_enc, k_tok = float(fields[1]), float(fields[3])
                k_first = [int(x) for x in out.splitlines()[1].split()[1:]]
                t_tok, t_enc = sorted(dec)[len(dec) // 2], sorted(enc)[len(enc) // 2]
                ratio = k_tok / t_tok
                rows.append((batch, threads, ratio))
                print("%-6d %-7d %12.4f %12.4f %12.0f %10.3f %10.3f %9.3f %s" % (
                    batch, threads, t_tok, k_tok, batch / k_tok * 1e3, ratio, t_enc, k_enc,
                    "yes" if k_first == first else "NO"), flush=True)
    print("target: kiln <= 0.3 x torch per token")
    for batch, threads, ratio in rows:
        print("  batch %d, %d thread(s): %.3f  %s" % (batch, threads, ratio, "PASS" if ratio <= 0.3 else "FAIL"))


if __name__ == "__main__":
    main()
