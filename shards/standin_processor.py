"""A stand-in for SpatialVLA's processor: its call signature, output keys, dtypes and shapes, for tests and
benchmarks where the released processor cannot be built (its PaliGemma tokenizer and SigLIP image
processor are model files that cannot be downloaded here).

Like theirs: `processor(text, images=[PIL frames], unnorm_key, suffix_actions=(T, 7), return_tensors="pt",
padding=False, max_length, truncation=True, do_normalize=False)` returns input_ids, attention_mask,
token_type_ids, labels (1, n) long; pixel_values (t, 3, H, W) float in [0, 1]; intrinsic (3, 3) by
unnorm_key, else "default" (their intrinsic_config layout and scaling rule). The sequence is image tokens,
bos, the prompt, "\\n", then 3 action tokens per step and eos; labels are -100 on all but the suffix;
max_length counts the text, the image tokens come on top. Unlike theirs: prompt tokens are bytes, action
tokens a uniform grid, truncation cuts the longer part first.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from shards.spatialvla import processor_intrinsic

DEFAULT_INTRINSIC = {  # SpatialVLA's scripts/intrinsics.json "default": 640 x 480
    "intrinsic": [[623.588, 0.0, 319.501], [0.0, 623.588, 239.545], [0.0, 0.0, 1.0]],
    "width": 640,
    "height": 480,
}
PAD, EOS, BOS, IMAGE, NEWLINE = 0, 1, 2, 3, 4
TEXT_BASE = 16  # byte b -> TEXT_BASE + b
ACTION_BASE = 1024  # translation, rotation, gripper tokens: ACTION_BASE + [0, 4096), [4096, 8192), 8192 + {0, 1}
BINS = 16  # per axis


def action_tokens(actions: np.ndarray) -> np.ndarray:
    """(T, 7) normalized actions -> (T, 3) token ids on a uniform grid: xyz, rpy, gripper."""
    a = np.clip(np.asarray(actions, np.float64), -1, 1)
    bins = np.minimum(((a[:, :6] + 1) / 2 * BINS).astype(int), BINS - 1)
    translation = bins[:, 0] * BINS * BINS + bins[:, 1] * BINS + bins[:, 2]
    rotation = 4096 + bins[:, 3] * BINS * BINS + bins[:, 4] * BINS + bins[:, 5]
    gripper = 8192 + (a[:, 6] >= 0.5)
    return ACTION_BASE + np.stack([translation, rotation, gripper], 1)


class StandInProcessor:
    def __init__(self, intrinsic_config: dict | None = None, image_size: int = 224, image_seq_length: int = 256):
        self.image_processor = SimpleNamespace(size={"height": image_size, "width": image_size})
        self.image_seq_length = image_seq_length
        self.intrinsic_config = {"default": DEFAULT_INTRINSIC, **(intrinsic_config or {})}
        self.dataset_intrinsics = {
            k: processor_intrinsic(v, image_size, image_size) for k, v in self.intrinsic_config.items()
        }

    def pixels(self, images: list, do_normalize: bool) -> torch.Tensor:
        """(t, 3, H, W) float32 in [0, 1] (do_normalize: [-1, 1], SigLIP's mean and std 0.5)."""
        size = (self.image_processor.size["width"], self.image_processor.size["height"])
        images = [im if im.size == size else im.resize(size, Image.Resampling.BICUBIC) for im in images]
        planes = [
            np.asarray(c) for im in images for c in (im if im.mode == "RGB" else im.convert("RGB")).split()
        ]  # CHW without a strided copy
        x = torch.from_numpy(np.stack(planes).reshape(len(images), 3, size[1], size[0])).float().div_(255)
        return x.sub_(0.5).div_(0.5) if do_normalize else x

    def __call__(
        self,
        images=None,
        text=None,
        unnorm_key=None,
        suffix_actions=None,
        return_tensors=None,
        padding=False,
        max_length=None,
        truncation=False,
        do_normalize=True,
    ) -> dict:
        images = images if isinstance(images, list) else [images]
        prefix = [IMAGE] * (self.image_seq_length * len(images)) + [BOS]
        prefix += [TEXT_BASE + b for b in (text or "").encode()] + [NEWLINE]
        suffix = [] if suffix_actions is None else action_tokens(suffix_actions).reshape(-1).tolist() + [EOS]
        if truncation and max_length is not None:
            limit = max_length + self.image_seq_length  # theirs adds the image tokens to max_length
            while len(prefix) + len(suffix) > limit:
                (prefix if len(prefix) >= len(suffix) else suffix).pop()
        ids = torch.from_numpy(np.array([prefix + suffix], dtype=np.int64))
        types = torch.zeros_like(ids)
        types[:, len(prefix) :] = 1
        out = {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "pixel_values": self.pixels(images, do_normalize),
            "intrinsic": self.dataset_intrinsics.get(unnorm_key, self.dataset_intrinsics["default"]),
        }
        if suffix_actions is not None:
            out["token_type_ids"] = types
            out["labels"] = ids.masked_fill(types == 0, -100)
        return out
