#!/usr/bin/env python3
"""Train the LSTM encoder-decoder with attention on the date-normalization task, and export it for Kiln.

Run from the repository root (about 6 minutes on one core of the shared 2-core machine):

    /usr/bin/python3 examples/date_translation/train_lstm.py            # train, export, write references
    /usr/bin/python3 examples/date_translation/train_lstm.py --eval     # reload lstm.safetensors, print accuracy
    /usr/bin/python3 examples/date_translation/train_lstm.py --references   # ... and rewrite the .npy references

Data: tools/reference/dates.py (seed 1234, 60000 training pairs, 2000 held-out pairs whose sources never
occur in training). Characters share one vocabulary; sources are the characters alone (as Kiln's
tokenizer encodes them); targets are <s> ISO </s>.

Model (PyTorch names = the safetensors names = the names the Kiln YAML uses):
    src_embed   nn.Embedding(V, 32)
    encoder     nn.LSTM(32, 64, bidirectional=True, batch_first=True)    -> memory [B, S, 128]
    bridge_h    nn.Linear(128, 128)  h0 = tanh(bridge_h([h_fwd, h_bwd]))  (the encoder's final states)
    bridge_c    nn.Linear(128, 128)  c0 = bridge_c([h_fwd, h_bwd])
    tgt_embed   nn.Embedding(V, 32)
    decoder     nn.LSTM(32, 128, batch_first=True)                        one step per output token
    attention   Luong dot: scores = y · memoryᵀ (+ mask: 0, or -inf at padded source positions), softmax
    combine_out nn.Linear(128, 128), combine_ctx nn.Linear(128, 128, bias=False):
                a = tanh(combine_out(y) + combine_ctx(context))  — Luong's W_c [y; ctx] written as two
                linears so that Kiln needs no concat
    out         nn.Linear(128, V)                                         logits

Training batches hold sources of one length only (no padding), so PyTorch's and Kiln's encoders agree
exactly on unpadded inputs; batched inputs of different lengths are padded at the end with <pad> and
masked in the attention (the bidirectional encoder still reads the pads, in both frameworks alike).

Writes, next to this script:
    lstm.safetensors      the state_dict (fp32)
and the references the C++ tests compare against:
    lstm_sources.npy      int64 [N, 40]  held-out sources (character ids, padded with <pad>), N = 200 + 50
    lstm_source_lengths.npy int64 [N]
    lstm_targets.txt      the N true ISO dates, one per line
    lstm_greedy.npy       int64 [N, 12]  PyTorch greedy output ids, batch 1 (up to and including </s>, then
                                         <pad>); the C++ test checks the first 200
    lstm_beam_tokens.npy  int64 [50, 12] reference beam search (width 4, length penalty 1) best hypothesis for
                                         the last 50, same padding
    lstm_beam_scores.npy  float32 [50, 2] its score (sum of log-probabilities) and normalized score
"""

import argparse
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO_ROOT, "tools", "reference"))

import dates  # noqa: E402
import safetensors_io  # noqa: E402

EMB, ENC_HIDDEN = 32, 64
HIDDEN = 2 * ENC_HIDDEN
MAX_SOURCE = dates.MAX_SOURCE_CHARS
MAX_TARGET = dates.TARGET_CHARS + 2            # ISO chars + </s>, and one spare step
N_GREEDY, N_BEAM, BEAM, LENGTH_PENALTY = 200, 50, 4, 1.0


