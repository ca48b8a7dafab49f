"""Every pixel mode a camera frame can arrive in: converted to RGB as a by-hand numpy conversion says,
or refused (a FrameError the export counts as a skipped episode with its reason); never a silent
wrong conversion. The by-hand formulas are written here from the modes' definitions, not from PIL."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from transforms.frames import FrameError, decode, prepare_frames

rng = np.random.default_rng(7)


def encoded(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png16(a: np.ndarray) -> bytes:
    """A 16-bit PNG written by hand (PIL cannot write 16-bit RGB): gray [H, W], or [H, W, C] with C in 2, 3, 4."""
    a = a if a.ndim == 3 else a[:, :, None]
    h, w, c = a.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def on_black(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Alpha compositing over black, by hand: round(c * a / 255)."""
    return np.floor(rgb.astype(np.float64) * alpha[..., None].astype(np.float64) / 255 + 0.5).astype(np.uint8)


RGB = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
ALPHA = rng.integers(0, 256, (6, 5), dtype=np.uint8)
GRAY = rng.integers(0, 256, (6, 5), dtype=np.uint8)
GRAY16 = rng.integers(0, 65536, (6, 5), dtype=np.uint16)


def test_rgb_and_gray_are_exact():
    np.testing.assert_array_equal(decode(encoded(Image.fromarray(RGB))), RGB)
    np.testing.assert_array_equal(decode(encoded(Image.fromarray(GRAY))), np.repeat(GRAY[..., None], 3, axis=-1))
    bits = GRAY > 127
    one = decode(encoded(Image.fromarray(bits)))  # mode 1
    np.testing.assert_array_equal(one, np.repeat(np.where(bits, 255, 0)[..., None], 3, axis=-1).astype(np.uint8))


def test_transparency_is_composited_on_black():
    rgba = np.dstack([RGB, ALPHA])
    np.testing.assert_array_equal(decode(encoded(Image.fromarray(rgba, "RGBA"))), on_black(RGB, ALPHA))
    la = np.dstack([GRAY, ALPHA])
    want = on_black(np.repeat(GRAY[..., None], 3, axis=-1), ALPHA)
    np.testing.assert_array_equal(decode(encoded(Image.fromarray(la, "LA"))), want)
    # a palette image with a transparent index: that colour becomes black, the others are the palette's
    palette = rng.integers(0, 256, (4, 3), dtype=np.uint8)
    index = rng.integers(0, 4, (6, 5), dtype=np.uint8)
    p = Image.fromarray(index, "P")
    p.putpalette(palette.ravel().tolist())
    got = decode(encoded(p, transparency=2))
    want = np.where((index == 2)[..., None], 0, palette[index]).astype(np.uint8)
    np.testing.assert_array_equal(got, want)
    # fully opaque alpha: the colours exactly (what dropping the alpha channel would also give)
    opaque = np.dstack([RGB, np.full(ALPHA.shape, 255, np.uint8)])
    np.testing.assert_array_equal(decode(encoded(Image.fromarray(opaque, "RGBA"))), RGB)


def test_sixteen_bit_frames_keep_their_high_byte():
    np.testing.assert_array_equal(decode(png16(GRAY16)), np.repeat((GRAY16 >> 8).astype(np.uint8)[..., None], 3, -1))
    rgb16 = rng.integers(0, 65536, (6, 5, 3), dtype=np.uint16)
    np.testing.assert_array_equal(decode(png16(rgb16)), (rgb16 >> 8).astype(np.uint8))


def test_cmyk_by_the_formula():
    cmyk = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    data = encoded(Image.fromarray(cmyk, "CMYK"), "JPEG", quality=100)
    stored = np.asarray(Image.open(io.BytesIO(data)))  # the CMYK values the JPEG holds (lossy)
    c, m, y, k = (stored[..., i].astype(np.float64) for i in range(4))
    want = np.stack([(255 - c) * (255 - k), (255 - m) * (255 - k), (255 - y) * (255 - k)], -1) / 255
    got = decode(data).astype(np.float64)
    assert np.abs(got - want).max() <= 0.5 + 1e-9  # the formula, rounded


