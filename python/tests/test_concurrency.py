"""The GIL is released while Kiln runs: 4 Python threads calling one session run side by side (the session
then holds more than one execution context) and get the serial results, and other Python code runs while a
call is in progress."""
import threading
import time
import unittest

import numpy as np

import kiln
from kiln_test_util import CLASSIFIER, TOKENS


class ConcurrencyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = kiln.Model.load(CLASSIFIER)
        cls.tokens = np.load(TOKENS)

    def test_four_threads_share_one_session(self):
        session = self.model.session(mode="throughput", threads=4)
        self.assertEqual(session.max_concurrent_runs, 4)
        rng = np.random.default_rng(7)
        requests = [rng.integers(0, 1000, size=(2, 32), dtype=np.int64) for _ in range(4)]
        serial = [session.run({"tokens": r})["probs"].copy() for r in requests]
        runs = 60
        errors = []
        mismatches = []
        start = threading.Barrier(4)

        def caller(i):
            try:
                start.wait()
                for _ in range(runs):
                    probs = session.run({"tokens": requests[i]})["probs"]
                    if not np.array_equal(probs, serial[i]):
                        mismatches.append(i)
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(mismatches, [])
        # One shape, one plan; more than one execution context exists only if calls overlapped in Kiln,
        # which they cannot while one of them holds the GIL.
        mem = session.memory()
        self.assertEqual(mem["plans"], 1)
        self.assertGreaterEqual(mem["contexts"], 2, mem)

    def test_python_runs_during_a_call(self):
        session = self.model.session(threads=1)
        big = np.ascontiguousarray(np.tile(self.tokens, (64, 4)))  # [64, 128]: tens of milliseconds
        session.run({"tokens": big})  # compile the plan first
        # Up to 3 tries (a busy machine may starve the ticker for a while); a held GIL fails all of them.
        for _ in range(3):
            inside, call_s = self.ticks_during_call(session, big)
            if len(inside) >= 3:
                break
        self.assertGreater(call_s, 0.005, "the call was too short to tell")
        self.assertGreaterEqual(len(inside), 3, f"{len(inside)} ticks during a {1000 * call_s:.1f} ms call")

    @staticmethod
    def ticks_during_call(session, tokens):
        """Ticks of a Python thread (every 0.5 ms) seen in the first 80% of one call, and the call's length."""
        stamps = []
        stop = threading.Event()

        def ticker():
            while not stop.is_set():
                stamps.append(time.perf_counter())
                time.sleep(0.0005)

        t = threading.Thread(target=ticker)
        t.start()
        try:
            time.sleep(0.01)
            t0 = time.perf_counter()
            session.run({"tokens": tokens})
            t1 = time.perf_counter()
        finally:
            stop.set()
            t.join()
        return [s for s in stamps if t0 < s < t0 + 0.8 * (t1 - t0)], t1 - t0


if __name__ == "__main__":
    unittest.main()
