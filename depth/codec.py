"""Depth as stored in the shards: uint16 millimetres (0 = invalid), a 16-bit grayscale PNG per
frame (lossless). Pure numpy + PIL: a trainer decodes with it."""

from __future__ import annotations

import io

import numpy as np

DEPTH_FORMAT = {"encoding": "png16", "dtype": "uint16", "units": "millimetres", "invalid": 0, "max_metres": 65.535}


def depth_to_uint16_mm(depth_m: np.ndarray) -> np.ndarray:
    """Metres -> uint16 millimetres, rounded; NaN and non-positive -> 0 (invalid); clipped to
    [1 mm, 65.535 m] otherwise, so that a valid depth never reads as invalid."""
    d = np.asarray(depth_m, np.float64)
    mm = np.where(np.isfinite(d) & (d > 0), np.maximum(np.rint(d * 1000.0), 1), 0)
    return np.clip(mm, 0, 65535).astype(np.uint16)


def uint16_mm_to_depth(mm: np.ndarray) -> np.ndarray:
    """uint16 millimetres -> float32 metres; invalid (0) -> NaN."""
    mm = np.asarray(mm)
    return np.where(mm > 0, mm.astype(np.float32) / 1000.0, np.nan).astype(np.float32)


def encode_depth(mm: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(mm, np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


def decode_depth(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im, dtype=np.uint16)