def test_exif_orientation_is_applied():
    tall = rng.integers(0, 256, (8, 16, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    data = encoded(Image.fromarray(tall), "JPEG", quality=100, exif=exif.tobytes())
    raw = np.asarray(Image.open(io.BytesIO(data)))  # the pixels as stored
    got = decode(data)
    np.testing.assert_array_equal(got, np.rot90(raw, k=-1))
    assert got.shape == (16, 8, 3)
    # an EXIF-rotated JPEG is never passed through byte for byte, even at the target size
    square = encoded(Image.fromarray(tall[:, :8]), "JPEG", quality=90, exif=exif.tobytes())
    out, _ = prepare_frames(np.array([square], dtype=object), 8)
    assert out[0] != square and Image.open(io.BytesIO(out[0])).getexif().get(0x0112) is None


@pytest.mark.parametrize("keep_pixels", [False, True])
def test_only_plain_rgb_jpegs_pass_through(keep_pixels):
    rgb = encoded(Image.fromarray(RGB[:5, :5]), "JPEG", quality=90)
    gray = encoded(Image.fromarray(GRAY[:5, :5]), "JPEG", quality=90)
    cmyk = encoded(Image.fromarray(rng.integers(0, 256, (5, 5, 4), dtype=np.uint8), "CMYK"), "JPEG")
    out, pixels = prepare_frames(np.array([rgb, gray, cmyk], dtype=object), 5, keep_pixels=keep_pixels)
    assert out[0] == rgb  # kept byte for byte
    for data in out[1:]:
        assert data != gray and data != cmyk and Image.open(io.BytesIO(data)).mode == "RGB"
    if keep_pixels:
        np.testing.assert_array_equal(pixels[1], decode(gray))  # gray replicated to RGB
        assert pixels.shape == (3, 5, 5, 3)


def test_raw_pixel_tensors():
    frames = np.stack([RGB, RGB[::-1]])
    out, pixels = prepare_frames(frames, 6, keep_pixels=True)
    assert len(out) == 2 and pixels.shape == (2, 6, 6, 3)
    gray = prepare_frames(GRAY[None], 5, keep_pixels=True)[1][0]
    assert (gray[..., 0] == gray[..., 1]).all()
    with pytest.raises(FrameError, match="frame 0: raw pixels of type float32"):
        prepare_frames(np.zeros((1, 4, 4, 3), np.float32), 4)


@pytest.mark.parametrize(
    "data, reason",
    [
        (encoded(Image.fromarray(np.ones((4, 4), np.float32)), "TIFF"), "float pixels"),
        (encoded(Image.fromarray(np.array([[70000, 1]], np.int32)), "TIFF"), "beyond 16 bits"),
        (b"not an image at all", "not an image"),
        (encoded(Image.fromarray(RGB), "JPEG")[:40], "not a decodable image"),
    ],
)
def test_unusable_frames_are_refused_with_the_reason(data, reason):
    with pytest.raises(FrameError, match=reason):
        prepare_frames(np.array([data], dtype=object), 4)


def test_a_float_image_feature_is_refused_per_slice(sample_corpus):
    """berkeley_autolab_ur5's image_with_depth (a float32 TFDS image: a PNG of the float's bytes) named as
    the camera: every episode of the slice is counted under the reason, none decoded as colour noise."""
    from dataclasses import replace

    from manifests.registry import load_registry
    from sources.episodes import plan_reads, standard_episodes
    from sources.rlds import open_dataset

    cfg = load_registry().datasets["berkeley_autolab_ur5"]
    ds = open_dataset(str(sample_corpus), cfg)
    assert ds.fields["observation/image_with_depth"].pixel_dtype == "float32"
    bad = replace(cfg, primary_image="observation/image_with_depth")
    (task,) = plan_reads({cfg.name: ds}, "train")
    (item,) = list(standard_episodes(task, bad, images=True, dataset=ds))
    assert item["episodes_lost"] == task.shard.num_episodes == 2
    assert "'observation/image_with_depth' is a float32 image (a depth map?)" in item["reason"]
    good = list(standard_episodes(task, cfg, images=True, dataset=ds))
    assert len(good) == 2 and all(not isinstance(e, dict) for e in good)
