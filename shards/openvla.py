"""OpenVLA's training dataset read from an export: a drop-in for `prismatic.vla.datasets.RLDSDataset` of
OpenVLA's released code (vla-scripts/finetune.py, and train.py through prismatic/vla/materialize.py), and of
the code bases derived from it, without tf.data, dlimp or TensorFlow in the data path.

    # vla-scripts/finetune.py, after `from prismatic.vla.datasets import RLDSBatchTransform, RLDSDataset`:
    from shards.openvla import RLDSDataset

    --data_root_dir output/bridge     # the export (or its manifest.json)
    --dataset_name bridge_orig        # the export's mixture, or one of its datasets

As theirs: the constructor `(data_root_dir, data_mix, batch_transform, resize_resolution,
shuffle_buffer_size=256_000, train=True, image_aug=False)`; iterating yields `batch_transform(rlds_batch)`
with `rlds_batch` in their layout for window 1 and no future actions:

    dataset_name                      bytes
    action                            float32 (1, 7), normalized bounds_q99 (their q01/q99), gripper not
    observation.image_primary         uint8 (1, H, W, 3) at resize_resolution (H, W)
    observation.timestep, .pad_mask, .pad_mask_dict
    task.language_instruction         bytes, task.pad_mask_dict
    absolute_action_mask              bool (7,)

`dataset_statistics` in their layout ({dataset: action and proprio q01/q99/..., mask, counts}, numpy
arrays, as `save_dataset_statistics` takes it; proprio zeros: their RLDSDataset loads none); `len()` their
`dataset_length` (steps until every weight-1.0 dataset is seen once at the balanced weights); datasets
sampled at their balanced weights (weight x transitions); trajectories without any instruction skipped;
`image_aug=True` (with `train=True`): their augmentation, ops, parameters and order (shards.augment: the
same dlimp ops as SpatialVLA's) after the resize, as theirs.

What differs, and why:
- `train=False`: theirs reads the builder's "val" split (else the last 5% of "train") and serves a fixed
  set of `shuffle_buffer_size` frames. An export holds one split (`--split` of pipeline.run), so export
  the validation split on its own (e.g. `--split 'train[95%:]'`) and pass that export: here `train=False`
  serves the first `shuffle_buffer_size` samples of a fixed-seed stream of it, the same every pass (per
  rank; DataLoader workers share it), never augmented; `len()` stays their formula, as theirs.
- frames are the export's JPEGs (`--image-size`); a `resize_resolution` other than that size is reached
  with PIL's Lanczos (theirs: TF's lanczos3 with antialiasing, from the source frame).
- actions: the export's `action` column where it was normalized bounds_q99 (their mode); an export
  normalized otherwise is re-normalized from `raw_action` with its statistics. Their normalization adds
  1e-8 to q99 - q01 and zeroes every dimension whose min == max, the gripper included (README:
  "Deliberate differences").
- ranks and DataLoader workers read disjoint parts of every dataset (theirs: independent random streams
  per rank); their goal relabeling (task.image_primary, unused by RLDSBatchTransform) is not produced.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from shards.augment import augment, draw_params
from shards.manifest import ManifestError, export_dir, load_manifest, read_statistics
from shards.reader import MixtureDataset
from shards.spatialvla import decode_frame, primary_length, worker_share
from transforms.normalize import normalize

NORMALIZATION = "bounds_q99"  # what their RLDSDataset asks of make_interleaved_dataset
STAT_KEYS = ("mean", "std", "max", "min", "q01", "q99")
COLUMNS = ["dataset", "episode_id", "step", "language_instruction", "image", "action"]


def select_datasets(data_mix: str, manifest: dict, where: str) -> dict[str, float]:
    """The datasets `data_mix` names and their given weights: the export's mixture (all of them), or one
    of its datasets alone at weight 1.0 (their single-dataset "mix")."""
    names = sorted(manifest["datasets"])
    if data_mix == manifest.get("mixture"):
        return {n: float(manifest["weights"][n]) for n in names}
    if data_mix in manifest["datasets"]:
        return {data_mix: 1.0}
    raise ValueError(
        f"data_mix={data_mix!r}: neither the mixture of the export at {where} ({manifest.get('mixture')!r}) "
        f"nor one of its datasets {names}"
    )


def resolution(resize_resolution) -> tuple[int, int]:
    """(height, width) from their resize_resolution (a tuple, or a list from a model config)."""
    ok = isinstance(resize_resolution, (tuple, list)) and len(resize_resolution) == 2
    if not ok or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in resize_resolution):
        raise ValueError(f"resize_resolution={resize_resolution!r}: must be (height, width), two positive integers")
    return int(resize_resolution[0]), int(resize_resolution[1])


def openvla_statistics(stats: dict, names: list[str], where: str) -> dict:
    """Their dataset_statistics: per dataset, action and proprio statistics and counts as numpy arrays
    (their tree_map(np.array) of the statistics JSON), the action's normalization mask added."""
    out = {}
    for name in names:
        entry = stats.get(name) or {}
        action = entry.get("action") or {}
        missing = [k for k in STAT_KEYS if k not in action]
        if missing or "num_transitions" not in entry:
            raise ManifestError(f"{where}: no action statistics {missing or ['num_transitions']} for dataset '{name}'")
        dim = len(action["mean"])
        out[name] = {
            "action": {
                **{k: np.array(action[k]) for k in STAT_KEYS},
                "mask": np.array(action.get("mask", [True] * (dim - 1) + [False])),
            },
            "proprio": {k: np.zeros(dim) for k in STAT_KEYS},  # theirs loads no proprio: statistics of zeros
            "num_transitions": np.array(int(entry["num_transitions"])),
            "num_trajectories": np.array(int(entry["num_trajectories"])),
        }
    return out


