"""Paths shared by the Python tests (run by ctest with PYTHONPATH=build/python, python/CMakeLists.txt)."""
import os

SOURCE_DIR = os.environ.get("KILN_SOURCE_DIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def source_path(*parts):
    return os.path.join(SOURCE_DIR, *parts)


CLASSIFIER = source_path("examples", "transformer_classifier", "transformer_classifier.yaml")
TOKENS = source_path("examples", "transformer_classifier", "tokens.npy")
EXPECTED_PROBS = source_path("examples", "transformer_classifier", "expected_probs.npy")
DATES = source_path("examples", "date_translation")
