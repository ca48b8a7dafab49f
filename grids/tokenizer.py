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
"""
from __future__ import annotations

import numpy as np

from grids.grid import ROTATION, TRANSLATION, ActionGrid
from grids.spherical import to_cartesian, to_spherical


class ActionTokenizer:
    def __init__(self, grid: ActionGrid):
        self.grid = grid
        c = grid.counts
        self.n = {v: c[v] for v in (*TRANSLATION, *ROTATION)}
        self.inner = {v: np.ascontiguousarray(grid.edges[v][1:-1]) for v in self.n}
        self.centres = {v: grid.centres(v) for v in self.n}
        self.rotation_offset = grid.translation_tokens
        self.gripper_offset = grid.translation_tokens + grid.rotation_tokens
        self.vocab_size = grid.total_tokens

    def bins(self, var: str, values: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.inner[var], values, side="right")

    def encode(self, actions: np.ndarray) -> np.ndarray:
        """Normalized actions [N, 7] -> int32 tokens [N, 3]."""
        a = np.clip(np.asarray(actions, np.float64).reshape(-1, 7), -1.0, 1.0)
        theta, phi, r = to_spherical(a[:, :3])
        n = self.n
        out = np.empty((len(a), 3), np.int32)
        out[:, 0] = (self.bins("theta", theta) * (n["phi"] * n["r"]) + self.bins("phi", phi) * n["r"]
                     + self.bins("r", r))
        out[:, 1] = self.rotation_offset + (self.bins("roll", a[:, 3]) * (n["pitch"] * n["yaw"])
                                            + self.bins("pitch", a[:, 4]) * n["yaw"] + self.bins("yaw", a[:, 5]))
        out[:, 2] = self.gripper_offset + (a[:, 6] >= 0.5)
        return out

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """Tokens [N, 3] -> float32 actions [N, 7] at the bin centres."""
        t = np.asarray(tokens, np.int64).reshape(-1, 3)
        n, c = self.n, self.centres
        tr = t[:, 0]
        if ((tr < 0) | (tr >= self.rotation_offset)).any() or ((t[:, 1] < self.rotation_offset) | (t[:, 1] >= self.gripper_offset)).any() \
                or ((t[:, 2] < self.gripper_offset) | (t[:, 2] >= self.vocab_size)).any():
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
