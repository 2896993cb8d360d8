"""Date normalization with a small Transformer encoder-decoder: PyTorch reference for Kiln's seq2seq example.

    /usr/bin/python3 tools/reference/date_transformer.py train      # ~10 min on 2 cores; writes the weights
    /usr/bin/python3 tools/reference/date_transformer.py export     # YAML, fixtures, held-out accuracy

The model is torch.nn.Transformer (post-norm, ReLU, batch-first) with learned token and position
embeddings and a linear generator, so the state_dict keys are the ones Kiln's YAML refers to:
    src_embed.weight, tgt_embed.weight, src_pos.weight, tgt_pos.weight, generator.{weight,bias},
    transformer.encoder.layers.N.*, transformer.encoder.norm.*, transformer.decoder.layers.N.*,
    transformer.decoder.norm.*
Data: tools/reference/dates.py (fixed seed). Tokens: 0 <pad>, 1 <s>, 2 </s>, then characters.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dates  # noqa: E402
import safetensors_io  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLE_DIR = os.path.join(ROOT, "examples", "date_translation")
WEIGHTS = os.path.join(EXAMPLE_DIR, "transformer.safetensors")
YAML = os.path.join(EXAMPLE_DIR, "transformer.yaml")
HELD_OUT = os.path.join(EXAMPLE_DIR, "held_out.tsv")
FIXTURE_DIR = os.path.join(ROOT, "tests", "fixtures", "date_transformer")

SEED = 1234
D_MODEL = 64
NHEAD = 4
LAYERS = 2
DIM_FF = 256
MAX_POS = 128          # learned positions; decoding may run up to this many steps
MAX_LENGTH = 16        # the example's generate.max_length (ISO dates are 10 characters + </s>)
TRAIN_STEPS = 2000
BATCH = 128
N_HELD_OUT = 2000
BEAM_WIDTH = 4
LENGTH_PENALTY = 1.0


class DateTransformer(nn.Module):
    def __init__(self, vocab=len(dates.VOCAB), d_model=D_MODEL, nhead=NHEAD, layers=LAYERS, dim_ff=DIM_FF,
                 max_pos=MAX_POS):
        super().__init__()
        self.d_model = d_model
        self.src_embed = nn.Embedding(vocab, d_model)
        self.tgt_embed = nn.Embedding(vocab, d_model)
        self.src_pos = nn.Embedding(max_pos, d_model)
        self.tgt_pos = nn.Embedding(max_pos, d_model)
        self.transformer = nn.Transformer(d_model, nhead, layers, layers, dim_ff, dropout=0.0,
                                          activation="relu", batch_first=True, norm_first=False)
        self.generator = nn.Linear(d_model, vocab)

    def encode(self, src, src_pad):
        pos = torch.arange(src.shape[1]).unsqueeze(0)
        x = self.src_embed(src) + self.src_pos(pos)
        return self.transformer.encoder(x, src_key_padding_mask=src_pad)

    def decode(self, tgt, memory, src_pad):
        """Logits for every target position (the recompute form: the whole prefix each call)."""
        t = tgt.shape[1]
        pos = torch.arange(t).unsqueeze(0)
        y = self.tgt_embed(tgt) + self.tgt_pos(pos)
        causal = torch.triu(torch.full((t, t), float("-inf")), diagonal=1)
        y = self.transformer.decoder(y, memory, tgt_mask=causal, memory_key_padding_mask=src_pad)
        return self.generator(y)

    def forward(self, src, src_pad, tgt):
        return self.decode(tgt, self.encode(src, src_pad), src_pad)


def batch_sources(texts):
    """texts -> (src int64 [B,S], pad bool [B,S]) padded with <pad> to the longest."""
    ids = [dates.encode(t) for t in texts]
    s = max(len(x) for x in ids)
    src = np.zeros((len(ids), s), dtype=np.int64)
    for i, x in enumerate(ids):
        src[i, :len(x)] = x
    src = torch.from_numpy(src)
    return src, src == dates.PAD


def batch_targets(texts):
    ids = [dates.encode(t) for t in texts]
    tgt = torch.tensor(ids, dtype=torch.int64)
    b = tgt.shape[0]
    inp = torch.cat([torch.full((b, 1), dates.BOS), tgt], 1)
    out = torch.cat([tgt, torch.full((b, 1), dates.EOS)], 1)
    return inp, out


def train(args):
    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)
    train_pairs, _ = dates.make_splits(SEED, args.steps * BATCH // 4, N_HELD_OUT)
    rng = np.random.default_rng(SEED)
    model = DateTransformer()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.98))
    warmup = 200
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps)) + 0.02))
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.time()
    model.train()
    for step in range(args.steps):
        idx = rng.integers(0, len(train_pairs), BATCH)
        srcs = [train_pairs[i][0] for i in idx]
        tgts = [train_pairs[i][1] for i in idx]
        src, pad = batch_sources(srcs)
        tin, tout = batch_targets(tgts)
        logits = model(src, pad, tin)
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), tout.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == args.steps - 1:
            print("step %d loss %.4f  %.0f s" % (step, loss.item(), time.time() - t0), flush=True)
    model.eval()
    save_weights(model, WEIGHTS)
    print("trained %d steps in %.0f s; wrote %s" % (args.steps, time.time() - t0, WEIGHTS))


def save_weights(model, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sd = {k: v.detach().contiguous().numpy() for k, v in model.state_dict().items()}
    safetensors_io.save_file(sd, path)


def load_model(path=WEIGHTS):
    tensors, _ = safetensors_io.load_file(path)
    model = DateTransformer()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
    return model.eval()


@torch.no_grad()
def greedy(model, texts, max_length=MAX_LENGTH):
    """Recompute greedy decoding. Returns (tokens list per source without <s>, up to and including </s>)."""
    src, pad = batch_sources(texts)
    memory = model.encode(src, pad)
    b = src.shape[0]
    ys = torch.full((b, 1), dates.BOS, dtype=torch.int64)
    done = torch.zeros(b, dtype=torch.bool)
    for _ in range(max_length):
        logits = model.decode(ys, memory, pad)[:, -1]
        nxt = logits.argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, dates.EOS), nxt)
        ys = torch.cat([ys, nxt.unsqueeze(1)], 1)
        done |= nxt == dates.EOS
        if bool(done.all()):
            break
    out = []
    for row in ys[:, 1:].tolist():
        toks = []
        for t in row:
            toks.append(t)
            if t == dates.EOS:
                break
        out.append(toks)
    return out


@torch.no_grad()
def beam_search(model, text, beam_width, length_penalty, max_length=MAX_LENGTH):
    """Reference beam search, the algorithm Kiln's runtime/generate.cpp implements, step for step:
      * beams start as one (<s>, score 0); the others score -inf;
      * each step scores every (beam, token) as beam score + log_softmax, all in float32, and walks the
        2K best (ties: lower beam*V+token first): an </s> candidate finishes a hypothesis (while fewer than
        K are finished), any other continues a beam, until K beams continue;
      * the search ends when K hypotheses are finished, or at max_length, where the live beams are added
        unfinished;
      * hypotheses are ranked by score / length**length_penalty (length counts </s>), stably.
    Returns [(tokens, score, normalized, finished)], best first."""
    k = beam_width
    src, pad = batch_sources([text])
    memory = model.encode(src, pad)
    memory = memory.expand(k, -1, -1)
    pad = pad.expand(k, -1)
    v = len(dates.VOCAB)
    seqs = torch.full((k, 1), dates.BOS, dtype=torch.int64)
    scores = torch.full((k,), float("-inf"), dtype=torch.float32)
    scores[0] = 0.0
    pool = []
    for t in range(max_length):
        logp = torch.log_softmax(model.decode(seqs, memory, pad)[:, -1], -1).float()
        cand = (scores.unsqueeze(1) + logp).reshape(-1).numpy()
        want = min(2 * k, k * v)
        order = np.argsort(-cand, kind="stable")[:want]
        parents, tokens, new_scores = [], [], []
        for c in order:
            s = np.float32(cand[c])
            if s == -np.inf or len(parents) == k:
                break
            b, w = int(c) // v, int(c) % v
            if w == dates.EOS:
                if len(pool) < k:
                    pool.append((seqs[b, 1:].tolist() + [w], float(s), True))
                continue
            parents.append(b)
            tokens.append(w)
            new_scores.append(s)
        while len(parents) < k:
            parents.append(0)
            tokens.append(dates.EOS)
            new_scores.append(np.float32(-np.inf))
        if len(pool) >= k:
            break
        if t == max_length - 1:
            for j in range(k):
                if new_scores[j] != -np.inf:
                    pool.append((seqs[parents[j], 1:].tolist() + [tokens[j]], float(new_scores[j]), False))
            break
        seqs = torch.cat([seqs[parents], torch.tensor(tokens, dtype=torch.int64).unsqueeze(1)], 1)
        scores = torch.tensor(np.array(new_scores, dtype=np.float32))
    out = []
    for toks, sc, fin in pool:
        norm = np.float32(sc) / np.float32(float(len(toks)) ** length_penalty)
        out.append((toks, sc, float(norm), fin))
    out.sort(key=lambda h: -h[2])  # stable
    return out


def model_yaml():
    vocab = ", ".join(json.dumps(t) for t in dates.VOCAB)
    e = D_MODEL
    kv = "\n".join(
        "    - {op: attention_kv, in: [memory], weights: transformer.decoder.layers.%d.multihead_attn, out: [mem_k%d, mem_v%d]}" % (i, i, i)
        for i in range(LAYERS))
    mem_outputs = ", ".join("mem_k%d, mem_v%d" % (i, i) for i in range(LAYERS))
    dec_inputs = "\n".join(
        "    mem_k{i}: {{dtype: f32, shape: [batch, src, {e}]}}\n"
        "    mem_v{i}: {{dtype: f32, shape: [batch, src, {e}]}}\n"
        "    k_cache{i}: {{dtype: f32, shape: [batch, len, {e}]}}\n"
        "    v_cache{i}: {{dtype: f32, shape: [batch, len, {e}]}}".format(i=i, e=e) for i in range(LAYERS))
    states = "\n".join(
        "    - {{in: k_cache{i}, out: k_new{i}, kind: cache}}\n"
        "    - {{in: v_cache{i}, out: v_new{i}, kind: cache}}".format(i=i) for i in range(LAYERS))
    layers = "\n".join(
        "    - {{block: decoder_layer, name: dec{i}, in: [y{i}, k_cache{i}, v_cache{i}, mem_k{i}, mem_v{i}, src_mask, step, cache_rows],\n"
        "       p: transformer.decoder.layers.{i}, out: [y{j}, k_new{i}, v_new{i}]}}".format(i=i, j=i + 1) for i in range(LAYERS))
    return """\
