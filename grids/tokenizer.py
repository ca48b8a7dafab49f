"""The 3-token action tokenizer (pure numpy; a trainer imports it without Beam or TensorFlow).

Token layout (the released SpatialVLA models'), with N_* the bin counts:
  translation = t_theta * (N_phi * N_r) + t_phi * N_r + t_r                 in [0, T)
  rotation    = T + t_roll * (N_pitch * N_yaw) + t_pitch * N_yaw + t_yaw    in [T, T + R)
  gripper     = T + R + (g >= 0.5)                                          (1 = open)
with T = N_theta N_phi N_r and R = N_roll N_pitch N_yaw (4096 and 4096 by default).

Bins: a value v falls in bin i when edge[i] <= v < edge[i + 1]; a value exactly on an inner
edge belongs to the bin above it; the top edge belongs to the last bin. Input outside the
grid's range is clipped first: actions to [-1, 1], so theta, phi and r are always in range.
Decoding gives bin centres; translation centres go back to Cartesian, clipped to [-1, 1].

Speed (>= 10M actions/s on one core): no arccos or atan2. theta is binned as -cos(theta) =
-z/r against -cos(edges), phi as a cheap angle that is monotone in atan2 (the "diamond angle")
against the edges mapped the same way: the same bins up to floating-point rounding within an ulp
of an edge. Each variable is binned through a lookup table of fine cells plus one comparison
with the next edge; cells near an edge boundary fall back to a binary search, so the result
equals np.searchsorted exactly.
"""

from __future__ import annotations

import numpy as np

from grids.grid import RANGES, ROTATION, TRANSLATION, ActionGrid
from grids.spherical import to_cartesian

BLOCK = 1 << 16  # rows per block: the temporaries stay in cache


def diamond_angle(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A function of (x, y) in [-2, 2] that increases with atan2(y, x) in [-pi, pi]; (0, 0) -> 0."""
    s = np.abs(x) + np.abs(y)
    d = np.divide(x, s, out=np.ones_like(x), where=s > 0)
    return np.copysign(1.0 - d, y)


class Binner:
    """np.searchsorted(inner_edges, v, side="right") for v in [lo, hi], through a lookup table."""

    def __init__(self, inner: np.ndarray, lo: float, hi: float, cells: int = 8192):
        self.inner = np.ascontiguousarray(inner, np.float64)
        self.lo, self.scale, self.cells = lo, cells / (hi - lo), cells
        bounds = lo + np.arange(cells + 1) / self.scale
        self.base = np.searchsorted(self.inner, bounds[:-1], side="right").astype(np.int32)
        self.next = np.concatenate([self.inner, [np.inf]])[self.base]  # first edge above each cell's start
        inside = np.searchsorted(self.inner, bounds[1:], side="left") - self.base
        near = np.zeros(cells + 1, bool)  # an edge within rounding of a cell boundary
        at = np.clip(np.rint((self.inner - lo) * self.scale).astype(np.int64), 0, cells)
        near[at] = np.abs(bounds[at] - self.inner) <= 1e-9 * (hi - lo)
        self.unsafe = (inside > 1) | near[:-1] | near[1:]
        self.any_unsafe = bool(self.unsafe.any())

    def __call__(self, v: np.ndarray) -> np.ndarray:
        c = ((v - self.lo) * self.scale).astype(np.int32)
        np.clip(c, 0, self.cells - 1, out=c)
        b = self.base[c]
        b += v >= self.next[c]
        if self.any_unsafe:
            bad = self.unsafe[c]
            if bad.any():
                b[bad] = np.searchsorted(self.inner, v[bad], side="right")
        return b


class ActionTokenizer:
    def __init__(self, grid: ActionGrid):
        self.grid = grid
        c = grid.counts
        self.n = {v: c[v] for v in (*TRANSLATION, *ROTATION)}
        self.inner = {v: np.ascontiguousarray(grid.edges[v][1:-1]) for v in self.n}
        self.centres = {v: grid.centres(v) for v in self.n}
        th, ph = self.inner["theta"], self.inner["phi"]
        self._binners = {
            "theta": Binner(-np.cos(th), -1.0, 1.0),  # -cos is increasing on [0, pi]
            "phi": Binner(diamond_angle(np.cos(ph), np.sin(ph)), -2.0, 2.0),
            **{v: Binner(self.inner[v], *RANGES[v]) for v in ("r", *ROTATION)},
        }
        self.rotation_offset = grid.translation_tokens
        self.gripper_offset = grid.translation_tokens + grid.rotation_tokens
        self.vocab_size = grid.total_tokens

    def bins(self, var: str, values: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.inner[var], values, side="right")

    def encode(self, actions: np.ndarray) -> np.ndarray:
        """Normalized actions [N, 7] -> int32 tokens [N, 3]."""
        a = np.asarray(actions).reshape(-1, 7)
        out = np.empty((len(a), 3), np.int32)
        for i in range(0, len(a), BLOCK):
            self._encode_block(a[i : i + BLOCK], out[i : i + BLOCK])
        return out

    def _encode_block(self, a: np.ndarray, out: np.ndarray) -> None:
        n, b = self.n, self._binners
        x, y, z = (np.clip(a[:, j], -1.0, 1.0, dtype=np.float64) for j in range(3))
        r = np.sqrt(x * x + y * y + z * z)
        neg_cos = np.divide(-z, r, out=np.zeros_like(z), where=r > 0)  # r = 0: theta = pi/2
        t = b["theta"](neg_cos)
        t *= n["phi"] * n["r"]
        t += b["phi"](diamond_angle(x, y)) * n["r"]
        t += b["r"](r)
        out[:, 0] = t
        rot = [np.clip(a[:, j], -1.0, 1.0, dtype=np.float64) for j in (3, 4, 5)]
        t = b["roll"](rot[0])
        t *= n["pitch"] * n["yaw"]
        t += b["pitch"](rot[1]) * n["yaw"]
        t += b["yaw"](rot[2])
        out[:, 1] = t + self.rotation_offset
        out[:, 2] = self.gripper_offset + (a[:, 6] >= 0.5)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """Tokens [N, 3] -> float32 actions [N, 7] at the bin centres."""
        t = np.asarray(tokens, np.int64).reshape(-1, 3)
        n, c = self.n, self.centres
        tr = t[:, 0]
        if (
            ((tr < 0) | (tr >= self.rotation_offset)).any()
            or ((t[:, 1] < self.rotation_offset) | (t[:, 1] >= self.gripper_offset)).any()
            or ((t[:, 2] < self.gripper_offset) | (t[:, 2] >= self.vocab_size)).any()
        ):
            raise ValueError("tokens out of range for this grid's layout")
        i_theta, rest = np.divmod(tr, n["phi"] * n["r"])
        i_phi, i_r = np.divmod(rest, n["r"])
        xyz = np.clip(to_cartesian(c["theta"][i_theta], c["phi"][i_phi], c["r"][i_r]), -1.0, 1.0)
        rot = t[:, 1] - self.rotation_offset
        i_roll, rest = np.divmod(rot, n["pitch"] * n["yaw"])
        i_pitch, i_yaw = np.divmod(rest, n["yaw"])
        grip = (t[:, 2] - self.gripper_offset).astype(np.float64)
        out = np.column_stack([xyz, c["roll"][i_roll], c["pitch"][i_pitch], c["yaw"][i_yaw], grip])
        return out.astype(np.float32)
