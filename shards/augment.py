"""SpatialVLA's training-time image augmentation: its loader's ops, parameters and order, on PIL images
with torchvision.transforms.v2 (no TensorFlow).

SpatialVLA's (and OpenVLA's) tf.data loader applies, in this order: random resized crop (area 0.9,
aspect 1.0), brightness (a delta in [-0.2, 0.2] added to [0, 1] pixels), contrast [0.8, 1.2],
saturation [0.8, 1.2], hue (a delta in [-0.05, 0.05] of a turn). One draw serves every frame of an
observation window. The draws come from a numpy Generator that the caller seeds (per sample), so an
augmented sample is a pure function of its seed.

How these ops differ from TensorFlow's:
- brightness: torchvision's multiplies, TF's adds a delta; the delta is added here (a lookup table),
  so 0.2 keeps TF's meaning;
- contrast: around the grayscale mean (TF: around each channel's mean);
- saturation: a blend with the grayscale image (TF: HSV saturation scaled);
- crop: independent row and column offsets and a whole-pixel side (TF's box slides along the
  diagonal, one offset for both axes, an accident of its code);
- 8-bit rounding after each op, and the hue turned in 8-bit HSV by the nearest whole 1/255 of a
  turn (TF keeps floats until the end): a few levels of difference at most.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

CROP_SCALE = 0.9  # area of the crop box, as a fraction of the image
CROP_RATIO = 1.0  # its aspect ratio
BRIGHTNESS = 0.2  # delta added, in [-0.2, 0.2]
CONTRAST = (0.8, 1.2)
SATURATION = (0.8, 1.2)
HUE = 0.05  # delta in [-0.05, 0.05] of a turn
ORDER = ("random_resized_crop", "random_brightness", "random_contrast", "random_saturation", "random_hue")


@dataclass(frozen=True)
class AugmentParams:
    top: int
    left: int
    height: int
    width: int
    brightness: float  # added delta
    contrast: float  # factor
    saturation: float  # factor
    hue: float  # delta, fraction of a turn


def crop_size(image_height: int, image_width: int) -> tuple[int, int]:
    """The crop box's (height, width): each side times sqrt(CROP_SCALE / CROP_RATIO) and sqrt(CROP_SCALE *
    CROP_RATIO), as dlimp's random_resized_crop sizes it in relative coordinates (CROP_SCALE of the area)."""
    height = min(image_height, int(round(image_height * math.sqrt(CROP_SCALE / CROP_RATIO))))
    width = min(image_width, int(round(image_width * math.sqrt(CROP_SCALE * CROP_RATIO))))
    return height, width


def draw_params(rng: np.random.Generator, image_height: int, image_width: int) -> AugmentParams:
    height, width = crop_size(image_height, image_width)
    top, left = (int(v) for v in rng.integers(0, [image_height - height + 1, image_width - width + 1]))
    u = rng.random(4)
    return AugmentParams(
        top=top,
        left=left,
        height=height,
        width=width,
        brightness=float(BRIGHTNESS * (2 * u[0] - 1)),
        contrast=float(CONTRAST[0] + (CONTRAST[1] - CONTRAST[0]) * u[1]),
        saturation=float(SATURATION[0] + (SATURATION[1] - SATURATION[0]) * u[2]),
        hue=float(HUE * (2 * u[3] - 1)),
    )


def add_brightness(image: Image.Image, delta: float) -> Image.Image:
    """TF's random_brightness: delta (on the [0, 1] scale) added to every channel, clipped."""
    table = np.clip(np.round(np.arange(256) + delta * 255), 0, 255).astype(int).tolist()
    return image.point(table * len(image.getbands()))


def augment(image: Image.Image, params: AugmentParams, size: int | tuple[int, int]) -> Image.Image:
    """The five ops in ORDER; the crop is resized to size x size, or to (height, width) (bilinear)."""
    image = F.resized_crop(
        image,
        params.top,
        params.left,
        params.height,
        params.width,
        [size, size] if isinstance(size, int) else list(size),
        interpolation=InterpolationMode.BILINEAR,
        antialias=True,
    )
    image = add_brightness(image, params.brightness)
    image = F.adjust_contrast(image, params.contrast)
    image = F.adjust_saturation(image, params.saturation)
    steps = round(
        params.hue * 255
    )  # torchvision's PIL kernel turns by whole 1/255 steps, truncating: ask for the nearest
    if steps == 0:  # no turn: skip the lossy 8-bit HSV round trip
        return image
    return F.adjust_hue(image, (steps + math.copysign(0.5, steps)) / 255)
