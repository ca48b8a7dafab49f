"""Image decode/resize/encode for export (each frame decoded once, source bytes reused when possible),
and camera intrinsics after a resize."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

JPEG_QUALITY = 95
MAX_PIXELS = 64_000_000  # a frame claiming more is refused before decoding (a decompression bomb)


class FrameError(ValueError):
    """A frame that cannot be used: undecodable, truncated, or too large; the message says which."""


def _open(data: bytes) -> Image.Image:
    """The image's header, its size checked before anything is decoded."""
    im = Image.open(io.BytesIO(data))
    if im.width * im.height > MAX_PIXELS:
        im.close()
        raise FrameError(f"{im.width}x{im.height} pixels, more than {MAX_PIXELS} (refused undecoded)")
    return im


def _checked(fn, data: bytes):
    try:
        with _open(data) as im:
            return fn(im)
    except FrameError:
        raise
    except UnidentifiedImageError:
        raise FrameError("not an image (unknown format)") from None
    except Image.DecompressionBombError as e:  # PIL's own limit, above ours: refused at the header too
        raise FrameError(f"refused undecoded: {e}") from None
    except (OSError, SyntaxError, ValueError) as e:  # PIL's ways of saying "broken"
        raise FrameError(f"not a decodable image ({e})") from None


def decode(data: bytes) -> np.ndarray:
    """Encoded image bytes -> uint8 [H, W, 3]; FrameError when they are not a usable image."""
    return _checked(lambda im: np.asarray(im.convert("RGB")), data)


def encode_jpeg(pixels: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def resize(pixels: np.ndarray, size: int) -> np.ndarray:
    """Square resize to size x size, as SpatialVLA's and OpenVLA's loaders do (aspect not kept)."""
    if pixels.shape[:2] == (size, size):
        return pixels
    return np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.BICUBIC))


def _passes_through(data: bytes, size: int) -> bool:
    """A JPEG already RGB at size x size is kept byte for byte, once it is known to decode."""

    def check(im: Image.Image) -> bool:
        if im.size == (size, size) and im.mode == "RGB":
            im.load()  # decodes the whole frame: a truncated one fails here, not in a trainer
            return True
        return False

    return _checked(check, data)


def prepare_frames(frames: np.ndarray, size: int, keep_pixels: bool = False) -> tuple[list[bytes], np.ndarray | None]:
    """Encoded frames [T] -> (JPEG bytes at size x size [T], the resized pixels [T, size, size, 3] if asked).

    A JPEG already at the target size is passed through byte for byte unless its pixels are needed.
    """
    out, pixels = [], []
    for i, data in enumerate(frames):
        try:
            if not keep_pixels and data[:2] == b"\xff\xd8" and _passes_through(data, size):
                out.append(bytes(data))
                continue
            img = decode(data)
        except FrameError as e:
            raise FrameError(f"frame {i}: {e}") from None
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