# Generated by tools/reference/date_transformer.py: character-level date normalization with
# torch.nn.Transformer (d_model {e}, {h} heads, {l}+{l} layers, post-norm, ReLU) and learned positions.
kiln: 1
name: date_transformer
weights: transformer.safetensors
tokenizer:
  kind: characters
  vocab: [{vocab}]
generate:
  source: source
  token: token
  step: step
  cache_rows: cache_rows
  scores: log_probs
  start_token: {bos}
  end_token: {eos}
  pad_token: {pad}
  max_length: {maxlen}
  strategy: greedy
  beam_width: 4
  length_penalty: 1.0
blocks:
  encoder_layer:
    args: [x, mask]
    params: [p]
    returns: [y, mask]
    nodes:
      - {{op: attention, in: [x, x, x, mask], weights: "{{p}}.self_attn", heads: {h}, out: a}}
      - {{op: add, in: [x, a], out: r1}}
      - {{op: layer_norm, in: [r1], weights: "{{p}}.norm1", eps: 1.0e-5, out: n1}}
      - {{op: linear, in: [n1], weights: "{{p}}.linear1", out: f1}}
      - {{op: relu, in: [f1], out: f2}}
      - {{op: linear, in: [f2], weights: "{{p}}.linear2", out: f3}}
      - {{op: add, in: [n1, f3], out: r2}}
      - {{op: layer_norm, in: [r2], weights: "{{p}}.norm2", eps: 1.0e-5, out: y}}
  decoder_layer:
    args: [x, k_cache, v_cache, mem_k, mem_v, mask, step, rows]
    params: [p]
    returns: [y, k_new, v_new]
    nodes:
      - {{op: cached_attention, in: [x, k_cache, v_cache, step, rows], weights: "{{p}}.self_attn", heads: {h}, out: [sa, k_new, v_new]}}
      - {{op: add, in: [x, sa], out: r1}}
      - {{op: layer_norm, in: [r1], weights: "{{p}}.norm1", eps: 1.0e-5, out: n1}}
      - {{op: cross_attention, in: [n1, mem_k, mem_v, mask], weights: "{{p}}.multihead_attn", heads: {h}, out: ca}}
      - {{op: add, in: [n1, ca], out: r2}}
      - {{op: layer_norm, in: [r2], weights: "{{p}}.norm2", eps: 1.0e-5, out: n2}}
      - {{op: linear, in: [n2], weights: "{{p}}.linear1", out: f1}}
      - {{op: relu, in: [f1], out: f2}}
      - {{op: linear, in: [f2], weights: "{{p}}.linear2", out: f3}}
      - {{op: add, in: [n2, f3], out: r3}}
      - {{op: layer_norm, in: [r3], weights: "{{p}}.norm3", eps: 1.0e-5, out: y}}
