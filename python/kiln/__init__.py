"""Kiln from Python: compiled models on CPUs, NumPy arrays in and out without copies (docs/python.md).

    import numpy, kiln
    model = kiln.Model.load("examples/transformer_classifier/transformer_classifier.yaml")
    session = model.session(threads=2)
    probs = session.run({"tokens": numpy.zeros((1, 32), numpy.int64)})["probs"]
"""
from ._kiln import (  # noqa: F401
    Buffer,
    Error,
    Generator,
    Hypothesis,
    IoInfo,
    Model,
    Seq2SeqModel,
    Session,
    __version__,
    compile,
)

# kiln.compile is left out of `from kiln import *`, which would hide the builtin compile.
__all__ = ["Buffer", "Error", "Generator", "Hypothesis", "IoInfo", "Model", "Seq2SeqModel", "Session"]

for _cls in (Buffer, Error, Generator, Hypothesis, IoInfo, Model, Seq2SeqModel, Session):
    _cls.__module__ = "kiln"  # shown as kiln.Error, kiln.Model, ... (defined in the extension kiln._kiln)
del _cls
