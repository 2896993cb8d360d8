"""kiln.Model and kiln.Session: loading (.yaml, .onnx, .kplan), inputs/outputs, explain, run (returned and
preallocated outputs), sessions' options and memory report, kiln.compile."""
import os
import tempfile
import unittest

import numpy as np

import kiln
from kiln_test_util import CLASSIFIER, EXPECTED_PROBS, TOKENS, source_path


class ModelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = kiln.Model.load(CLASSIFIER)
        cls.tokens = np.load(TOKENS)
        cls.expected = np.load(EXPECTED_PROBS)

    def test_inputs_and_outputs(self):
        self.assertEqual(self.model.name, "transformer_classifier")
        (tokens,) = self.model.inputs
        self.assertEqual(tokens.name, "tokens")
        self.assertEqual(tokens.dtype, np.dtype(np.int64))
        self.assertEqual(tokens.dtype_name, "i64")
        self.assertEqual(tokens.shape, ("batch", "seq"))
        (probs,) = self.model.outputs
        self.assertEqual(probs.name, "probs")
        self.assertEqual(probs.dtype, np.dtype(np.float32))
        self.assertEqual(probs.shape, ("batch", 4))
        self.assertIn("tokens", repr(tokens))
        self.assertGreater(self.model.weight_bytes, 100000)

    def test_run_matches_pytorch(self):
        session = self.model.session(threads=2)
        out = session.run({"tokens": self.tokens})
        self.assertEqual(list(out), ["probs"])
        probs = out["probs"]
        self.assertIsInstance(probs, np.ndarray)
        self.assertEqual(probs.dtype, np.float32)
        self.assertEqual(probs.shape, (1, 4))
        np.testing.assert_allclose(probs, self.expected, atol=1e-4, rtol=0)

    def test_batch_and_shapes(self):
        session = self.model.session(mode="throughput", threads=2)
        batch = np.ascontiguousarray(np.repeat(self.tokens, 3, axis=0)[:, :17])
        self.assertEqual(session.output_shapes({"tokens": batch}), {"probs": (3, 4)})
        probs = session.run({"tokens": batch})["probs"]
        self.assertEqual(probs.shape, (3, 4))
        np.testing.assert_allclose(probs[0], probs[2], atol=0, rtol=0)
        np.testing.assert_allclose(probs.sum(axis=1), np.ones(3), atol=1e-5)
        self.assertEqual(session.plan_count, 1)
        self.assertEqual(session.threads_per_run, 1)
        self.assertEqual(session.max_concurrent_runs, 2)
        mem = session.memory()
        self.assertEqual(mem["plans"], 1)
        self.assertEqual(mem["weight_bytes"], self.model.weight_bytes)
        self.assertGreater(mem["arena_bytes"], 0)

    def test_memory_limit(self):
        session = self.model.session(memory_limit=4096)
        self.assertEqual(session.memory()["memory_limit"], 4096)
        with self.assertRaises(kiln.Error) as ctx:  # the arena needs ~100 KB
            session.run({"tokens": self.tokens})
        self.assertIn("memory", str(ctx.exception).lower())
        roomy = self.model.session(memory_limit=64 << 20)
        np.testing.assert_allclose(roomy.run({"tokens": self.tokens})["probs"], self.expected, atol=1e-4, rtol=0)
        self.assertLessEqual(roomy.memory()["arena_bytes"], 64 << 20)

    def test_preallocated_outputs(self):
        session = self.model.session()
        mine = np.full((1, 4), -1.0, dtype=np.float32)
        outputs = {"probs": mine}
        result = session.run({"tokens": self.tokens}, outputs=outputs)
        self.assertIs(result["probs"], mine)
        np.testing.assert_allclose(mine, self.expected, atol=1e-4, rtol=0)
        # An output left out is allocated by Kiln and returned with the others.
        result = session.run({"tokens": self.tokens}, outputs={})
        np.testing.assert_allclose(result["probs"], self.expected, atol=1e-4, rtol=0)

    def test_explain(self):
        ir = self.model.explain()
        self.assertIn("embedding", ir)
        self.assertIn("transformer_classifier.yaml", ir)  # with source locations
        plan = self.model.explain({"tokens": self.tokens})
        self.assertIn("arena", plan)
        self.assertEqual(self.model.ir().count("\n") > 3, True)
        session = self.model.session()
        self.assertIn("arena", session.explain({"tokens": self.tokens}))
        self.assertIn("total", session.profile({"tokens": self.tokens}, runs=2).lower())

    def test_opt_levels_agree(self):
        o0 = kiln.Model.load(CLASSIFIER, opt_level=0)
        self.assertNotEqual(o0.ir(), self.model.ir())
        probs = o0.session().run({"tokens": self.tokens})["probs"]
        np.testing.assert_allclose(probs, self.expected, atol=1e-4, rtol=0)
        with self.assertRaises(ValueError):
            kiln.Model.load(CLASSIFIER, opt_level=5)
        # A disabled pass: the residual adds before norm1 stay nodes of their own.
        self.assertNotIn("/r1 = add(", self.model.ir())
        plain = kiln.Model.load(CLASSIFIER, disabled_passes=["fuse-add-layer-norm"])
        self.assertEqual(plain.ir().count("/r1 = add("), 2)
        np.testing.assert_allclose(plain.session().run({"tokens": self.tokens})["probs"], self.expected,
                                   atol=1e-4, rtol=0)

    def test_onnx(self):
        folder = source_path("tests", "fixtures", "onnx")
        model = kiln.Model.load(os.path.join(folder, "mlp_gemm.onnx"))
        x = np.load(os.path.join(folder, "x.npy"))
        y = np.load(os.path.join(folder, "y.npy"))
        (name,) = [o.name for o in model.outputs]
        out = model.session().run({model.inputs[0].name: x})[name]
        np.testing.assert_allclose(out, y, atol=1e-5, rtol=0)

    def test_compile_and_load_plan(self):
        with tempfile.TemporaryDirectory() as tmp:
            plan = os.path.join(tmp, "classifier.kplan")
            kiln.compile(CLASSIFIER, plan, shapes={"batch": 1, "seq": (1, 64)})
            self.assertTrue(os.path.getsize(plan) > 100000)
            model = kiln.Model.load(plan)
            self.assertEqual(model.inputs[0].shape, (1, "seq"))
            probs = model.session().run({"tokens": self.tokens})["probs"]
            np.testing.assert_allclose(probs, self.expected, atol=1e-4, rtol=0)
            with self.assertRaises(kiln.Error) as ctx:  # seq outside the compiled range
                model.session().run({"tokens": np.zeros((1, 65), np.int64)})
            self.assertIn("seq", str(ctx.exception))
            with self.assertRaises(kiln.Error):
                kiln.compile(CLASSIFIER, plan, shapes={"nosuchdim": 3})
            with self.assertRaises(kiln.Error) as ctx:
                kiln.compile(plan, os.path.join(tmp, "again.kplan"))
            self.assertIn(".kplan", str(ctx.exception))

    def test_quantize(self):
        # int8 weights: probabilities within 1e-2 of fp32 (docs/quantization.md), fewer weight bytes, and a
        # plan file compiled with quantize="int8" that is smaller and gives the same probabilities.
        try:
            model = kiln.Model.load(CLASSIFIER, quantize="int8")
        except kiln.Error as e:  # no int8 kernel on this CPU (or under KILN_MAX_ISA): refused, naming why
            self.assertIn("int8 weights need", str(e))
            self.skipTest("int8 refused here: " + str(e))
        self.assertLess(model.weight_bytes, self.model.weight_bytes)
        probs = model.session().run({"tokens": self.tokens})["probs"]
        np.testing.assert_allclose(probs, self.expected, atol=1e-2, rtol=0)
        self.assertIn("s8panels16", model.explain())  # the IR names the packed int8 layout
        with tempfile.TemporaryDirectory() as tmp:
            f32, s8 = os.path.join(tmp, "f32.kplan"), os.path.join(tmp, "s8.kplan")
            kiln.compile(CLASSIFIER, f32, shapes={"batch": 1, "seq": 32})
            kiln.compile(CLASSIFIER, s8, shapes={"batch": 1, "seq": 32}, quantize="int8")
            self.assertLess(os.path.getsize(s8), os.path.getsize(f32))
            planned = kiln.Model.load(s8).session().run({"tokens": self.tokens})["probs"]
            np.testing.assert_array_equal(planned, probs)
        with self.assertRaises(ValueError):
            kiln.Model.load(CLASSIFIER, quantize=8)


if __name__ == "__main__":
    unittest.main()
