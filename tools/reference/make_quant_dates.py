"""200 date sources for the quantization tests (tests/test_quantize_accuracy.cpp): drawn with their own seed
(2027, not the 1234 the examples trained and were evaluated with), skipping any source that occurs in the
examples' training or held-out splits, so that they are held out from both date models.

    /usr/bin/python3 tools/reference/make_quant_dates.py > tests/fixtures/quantize/dates200.tsv

Writes SOURCE<TAB>ISO form, one per line. Deterministic (the standard library's random.Random).
"""

import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dates  # noqa: E402

SEED = 2027
N = 200
# The largest training split either example used (train_lstm.py: 60000; date_transformer.py: steps*128/4),
# with the same seed: its sources and the held-out ones are excluded.
N_TRAIN = 120000


def main():
    train, held_out = dates.make_splits(1234, N_TRAIN, 2000)
    seen = {s for s, _ in train} | {s for s, _ in held_out}
    rng = random.Random(SEED)
    out, taken = [], set()
    while len(out) < N:
        src, tgt = dates.random_pair(rng)
        if src in seen or src in taken:
            continue
        taken.add(src)
        out.append((src, tgt))
    print("# %d date sources held out from the examples' splits (tools/reference/make_quant_dates.py, seed %d)"
          % (N, SEED))
    for src, tgt in out:
        print("%s\t%s" % (src, tgt))


if __name__ == "__main__":
    main()