class RLDSDataset(torch.utils.data.IterableDataset):
    def __init__(
        self,
        data_root_dir,
        data_mix: str,
        batch_transform,
        resize_resolution,
        shuffle_buffer_size: int = 256_000,
        train: bool = True,
        image_aug: bool = False,
        *,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        verify: bool = True,
    ) -> None:
        super().__init__()
        self.data_root_dir, self.data_mix, self.batch_transform = data_root_dir, data_mix, batch_transform
        if not callable(batch_transform):
            raise TypeError(f"batch_transform={batch_transform!r}: must be callable (their RLDSBatchTransform)")
        if isinstance(shuffle_buffer_size, bool) or not isinstance(shuffle_buffer_size, int) or shuffle_buffer_size < 1:
            raise ValueError(f"shuffle_buffer_size={shuffle_buffer_size!r}: must be a positive integer")
        self.resize_resolution = resolution(resize_resolution)
        out = export_dir(str(data_root_dir))
        try:
            manifest = load_manifest(out)
        except ManifestError as e:
            raise ManifestError(f"data_root_dir: {e}") from None
        weights = select_datasets(data_mix, manifest, out)
        self.names = sorted(weights)
        stats, stats_path = read_statistics(out, manifest)
        self.dataset_statistics = openvla_statistics(stats, self.names, stats_path)
        transitions = {n: manifest["datasets"][n]["num_transitions"] for n in self.names}
        self.dataset_length = primary_length(weights, transitions)
        self.normalization = manifest.get("normalization", NORMALIZATION)
        # an export normalized otherwise: their bounds_q99 from the raw actions and the same statistics
        self._renormalize = None
        if self.normalization != NORMALIZATION:
            self._renormalize = {n: stats[n]["action"] for n in self.names}
        self.shuffle_buffer_size, self.train = shuffle_buffer_size, train
        self.image_aug = image_aug and train  # theirs augments only in training
        self.seed = seed
        columns = COLUMNS + (["raw_action"] if self._renormalize else [])
        self.mixture = MixtureDataset(
            out,
            mode="disjoint",
            shuffle_buffer=shuffle_buffer_size,
            seed=seed,
            skip_unlabeled=True,
            columns=columns,
            rank=rank,
            world_size=world_size,
            verify=verify,
        )
        self.absolute_action_mask = {n: self.mixture.absolute[n] for n in self.names}  # validated by the reader
        if len(self.names) < len(manifest["datasets"]):  # one dataset of several: the others never drawn
            self.mixture.weights = {n: (1.0 if n in weights else 0.0) for n in self.mixture.weights}
        self.rank = self.mixture.rank
        self._position = 0  # samples this object has yielded (keys the augmentation draws)

    def __len__(self) -> int:
        return self.dataset_length

    def __getitem__(self, idx: int):
        raise NotImplementedError("IterableDataset does not implement map-style __getitem__; see __iter__ instead!")

    # ------------------------------------------------------------ resumable state (StatefulDataLoader)

    def state_dict(self) -> dict:
        return {"mixture": self.mixture.state_dict(), "position": self._position}

    def load_state_dict(self, state: dict) -> None:
        self.mixture.load_state_dict(state["mixture"])
        self._position = int(state["position"])

    # ------------------------------------------------------------ iteration

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        limit = None
        if not self.train:  # their validation set: a fixed set of shuffle_buffer_size samples, every pass
            self.mixture.set_epoch(0)
            self._position = 0
            limit = worker_share(self.shuffle_buffer_size, workers, worker)
        for count, step in enumerate(self.mixture):
            if limit is not None and count >= limit:
                return
            position, self._position = self._position, self._position + 1
            yield self.batch_transform(self.rlds_batch(step, worker, position))

    def image(self, data: bytes, worker: int, position: int) -> np.ndarray:
        """The frame at resize_resolution (H, W), augmented when asked: uint8 (H, W, 3)."""
        height, width = self.resize_resolution
        frame = decode_frame(data)
        if frame.size != (width, height):
            frame = frame.resize((width, height), Image.Resampling.LANCZOS)
        if self.image_aug:  # theirs: after the resize, the crop resized back to it
            rng = np.random.default_rng([self.seed, self.rank, worker, position])
            frame = augment(frame, draw_params(rng, height, width), (height, width))
        return np.asarray(frame)

    def action(self, step: dict) -> np.ndarray:
        if self._renormalize is None:
            return np.asarray(step["action"], np.float32)
        return normalize(np.asarray(step["raw_action"]), self._renormalize[step["dataset"]], NORMALIZATION)

    def rlds_batch(self, step: dict, worker: int = 0, position: int = 0) -> dict:
        """One reader step in their layout (window 1, no future actions)."""
        instruction = step["language_instruction"] or ""
        return {
            "dataset_name": step["dataset"].encode(),
            "action": self.action(step)[None],
            "observation": {
                "image_primary": self.image(step["image"], worker, position)[None],
                "timestep": np.array([step["step"]], np.int32),
                "pad_mask": np.array([True]),
                "pad_mask_dict": {"image_primary": np.array([True]), "timestep": np.array([True])},
            },
            "task": {
                "language_instruction": instruction.encode(),
                "pad_mask_dict": {"language_instruction": np.bool_(instruction != "")},
            },
            "absolute_action_mask": self.absolute_action_mask[step["dataset"]],
        }