encoder:
  inputs:
    source: {{dtype: i64, shape: [batch, src]}}
  outputs: [src_mask, {mem_outputs}]
  nodes:
    - {{op: padding_mask, in: [source], pad: {pad}, out: src_mask}}
    - {{op: embedding, in: [source], weights: src_embed, out: tok}}
    - {{op: positions, in: [source], axis: 1, out: pos_ids}}
    - {{op: embedding, in: [pos_ids], weights: src_pos, out: pos}}
    - {{op: add, in: [tok, pos], out: x0}}
    - {{block: encoder_layer, repeat: {l}, in: [x0, src_mask], p: "transformer.encoder.layers.{{i}}", out: [x, m]}}
    - {{op: layer_norm, in: [x], weights: transformer.encoder.norm, eps: 1.0e-5, out: memory}}
{kv}
decoder:
  inputs:
    token: {{dtype: i64, shape: [batch, 1]}}
    step: {{dtype: i64, shape: [1]}}
    cache_rows: {{dtype: i64, shape: [batch, len]}}
    src_mask: {{dtype: f32, shape: [batch, src]}}
{dec_inputs}
  state:
{states}
  outputs: [log_probs]
  nodes:
    - {{op: embedding, in: [token], weights: tgt_embed, out: tok}}
    - {{op: embedding, in: [step], weights: tgt_pos, out: pos}}
    - {{op: add, in: [tok, pos], out: y0}}
{layers}
    - {{op: layer_norm, in: [y{l}], weights: transformer.decoder.norm, eps: 1.0e-5, out: yn}}
    - {{op: linear, in: [yn], weights: generator, out: logits}}
    - {{op: reshape, in: [logits], shape: [0, -1], out: logits2}}
    - {{op: log_softmax, in: [logits2], axis: -1, out: log_probs}}
