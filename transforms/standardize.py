"""Raw RLDS episode -> the pipeline's 7-D convention, composed from the registry entry.

One function serves every dataset: the entry in manifests/datasets.yaml says which keys
and slices make the translation, rotation and gripper, which gripper convention applies,
and whether Bridge-style first-step drops and state relabeling happen. Bumping
TRANSFORM_VERSION invalidates cached statistics.
"""

from __future__ import annotations

import hashlib
import zlib

import numpy as np

from manifests.registry import DatasetConfig, InstructionSpec, Part
from transforms.episode import RawEpisode, StandardEpisode
from transforms.gripper import to_absolute_open
from transforms.rotation import quaternion_to_euler

TRANSFORM_VERSION = "2"  # 2: grippers as the public formulas (continuous kept)


class EpisodeError(ValueError):
    """An episode the transform cannot use; the message names dataset, episode and why."""


def _parts_keys(cfg: DatasetConfig) -> list[str]:
    a = cfg.action
    parts = (a.translation, a.rotation, a.gripper, a.relabel_from_state)
    return [p.key for p in parts if p is not None and p.key is not None]


def required_keys(
    cfg: DatasetConfig, images: bool = False, proprio: bool = False, instruction: bool = True
) -> list[str]:
    """The step keys a stage must read: actions always, images and proprio on request."""
    keys = _parts_keys(cfg)
    if instruction and cfg.instruction:
        keys.append(cfg.instruction.key)
    if images:
        keys += list(cfg.primary_choices or [cfg.primary_image])
        if cfg.wrist_image:
            keys.append(cfg.wrist_image)
    if proprio:
        keys += [p.key for p in cfg.proprio]
    return list(dict.fromkeys(keys))


def min_steps(cfg: DatasetConfig) -> int:
    """Shortest raw episode that still leaves one step after the transform."""
    return 1 + cfg.action.drop_first_steps + (1 if cfg.action.relabel_from_state else 0)


def _column(steps: dict, part: Part, where: str) -> np.ndarray:
    key = part.key
    if key not in steps:
        raise EpisodeError(f"{where}: step key '{key}' missing")
    col = steps[key]
    if col.ndim == 1:
        col = col[:, None]
    col = col.reshape(len(col), -1)
    if part.slice:
        lo, hi = part.slice
        if hi > col.shape[1]:
            raise EpisodeError(f"{where}: '{key}' has {col.shape[1]} dims, slice {list(part.slice)} needs {hi}")
        col = col[:, lo:hi]
    return col.astype(np.float64)


def _decode_zlib_float32(col: np.ndarray, dims: int, where: str) -> np.ndarray:
    try:
        return np.stack([np.frombuffer(zlib.decompress(b), np.float32).reshape(dims) for b in col])
    except (zlib.error, ValueError) as e:
        raise EpisodeError(f"{where}: cannot decode zlib float32 state ({e})") from None


def _instructions(steps: dict, spec: InstructionSpec | None) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """(each step's instruction, stripped, as an object array [T] — None when the dataset has none —,
    remarks to report about them). An instruction that changes within an episode stays per step, as the
    public pipelines keep it (their language_instruction is a per-step tensor)."""
    if not spec or spec.key not in steps:
        return None, ()
    col = steps[spec.key]
    if spec.encoding == "unicode_codepoints":  # language_table: int32 code points, 0-padded
        texts = ["".join(chr(c) for c in row if 0 < c <= 0x10FFFF) for row in np.asarray(col).reshape(len(col), -1)]
    else:
        texts = [t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t) for t in col]
    out = np.empty(len(texts), dtype=object)
    out[:] = [t.strip() for t in texts]
    bad = any(isinstance(t, bytes) and _not_utf8(t) for t in col)
    return out, (("instruction is not valid UTF-8 (kept, with U+FFFD for the bad bytes)",) if bad else ())


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def primary_camera(cfg: DatasetConfig, episode_id: str, seed: int = 0) -> str:
    """The episode's primary camera: the registry's, or one of its choices drawn from (seed, episode)."""
    if not cfg.primary_choices:
        return cfg.primary_image
    draw = int.from_bytes(hashlib.sha256(f"{seed}:{cfg.name}:{episode_id}".encode()).digest()[:8], "little")
    return cfg.primary_choices[draw % len(cfg.primary_choices)]


def standardize(episode: RawEpisode, cfg: DatasetConfig, seed: int = 0) -> StandardEpisode:
    """The 7-D action [T', 7], instruction, images and proprio of one episode (`seed`: of the
    random choices a dataset's transform makes, e.g. DROID's camera)."""
    where = f"dataset '{cfg.name}' episode {episode.episode_id}"
    steps = dict(episode.steps)
    a = cfg.action
    t = episode.num_steps
    if t < min_steps(cfg):
        raise EpisodeError(f"{where}: {t} steps, its transform needs at least {min_steps(cfg)}")

    if a.drop_first_steps:
        steps = {k: v[a.drop_first_steps :] for k, v in steps.items()}

    trans = _column(steps, a.translation, where)
    pad = a.translation.pad_to or trans.shape[1]
    trans = np.pad(trans, ((0, 0), (0, pad - trans.shape[1])))
    if a.rotation.format == "none":
        rot = np.zeros((len(trans), 3))
    else:
        rot = _column(steps, a.rotation, where)
        if a.rotation.format == "quaternion":
            rot = quaternion_to_euler(rot)
    raw_grip = _column(steps, a.gripper, where)[:, 0] if a.gripper.key else np.zeros(len(trans))
    grip = to_absolute_open(raw_grip, a.gripper.convention)
    if trans.shape[1] != 3 or rot.shape[1] != 3:
        raise EpisodeError(
            f"{where}: translation/rotation parts give {trans.shape[1]}/{rot.shape[1]} dims, expected 3/3"
        )

    if a.relabel_from_state:
        # Movement is what the robot reached: state[t+1] - state[t]; the last step has no successor.
        state = _column(steps, a.relabel_from_state, where)
        movement = state[1:] - state[:-1]
        trans, rot = movement[:, :3], movement[:, 3:6]
        grip = grip[:-1]
        steps = {k: v[:-1] for k, v in steps.items()}

    action = np.concatenate([trans, rot, grip[:, None]], axis=1).astype(np.float32)

    proprio = None
    if cfg.proprio and all(p.key in steps for p in cfg.proprio):
        cols = []
        for p in cfg.proprio:
            if p.encoding == "zlib_float32":
                col = _decode_zlib_float32(steps[p.key], p.dims, where)
                if p.slice:
                    col = col[:, p.slice[0] : p.slice[1]]
                cols.append(col.astype(np.float64))
            else:
                cols.append(_column(steps, p, where))
        proprio = np.concatenate(cols, axis=1).astype(np.float32)

    instructions, notes = _instructions(steps, cfg.instruction)
    instruction = next((t for t in instructions if t), "") if instructions is not None else ""
    camera = primary_camera(cfg, episode.episode_id, seed)
    return StandardEpisode(
        dataset=cfg.name,
        episode_id=episode.episode_id,
        action=action,
        instruction=instruction,
        has_instruction=bool(instruction),
        instructions=instructions,
        notes=notes,
        image=steps.get(camera),
        camera=camera,
        wrist_image=steps.get(cfg.wrist_image) if cfg.wrist_image else None,
        proprio=proprio,
    )
