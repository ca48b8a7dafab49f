"""Image decode/resize/encode for export (each frame decoded once, source bytes reused when possible),
and camera intrinsics after a resize."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

JPEG_QUALITY = 95


def decode(data: bytes) -> np.ndarray:
    """Encoded image bytes -> uint8 [H, W, 3]."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def encode_jpeg(pixels: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def resize(pixels: np.ndarray, size: int) -> np.ndarray:
    """Square resize to size x size, as SpatialVLA's and OpenVLA's loaders do (aspect not kept)."""
    if pixels.shape[:2] == (size, size):
        return pixels
    return np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.BICUBIC))


def prepare_frames(frames: np.ndarray, size: int, keep_pixels: bool = False) -> tuple[list[bytes], np.ndarray | None]:
    """Encoded frames [T] -> (JPEG bytes at size x size [T], the resized pixels [T, size, size, 3] if asked).

    A JPEG already at the target size is passed through byte for byte unless its pixels are needed.
    """
    out, pixels = [], []
    for data in frames:
        if not keep_pixels and data[:2] == b"\xff\xd8":
            with Image.open(io.BytesIO(data)) as im:
                if im.size == (size, size) and im.mode == "RGB":
                    out.append(bytes(data))
                    continue
        img = decode(data)
        resized = resize(img, size)
        out.append(bytes(data) if resized is img and data[:2] == b"\xff\xd8" else encode_jpeg(resized))
        if keep_pixels:
            pixels.append(resized)
    return out, (np.stack(pixels) if keep_pixels else None)


def scale_intrinsics(
    fx: float, fy: float, cx: float, cy: float, src_wh: tuple[int, int], dst_wh: tuple[int, int]
) -> tuple[float, float, float, float]:
    """Intrinsics after resizing an image from src_wh to dst_wh (each axis on its own)."""
    sx, sy = dst_wh[0] / src_wh[0], dst_wh[1] / src_wh[1]
    return fx * sx, fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5
