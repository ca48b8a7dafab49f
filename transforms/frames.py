"""Image decode/resize/encode for export (each frame decoded once, source bytes reused when possible),
and camera intrinsics after a resize."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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


# Pixel modes and how each becomes 8-bit RGB (any other mode is a FrameError naming it):
#   RGB as is; L, 1, P (no transparency), CMYK, YCbCr, RGBX: PIL's conversion (CMYK: r = (255 - c)(255 - k) / 255,
#   the formula by hand); I;16* (16-bit grayscale): the high byte, as PIL and libpng reduce 16-bit RGB;
#   I (32-bit integers, e.g. a 16-bit PNG read as I): the high byte when every value is within 16 bits;
#   anything with transparency (RGBA, LA, PA, P or L/RGB with a transparent colour): composited on black,
#   c * a / 255 rounded, so transparent pixels are black rather than whatever colour they happen to hold.
# Refused: F (float pixels: a depth map, not a camera frame) and 32-bit integers beyond 16 bits.
# EXIF orientation (JPEGs from phones and some cameras) is applied: the pixels as the image is meant to be seen.
_PIL_TO_RGB = ("L", "1", "P", "CMYK", "YCbCr", "RGBX")
_TRANSPARENT = ("RGBA", "LA", "PA", "RGBa", "La")
_EXIF_ORIENTATION = 0x0112


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except Exception:  # a malformed EXIF block: no orientation to apply
        return 1


def _composite_on_black(rgba: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 4] -> [H, W, 3]: colour x alpha / 255, rounded half up."""
    rgb = rgba[..., :3].astype(np.uint32) * rgba[..., 3:4].astype(np.uint32)
    return ((rgb + 127) // 255).astype(np.uint8)


def _to_rgb(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return np.asarray(im)
    if mode in _TRANSPARENT or "transparency" in im.info:
        return _composite_on_black(np.asarray(im.convert("RGBA")))
    if mode in _PIL_TO_RGB:
        return np.asarray(im.convert("RGB"))
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(im).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 0xFFFF):
            raise FrameError(f"{mode} pixels beyond 16 bits ({values.min()}..{values.max()}): not a camera frame")
        gray = (values >> 8).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if mode == "F":
        raise FrameError("float pixels (mode F, e.g. a depth map): not a camera frame")
    raise FrameError(f"pixel mode {mode} is not a camera frame this pipeline converts")


def _decoded(data: bytes, size: int | None = None) -> tuple[np.ndarray, bool]:
    """(uint8 [H, W, 3], whether the bytes are a plain RGB JPEG of size x size that can be kept as they are)."""

    def convert(im: Image.Image) -> tuple[np.ndarray, bool]:
        upright = _orientation(im) == 1
        plain = upright and im.format == "JPEG" and im.mode == "RGB" and im.size == (size, size)
        if not upright:
            im = ImageOps.exif_transpose(im)
        return np.ascontiguousarray(_to_rgb(im)), plain

    return _checked(convert, data)


def decode(data: bytes) -> np.ndarray:
    """Encoded image bytes -> uint8 [H, W, 3] (see the mode table above); FrameError when they are not
    a usable image."""
    return _decoded(data)[0]


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
    """A JPEG already plain RGB at size x size (no EXIF rotation to apply) is kept byte for byte, once it
    is known to decode."""

    def check(im: Image.Image) -> bool:
        if im.size == (size, size) and im.mode == "RGB" and _orientation(im) == 1:
            im.load()  # decodes the whole frame: a truncated one fails here, not in a trainer
            return True
        return False

    return _checked(check, data)


def _from_array(frame: np.ndarray) -> np.ndarray:
    """A frame stored as raw pixels (a uint8 tensor feature rather than an encoded image): [H, W, 3],
    [H, W, 4] (composited on black), [H, W, 1] or [H, W] (gray)."""
    if frame.dtype != np.uint8:
        raise FrameError(f"raw pixels of type {frame.dtype}, expected uint8 (a camera frame)")
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        return np.repeat(frame.reshape(frame.shape[0], frame.shape[1], 1), 3, axis=-1)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 4:
        return _composite_on_black(frame)
    raise FrameError(f"raw pixels of shape {list(frame.shape)}, expected [H, W, 3] (or gray, or RGBA)")


def prepare_frames(frames: np.ndarray, size: int, keep_pixels: bool = False) -> tuple[list[bytes], np.ndarray | None]:
    """Frames [T] (encoded bytes, or raw uint8 pixels [T, H, W, C]) -> (JPEG bytes at size x size [T], the
    resized pixels [T, size, size, 3] if asked).

    A plain RGB JPEG already at the target size is passed through byte for byte; every other frame is
    decoded (converted to RGB as the mode table says), resized and encoded as a baseline RGB JPEG.
    """
    out, pixels = [], []
    for i, data in enumerate(frames):
        try:
            if isinstance(data, np.ndarray) and data.dtype != object:
                img = _from_array(data)
            else:
                if not isinstance(data, (bytes, bytearray, memoryview)):
                    raise FrameError(f"expected encoded image bytes, got {type(data).__name__}")
                data = bytes(data)
                if not keep_pixels and data[:2] == b"\xff\xd8" and _passes_through(data, size):
                    out.append(data)
                    continue
                img, plain = _decoded(data, size)
                if plain:  # keep_pixels: the pixels are needed, the bytes are kept
                    out.append(data)
                    pixels.append(img)
                    continue
        except FrameError as e:
            raise FrameError(f"frame {i}: {e}") from None
        resized = resize(img, size)
        out.append(encode_jpeg(resized))
        if keep_pixels:
            pixels.append(resized)
    return out, (np.stack(pixels) if keep_pixels else None)


def scale_intrinsics(
    fx: float, fy: float, cx: float, cy: float, src_wh: tuple[int, int], dst_wh: tuple[int, int]
) -> tuple[float, float, float, float]:
    """Intrinsics after resizing an image from src_wh to dst_wh (each axis on its own)."""
    sx, sy = dst_wh[0] / src_wh[0], dst_wh[1] / src_wh[1]
    return fx * sx, fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5
