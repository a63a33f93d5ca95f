"""A torch-free reader of ``.safetensors`` files into numpy arrays (bfloat16 widened to float32,
which ``safetensors.numpy`` cannot read)."""

from __future__ import annotations

import json
import os
from pathlib import Path

#: safetensors dtype -> numpy dtype (BF16 is widened to float32 by hand: numpy has no bfloat16)
_NP_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
              "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}


def read_safetensors_numpy(path: str | os.PathLike) -> dict:
    """The tensors of a ``.safetensors`` file as numpy arrays (bfloat16 widened to float32), read
    from the format itself: an 8-byte little-endian header length, a JSON header (name ->
    dtype, shape, data_offsets), then the data. Torch-free; a malformed file raises ValueError."""
    import numpy as np

    data = Path(path).read_bytes()
    if len(data) < 8:
        raise ValueError("shorter than a safetensors header")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise ValueError("header longer than the file")
    header = json.loads(data[8 : 8 + n])
    body = memoryview(data)[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        kind = info["dtype"]
        if kind not in _NP_DTYPES:
            raise ValueError(f"{name}: unsupported dtype {kind}")
        shape, (a, b) = [int(d) for d in info["shape"]], info["data_offsets"]
        dt = np.dtype(_NP_DTYPES[kind])
        if not 0 <= a <= b <= len(body) or b - a != dt.itemsize * int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"{name}: data offsets do not fit its shape or the file")
        arr = np.frombuffer(body[a:b], dtype=dt).reshape(shape)
        out[name] = (arr.astype(np.uint32) << 16).view(np.float32) if kind == "BF16" else arr.astype(dt.newbyteorder("="))
    return out
