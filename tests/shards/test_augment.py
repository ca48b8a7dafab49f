"""SpatialVLA's augmentation: each op's parameter range, and each op and their order on known images,
against independent per-pixel formulas (colorsys for hue)."""

import colorsys

import numpy as np
import pytest
from PIL import Image

from shards.augment import (
    BRIGHTNESS,
    CONTRAST,
    CROP_SCALE,
    HUE,
    SATURATION,
    AugmentParams,
    augment,
    draw_params,
)


def test_parameter_ranges_are_spanned_and_respected():
    draws = [draw_params(np.random.default_rng([7, i]), 224, 224) for i in range(4000)]
    side = round((CROP_SCALE * 224 * 224) ** 0.5)
    assert {(p.height, p.width) for p in draws} == {(side, side)}
    tops, lefts = {p.top for p in draws}, {p.left for p in draws}
    assert tops == lefts == set(range(224 - side + 1))  # every offset, independently
    assert len({(p.top, p.left) for p in draws}) > 224 - side + 1  # not one offset for both axes
    for name, lo, hi in [
        ("brightness", -BRIGHTNESS, BRIGHTNESS),
        ("contrast", *CONTRAST),
        ("saturation", *SATURATION),
        ("hue", -HUE, HUE),
    ]:
        values = np.array([getattr(p, name) for p in draws])
        assert values.min() >= lo and values.max() <= hi, name
        assert values.min() < lo + 0.01 * (hi - lo) and values.max() > hi - 0.01 * (hi - lo), name
    again = [draw_params(np.random.default_rng([7, i]), 224, 224) for i in range(50)]
    assert again == draws[:50]  # a pure function of the seed


IDENTITY = dict(top=0, left=0, height=32, width=32, brightness=0.0, contrast=1.0, saturation=1.0, hue=0.0)


def run(pixels, **changes):
    out = augment(Image.fromarray(pixels.astype(np.uint8)), AugmentParams(**{**IDENTITY, **changes}), 32)
    return np.asarray(out).astype(float)


def two_tone(a, b):
    img = np.zeros((32, 32, 3))
    img[:, :16], img[:, 16:] = a, b
    return img


# independent per-pixel definitions of each op, in float
def gray(x):
    return x @ np.array([0.299, 0.587, 0.114])


def brightness(x, delta):
    return np.clip(x + 255 * delta, 0, 255)


def contrast(x, factor):
    return np.clip(gray(x).mean() + factor * (x - gray(x).mean()), 0, 255)


def saturation(x, factor):
    g = gray(x)[..., None]
    return np.clip(g + factor * (x - g), 0, 255)


def hue(x, delta):
    flat = [colorsys.rgb_to_hsv(*(p / 255)) for p in x.reshape(-1, 3)]
    return 255 * np.array([colorsys.hsv_to_rgb((h + delta) % 1, s, v) for h, s, v in flat]).reshape(x.shape)


COLORS = two_tone([200, 90, 40], [30, 120, 210])


def test_crop_takes_the_box_and_resizes_it():
    ramp = np.zeros((32, 32, 3))
    ramp[..., 0] = np.arange(32)[None, :] * 8  # red encodes the column, green the row
    ramp[..., 1] = np.arange(32)[:, None] * 8
    out = run(ramp, top=3, left=6, height=24, width=24)
    assert abs(out[:, 0, 0].mean() - 8 * 6) <= 6 and abs(out[:, -1, 0].mean() - 8 * 29) <= 6
    assert abs(out[0, :, 1].mean() - 8 * 3) <= 6 and abs(out[-1, :, 1].mean() - 8 * 26) <= 6
    assert np.all(np.diff(out[16, :, 0]) >= 0) and np.all(np.diff(out[:, 16, 1]) >= 0)


@pytest.mark.parametrize("delta", [-0.2, -0.05, 0.13, 0.2])
def test_brightness_adds_a_delta(delta):
    img = two_tone([20, 128, 250], [90, 5, 180])
    assert np.abs(run(img, brightness=delta) - brightness(img, delta)).max() <= 1


@pytest.mark.parametrize("factor", [0.8, 1.2])
def test_contrast_scales_around_the_mean(factor):
    img = two_tone([60, 60, 60], [180, 180, 180])
    assert np.abs(run(img, contrast=factor) - contrast(img, factor)).max() <= 1


@pytest.mark.parametrize("factor", [0.8, 1.2])
def test_saturation_scales_the_distance_from_gray(factor):
    assert np.abs(run(COLORS, saturation=factor) - saturation(COLORS, factor)).max() <= 1.5


@pytest.mark.parametrize("delta", [-0.05, -0.021, 0.031, 0.05])
def test_hue_turns_the_hue(delta):
    assert np.abs(run(COLORS, hue=delta) - hue(COLORS, delta)).max() <= 5  # 8-bit HSV, whole 1/255 turns


def reference(pixels, params, order):
    """The ops of `order` (c: crop, b, k: contrast, s, h) applied by the independent definitions above."""
    ops = {
        "c": lambda x: np.asarray(
            Image.fromarray(x.astype(np.uint8))
            .crop((params["left"], params["top"], params["left"] + params["width"], params["top"] + params["height"]))
            .resize((32, 32), Image.BILINEAR)
        ).astype(float),
        "b": lambda x: brightness(x, params["brightness"]),
        "k": lambda x: contrast(x, params["contrast"]),
        "s": lambda x: saturation(x, params["saturation"]),
        "h": lambda x: hue(x, params["hue"]),
    }
    x = pixels.astype(float)
    for op in order:
        x = ops[op](x)
    return x


def test_the_five_ops_run_in_order():
    """crop, brightness, contrast, saturation, hue; each image below tells the documented order from others."""

    def error(img, params, order):
        return np.abs(run(img, **params) - reference(img, params, order))[4:-4, 4:-4].mean()  # off the borders

    # crop before contrast: the crop drops the bright band, which moves the contrast's mean
    banded = two_tone([250, 250, 250], [50, 50, 50])
    banded[:, 8:16] = 50
    p = {**IDENTITY, "left": 8, "width": 24, "height": 24, "top": 4, "contrast": 1.2}
    assert error(banded, p, "ck") <= 1 < 5 < error(banded, p, "kc")
    # brightness before contrast: brightness clips first
    p = {**IDENTITY, "brightness": -0.2, "contrast": 1.2}
    assert error(two_tone([10] * 3, [250] * 3), p, "bk") <= 1 < 5 < error(two_tone([10] * 3, [250] * 3), p, "kb")
    # saturation and hue after brightness and contrast, saturation before hue
    p = {**IDENTITY, "brightness": 0.12, "contrast": 1.2, "saturation": 0.8, "hue": 0.04}
    img = two_tone([235, 40, 20], [20, 90, 240])
    img[8:24, 8:24] = [120, 200, 60]
    documented = error(img, p, "cbksh")
    assert documented <= 2
    for other in ("cbkhs", "csbkh", "chbks", "cbhks", "csbhk"):
        assert error(img, p, other) > documented + 3, other
