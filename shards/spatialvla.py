"""SpatialVLA's training dataset read from an export's shards: a drop-in for `data.dataset.build_datasets`
of SpatialVLA's released code (train/spatialvla_finetune.py, train/spatialvla_pretrain.py), without
tf.data, TFRecord parsing or TensorFlow in the training process.

    # train/spatialvla_finetune.py
    from shards.spatialvla import build_datasets   # was: from data.dataset import build_datasets

    --data_root_dir output/bridge     # the export (or its manifest.json)
    --data_mix bridge                 # the mixture it was exported with (checked)

As theirs: `ds_stats_pc` (their statistics layout, keyed "<dataset>/<version>", also written once as
OUTPUT_DIR/ds_stats.json), `vla_processor` set after construction, `len()` from the primary datasets
(per rank with use_raw_dataloader), items packed from `processor(text=instruction.lower(),
images=[PIL frames], suffix_actions=chunk, ...)`, train-time augmentation in their order and
parameters (shards.augment), episodes without any instruction skipped, observation window and action
chunk, chunks padded past an episode's end as their chunking does (shards.reader.pad_chunk).

Beyond theirs: the mixture's weights exactly as exported; every dataset's own camera intrinsics (the
manifest's `native` K and size, which their processor scales itself) handed to the processor through
`unnorm_key` (theirs always takes "default"); (rank,
worker) streams that never share a step; augmentation drawn per (seed, rank, worker, sample); epochs
that continue the stream (theirs replays it); steps a sample filter excludes never drawn (shards.reader);
exact resume from the trainer's checkpoint, one more line before `trainer.train(resume_from_checkpoint=
checkpoint)` (their scripts pass --ignore_data_skip True, so the Trainer itself skips nothing):

    train_dataset.resume_from_checkpoint(checkpoint, training_args.gradient_accumulation_steps)
"""

from __future__ import annotations

import dataclasses
import io
import math
import multiprocessing

import numpy as np
import torch
from PIL import Image

from shards.augment import augment, draw_params
from shards.manifest import ManifestError, export_dir, load_manifest, read_statistics
from shards.reader import MixtureDataset
from storage import files
from storage.jsonio import read_json, write_json

IMAGE_SIZE = 224  # their dataset's image_size (their build_datasets never passes another)
SHUFFLE_SEED = 3407  # theirs shuffles with 3407 x rank; here (rank, worker) key the streams
STATS_FILE = "ds_stats.json"
TRAINER_STATE = "trainer_state.json"  # transformers' checkpoint state
STAT_KEYS = ("mean", "std", "max", "min", "q01", "q99")
COLUMNS = ["dataset", "episode_id", "step", "language_instruction", "image", "action", "action_tokens"]

