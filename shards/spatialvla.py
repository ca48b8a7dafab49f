"""SpatialVLA's training dataset read from an export's shards: a drop-in for `data.dataset.build_datasets`
of SpatialVLA's released code (train/spatialvla_finetune.py, train/spatialvla_pretrain.py), without
tf.data, TFRecord parsing or TensorFlow in the training process.

    # train/spatialvla_finetune.py
    from shards.spatialvla import build_datasets   # was: from data.dataset import build_datasets

    --data_root_dir output/bridge     # the export (or its manifest.json)
    --data_mix bridge                 # the mixture it was exported with (checked)

As theirs: `ds_stats_pc` (their statistics layout, keyed "<dataset>/<version>", also written once as
OUTPUT_DIR/ds_stats.json), `vla_processor` set after construction, `len()` from the primary datasets,
items packed from `processor(text=instruction.lower(), images=[PIL frames], suffix_actions=chunk, ...)`,
train-time augmentation in their order and parameters (shards.augment), episodes without any
instruction skipped, observation window and action chunk, chunks padded past an episode's end as
their chunking does (shards.reader.pad_chunk).

Beyond theirs: the mixture's weights exactly as exported; every dataset's own intrinsics (the
manifest's, at the exported size) handed to the processor through `unnorm_key`; (rank, worker)
streams that never share a step; augmentation drawn per (seed, rank, worker, sample); exact resume
from the trainer's step count (`resume_from_checkpoint`); epochs that continue the stream.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing

import numpy as np
import torch
from PIL import Image

from manifests.weights import effective_weights
from shards.augment import augment, draw_params
from shards.manifest import STATISTICS_FILE, ManifestError, export_dir, load_manifest
from shards.reader import MixtureDataset
from storage import files
from storage.jsonio import read_json, sha256_of, write_json
from transforms.frames import decode

IMAGE_SIZE = 224  # their dataset's image_size (their build_datasets never passes another)
SHUFFLE_SEED = 3407  # theirs shuffles with 3407 x rank; here (rank, worker) key the streams
STATS_FILE = "ds_stats.json"
STAT_KEYS = ("mean", "std", "max", "min", "q01", "q99")
COLUMNS = ["dataset", "episode_id", "step", "language_instruction", "image", "action", "action_tokens"]

# Every field of their DataTrainingArguments (spatialvla_finetune.py, spatialvla_pretrain.py) and what
# becomes of it here; a field not in this table is refused.
DATA_ARGS = {
    "data_root_dir": "the export directory or its manifest.json",
    "data_mix": "checked against the exported mixture (or its one dataset)",
    "max_seq_length": "the processor's max_length",
    "shuffle_buffer_size": "the shuffle buffer, in steps",
    "tsfm_thread_muti": "tf.data threads: none here; must be 1 (use --dataloader_num_workers)",
    "read_thread_muti": "tf.data threads: none here; must be 1 (use --dataloader_num_workers)",
    "obs_backward_steps": "frames before the current one in the observation window",
    "obs_backward_delta": "steps between those frames",
    "action_forward_steps": "actions after the current one in the action chunk",
    "fix_raw_length": "overrides the dataset length when set",
    "use_raw_dataloader": "len() is per rank when True, as theirs",
    "intrinsic_config_path": "read by spatialvla_pretrain.py itself, not by the dataset",
    "normalized_statistic_path": "read by spatialvla_pretrain.py itself, not by the dataset",
}


def build_datasets(data_args, output_dir: str, vla_processor=None):
    """(train dataset, None), as SpatialVLA's `data.dataset.build_datasets`."""
    return SpatialVLADataset(output_dir=output_dir, vla_processor=vla_processor, **dataset_options(data_args)), None


def dataset_options(data_args) -> dict:
    """SpatialVLADataset's arguments from their DataTrainingArguments; any field that would be ignored
    is refused with a one-line ValueError naming it."""
    fields = (
        {f.name: getattr(data_args, f.name) for f in dataclasses.fields(data_args)}
        if dataclasses.is_dataclass(data_args)
        else dict(vars(data_args))
    )
    unknown = sorted(set(fields) - set(DATA_ARGS))
    if unknown:
        raise ValueError(
            f"data_args.{unknown[0]}: not a DataTrainingArguments field this loader knows; it would be ignored"
        )
    for name in ("tsfm_thread_muti", "read_thread_muti"):
        if fields.get(name, 1) not in (None, 1):
            raise ValueError(f"data_args.{name}={fields[name]!r}: {DATA_ARGS[name]}")

    def integer(name, default, minimum):
        value = fields.get(name, default)
        value = default if value is None else value
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"data_args.{name}={value!r}: must be an integer >= {minimum}")
        return value

    if not fields.get("data_root_dir"):
        raise ValueError("data_args.data_root_dir: not set (the export directory or its manifest.json)")
    return {
        "export": str(fields["data_root_dir"]),
        "data_mix": fields.get("data_mix"),
        "max_length": integer("max_seq_length", 2048, 1),
        "shuffle_buffer_size": integer("shuffle_buffer_size", 1_000_000, 1),
        "obs_backward_steps": integer("obs_backward_steps", 0, 0),
        "obs_backward_delta": integer("obs_backward_delta", 1, 1),
        "action_forward_steps": integer("action_forward_steps", 0, 0),
        "fix_raw_length": integer("fix_raw_length", 0, 0) or None,
        "use_raw_dataloader": bool(fields.get("use_raw_dataloader", True)),
    }


