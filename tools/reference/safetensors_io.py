"""Minimal hand-written reader/writer for the safetensors file format.

Layout of a file:

    [8 bytes]  N, the header length, little-endian unsigned 64-bit
    [N bytes]  UTF-8 JSON header, padded with trailing spaces so that 8 + N is
               a multiple of 8:
                 {"__metadata__": {"format": "pt"},
                  "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
                  ...}
               offsets are byte offsets relative to the start of the data section
    [...]      raw little-endian tensor bytes, row-major (C order), tensors laid
               out contiguously in sorted-name order

Only numpy is needed. Tensors are passed in and returned as numpy arrays.
"""

import json
import struct

import numpy as np

# safetensors dtype tag <-> numpy dtype (always little-endian)
_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}


def _tag_for(dtype):
    dt = np.dtype(dtype)
    for tag, ref in _DTYPES.items():
        if dt.kind == ref.kind and dt.itemsize == ref.itemsize:
            return tag
    raise ValueError("unsupported dtype for safetensors: %s" % dt)


def serialize(tensors, metadata=None):
    """Return the bytes of a safetensors file holding `tensors` (name -> numpy array)."""
    if metadata is None:
        metadata = {"format": "pt"}
    header = {"__metadata__": dict(metadata)}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        if name == "__metadata__":
            raise ValueError("'__metadata__' is reserved")
        arr = np.asarray(tensors[name])
        tag = _tag_for(arr.dtype)
        data = np.ascontiguousarray(arr, dtype=_DTYPES[tag]).tobytes(order="C")
        header[name] = {
            "dtype": tag,
            "shape": [int(s) for s in arr.shape],
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    pad = (-(8 + len(text))) % 8
    text += b" " * pad
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def save_file(tensors, path, metadata=None):
    """Write `tensors` (name -> numpy array) to `path` in safetensors format."""
    blob = serialize(tensors, metadata)
    with open(path, "wb") as f:
        f.write(blob)
    return len(blob)


def deserialize(blob):
    """Parse safetensors bytes; return (tensors: dict name -> numpy array, metadata)."""
    if len(blob) < 8:
        raise ValueError("file too short")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError("header length %d exceeds file size %d" % (n, len(blob)))
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", None)
    data = blob[8 + n:]
    tensors = {}
    spans = []
    for name, info in header.items():
        dt = _DTYPES[info["dtype"]]
        shape = tuple(int(s) for s in info["shape"])
        begin, end = (int(v) for v in info["data_offsets"])
        count = 1
        for s in shape:
            count *= s
        if not (0 <= begin <= end <= len(data)):
            raise ValueError("%s: offsets [%d, %d) out of range" % (name, begin, end))
        if end - begin != count * dt.itemsize:
            raise ValueError("%s: %d bytes for shape %s of %s" % (name, end - begin, shape, info["dtype"]))
        tensors[name] = np.frombuffer(data, dtype=dt, count=count, offset=begin).reshape(shape).copy()
        spans.append((begin, end))
    # The data section must be covered exactly, without holes or overlaps.
    pos = 0
    for begin, end in sorted(spans):
        if begin != pos:
            raise ValueError("data section has a hole or overlap at byte %d" % pos)
        pos = end
    if pos != len(data):
        raise ValueError("data section has %d trailing bytes" % (len(data) - pos))
    return tensors, metadata


def load_file(path):
    """Read a safetensors file; return (tensors, metadata)."""
    with open(path, "rb") as f:
        return deserialize(f.read())
