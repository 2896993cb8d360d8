"""No copies between NumPy and Kiln: an input's own memory is what Kiln reads, an output array points into
the buffer Kiln wrote (its base is the kiln.Buffer holding it), preallocated outputs are written in place."""
import gc
import unittest

import numpy as np

import kiln
from kiln_test_util import CLASSIFIER, EXPECTED_PROBS, TOKENS


class ZeroCopyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.session = kiln.Model.load(CLASSIFIER).session(threads=1)
        cls.tokens = np.load(TOKENS)
        cls.expected = np.load(EXPECTED_PROBS)

    def test_input_is_read_in_place(self):
        tokens = self.tokens.copy()
        self.session.run({"tokens": tokens})
        # The tensor handed to Session::run is a view of the array's own memory.
        self.assertEqual(kiln._kiln._last_input_addresses(), {"tokens": tokens.ctypes.data})
        # A slice of a larger buffer that is still C-contiguous (rows 1..2 of 4) is read where it lies too.
        big = np.zeros((4, 32), np.int64)
        big[1] = self.tokens[0]
        rows = big[1:2]
        self.assertFalse(rows.flags.owndata)
        probs = self.session.run({"tokens": rows})["probs"]
        self.assertEqual(kiln._kiln._last_input_addresses()["tokens"], big.ctypes.data + 32 * 8)
        np.testing.assert_allclose(probs, self.expected, atol=1e-4, rtol=0)
        # What Kiln reads is the caller's memory at call time: changing the array changes the result.
        before = self.session.run({"tokens": tokens})["probs"].copy()
        tokens[0, :] = 7
        after = self.session.run({"tokens": tokens})["probs"]
        self.assertFalse(np.array_equal(before, after))

    def test_read_only_and_other_buffers(self):
        tokens = self.tokens.copy()
        tokens.flags.writeable = False  # inputs are only read
        probs = self.session.run({"tokens": tokens})["probs"]
        np.testing.assert_allclose(probs, self.expected, atol=1e-4, rtol=0)
        # Any object with the buffer protocol works: a memoryview of the same memory.
        view = memoryview(self.tokens)
        probs = self.session.run({"tokens": view})["probs"]
        self.assertEqual(kiln._kiln._last_input_addresses()["tokens"], self.tokens.ctypes.data)
        np.testing.assert_allclose(probs, self.expected, atol=1e-4, rtol=0)

    def test_output_owns_kilns_buffer(self):
        probs = self.session.run({"tokens": self.tokens})["probs"]
        base = probs.base
        self.assertIsInstance(base, kiln.Buffer)
        self.assertEqual(base.address, probs.ctypes.data)
        self.assertEqual(base.nbytes, probs.nbytes)
        self.assertTrue(probs.flags.c_contiguous)
        self.assertTrue(probs.flags.writeable)
        self.assertFalse(probs.flags.owndata)
        # A view outlives the array it came from: the buffer lives while anything refers to it.
        row = probs[0]
        values = probs.copy()
        del probs, base
        gc.collect()
        junk = [self.session.run({"tokens": self.tokens})["probs"] for _ in range(10)]
        self.assertEqual(len(junk), 10)
        np.testing.assert_array_equal(row, values[0])
        # Every call returns a new buffer.
        a = self.session.run({"tokens": self.tokens})["probs"]
        b = self.session.run({"tokens": self.tokens})["probs"]
        self.assertNotEqual(a.ctypes.data, b.ctypes.data)

    def test_preallocated_output_written_in_place(self):
        out = np.zeros((1, 4), np.float32)
        address = out.ctypes.data
        result = self.session.run({"tokens": self.tokens}, outputs={"probs": out})
        self.assertIs(result["probs"], out)
        self.assertEqual(out.ctypes.data, address)
        np.testing.assert_allclose(out, self.expected, atol=1e-4, rtol=0)
        # A C-contiguous slice of a larger array is written where it lies.
        big = np.zeros((3, 4), np.float32)
        self.session.run({"tokens": self.tokens}, outputs={"probs": big[1:2]})
        np.testing.assert_allclose(big[1:2], self.expected, atol=1e-4, rtol=0)
        np.testing.assert_array_equal(big[0], np.zeros(4, np.float32))
        np.testing.assert_array_equal(big[2], np.zeros(4, np.float32))


if __name__ == "__main__":
    unittest.main()
