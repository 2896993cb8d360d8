"""Errors: wrong dtypes and layouts are a TypeError / ValueError naming the input (never a cast or a copy);
Kiln's own errors are kiln.Error (an Exception) with file, line, column and message."""
import os
import tempfile
import unittest

import numpy as np

import kiln
from kiln_test_util import CLASSIFIER, TOKENS


class InputErrorsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = kiln.Model.load(CLASSIFIER)
        cls.session = cls.model.session(threads=1)
        cls.tokens = np.load(TOKENS)

    def test_wrong_dtype_is_a_type_error_naming_the_input(self):
        for dtype in (np.int32, np.float32, np.float64, np.uint8):
            with self.subTest(dtype=dtype):
                with self.assertRaises(TypeError) as ctx:
                    self.session.run({"tokens": self.tokens.astype(dtype)})
                msg = str(ctx.exception)
                self.assertIn("input 'tokens'", msg)
                self.assertIn("expected dtype int64", msg)
                self.assertIn(np.dtype(dtype).name, msg)

    def test_unsupported_and_foreign_dtypes(self):
        with self.assertRaises(TypeError) as ctx:
            self.session.run({"tokens": self.tokens.astype(np.uint64)})
        self.assertIn("input 'tokens'", str(ctx.exception))
        with self.assertRaises(TypeError) as ctx:
            self.session.run({"tokens": self.tokens.astype(">i8")})
        self.assertIn("big-endian", str(ctx.exception))
        with self.assertRaises(TypeError) as ctx:
            self.session.run({"tokens": [[1, 2, 3]]})  # a list has no buffer: no silent conversion
        self.assertIn("input 'tokens'", str(ctx.exception))
        with self.assertRaises(TypeError):
            self.session.run({1: self.tokens})

    def test_strided_input_is_a_value_error(self):
        wide = np.zeros((1, 64), np.int64)
        with self.assertRaises(ValueError) as ctx:
            self.session.run({"tokens": wide[:, ::2]})
        self.assertIn("input 'tokens'", str(ctx.exception))
        self.assertIn("C-contiguous", str(ctx.exception))
        with self.assertRaises(ValueError):
            self.session.run({"tokens": np.asfortranarray(np.zeros((2, 8), np.int64))})

    def test_wrong_shape_is_a_kiln_error_naming_the_input(self):
        with self.assertRaises(kiln.Error) as ctx:
            self.session.run({"tokens": np.zeros((32,), np.int64)})
        self.assertIn("input 'tokens'", str(ctx.exception))
        with self.assertRaises(kiln.Error) as ctx:
            self.session.run({"tokenz": self.tokens})
        self.assertIn("tokenz", str(ctx.exception))
        with self.assertRaises(kiln.Error) as ctx:
            self.session.run({})
        self.assertIn("missing input 'tokens'", str(ctx.exception))
        with self.assertRaises(kiln.Error):  # an out-of-range token id
            self.session.run({"tokens": np.full((1, 4), 5000, np.int64)})
        # The session is still usable.
        self.assertEqual(self.session.run({"tokens": self.tokens})["probs"].shape, (1, 4))

    def test_bad_outputs(self):
        with self.assertRaises(TypeError) as ctx:
            self.session.run({"tokens": self.tokens}, outputs={"probs": np.zeros((1, 4), np.float64)})
        self.assertIn("output 'probs'", str(ctx.exception))
        ro = np.zeros((1, 4), np.float32)
        ro.flags.writeable = False
        with self.assertRaises(ValueError) as ctx:
            self.session.run({"tokens": self.tokens}, outputs={"probs": ro})
        self.assertIn("read-only", str(ctx.exception))
        with self.assertRaises(ValueError):
            self.session.run({"tokens": self.tokens}, outputs={"probs": np.zeros((4, 2), np.float32).T})
        with self.assertRaises(kiln.Error) as ctx:
            self.session.run({"tokens": self.tokens}, outputs={"probs": np.zeros((1, 5), np.float32)})
        self.assertIn("probs", str(ctx.exception))
        with self.assertRaises(kiln.Error):
            self.session.run({"tokens": self.tokens}, outputs={"nope": np.zeros((1, 4), np.float32)})

    def test_bad_options(self):
        with self.assertRaises(ValueError):
            self.model.session(mode="fast")
        with self.assertRaises(ValueError) as ctx:
            kiln.Model.load(CLASSIFIER, quantize="s8")
        self.assertIn("quantize", str(ctx.exception))


class KilnErrorTest(unittest.TestCase):
    def test_error_is_an_exception(self):
        self.assertTrue(issubclass(kiln.Error, Exception))
        self.assertFalse(issubclass(kiln.Error, (TypeError, ValueError, RuntimeError)))

    def test_error_with_a_location(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "bad.yaml")
            with open(CLASSIFIER) as f:
                text = f.read()
            text = text.replace("weights: transformer_classifier.safetensors",
                                "weights: " + os.path.join(os.path.dirname(CLASSIFIER), "transformer_classifier.safetensors"))
            bad = text.replace("{op: relu, in: [h], out: h1}", "{op: relu, in: [hh], out: h1}")
            self.assertNotEqual(bad, text)
            with open(path, "w") as f:
                f.write(bad)
            with self.assertRaises(kiln.Error) as ctx:
                kiln.Model.load(path)
            e = ctx.exception
            self.assertEqual(e.file, path)
            line = next(i for i, l in enumerate(bad.splitlines(), 1) if "in: [hh]" in l)
            self.assertEqual(e.line, line)
            self.assertIsInstance(e.column, int)
            self.assertGreater(e.column, 0)
            self.assertIn("hh", e.message)
            self.assertTrue(str(e).startswith(f"{path}:{line}:{e.column}: error: "), str(e))
            self.assertEqual(str(e), f"{path}:{line}:{e.column}: error: {e.message}")

    def test_error_without_a_location(self):
        with self.assertRaises(kiln.Error) as ctx:
            kiln.Model.load("/nonexistent/model.yaml")
        e = ctx.exception
        self.assertIn("/nonexistent/model.yaml", str(e))
        self.assertIsInstance(e.message, str)
        self.assertIsNone(e.line)


if __name__ == "__main__":
    unittest.main()