# ------------------------------------------------------------ the export, in their terms


def unnorm_key(name: str, manifest: dict) -> str:
    """The key their statistics and intrinsics use for a dataset: '<name>/<version>'."""
    version = (manifest.get("inputs") or {}).get(name, {}).get("version")
    return f"{name}/{version}" if version else name


def check_data_mix(data_mix: str | None, manifest: dict, where: str) -> None:
    names = sorted(manifest["datasets"])
    single = {names[0], unnorm_key(names[0], manifest)} if len(names) == 1 else set()
    if data_mix != manifest.get("mixture") and data_mix not in single:
        raise ValueError(
            f"data_args.data_mix={data_mix!r} does not match the export at {where}: "
            f"it was exported as mixture {manifest.get('mixture')!r} with datasets {names}"
        )


def spatialvla_statistics(stats: dict, manifest: dict, where: str) -> dict:
    """Their ds_stats_pc layout: {'<name>/<version>': {action, proprio, num_transitions, num_trajectories}}."""
    out = {}
    for name in sorted(manifest["datasets"]):
        entry = stats.get(name)
        action = (entry or {}).get("action") or {}
        missing = [k for k in STAT_KEYS if k not in action]
        if entry is None or missing:
            raise ManifestError(f"{where}: no action statistics {missing or list(STAT_KEYS)} for dataset '{name}'")
        dims = len(action["mean"])
        zeros = {k: [0.0] * dims for k in STAT_KEYS}  # theirs: proprio is not loaded, its statistics are zeros
        out[unnorm_key(name, manifest)] = {
            "action": {k: list(action[k]) for k in (*STAT_KEYS, "mask") if k in action},
            "proprio": {k: list(v) for k, v in (entry.get("proprio") or zeros).items()},
            "num_transitions": int(entry["num_transitions"]),
            "num_trajectories": int(entry["num_trajectories"]),
        }
    return out


def intrinsic_entry(name: str, intrinsics: dict | None) -> dict:
    """A manifest's intrinsics as an entry of their processor's intrinsic_config."""
    keys = ("fx", "fy", "cx", "cy", "width", "height")
    if not intrinsics or any(k not in intrinsics for k in keys):
        raise ManifestError(f"manifest.json: datasets.{name}.intrinsics needs {', '.join(keys)}")
    i = intrinsics
    return {
        "intrinsic": [[i["fx"], 0.0, i["cx"]], [0.0, i["fy"], i["cy"]], [0.0, 0.0, 1.0]],
        "width": i["width"],
        "height": i["height"],
    }


def processor_intrinsic(entry: dict, height: int, width: int) -> torch.Tensor:
    """K for images of height x width, by their processor's rule (rows 0 and 1 scaled per axis)."""
    k = torch.tensor(entry["intrinsic"], dtype=torch.float32)
    k[:2] *= torch.tensor([width / entry["width"], height / entry["height"]])[:, None]
    return k


def register_intrinsics(processor, intrinsic_config: dict) -> None:
    """Give a SpatialVLAProcessor the export's per-dataset intrinsics, so that `unnorm_key` finds them in
    training and they are saved with the processor (its intrinsic_config) for inference."""
    table = getattr(processor, "dataset_intrinsics", None)
    if not isinstance(table, dict):
        return  # a processor without per-dataset intrinsics
    size = processor.image_processor.size
    for key, entry in intrinsic_config.items():
        table[key] = processor_intrinsic(entry, size["height"], size["width"])
        if isinstance(getattr(processor, "intrinsic_config", None), dict):
            processor.intrinsic_config[key] = entry


