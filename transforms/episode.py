"""The two episode records that flow through every stage.

One element of a Beam PCollection is one episode (never one step): steps are the
leading dimension of numpy columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RawEpisode:
    """An RLDS episode as stored: step fields as numpy columns, nothing decoded."""

    dataset: str  # registry name, e.g. "bridge_orig"
    episode_id: str  # stable across runs: "<shard file name>#<index in shard>"
    source_file: str
    steps: dict[str, np.ndarray]  # step-relative flat keys ("action", "observation/state"), leading dim T
    metadata: dict[str, np.ndarray] = field(default_factory=dict)  # episode_metadata/*

    @property
    def num_steps(self) -> int:
        return len(next(iter(self.steps.values()))) if self.steps else 0


@dataclass
class StandardEpisode:
    """An episode in the pipeline's one convention, before normalization."""

    dataset: str
    episode_id: str
    action: np.ndarray  # float32 [T, 7]: xyz delta, roll-pitch-yaw delta, gripper (1 open, 0 closed)
    instruction: str = ""  # the episode's first non-empty instruction (its task, for summaries and reports)
    has_instruction: bool = True  # any step has a non-empty instruction
    instructions: np.ndarray | None = None  # object [T]: each step's own instruction, as stored (stripped)
    image: np.ndarray | None = None  # object [T]: encoded image bytes of the primary camera
    camera: str = ""  # which step key the primary camera is (datasets with a choice of cameras)
    wrist_image: np.ndarray | None = None  # object [T], where the dataset has a wrist camera
    proprio: np.ndarray | None = None  # float32 [T, D], where the dataset has proprio
    notes: tuple[str, ...] = ()  # what to report about an episode that is kept (e.g. a repaired instruction)

    @property
    def num_steps(self) -> int:
        return int(self.action.shape[0])

    def step_instructions(self) -> list[str]:
        """One instruction per step: the stored ones, or the episode's one where none are stored."""
        if self.instructions is not None:
            return [str(t) for t in self.instructions]
        return [self.instruction] * self.num_steps