""".format(e=e, h=NHEAD, l=LAYERS, vocab=vocab, bos=dates.BOS, eos=dates.EOS, pad=dates.PAD, maxlen=MAX_LENGTH,
           mem_outputs=mem_outputs, kv=kv, dec_inputs=dec_inputs, states=states, layers=layers)


def accuracy(model, pairs, batch=250):
    right = 0
    for i in range(0, len(pairs), batch):
        chunk = pairs[i:i + batch]
        outs = greedy(model, [p[0] for p in chunk])
        right += sum(dates.decode(o) == p[1] for o, p in zip(outs, chunk))
    return right / len(pairs)


def export(args):
    torch.set_num_threads(args.threads)
    model = load_model()
    with open(YAML, "w") as f:
        f.write(model_yaml())
    print("wrote", YAML)
    _, held_out = dates.make_splits(SEED, 0, N_HELD_OUT)
    with open(HELD_OUT, "w") as f:
        f.write("# held-out dates (tools/reference/dates.py, seed %d): source<TAB>ISO form\n" % SEED)
        for src, tgt in held_out:
            f.write("%s\t%s\n" % (src, tgt))
    print("wrote", HELD_OUT)
    os.makedirs(FIXTURE_DIR, exist_ok=True)
    greedy_pairs = held_out[:args.greedy]
    outs = []
    for i in range(0, len(greedy_pairs), 64):
        outs += greedy(model, [p[0] for p in greedy_pairs[i:i + 64]])
    with open(os.path.join(FIXTURE_DIR, "greedy.txt"), "w") as f:
        f.write("# source<TAB>greedy tokens (PyTorch recompute loop, max_length %d), held-out split, seed %d\n" % (MAX_LENGTH, SEED))
        for (src, _), toks in zip(greedy_pairs, outs):
            f.write("%s\t%s\n" % (src, " ".join(map(str, toks))))
    beam_pairs = held_out[args.greedy:args.greedy + args.beam]
    with open(os.path.join(FIXTURE_DIR, "beam.txt"), "w") as f:
        f.write("# source<TAB>rank<TAB>tokens<TAB>score<TAB>normalized score<TAB>finished; beam width %d, length penalty %g, "
                "max_length %d\n" % (BEAM_WIDTH, LENGTH_PENALTY, MAX_LENGTH))
        for src, _ in beam_pairs:
            for rank, (toks, sc, norm, fin) in enumerate(beam_search(model, src, BEAM_WIDTH, LENGTH_PENALTY)):
                f.write("%s\t%d\t%s\t%.7g\t%.7g\t%d\n" % (src, rank, " ".join(map(str, toks)), sc, norm, int(fin)))
    print("wrote fixtures to", FIXTURE_DIR)
    acc = accuracy(model, held_out)
    print("held-out exact-match accuracy (greedy, %d dates): %.2f%%" % (len(held_out), 100 * acc))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--steps", type=int, default=TRAIN_STEPS)
    t.add_argument("--threads", type=int, default=2)
    x = sub.add_parser("export")
    x.add_argument("--threads", type=int, default=2)
    x.add_argument("--greedy", type=int, default=256, help="held-out inputs in the greedy fixture")
    x.add_argument("--beam", type=int, default=50, help="held-out inputs in the beam-search fixture")
    args = ap.parse_args()
    if args.cmd == "train":
        train(args)
    elif args.cmd == "export":
        export(args)


if __name__ == "__main__":
    main()