def expected_length(weights: dict, transitions: dict) -> int:
    """Their dataset length: steps until every primary dataset (weight 1.0) has been seen once at the
    balanced weights, times the number of datasets; with no primary dataset, over all of them."""
    balanced = effective_weights(weights, transitions)
    primary = [n for n, w in weights.items() if w == 1.0 and balanced[n] > 0] or [n for n in weights if balanced[n] > 0]
    return int(max(transitions[n] / balanced[n] for n in primary)) * len(weights)


def worker_share(total: int, workers: int, worker: int) -> int:
    """Samples a worker yields per epoch: `total` split as evenly as possible, the first workers one more."""
    return total // workers + (worker < total % workers)


def consumed_by_worker(batches: int, shares: list[int], batch_size: int) -> list[int]:
    """Samples each DataLoader worker had yielded when `batches` batches were taken: torch takes one batch
    from each worker in turn, skipping workers that are done (the last batch of a worker may be short)."""
    counts = [math.ceil(s / batch_size) for s in shares]
    full = min(batches // len(shares), min(counts))  # rounds in which every worker gave a batch
    taken, left, turn = [full] * len(shares), batches - full * len(shares), full
    while left > 0 and turn < max(counts):
        for w, c in enumerate(counts):
            if turn < c and left > 0:
                taken[w] += 1
                left -= 1
        turn += 1
    return [min(t * batch_size, s) for t, s in zip(taken, shares)]


# ------------------------------------------------------------ the dataset


class SpatialVLADataset(torch.utils.data.IterableDataset):
    def __init__(
        self,
        export: str,
        output_dir: str,
        data_mix: str | None,
        max_length: int = 2048,
        shuffle_buffer_size: int = 8192,
        obs_backward_steps: int = 0,
        obs_backward_delta: int = 1,
        action_forward_steps: int = 0,
        use_raw_dataloader: bool = True,
        fix_raw_length: int | None = None,
        vla_processor=None,
        augment: bool = True,
        seed: int = SHUFFLE_SEED,
        rank: int | None = None,
        world_size: int | None = None,
        image_size: int = IMAGE_SIZE,
    ):
        super().__init__()
        out = export_dir(export)
        try:
            manifest = load_manifest(out)
        except ManifestError as e:
            raise ManifestError(f"data_args.data_root_dir: {e}") from None
        check_data_mix(data_mix, manifest, out)
        stats_path = files.join(out, manifest.get("statistics", STATISTICS_FILE))
        try:
            stats = read_json(stats_path)
        except (OSError, ValueError) as e:
            raise ManifestError(f"{stats_path}: cannot read the export's statistics ({e})") from None
        if manifest.get("statistics_sha256") not in (None, sha256_of(stats)):
            raise ManifestError(f"{stats_path}: changed since the export (sha256 does not match the manifest)")
        self.keys = {name: unnorm_key(name, manifest) for name in manifest["datasets"]}
        self.ds_stats_pc = spatialvla_statistics(stats, manifest, stats_path)
        self.ds_stats = self.ds_stats_pc  # theirs keeps both names for one dict
        if output_dir is not None and not files.exists(files.join(output_dir, STATS_FILE)):  # theirs: written once
            write_json(files.join(output_dir, STATS_FILE), self.ds_stats_pc)
        self.intrinsic_config = {
            self.keys[n]: intrinsic_entry(n, d.get("intrinsics")) for n, d in manifest["datasets"].items()
        }
        self.mixture = MixtureDataset(
            out,
            mode="disjoint",
            shuffle_buffer=shuffle_buffer_size,
            seed=seed,
            chunk=action_forward_steps + 1,
            obs_window=obs_backward_steps + 1,
            obs_delta=obs_backward_delta,
            skip_unlabeled=True,
            columns=COLUMNS,
            rank=rank,
            world_size=world_size,
        )
        self.rank, self.world_size, self.seed = self.mixture.rank, self.mixture.world_size, seed
        transitions = {n: d["num_transitions"] for n, d in manifest["datasets"].items()}
        self.raw_length = fix_raw_length or expected_length(manifest["weights"], transitions)
        self.max_length, self.use_raw_dataloader = max_length, use_raw_dataloader
        self.augment, self.image_size = augment, image_size
        self._passes = multiprocessing.Value("q", 0)  # passes begun by DataLoader workers (shared by them)
        self._main_passes = 0  # passes begun in this process without workers
        self._base_epoch, self._resume = 0, None
        self._stream = None  # (the reader's iterator, the position it is at) kept between passes
        self.vla_processor = vla_processor

    @property
    def vla_processor(self):
        return self._vla_processor

    @vla_processor.setter
    def vla_processor(self, processor):
        self._vla_processor = processor
        if processor is not None:
            register_intrinsics(processor, self.intrinsic_config)

    def __len__(self) -> int:
        return self.raw_length // self.world_size if self.use_raw_dataloader else self.raw_length

    # ------------------------------------------------------------ resume

    def resume_from_step(
        self, global_step: int, per_device_train_batch_size: int, gradient_accumulation_steps: int = 1
    ):
        """Continue where a run stopped after `global_step` optimizer steps, for a trainer with these batch
        settings and the same world size and DataLoader workers that re-iterates the loader from scratch
        (transformers' Trainer with --ignore_data_skip True, as SpatialVLA's scripts run it)."""
        batches_per_epoch = math.ceil(len(self) / per_device_train_batch_size)  # torch's len(DataLoader)
        steps_per_epoch = math.ceil(batches_per_epoch / gradient_accumulation_steps)
        epoch, step = divmod(global_step, steps_per_epoch)
        self._base_epoch = epoch
        self._resume = (step * gradient_accumulation_steps, per_device_train_batch_size)
        self._main_passes, self._passes.value, self._stream = 0, 0, None

    def resume_from_checkpoint(
        self, checkpoint_dir: str, per_device_train_batch_size: int, gradient_accumulation_steps: int = 1
    ):
        """resume_from_step with the global step of a transformers checkpoint (its trainer_state.json)."""
        state = read_json(files.join(checkpoint_dir, "trainer_state.json"))
        self.resume_from_step(state["global_step"], per_device_train_batch_size, gradient_accumulation_steps)

    # ------------------------------------------------------------ iteration

    def _begin_pass(self, workers: int, in_worker: bool) -> int:
        """The index of the pass (loader epoch) that this __iter__ begins, counted from the last resume:
        fresh DataLoader workers start from a copy of this object, so they count in shared memory."""
        if not in_worker:
            self._main_passes += 1
            return self._main_passes - 1
        with self._passes.get_lock():
            self._passes.value += 1
            return (self._passes.value - 1) // workers

    def __iter__(self):
        if self.vla_processor is None:
            raise RuntimeError("set train_dataset.vla_processor = processor before iterating (as their scripts do)")
        info = torch.utils.data.get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        npass = self._begin_pass(workers, info is not None)
        share = worker_share(len(self), workers, worker)
        done, end = 0, share
        if npass == 0 and self._resume:  # from where the trainer stopped to what it would have taken
            batches, batch_size = self._resume
            shares = [worker_share(len(self), workers, w) for w in range(workers)]
            done = consumed_by_worker(batches, shares, batch_size)[worker]
            end = consumed_by_worker(math.ceil(len(self) / batch_size), shares, batch_size)[worker]
        epoch = self._base_epoch + npass
        start, stop = epoch * share + done, epoch * share + end  # the stream continues across epochs
        if self._stream is None or self._stream[1] != start:  # not where the last pass stopped: replay to start
            self.mixture.consumed = start
            self._stream = (iter(self.mixture), start)
        stream = self._stream[0]
        for position in range(start, stop):
            step = next(stream, None)
            if step is None:
                raise RuntimeError(
                    f"rank {self.rank}, worker {worker}: no steps to draw (no episode with an instruction in its part)"
                )
            self._stream = (stream, position + 1)
            yield self.sample(step, worker, position)

    def __getstate__(self):
        return {**self.__dict__, "_stream": None}  # a generator does not cross processes; it is replayed

    def sample(self, step: dict, worker: int, position: int) -> dict:
        """One reader step as their trainer's item: frames decoded (and augmented), processor called."""
        frames = [Image.fromarray(decode(b)) for b in step.get("obs_images") or [step["image"]]]
        if self.augment:
            rng = np.random.default_rng([self.seed, self.rank, worker, position])
            params = draw_params(rng, frames[0].height, frames[0].width)
            frames = [augment(f, params, self.image_size) for f in frames]
        elif frames[0].size != (self.image_size, self.image_size):  # theirs resizes (lanczos) before anything
            frames = [f.resize((self.image_size, self.image_size), Image.Resampling.LANCZOS) for f in frames]
        actions = torch.from_numpy(np.asarray(step["action_chunk"], dtype=np.float32))
        ret = self.vla_processor(
            text=(step["language_instruction"] or "").lower(),
            images=frames,
            unnorm_key=self.keys[step["dataset"]],
            suffix_actions=actions,
            return_tensors="pt",
            padding=False,
            max_length=self.max_length,
            truncation=True,
            do_normalize=False,
        )
        return {
            "input_ids": ret["input_ids"][0],
            "labels": ret["labels"][0],
            "token_type_ids": ret["token_type_ids"][0],
            "attention_mask": ret["attention_mask"][0],
            "pixel_values": ret["pixel_values"],
            "intrinsic": ret["intrinsic"],
            "actions": actions,
        }
