"""Character-level date-normalization data: dates in many human formats -> ISO "YYYY-MM-DD".

Shared by the seq2seq examples (Transformer and LSTM encoder-decoders) under examples/date_translation/.
Only the standard library is used; everything is deterministic given the seed.

    from dates import VOCAB, make_splits, encode, decode
    train, held_out = make_splits(seed=1234, n_train=60000, n_held_out=2000)   # lists of (source, target)
    ids = encode("nov 26 2026")          # character ids only; add BOS/EOS yourself

Conventions:
  * Token ids: 0 = <pad>, 1 = <s> (start), 2 = </s> (end), then one id per character of CHARS.
    Sources and targets share the vocabulary.
  * Numeric formats are day-first ("26/11/26" is 26 November 2026); two-digit years yy mean 20yy
    for yy < 50 and 19yy otherwise, so every source has exactly one ISO form.
  * Years are 1950..2049.
  * Held-out pairs never occur (as source strings) in the training split.
"""

import datetime
import random

PAD, BOS, EOS = 0, 1, 2
SPECIALS = ["<pad>", "<s>", "</s>"]
CHARS = " ,-./0123456789" + "abcdefghijklmnopqrstuvwxyz" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
VOCAB = SPECIALS + list(CHARS)
CHAR_TO_ID = {c: i + len(SPECIALS) for i, c in enumerate(CHARS)}

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

FIRST_DATE = datetime.date(1950, 1, 1)
LAST_DATE = datetime.date(2049, 12, 31)
MAX_SOURCE_CHARS = 40
TARGET_CHARS = 10


def _ordinal(d):
    if 10 <= d % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(d % 10, "th")
    return "%d%s" % (d, suffix)


def _formats():
    """Each format: a function (date) -> string. Names are for documentation and tests."""
    def mon(dt):
        return MONTHS[dt.month - 1]

    def mon3(dt):
        return MONTHS[dt.month - 1][:3]

    def wd(dt):
        return WEEKDAYS[dt.weekday()]

    def wd3(dt):
        return WEEKDAYS[dt.weekday()][:3]

    def yy(dt):
        return "%02d" % (dt.year % 100)

    return [
        ("weekday_month_d_yyyy", lambda t: "%s, %s %d, %d" % (wd(t), mon(t), t.day, t.year)),
        ("month_d_yyyy", lambda t: "%s %d, %d" % (mon(t), t.day, t.year)),
        ("mon_d_yyyy_comma", lambda t: "%s %d, %d" % (mon3(t), t.day, t.year)),
        ("mon_d_yyyy", lambda t: "%s %d %d" % (mon3(t), t.day, t.year)),
        ("d_month_yyyy", lambda t: "%d %s %d" % (t.day, mon(t), t.year)),
        ("d_mon_yyyy", lambda t: "%d %s %d" % (t.day, mon3(t), t.year)),
        ("wd_d_mon_yyyy", lambda t: "%s %d %s %d" % (wd3(t), t.day, mon3(t), t.year)),
        ("wd_comma_d_month_yyyy", lambda t: "%s, %d %s %d" % (wd(t), t.day, mon(t), t.year)),
        ("dth_of_month_yyyy", lambda t: "%s of %s, %d" % (_ordinal(t.day), mon(t), t.year)),
        ("month_dth_yyyy", lambda t: "%s %s, %d" % (mon(t), _ordinal(t.day), t.year)),
        ("dd/mm/yy", lambda t: "%02d/%02d/%s" % (t.day, t.month, yy(t))),
        ("d/m/yy", lambda t: "%d/%d/%s" % (t.day, t.month, yy(t))),
        ("dd/mm/yyyy", lambda t: "%02d/%02d/%d" % (t.day, t.month, t.year)),
        ("dd.mm.yyyy", lambda t: "%02d.%02d.%d" % (t.day, t.month, t.year)),
        ("dd.mm.yy", lambda t: "%02d.%02d.%s" % (t.day, t.month, yy(t))),
        ("dd-mm-yyyy", lambda t: "%02d-%02d-%d" % (t.day, t.month, t.year)),
        ("yyyy/mm/dd", lambda t: "%d/%02d/%02d" % (t.year, t.month, t.day)),
        ("yyyy.mm.dd", lambda t: "%d.%02d.%02d" % (t.year, t.month, t.day)),
        ("yyyymmdd", lambda t: "%d%02d%02d" % (t.year, t.month, t.day)),
        ("d-mon-yyyy", lambda t: "%d-%s-%d" % (t.day, mon3(t), t.year)),
        ("d-mon-yy", lambda t: "%d-%s-%s" % (t.day, mon3(t), yy(t))),
        ("mon_d_yy", lambda t: "%s %d, %s" % (mon3(t), t.day, yy(t))),
        ("yyyy_month_d", lambda t: "%d %s %d" % (t.year, mon(t), t.day)),
        ("iso", lambda t: t.isoformat()),
    ]


FORMATS = _formats()


def _casing(rng, s):
    r = rng.random()
    if r < 0.6:
        return s
    if r < 0.85:
        return s.lower()
    return s.upper()


def random_date(rng):
    span = (LAST_DATE - FIRST_DATE).days
    return FIRST_DATE + datetime.timedelta(days=rng.randrange(span + 1))


def random_pair(rng):
    """One (source, target) pair: a random date in a random format and casing, and its ISO form."""
    dt = random_date(rng)
    _, fmt = FORMATS[rng.randrange(len(FORMATS))]
    return _casing(rng, fmt(dt)), dt.isoformat()


def make_splits(seed, n_train, n_held_out):
    """Deterministic train and held-out lists of (source, target); held-out sources are not in train."""
    rng = random.Random(seed)
    held_out, held_sources = [], set()
    while len(held_out) < n_held_out:
        src, tgt = random_pair(rng)
        if src not in held_sources:
            held_sources.add(src)
            held_out.append((src, tgt))
    train = []
    while len(train) < n_train:
        src, tgt = random_pair(rng)
        if src not in held_sources:
            train.append((src, tgt))
    return train, held_out


def encode(text):
    """Characters -> token ids (no <s>/</s>). Raises ValueError naming an unknown character."""
    ids = []
    for i, c in enumerate(text):
        if c not in CHAR_TO_ID:
            raise ValueError("character %r at %d is not in the vocabulary" % (c, i))
        ids.append(CHAR_TO_ID[c])
    return ids


def decode(ids):
    """Token ids -> text; stops at </s>, skips <pad> and <s>."""
    out = []
    for i in ids:
        i = int(i)
        if i == EOS:
            break
        if i in (PAD, BOS):
            continue
        out.append(VOCAB[i])
    return "".join(out)


if __name__ == "__main__":
    train, held = make_splits(1234, 20, 10)
    for s, t in train + held:
        print("%-40s -> %s" % (s, t))