class LstmSeq2Seq(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.src_embed = nn.Embedding(vocab, EMB)
        self.encoder = nn.LSTM(EMB, ENC_HIDDEN, batch_first=True, bidirectional=True)
        self.bridge_h = nn.Linear(HIDDEN, HIDDEN)
        self.bridge_c = nn.Linear(HIDDEN, HIDDEN)
        self.tgt_embed = nn.Embedding(vocab, EMB)
        self.decoder = nn.LSTM(EMB, HIDDEN, batch_first=True)
        self.combine_out = nn.Linear(HIDDEN, HIDDEN)
        self.combine_ctx = nn.Linear(HIDDEN, HIDDEN, bias=False)
        self.out = nn.Linear(HIDDEN, vocab)

    def encode(self, src):
        """src [B, S] -> memory [B, S, H], h0, c0 [1, B, H], additive mask [B, 1, S]."""
        memory, (h_n, _) = self.encoder(self.src_embed(src))
        hcat = h_n.transpose(0, 1).reshape(src.shape[0], HIDDEN)
        h0 = torch.tanh(self.bridge_h(hcat)).unsqueeze(0)
        c0 = self.bridge_c(hcat).unsqueeze(0)
        mask = torch.where(src == dates.PAD, float("-inf"), 0.0).unsqueeze(1).to(torch.float32)
        return memory, h0, c0, mask

    def decode(self, tokens, h, c, memory, mask):
        """tokens [B, T] -> logits [B, T, V], h, c. T = 1 is one generation step."""
        y, (h, c) = self.decoder(self.tgt_embed(tokens), (h, c))
        scores = torch.matmul(y, memory.transpose(1, 2)) + mask
        context = torch.matmul(torch.softmax(scores, dim=-1), memory)
        a = torch.tanh(self.combine_out(y) + self.combine_ctx(context))
        return self.out(a), h, c


def source_ids(text):
    return dates.encode(text)


def pad_batch(seqs, length=None):
    length = length or max(len(s) for s in seqs)
    out = np.full((len(seqs), length), dates.PAD, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out


def make_batches(pairs, batch_size, rng):
    """Batches of sources of one length (no padding), targets all of length 10."""
    by_len = {}
    for src, tgt in pairs:
        by_len.setdefault(len(src), []).append((source_ids(src), dates.encode(tgt)))
    batches = []
    for items in by_len.values():
        rng.shuffle(items)
        for i in range(0, len(items), batch_size):
            chunk = items[i:i + batch_size]
            src = torch.tensor([s for s, _ in chunk])
            tgt = torch.tensor([[dates.BOS] + t + [dates.EOS] for _, t in chunk])
            batches.append((src, tgt))
    rng.shuffle(batches)
    return batches


@torch.no_grad()
def greedy(model, src, steps=MAX_TARGET):
    """src [B, S] -> ids [B, steps] (after </s>: <pad>). The incremental loop: one decoder step per token."""
    memory, h, c, mask = model.encode(src)
    tok = torch.full((src.shape[0], 1), dates.BOS, dtype=torch.long)
    out = torch.full((src.shape[0], steps), dates.PAD, dtype=torch.long)
    done = torch.zeros(src.shape[0], dtype=torch.bool)
    for t in range(steps):
        logits, h, c = model.decode(tok, h, c, memory, mask)
        tok = logits[:, -1].argmax(-1, keepdim=True)
        out[:, t] = torch.where(done, torch.full_like(tok[:, 0], dates.PAD), tok[:, 0])
        done |= tok[:, 0] == dates.EOS
        if bool(done.all()):
            break
    return out


@torch.no_grad()
def beam_search(model, src, width=BEAM, length_penalty=LENGTH_PENALTY, steps=MAX_TARGET):
    """Reference beam search for one source [1, S], the algorithm of Kiln's generation loop
    (runtime/generate.cpp; the same as tools/reference/date_transformer.py's reference):
      * beams start as one (<s>, score 0); the others score -inf;
      * each step scores every (beam, token) as beam score + log_softmax, in float32, and walks the 2K
        best (ties: lower beam*V+token first): an </s> candidate finishes a hypothesis (while fewer than K
        are finished), any other continues a beam, until K beams continue;
      * the search ends when K hypotheses are finished, or after `steps` tokens, where the live beams are
        added unfinished;
      * hypotheses are ranked by score / length**length_penalty (length counts </s>), stably.
    Returns the best (tokens up to and including </s>, score, normalized score)."""
    k = width
    memory, h, c, mask = model.encode(src)
    memory, mask = memory.expand(k, -1, -1), mask.expand(k, -1, -1)
    h, c = h.expand(-1, k, -1).contiguous(), c.expand(-1, k, -1).contiguous()
    v = len(dates.VOCAB)
    seqs = torch.full((k, 1), dates.BOS, dtype=torch.int64)
    scores = torch.full((k,), float("-inf"), dtype=torch.float32)
    scores[0] = 0.0
    pool = []
    for t in range(steps):
        logits, h2, c2 = model.decode(seqs[:, -1:], h, c, memory, mask)
        logp = torch.log_softmax(logits[:, -1], -1).float()
        cand = (scores.unsqueeze(1) + logp).reshape(-1).numpy()
        want = min(2 * k, k * v)
        order = np.argsort(-cand, kind="stable")[:want]
        parents, tokens, new_scores = [], [], []
        for ci in order:
            sc = np.float32(cand[ci])
            if sc == -np.inf or len(parents) == k:
                break
            b, w = int(ci) // v, int(ci) % v
            if w == dates.EOS:
                if len(pool) < k:
                    pool.append((seqs[b, 1:].tolist() + [w], float(sc)))
                continue
            parents.append(b)
            tokens.append(w)
            new_scores.append(sc)
        while len(parents) < k:
            parents.append(0)
            tokens.append(dates.EOS)
            new_scores.append(np.float32(-np.inf))
        if len(pool) >= k:
            break
        if t == steps - 1:
            for j in range(k):
                if new_scores[j] != -np.inf:
                    pool.append((seqs[parents[j], 1:].tolist() + [tokens[j]], float(new_scores[j])))
            break
        idx = torch.tensor(parents)
        seqs = torch.cat([seqs[idx], torch.tensor(tokens, dtype=torch.int64).unsqueeze(1)], 1)
        h, c = h2[:, idx], c2[:, idx]
        scores = torch.tensor(np.array(new_scores, dtype=np.float32))
    ranked = []
    for toks, sc in pool:
        norm = np.float32(sc) / np.float32(float(len(toks)) ** length_penalty)
        ranked.append((toks, sc, float(norm)))
    ranked.sort(key=lambda hyp: -hyp[2])  # stable
    return ranked[0]


def accuracy(model, pairs, batch=250):
    correct = 0
    for i in range(0, len(pairs), batch):
        chunk = pairs[i:i + batch]
        src = torch.from_numpy(pad_batch([source_ids(s) for s, _ in chunk]))
        out = greedy(model, src)
        correct += sum(dates.decode(o.tolist()) == t for o, (_, t) in zip(out, chunk))
    return correct / len(pairs)


def export(model, path):
    sd = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    safetensors_io.save_file(sd, path)


def load(path):
    model = LstmSeq2Seq(len(dates.VOCAB))
    sd = {k: torch.from_numpy(v) for k, v in safetensors_io.load_file(path)[0].items()}
    model.load_state_dict(sd)
    return model.eval()


def write_references(model, held_out):
    pairs = held_out[:N_GREEDY + N_BEAM]
    srcs = [source_ids(s) for s, _ in pairs]
    np.save(os.path.join(HERE, "lstm_sources.npy"), pad_batch(srcs, MAX_SOURCE))
    np.save(os.path.join(HERE, "lstm_source_lengths.npy"), np.array([len(s) for s in srcs], dtype=np.int64))
    with open(os.path.join(HERE, "lstm_targets.txt"), "w") as f:
        f.write("".join(t + "\n" for _, t in pairs))
    greedy_ids = np.full((len(srcs), MAX_TARGET), dates.PAD, dtype=np.int64)
    for i, s in enumerate(srcs):  # batch 1: no padding, as the C++ test runs them
        greedy_ids[i] = greedy(model, torch.tensor([s]))[0].numpy()
    np.save(os.path.join(HERE, "lstm_greedy.npy"), greedy_ids)
    beam_ids = np.full((N_BEAM, MAX_TARGET), dates.PAD, dtype=np.int64)
    beam_scores = np.zeros((N_BEAM, 2), dtype=np.float32)
    for j in range(N_BEAM):
        ids, score, normalized = beam_search(model, torch.tensor([srcs[N_GREEDY + j]]))
        beam_ids[j, :len(ids)] = ids
        beam_scores[j] = (score, normalized)
    np.save(os.path.join(HERE, "lstm_beam_tokens.npy"), beam_ids)
    np.save(os.path.join(HERE, "lstm_beam_scores.npy"), beam_scores)
    agree = sum(dates.decode(greedy_ids[N_GREEDY + j]) == dates.decode(beam_ids[j]) for j in range(N_BEAM))
    print("references: %d greedy, %d beam (width %d, length penalty %g; beam == greedy on %d)" % (
        len(srcs), N_BEAM, BEAM, LENGTH_PENALTY, agree))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--eval", action="store_true", help="reload lstm.safetensors and print held-out accuracy")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--references", action="store_true",
                    help="reload lstm.safetensors, print held-out accuracy and rewrite the reference .npy files")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on the shared 2-core machine, 2 threads ran 20x slower per step)")
    ap.add_argument("--minutes", type=float, default=0, help="stop training after the epoch that passes this (0: no limit)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1234)
    rng = random.Random(1234)
    train, held_out = dates.make_splits(seed=1234, n_train=60000, n_held_out=2000)
    path = os.path.join(HERE, "lstm.safetensors")
    if args.eval or args.references:
        model = load(path)
        print("held-out exact match: %.2f%% of %d" % (100 * accuracy(model, held_out), len(held_out)))
        if args.references:
            write_references(model, held_out)
        return

    model = LstmSeq2Seq(len(dates.VOCAB))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    start = time.time()
    step = 0
    for epoch in range(args.epochs):
        model.train()
        for src, tgt in make_batches(train, 64, rng):
            memory, h0, c0, mask = model.encode(src)
            logits, _, _ = model.decode(tgt[:, :-1], h0, c0, memory, mask)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            if step % 200 == 0:
                print("epoch %d step %d loss %.4f (%.0f s)" % (epoch, step, loss.item(), time.time() - start), flush=True)
        model.eval()
        acc = accuracy(model, held_out[:500])
        print("epoch %d: held-out exact match (first 500) %.2f%% (%.0f s)" % (epoch, 100 * acc, time.time() - start), flush=True)
        for g in opt.param_groups:
            g["lr"] *= 0.6
        if args.minutes and time.time() - start > args.minutes * 60:
            break
    model.eval()
    export(model, path)
    model = load(path)  # references from the exported fp32 weights exactly
    print("held-out exact match: %.2f%% of %d (trained %.0f s)" % (100 * accuracy(model, held_out), len(held_out), time.time() - start))
    write_references(model, held_out)


if __name__ == "__main__":
    main()
