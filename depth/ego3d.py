"""Ego3D inputs from depth: back-projection with the manifest's intrinsics, patch pooling.

Pure numpy, importable by a trainer. Pixel (u, v) = (column, row) has its centre at
integer coordinates (OpenCV's convention): X = (u - cx) Z / fx, Y = (v - cy) Z / fy, Z = depth.
"""

from __future__ import annotations

import numpy as np


def backproject(depth: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """depth [H, W] in metres (NaN or 0 = invalid) -> camera-frame points [H, W, 3] (NaN where invalid)."""
    depth = np.asarray(depth, np.float64)
    z = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan)
    v, u = np.mgrid[0 : depth.shape[0], 0 : depth.shape[1]]
    return np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], axis=-1)


def pool_to_patches(points: np.ndarray, patch: int = 14) -> np.ndarray:
    """Mean of the valid points in each patch x patch block: [H, W, 3] -> [H/patch, W/patch, 3]
    (NaN where a patch has no valid point). 224-pixel images and 14-pixel patches give 16 x 16."""
    h, w, _ = points.shape
    if h % patch or w % patch:
        raise ValueError(f"image {h}x{w} is not a multiple of the patch size {patch}")
    blocks = points.reshape(h // patch, patch, w // patch, patch, 3)
    valid = np.isfinite(blocks[..., 2:3])
    total = np.where(valid, blocks, 0.0).sum(axis=(1, 3))
    count = valid.sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)
