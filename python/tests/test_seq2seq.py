"""kiln.Seq2SeqModel and kiln.Generator: greedy and beam search against PyTorch's reference outputs for the
LSTM date translator, n_best hypotheses with scores, text sources and translate()."""
import os
import threading
import unittest

import numpy as np

import kiln
from kiln_test_util import DATES


def trim(row):
    row = list(int(t) for t in row)
    return row[: row.index(0)] if 0 in row else row


class Seq2SeqTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = kiln.Seq2SeqModel.load(os.path.join(DATES, "lstm.yaml"))
        cls.sources = np.load(os.path.join(DATES, "lstm_sources.npy"))
        cls.lengths = np.load(os.path.join(DATES, "lstm_source_lengths.npy"))
        cls.greedy = np.load(os.path.join(DATES, "lstm_greedy.npy"))
        cls.beam_tokens = np.load(os.path.join(DATES, "lstm_beam_tokens.npy"))
        cls.beam_scores = np.load(os.path.join(DATES, "lstm_beam_scores.npy"))
        with open(os.path.join(DATES, "lstm_targets.txt")) as f:
            cls.targets = [line.strip() for line in f]

    def source(self, i):
        return [int(t) for t in self.sources[i, : self.lengths[i]]]

    def test_model(self):
        m = self.model
        self.assertGreater(m.vocab_size, 10)
        self.assertGreater(m.max_length, 10)
        self.assertNotEqual(m.start_token, m.end_token)
        self.assertEqual(m.encode("ab"), [m.encode("a")[0], m.encode("b")[0]])
        self.assertEqual(m.decode(m.encode("2026-11-26")), "2026-11-26")
        self.assertIsInstance(m.encoder, kiln.Model)
        self.assertIsInstance(m.decoder, kiln.Model)
        with self.assertRaises(kiln.Error):
            m.encode("\u20ac")

    def test_greedy_matches_pytorch(self):
        gen = kiln.Generator(self.model)
        for i in range(8):
            (hyps,) = gen.generate([self.source(i)])
            self.assertEqual(len(hyps), 1)
            self.assertEqual(hyps[0].tokens, trim(self.greedy[i]), f"source {i}")
            self.assertTrue(hyps[0].finished)
            self.assertLess(hyps[0].score, 0)
        self.assertGreaterEqual(len(gen.step_ms), len(hyps[0].tokens))  # one decoder step per token
        self.assertGreater(gen.encoder_ms, 0)
        # A batch of sources of different lengths, one given as a NumPy row.
        batch = gen.generate([self.source(0), np.array(self.source(1), np.int64)])
        self.assertEqual(len(batch), 2)

    def test_beam_matches_reference(self):
        gen = kiln.Generator(self.model)
        for j in range(5):
            hyps = gen.generate([self.source(200 + j)], strategy="beam", beam_width=4, n_best=2, length_penalty=1.0)[0]
            self.assertEqual(len(hyps), 2)
            best = hyps[0]
            self.assertEqual(best.tokens, trim(self.beam_tokens[j]), f"source {200 + j}")
            self.assertAlmostEqual(best.score, float(self.beam_scores[j, 0]), delta=1e-4)
            self.assertAlmostEqual(best.normalized_score, float(self.beam_scores[j, 1]), delta=1e-4)
            self.assertGreaterEqual(best.normalized_score, hyps[1].normalized_score)
        with self.assertRaises(kiln.Error):
            gen.generate([self.source(0)], strategy="sideways")

    def test_translate_and_text_sources(self):
        gen = kiln.Generator(self.model)
        with open(os.path.join(DATES, "held_out.tsv")) as f:
            rows = [line.rstrip("\n").split("\t") for line in f if not line.startswith("#")][:6]
        texts = [r[0] for r in rows]
        out = gen.translate(texts)
        self.assertEqual(len(out), 6)
        self.assertGreaterEqual(sum(o == r[1] for o, r in zip(out, rows)), 5, list(zip(out, rows)))
        hyps = gen.generate(texts[:2])
        self.assertEqual([self.model.decode(h[0].tokens) for h in hyps], out[:2])

    def test_generator_from_threads(self):
        # One Generator shared by threads: calls are serialized, results stay correct.
        gen = kiln.Generator(self.model)
        results = {}

        def worker(i):
            results[i] = gen.generate([self.source(i)])[0][0].tokens

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i in range(4):
            self.assertEqual(results[i], trim(self.greedy[i]))


if __name__ == "__main__":
    unittest.main()