# Every field of their DataTrainingArguments (spatialvla_finetune.py, spatialvla_pretrain.py) and what
# becomes of it here; a field not in this table is refused.
DATA_ARGS = {
    "data_root_dir": "the export directory or its manifest.json",
    "data_mix": "checked against the exported mixture (or its one dataset)",
    "max_seq_length": "the processor's max_length",
    "shuffle_buffer_size": "the shuffle buffer of each DataLoader worker, in steps",
    "tsfm_thread_muti": "tf.data threads: none here; must be 1 (use --dataloader_num_workers)",
    "read_thread_muti": "tf.data threads: none here; must be 1 (use --dataloader_num_workers)",
    "obs_backward_steps": "frames before the current one in the observation window",
    "obs_backward_delta": "steps between those frames",
    "action_forward_steps": "actions after the current one in the action chunk",
    "fix_raw_length": "the dataset length when set (0 or None: from the data)",
    "use_raw_dataloader": "True: each rank reads its own part, len() per rank; False: accelerate's loader "
    "(rank 0 reads the whole stream and dispatches it), len() of the whole stream",
    "intrinsic_config_path": "read by spatialvla_pretrain.py itself; the export's intrinsics are added to it",
    "normalized_statistic_path": "read by spatialvla_pretrain.py itself (the gs_params of OUT/grids/<mixture>.json)",
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
            f"data_args.{unknown[0]}: not a field of SpatialVLA's DataTrainingArguments; it would be ignored"
        )
    for name in ("tsfm_thread_muti", "read_thread_muti"):
        if fields.get(name, 1) not in (None, 1):
            raise ValueError(f"data_args.{name}={fields[name]!r}: {DATA_ARGS[name]}")

    def integer(name, default, minimum):
        value = fields.get(name)
        value = default if value is None else value
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"data_args.{name}={value!r}: must be an integer >= {minimum}")
        return value

    if not fields.get("data_root_dir"):
        raise ValueError("data_args.data_root_dir: not set (the export directory or its manifest.json)")
    raw = fields.get("use_raw_dataloader", True)
    if not isinstance(raw, bool):
        raise ValueError(f"data_args.use_raw_dataloader={raw!r}: must be True or False")
    return {
        "export": str(fields["data_root_dir"]),
        "data_mix": fields.get("data_mix"),
        "max_length": integer("max_seq_length", 2048, 1),
        "shuffle_buffer_size": integer("shuffle_buffer_size", 1_000_000, 1),
        "obs_backward_steps": integer("obs_backward_steps", 0, 0),
        "obs_backward_delta": integer("obs_backward_delta", 1, 1),
        "action_forward_steps": integer("action_forward_steps", 0, 0),
        "fix_raw_length": integer("fix_raw_length", 0, 0) or None,
        "use_raw_dataloader": raw,
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
        zeros = {k: [0.0] * len(action["mean"]) for k in STAT_KEYS}  # theirs loads no proprio: zeros
        out[unnorm_key(name, manifest)] = {
            "action": {k: list(action[k]) for k in (*STAT_KEYS, "mask") if k in action},
            "proprio": {k: list(v) for k, v in (entry.get("proprio") or zeros).items()},
            "num_transitions": int(entry["num_transitions"]),
            "num_trajectories": int(entry["num_trajectories"]),
        }
    return out


def intrinsic_entry(name: str, intrinsics: dict | None) -> dict:
    """A manifest's intrinsics as an entry of their processor's intrinsic_config: the camera's own K at its
    own width and height (the manifest's `intrinsics.native`), so that their processor scales it to its
    image size itself (`K[:2] *= [w / W, h / H]`), as it did for the released checkpoints. The manifest's
    top-level K, at the exported size by the half-pixel rule `(c + 0.5) * s - 0.5`, is the geometric one
    for other consumers (depth.ego3d); an export written before `native` existed hands that one over."""
    keys = ("fx", "fy", "cx", "cy", "width", "height")
    i = (intrinsics or {}).get("native") or intrinsics
    if not i or any(k not in i for k in keys):
        raise ManifestError(f"manifest.json: datasets.{name}.intrinsics needs {', '.join(keys)}")
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


def primary_length(weights: dict, transitions: dict) -> int:
    """OpenVLA's and SpatialVLA's dataset length (make_interleaved_dataset, data/rlds.py): steps until every
    primary dataset (weight 1.0) is seen once at the balanced weights, computed as theirs is, so that float
    rounding agrees. With no primary dataset (theirs fails), over all datasets."""
    names = list(weights)
    sizes = np.array([transitions[n] for n in names], dtype=np.float64)
    given = np.array([weights[n] for n in names], dtype=np.float64)
    balanced = given * sizes
    balanced = balanced / np.sum(balanced)
    primary = (given == 1.0) & (balanced > 0)
    primary = primary if primary.any() else balanced > 0
    return int((sizes / np.where(balanced > 0, balanced, 1))[primary].max())


def expected_length(weights: dict, transitions: dict) -> int:
    """SpatialVLA's dataset length: OpenVLA's times the number of datasets (their build_datasets)."""
    return primary_length(weights, transitions) * len(weights)


def worker_share(total: int, workers: int, worker: int) -> int:
    """Samples a worker yields per epoch: `total` split as evenly as possible, the first workers one more."""
    return total // workers + (worker < total % workers)


def batch_order(shares: list[int], batch_size: int) -> list[int]:
    """The worker of each batch of one loader epoch, in the order torch's DataLoader takes them: one
    batch from each worker in turn, skipping workers that are done (a worker's last batch may be short)."""
    counts = [math.ceil(s / batch_size) for s in shares]
    return [w for turn in range(max(counts, default=0)) for w, c in enumerate(counts) if turn < c]


def consumed_by_worker(batches: int, shares: list[int], batch_size: int) -> list[int]:
    """Samples each DataLoader worker had yielded when the first `batches` batches were taken."""
    taken = batch_order(shares, batch_size)[:batches]
    return [min(taken.count(w) * batch_size, s) for w, s in enumerate(shares)]


def decode_frame(data: bytes) -> Image.Image:
    """An exported JPEG as an RGB PIL image (straight to PIL: no numpy round trip)."""
    im = Image.open(io.BytesIO(data))
    im.load()  # decodes, and closes the buffer
    return im if im.mode == "RGB" else im.convert("RGB")


# ------------------------------------------------------------ the dataset


class SpatialVLADataset(torch.utils.data.IterableDataset):
    def __init__(
        self,
        export: str,
        output_dir: str | None,
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
        verify: bool = True,
    ):
        super().__init__()
        out = export_dir(export)
        try:
            manifest = load_manifest(out)
        except ManifestError as e:
            raise ManifestError(f"data_args.data_root_dir: {e}") from None
        check_data_mix(data_mix, manifest, out)
        stats, stats_path = read_statistics(out, manifest)
        self.keys = {name: unnorm_key(name, manifest) for name in manifest["datasets"]}
        self.ds_stats_pc = spatialvla_statistics(stats, manifest, stats_path)
        self.ds_stats = self.ds_stats_pc  # theirs keeps both names for one dict
        if output_dir is not None and not files.exists(files.join(output_dir, STATS_FILE)):  # theirs: written once
            write_json(files.join(output_dir, STATS_FILE), self.ds_stats_pc)
        self.intrinsic_config = {
            self.keys[n]: intrinsic_entry(n, d.get("intrinsics")) for n, d in manifest["datasets"].items()
        }
        if rank is None and torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
        self.ranks = world_size or 1
        # accelerate's loader (use_raw_dataloader=False) reads on rank 0 only and dispatches the batches:
        # every rank then presents the whole stream, as one reader would
        reader_rank, reader_ranks = (rank or 0, self.ranks) if use_raw_dataloader else (0, 1)
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
            rank=reader_rank,
            world_size=reader_ranks,
            verify=verify,
        )
        self.rank, self.seed = reader_rank, seed
        transitions = {n: d["num_transitions"] for n, d in manifest["datasets"].items()}
        self.raw_length = fix_raw_length or expected_length(manifest["weights"], transitions)
        self.max_length, self.use_raw_dataloader = max_length, use_raw_dataloader
        self.augment, self.image_size = augment, image_size
        self._passes = multiprocessing.Value("q", 0)  # passes begun by DataLoader workers (shared by them)
        self._main_passes = 0  # passes begun in this process without workers
        self._base_epoch, self._resume = 0, None
        self._stream = None  # (the reader's iterator, its role, the position it is at) kept between passes
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
        return self.raw_length // self.ranks if self.use_raw_dataloader else self.raw_length

    # ------------------------------------------------------------ resume

    def resume(self, epoch: int, batches: int, batch_size: int) -> None:
        """Continue after this rank's DataLoader gave `batches` batches of `batch_size` in epoch `epoch`
        (0-based), with the same world size and DataLoader workers as the run that stopped, for a trainer
        that re-iterates the loader from scratch (transformers' Trainer with --ignore_data_skip True, as
        SpatialVLA's scripts run it: with data skipping on, the Trainer would skip batches again)."""
        if epoch < 0 or batches < 0 or batch_size < 1:
            raise ValueError(f"cannot resume at epoch {epoch}, batch {batches} of size {batch_size}")
        self._base_epoch, self._resume = epoch, (batches, batch_size) if batches else None
        self._main_passes, self._passes.value, self._stream = 0, 0, None

    def resume_from_checkpoint(self, checkpoint_dir: str | None, gradient_accumulation_steps: int = 1) -> None:
        """`resume` where a transformers checkpoint stopped, from its trainer_state.json (global_step, the
        per-device train_batch_size): the Trainer steps once per `gradient_accumulation_steps` batches and
        at the end of each loader epoch (exact across any number of resumes when that divides the loader's
        batches per epoch, e.g. 1 as in SpatialVLA's scripts). None: a fresh run, nothing to do."""
        if checkpoint_dir is None:
            return
        path = files.join(checkpoint_dir, TRAINER_STATE)
        try:
            state = read_json(path)
            global_step, batch_size = int(state["global_step"]), int(state["train_batch_size"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: no global_step and train_batch_size to resume from ({e!r})") from None
        batches = math.ceil(len(self) / batch_size)  # len() of this rank's DataLoader
        # accelerate's dispatcher (use_raw_dataloader=False) takes one batch per rank for each of its batches
        per_batch = 1 if self.use_raw_dataloader else self.ranks
        steps = math.ceil(math.ceil(batches / per_batch) / gradient_accumulation_steps)  # optimizer steps per epoch
        epoch, step = divmod(global_step, steps)
        self.resume(epoch, min(step * gradient_accumulation_steps * per_batch, batches), batch_size)

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
        shares = [worker_share(len(self), workers, w) for w in range(workers)]
        role, done, end = worker, 0, shares[worker]  # role: the worker whose part of the stream this one reads
        if npass == 0 and self._resume:  # from where the trainer stopped to what it would have taken
            batches, batch_size = self._resume
            order = batch_order(shares, batch_size)
            # a fresh loader asks worker 0 first: it reads for the worker whose turn was next, and so on
            role = (worker + order[batches]) % workers if batches < len(order) else worker
            done = consumed_by_worker(batches, shares, batch_size)[role]
            end = consumed_by_worker(math.ceil(len(self) / batch_size), shares, batch_size)[role]
        epoch, share = self._base_epoch + npass, shares[role]
        start, stop = epoch * share + done, epoch * share + end  # the stream continues across epochs
        if self._stream is None or self._stream[1:] != (role, start):  # elsewhere: replay the index stream to start
            self.mixture.worker, self.mixture.consumed = role, start
            self._stream = (iter(self.mixture), role, start)
        stream = self._stream[0]
        for position in range(start, stop):
            step = next(stream, None)
            if step is None:
                raise RuntimeError(
                    f"rank {self.rank}, worker {role}: no steps to draw (no episode with an instruction in its part)"
                )
            self._stream = (stream, role, position + 1)
            yield self.sample(step, role, position)

    def __getstate__(self):
        return {**self.__dict__, "_stream": None}  # a generator does not cross processes; it is replayed

    def frames(self, step: dict, worker: int, position: int) -> list[Image.Image]:
        """The observation window's frames at image_size, augmented with one draw per window (theirs: one
        seed per window) from a generator keyed by (seed, rank, worker, position in the worker's stream)."""
        frames = [decode_frame(b) for b in step.get("obs_images") or [step["image"]]]
        if self.augment:
            rng = np.random.default_rng([self.seed, self.rank, worker, position])
            params = draw_params(rng, frames[0].height, frames[0].width)
            return [augment(f, params, self.image_size) for f in frames]
        if frames[0].size != (self.image_size, self.image_size):  # theirs resizes (lanczos) before anything
            return [f.resize((self.image_size, self.image_size), Image.Resampling.LANCZOS) for f in frames]
        return frames

    def sample(self, step: dict, worker: int, position: int) -> dict:
        """One reader step as their trainer's item: frames decoded (and augmented), processor called."""
        actions = torch.from_numpy(np.asarray(step["action_chunk"], dtype=np.float32))
        ret = self.vla_processor(
            text=(step["language_instruction"] or "").lower(),
            images=self.frames(step, worker, position),
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
