"""The trainer's reader: a PyTorch IterableDataset over an export's manifest (no Beam, no TensorFlow).

    from torchdata.stateful_dataloader import StatefulDataLoader

    ds = MixtureDataset("output/oxe_magic_soup", mode="stream", seed=0, chunk=4, decode_images=True)
    loader = StatefulDataLoader(ds, batch_size=32, num_workers=4)   # or torch's DataLoader
    ...
    state = loader.state_dict()      # every worker's position: resume with loader.load_state_dict(state)

Sampling. Each step comes from dataset d with probability equal to its effective weight
(weight x transitions, normalized: OpenVLA's balancing; `balance=False` uses the given weights
alone). Every (rank, DataLoader worker) pair is a slot with its own random stream.
- `mode="stream"`: endless; every slot samples datasets by weight from all their rows.
- `mode="epoch"`: every step exactly once across all slots: each dataset's rows are dealt to the
  slots in equal contiguous parts (slots' shares differ by at most one row per dataset), and each
  slot interleaves its datasets by weight until all are exhausted. Call `set_epoch(e)` before each
  epoch for a new order (DistributedSampler's convention; accelerate and the transformers Trainer
  call it).
- `mode="disjoint"`: endless, and the weights hold in every slot whatever the sizes. A dataset
  with at least as many rows as slots is *spread*: its rows are split into equal contiguous parts,
  one per slot, so no two slots ever yield the same step of it; a dataset with fewer rows than
  slots is *shared*: every slot samples all of its rows (so its weight holds everywhere; its steps
  repeat across slots, as they must at that weight). A slot whose part holds no drawable step (all
  skipped by a filter) samples the dataset's whole rows instead, for the same reason.

Items. Every item has the same keys: the mixture's columns (the manifest's `columns`, or those
asked for with `columns=`); a column that a dataset lacks (e.g. `wrist_image`) is present as an
empty value of its type (b"", "", zeros; zero pixels when decoded) and each optional column has a
`has_<column>` flag. Numbers are writable numpy arrays, missing instructions "". So
`torch.utils.data.default_collate` batches every column of one size; `collate` (below) also pads the
variable-length ones (`input_ids` of exports made with --text-tokenizer, `proprio` where datasets
have proprio of different sizes).

Chunks. `chunk=K` adds the episode's actions t..t+K-1; past the episode's end a dimension that the
manifest marks absolute (`absolute_action_mask`, default: the gripper) repeats the last value and
a relative one is 0.0 (normalized zero), as the public OXE pipelines pad; `chunk_mask` says which
entries are real. `obs_window=N` adds the images of steps t-(N-1)d..t (floored at the episode's
first step; `obs_mask` says which are real).

Mechanics. All sampling and shuffling happens on row indices; rows are fetched from record
batches read on demand from memory-mapped shards (a small LRU bounded by the shuffle buffer),
so memory is bounded by the buffer, not the data. The index stream needs no shard data unless a
sample filter or `skip_unlabeled` asks which rows are drawable (then it reads three small columns
of each shard it visits).

Resume. `state_dict()` / `load_state_dict()` hold a slot's position (epoch, steps yielded); a
resumed reader replays only the index stream, which is cheap, fetches what its buffer held in file
order, and continues exactly where it stopped. With DataLoader workers each worker has its own
position: torchdata's `StatefulDataLoader` saves and restores them (with batches prefetched or
not); `ds.state_dict()` in the main process then refuses (one line), since it cannot know them.
Resume with the same seed, mode, buffer, ranks and `num_workers` (checked). Iterating again continues
the pass where it stopped; a position made by another slot layout (items taken in the main process,
then a DataLoader with workers) does not carry over: each worker starts the pass.

Samples. Steps a dataset's sample filter marks `sampled == False` (DROID's still steps) are never
yielded, but serve as context: a step is drawn when any step of its action chunk moves
(transforms.sampling.chunk_sampled, the public chunk filter). `skip_unlabeled=True`: episodes
without any instruction are never drawn.

Trust (shards.integrity). Construction reads the manifest and nothing else (its counts and weights
must agree: shards.manifest.check_consistency). Each shard is checked as it is first opened: its
size, its checksum table against the manifest's pin, its rows, episodes, columns and `dataset`
column (a valid shard of another dataset swapped in is refused); every column of every record batch
against its checksum as that batch is read. `verify=False` skips the checksums (and the whole-file
sha256 that replaces them for shards written before checksums); `python -m shards.verify OUT`
checks every byte once.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  # used by the first shard checks: imported before DataLoader workers fork
import torch

from manifests.weights import effective_weights
from shards.integrity import IntegrityError
from shards.manifest import ManifestError, export_dir, load_manifest, shard_path, warn_if_synthetic
from shards.schema import IMAGE_COLUMNS, REQUIRED_COLUMNS, SMALL_COLUMNS, ShardFile, check_shard
from transforms.frames import decode
from transforms.sampling import chunk_sampled

ACTION_DIM = 7
DEFAULT_ABSOLUTE_ACTION_MASK = [False] * 6 + [True]  # xyz, rpy deltas relative; the gripper absolute
DISJOINT_BLOCK_ROWS = 1024  # a slot's part is visited in blocks of this many rows, in a random order each pass
MODES = ("stream", "epoch", "disjoint")
ALWAYS_COLUMNS = REQUIRED_COLUMNS | {"raw_action", "action_tokens"}  # every shard the pipeline writes has these
OPEN_SHARDS = 64  # shards kept open per process (memory maps; the rest are reopened when read again)


@dataclass(frozen=True)
class Shard:
    dataset: str
    path: str
    num_rows: int
    relpath: str = ""  # as the manifest names it

    @property
    def where(self) -> str:
        return f"shard {self.relpath or self.path} of dataset '{self.dataset}'"


@dataclass(frozen=True)
class Episodes:
    """Per row of a shard: where its episode starts and ends (exclusive), whether the episode has
    any instruction, and whether the step moves (False only where a sample filter marked it)."""

    starts: np.ndarray
    ends: np.ndarray
    labeled: np.ndarray
    moves: np.ndarray


def episodes_of(is_last: np.ndarray, instructions: list[str | None], moves: np.ndarray | None = None) -> Episodes:
    """Episode bounds from `is_last`, and which episodes have at least one non-empty instruction."""
    n = len(is_last)
    ends_at = np.flatnonzero(is_last) + 1
    if not len(ends_at) or ends_at[-1] != n:  # a shard ends with an episode's last step; be safe anyway
        ends_at = np.append(ends_at, n)
    first = np.concatenate([[0], ends_at[:-1]])
    lengths = ends_at - first
    has_text = np.fromiter((bool(t) for t in instructions), bool, count=n)
    labeled = np.logical_or.reduceat(has_text, first) if n else np.zeros(0, bool)
    moves = np.ones(n, bool) if moves is None else np.asarray(moves, bool)
    return Episodes(np.repeat(first, lengths), np.repeat(ends_at, lengths), np.repeat(labeled, lengths), moves)


def absolute_action_masks(manifest: dict) -> dict[str, np.ndarray]:
    """Per dataset, the action dimensions that are absolute (True) rather than relative (False)."""
    out = {}
    for name, entry in manifest["datasets"].items():
        mask = entry.get("absolute_action_mask", DEFAULT_ABSOLUTE_ACTION_MASK)
        if not (isinstance(mask, list) and len(mask) == ACTION_DIM and all(isinstance(m, bool) for m in mask)):
            raise ManifestError(
                f"manifest.json: datasets.{name}.absolute_action_mask must be {ACTION_DIM} booleans, got {mask!r}"
            )
        out[name] = np.array(mask)
    return out


def pad_chunk(actions: np.ndarray, valid: np.ndarray, absolute: np.ndarray) -> np.ndarray:
    """An action chunk past its episode's end, padded as OpenVLA's and SpatialVLA's chunking does:
    absolute dimensions keep the last real value, relative ones become 0.0 (normalized: no movement).
    `actions` [K, D] must already repeat the last real step where `valid` [K] is False."""
    return np.where(valid[:, None] | absolute[None, :], actions, np.zeros((), actions.dtype))


def disjoint_parts(
    shards: list[Shard], slot: int, slots: int, block: int = DISJOINT_BLOCK_ROWS, starts: list[int] | None = None
) -> list:
    """This slot's equal, contiguous share of the rows of `shards` (one dataset's, in order), as
    (shard, first row, end row) ranges cut at multiples of `block` rows within each shard. Shares of
    two slots differ by at most one row. `starts`: the shards' first rows in the dataset (cumulative
    row counts, computed when not given), to find the slot's shards by bisection."""
    if starts is None:
        starts = np.concatenate([[0], np.cumsum([s.num_rows for s in shards])]).tolist()
    total = starts[-1]
    lo, hi = total * slot // slots, total * (slot + 1) // slots
    parts = []
    first = max(bisect.bisect_right(starts, lo) - 1, 0)
    for i in range(first, len(shards)):
        s, offset = shards[i], starts[i]
        if offset >= hi:
            break
        a, b = max(lo - offset, 0), min(hi - offset, s.num_rows)
        cuts = [a, *range((a // block + 1) * block, b, block), b]
        parts += [(s, x, y) for x, y in zip(cuts[:-1], cuts[1:]) if y > x]
    return parts


def _empty_like(type_: pa.DataType):
    """The value a column of this type has in an item of a dataset that lacks the column."""
    if pa.types.is_binary(type_) or pa.types.is_large_binary(type_):
        return b""
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return ""
    if pa.types.is_fixed_size_list(type_):
        return np.zeros(type_.list_size, type_.value_type.to_pandas_dtype())
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        return np.zeros(0, type_.value_type.to_pandas_dtype())
    if pa.types.is_boolean(type_) or pa.types.is_integer(type_) or pa.types.is_floating(type_):
        return np.zeros((), type_.to_pandas_dtype())[()]
    return None


def _columns(batch: pa.RecordBatch, f: ShardFile | None = None, b: int = 0) -> tuple[dict, dict]:
    """A record batch as numpy arrays and python lists, converted once for fast row access: (columns
    whose rows are values: scalars, str, bytes; columns whose rows are arrays, copied per row so that
    an item never shares memory with the batch kept for other rows). Arrays are writable (torch).
    `f`, `b`: the shard and batch it was read from with `fused` (its binary columns checked here)."""
    values, arrays = {}, {}
    for name, col in zip(batch.schema.names, batch.columns):
        t = col.type
        if pa.types.is_fixed_size_list(t) and not col.null_count:
            flat = col.values.slice(col.offset * t.list_size, len(col) * t.list_size)
            arrays[name] = np.array(flat.to_numpy(zero_copy_only=False)).reshape(len(col), t.list_size)
        elif (pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_floating(t)) and not col.null_count:
            values[name] = np.array(col.to_numpy(zero_copy_only=False))
        elif (pa.types.is_list(t) or pa.types.is_large_list(t)) and not col.null_count:
            offsets = col.offsets.to_numpy()
            flat = np.array(col.values.to_numpy(zero_copy_only=False))
            arrays[name] = [flat[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
        else:
            values[name] = col.to_pylist() if f is None else f.read_values(b, name, col)
    return values, arrays


def collate(batch: list[dict]) -> dict:
    """`torch.utils.data.default_collate`, and 1-D arrays of different lengths (`input_ids`, `proprio` of
    datasets with different proprio sizes) padded with 0 to the batch's longest, with `<key>_mask` (True
    where real). Use as `DataLoader(collate_fn=collate)`."""
    padded = {}
    if batch and isinstance(batch[0], dict):
        for key, value in batch[0].items():
            if isinstance(value, np.ndarray) and value.ndim == 1:
                lengths = [len(item[key]) for item in batch]
                if len(set(lengths)) > 1:
                    out = np.zeros((len(batch), max(lengths)), value.dtype)
                    mask = np.zeros((len(batch), max(lengths)), bool)
                    for j, item in enumerate(batch):
                        out[j, : lengths[j]], mask[j, : lengths[j]] = item[key], True
                    padded[key], padded[f"{key}_mask"] = torch.from_numpy(out), torch.from_numpy(mask)
        if padded:
            rest = torch.utils.data.default_collate([{k: v for k, v in b.items() if k not in padded} for b in batch])
            return {**rest, **padded}
    return torch.utils.data.default_collate(batch)


class _Batches:
    """Record batches of shards, decompressed (and checked) on demand, least recently used dropped first."""

    def __init__(self, reader: MixtureDataset, capacity: int):
        self.reader, self.capacity = reader, capacity
        self.cache: OrderedDict = OrderedDict()

    def locate(self, shard: Shard, row: int) -> tuple[dict, dict, int]:
        """(values, arrays) of the batch holding `row` (see _columns), and the row's index in it."""
        f = self.reader._file(shard)
        b = f.batch_of(row)
        key = (shard.path, b)
        if key not in self.cache:
            self.cache[key] = _columns(f.read_batch(b, self.reader.columns, fused=True), f, b)
            if len(self.cache) > self.capacity:
                self.cache.popitem(last=False)
        else:
            self.cache.move_to_end(key)
        values, arrays = self.cache[key]
        return values, arrays, row - f.starts[b]


class MixtureDataset(torch.utils.data.IterableDataset):
    """See the module's docstring. `verify`: check checksums as batches are read (default True).
    `columns`: read only these shard columns (plus those the options need). `rank`/`world_size`:
    taken from torch.distributed when initialized. `worker`: set to read another DataLoader worker's
    part (None: the worker it runs in)."""

    def __init__(
        self,
        out_dir: str,
        mode: str = "stream",
        balance: bool = True,
        shuffle_buffer: int = 10_000,
        seed: int = 0,
        chunk: int | None = None,
        decode_images: bool = False,
        verify: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
        obs_window: int = 1,
        obs_delta: int = 1,
        skip_unlabeled: bool = False,
        columns: list[str] | None = None,
    ):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
        if obs_window < 1 or obs_delta < 1:
            raise ValueError(f"obs_window and obs_delta must be >= 1, got {obs_window} and {obs_delta}")
        out_dir = export_dir(out_dir)
        self.manifest = load_manifest(out_dir)  # the manifest only: its counts and weights agree (checked)
        warn_if_synthetic(self.manifest, out_dir)
        self.out_dir, self.mode, self.seed, self.verify = out_dir, mode, seed, verify
        self.buffer, self.chunk, self.decode_images = max(1, shuffle_buffer), chunk, decode_images
        self.obs_window, self.obs_delta, self.skip_unlabeled = obs_window, obs_delta, skip_unlabeled
        datasets = self.manifest["datasets"]
        self.weights = effective_weights(
            self.manifest["weights"], {n: d["num_transitions"] for n, d in datasets.items()}, balance
        )
        self.absolute = absolute_action_masks(self.manifest)
        self.names = sorted(datasets)
        self._entries: dict[str, dict] = {}
        self.by_dataset: dict[str, list[Shard]] = {}
        for n in self.names:
            self.by_dataset[n] = []
            for s in datasets[n]["shards"]:
                shard = Shard(n, shard_path(out_dir, s), s["num_rows"], s["path"])
                self._entries[shard.path] = s
                if shard.num_rows:
                    self.by_dataset[n].append(shard)
        self.shards = [s for n in self.names for s in self.by_dataset[n]]
        self._starts = {
            n: np.concatenate([[0], np.cumsum([s.num_rows for s in shards])]).tolist()
            for n, shards in self.by_dataset.items()
        }
        self.listed = listed = self.manifest.get("columns")
        needed = {"dataset", "episode_id", "step"} | ({"action", "action_tokens"} if chunk else set())
        self.columns = (
            None if columns is None else sorted(set(columns) | needed | ({"image"} if obs_window > 1 else set()))
        )
        # the keys of every item: the mixture's columns (when the manifest lists them), as asked
        self.item_columns = None if listed is None else [c for c in listed if self.columns is None or c in self.columns]
        self.optional = [c for c in self.item_columns or [] if c not in ALWAYS_COLUMNS]
        # datasets whose rows must be read to know which are drawable (a sample filter's `sampled`)
        filtered = listed is None or "sampled" in listed
        self._filtered = {n: filtered and datasets[n].get("sample_filter", True) is not None for n in self.names}
        if rank is None and torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
        self.rank, self.world_size = rank or 0, world_size or 1
        self.epoch, self._consumed = 0, 0  # the pass of `epoch` has yielded `consumed` steps
        self._position_slot: tuple[int, int] | None = None  # (slot, slots) whose position that is
        self._finished = False  # the pass of `epoch` has yielded everything (epoch mode)
        self._loaded = False  # the position was loaded (load_state_dict) and not yet resumed from
        self.worker: int | None = None  # the DataLoader worker whose part this reader reads (None: its own)
        self._read_by_workers = torch.zeros(1, dtype=torch.int32).share_memory_()  # set by any worker's __iter__
        self._read_here = False
        self._reset_caches()

    def _reset_caches(self) -> None:
        self._files: OrderedDict[str, ShardFile] = OrderedDict()
        self._episodes: dict[str, Episodes] = {}
        self._drawable: dict[str, np.ndarray] = {}
        self._types: dict[str, pa.DataType] = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_files"] = OrderedDict()  # open memory maps do not cross processes: reopened where read
        return state

    # ------------------------------------------------------------ resumable state

    def state_dict(self) -> dict:
        if torch.utils.data.get_worker_info() is None and int(self._read_by_workers[0]) and not self._read_here:
            raise RuntimeError(
                "MixtureDataset.state_dict(): DataLoader workers read this dataset, each from its own copy, "
                "and the main process cannot know their positions; save the state of a "
                "torchdata.stateful_dataloader.StatefulDataLoader instead (loader.state_dict())"
            )
        slot, slots = self._slot()
        return {
            "epoch": self.epoch,
            "consumed": self._consumed,
            "finished": self._finished,
            "seed": self.seed,
            "mode": self.mode,
            "shuffle_buffer": self.buffer,
            "slot": slot,
            "slots": slots,
        }

    def load_state_dict(self, state: dict) -> None:
        mine = {"seed": self.seed, "mode": self.mode, "shuffle_buffer": self.buffer}
        for key, value in mine.items():
            if key in state and state[key] != value:
                raise ValueError(f"state was saved by a reader with {key}={state[key]!r}, this one has {value!r}")
        self.epoch, self._consumed = int(state["epoch"]), int(state["consumed"])
        self._finished, self._loaded = bool(state.get("finished", False)), True
        self._position_slot = (int(state["slot"]), int(state["slots"])) if "slots" in state else None

    def set_epoch(self, epoch: int) -> None:
        """Read epoch `epoch` from its start (a new order in epoch mode), unless a position in that very
        epoch was just loaded: then it continues from there."""
        if self._loaded and epoch == self.epoch:
            return
        self.epoch, self._consumed, self._finished, self._loaded = epoch, 0, False, False

    @property
    def consumed(self) -> int:
        """Steps this reader's pass of `epoch` has yielded (its position in the slot's stream)."""
        return self._consumed

    @consumed.setter
    def consumed(self, steps: int) -> None:
        """A position set from outside (with `worker`: shards.spatialvla) applies to whichever slot reads."""
        self._consumed, self._position_slot = steps, None

    # ------------------------------------------------------------ the index stream

    def _slot(self) -> tuple[int, int]:
        info = torch.utils.data.get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        worker = worker if self.worker is None else self.worker
        return self.rank * workers + worker, self.world_size * workers

    def _parts(self, slot: int, slots: int) -> dict[str, list]:
        """Per dataset, the (shard, first row, end row) ranges that this slot reads."""
        out = {}
        for n, shards in self.by_dataset.items():
            total = self._starts[n][-1]
            if self.mode == "epoch" or (self.mode == "disjoint" and total >= slots):
                out[n] = disjoint_parts(shards, slot, slots, starts=self._starts[n])
            else:  # stream mode; a dataset shared by all slots in disjoint mode
                out[n] = [(s, 0, s.num_rows) for s in shards]
        return out

    def events(self, slot: int | None = None, slots: int | None = None):
        """(leaving, entering) per step of the shuffle buffer, as (shard, row) pairs or None: `entering`
        went into the buffer, `leaving` came out of it (what the reader yields). Endless in stream and
        disjoint mode. Index arithmetic: replaying it to resume reads no image data. `slot` of `slots`:
        whose stream (default: this process's rank and DataLoader worker)."""
        if slot is None:
            slot, slots = self._slot()
        rng = np.random.default_rng([self.seed, self.epoch, slot])
        parts = self._parts(slot, slots)
        live = [n for n in self.names if parts[n]]
        queues = {n: self._rows(n, parts[n], rng) for n in live}
        buffer: list = []
        while live:
            p = np.array([self.weights[n] for n in live])
            if not p.sum() > 0:  # only datasets of weight 0 left (epoch mode): read them in turn
                p = np.ones(len(live))
            choices = rng.choice(len(live), size=1024, p=p / p.sum())  # drawn in blocks: cheaper than per step
            swaps = rng.random(1024)
            for c, u in zip(choices.tolist(), swaps.tolist()):
                item = next(queues[live[c]], None)
                if item is None:  # exhausted (epoch mode, or nothing to draw): draw again without it
                    live.remove(live[c])
                    break
                if len(buffer) < self.buffer:
                    buffer.append(item)
                    yield None, item
                    continue
                j = int(u * len(buffer))
                buffer[j], out = item, buffer[j]
                yield out, item
        order = rng.permutation(len(buffer))
        for j in order.tolist():
            yield buffer[j], None

    def indices(self, slot: int | None = None, slots: int | None = None):
        """(shard, row) in the order a slot yields them (default: this process's)."""
        return (out for out, _ in self.events(slot, slots) if out is not None)

    def _rows(self, dataset: str, parts: list, rng):
        """Rows of a dataset's parts, parts in a random order (every pass, endlessly unless in epoch mode
        or when there is nothing to draw). In disjoint mode a part without any drawable row falls back to
        the dataset's whole rows, so that the slot still samples the dataset at its weight."""
        while True:
            drawn = False
            for i in rng.permutation(len(parts)).tolist():
                shard, lo, hi = parts[i]
                drawable = self._drawable_rows(shard)
                rows = range(lo, hi) if drawable is None else (np.flatnonzero(drawable[lo:hi]) + lo).tolist()
                for row in rows:
                    drawn = True
                    yield shard, row
            if self.mode == "epoch":
                return
            if not drawn:
                whole = [(s, 0, s.num_rows) for s in self.by_dataset[dataset]]
                if parts == whole:
                    return
                parts = whole

    # ------------------------------------------------------------ shards and rows

    def _file(self, shard: Shard) -> ShardFile:
        """The shard, opened (and checked against its manifest entry) once per process; few kept open."""
        f = self._files.get(shard.path)
        if f is None:
            f = ShardFile(shard.path, self._entries[shard.path], shard.where, self.verify)
            self._files[shard.path] = f
            if len(self._files) > OPEN_SHARDS:
                self._files.popitem(last=False)
            for name, field in zip(f.names, f.reader.schema):
                self._types.setdefault(name, field.type)
        else:
            self._files.move_to_end(shard.path)
        return f

    def _episodes_of(self, shard: Shard) -> Episodes:
        """A shard's episodes, read (small columns only) and checked against the manifest once."""
        if shard.path not in self._episodes:
            f = self._file(shard)
            filtered = "sampled" in f.names
            table = f.read(SMALL_COLUMNS + (["sampled"] if filtered else []))
            check_shard(shard.where, f.names, table, self._entries[shard.path], shard.dataset, self.listed)
            is_last = table.column("is_last").to_numpy(zero_copy_only=False)
            moves = table.column("sampled").to_numpy(zero_copy_only=False) if filtered else None
            self._episodes[shard.path] = episodes_of(is_last, table.column("language_instruction").to_pylist(), moves)
        return self._episodes[shard.path]

    def _drawable_rows(self, shard: Shard) -> np.ndarray | None:
        """bool per row of a shard: may it be yielded (instruction where asked, a chunk that moves);
        None when every row may (nothing to read to know)."""
        if not (self.skip_unlabeled or self._filtered[shard.dataset]):
            return None
        if shard.path not in self._drawable:
            ep = self._episodes_of(shard)
            ok = chunk_sampled(ep.moves, self.chunk or 1, ep.ends)
            self._drawable[shard.path] = ok & ep.labeled if self.skip_unlabeled else ok
        return self._drawable[shard.path]

    def _row(self, batches: _Batches, shard: Shard, row: int) -> dict:
        episodes = self._episodes_of(shard)  # checks the shard the first time
        values, arrays, i = batches.locate(shard, row)
        step = {k: v[i] for k, v in values.items()}
        for k, v in arrays.items():
            step[k] = v[i].copy()
        if self.chunk:
            end = int(episodes.ends[row])
            wanted = np.arange(row, row + self.chunk)
            rows = np.minimum(wanted, end - 1)
            if i + int(rows[-1]) - row < len(arrays["action"]):  # the chunk lies in this record batch: one gather
                acts, toks = arrays["action"][rows - row + i], arrays["action_tokens"][rows - row + i]
            else:
                located = [batches.locate(shard, r) for r in rows.tolist()]
                acts = np.stack([a["action"][j] for _, a, j in located])
                toks = np.stack([a["action_tokens"][j] for _, a, j in located])
            step["chunk_mask"] = wanted < end
            step["action_chunk"] = pad_chunk(acts, step["chunk_mask"], self.absolute[shard.dataset])
            # tokens of the padding would need the grid (not read here): the last step's tokens, marked by chunk_mask
            step["token_chunk"] = toks
        if self.obs_window > 1:
            wanted = row - self.obs_delta * np.arange(self.obs_window - 1, -1, -1)
            start = int(episodes.starts[row])
            step["obs_mask"] = wanted >= start
            step["obs_images"] = []
            for r in np.maximum(wanted, start).tolist():
                v, _, j = batches.locate(shard, r)
                step["obs_images"].append(v["image"][j])
        return step

    def _type_of(self, column: str) -> pa.DataType | None:
        """A column's Arrow type, from any shard that has it (opened here if none was yet)."""
        if column not in self._types:
            for shards in self.by_dataset.values():
                if shards and column not in self._types:
                    self._file(shards[0])
        return self._types.get(column)

    def _finish(self, step: dict) -> dict:
        """Work done as a row leaves the buffer, so the buffer holds encoded images only: decoding, and
        the item's fixed keys (a column the row's dataset lacks as an empty value, `has_<column>`)."""
        if self.decode_images:
            for key in ("image", "wrist_image"):
                if step.get(key) is not None:
                    step[key] = _decoded(step[key])
            if "obs_images" in step:
                step["obs_images"] = [_decoded(b) for b in step["obs_images"]]
        if step.get("language_instruction") is None:
            step["language_instruction"] = ""
        if self.item_columns is not None:
            for column in self.optional:
                step[f"has_{column}"] = column in step
            for column in self.item_columns:
                if column not in step:
                    if self.decode_images and column in IMAGE_COLUMNS and column != "depth":
                        step[column] = np.zeros_like(step["image"]) if isinstance(step["image"], np.ndarray) else b""
                    else:
                        empty = _empty_like(self._type_of(column))
                        step[column] = empty.copy() if isinstance(empty, np.ndarray) else empty
        return step

    def __iter__(self):
        if torch.utils.data.get_worker_info() is not None:
            self._read_by_workers[0] = 1
        else:
            self._read_here = True
        loaded, self._loaded = self._loaded, False
        if self._finished:
            if loaded:  # resumed after the pass's last step: the rest of the pass is empty
                return
            self.epoch, self._consumed, self._finished = self.epoch + 1, 0, False  # the next pass
        slot, slots = self._slot()
        if self._consumed and self._position_slot not in (None, (slot, slots)):
            if loaded:
                raise ValueError(
                    f"state was saved by slot {self._position_slot[0]} of {self._position_slot[1]} (rank x DataLoader "
                    f"worker), this reader is slot {slot} of {slots}: resume with the same ranks and num_workers"
                )
            self._consumed = 0  # a position of another slot layout (e.g. items taken before workers): start the pass
        self._position_slot = (slot, slots)
        # rows are fetched as they enter the shuffle buffer (sequential reads) and held until they leave;
        # a row in the buffer more than once (a dataset smaller than the buffer) is fetched once
        sequential = _Batches(self, capacity=2 * len(self.names) + 2)
        random_access = _Batches(self, capacity=8)  # rows whose fetch a resume could not keep
        held: dict = {}  # (path, row) -> [step, copies in the buffer]
        pending: dict = {}  # while a resume is replayed: (path, row) -> [(shard, row), copies in the buffer]
        to_skip = self._consumed
        for leaving, entering in self.events(slot, slots):
            if to_skip:
                if entering is not None:
                    pending.setdefault((entering[0].path, entering[1]), [entering, 0])[1] += 1
                if leaving is not None:
                    _release(pending, (leaving[0].path, leaving[1]), copy=False)
                    to_skip -= 1
                    if not to_skip:  # replayed: fetch the buffer's rows in file order
                        held = {k: [self._row(sequential, *pending[k][0]), pending[k][1]] for k in sorted(pending)}
                        pending = {}
                continue
            if entering is not None:
                key = (entering[0].path, entering[1])
                if key in held:
                    held[key][1] += 1
                else:
                    held[key] = [self._row(sequential, *entering), 1]
            if leaving is None:
                continue
            self._consumed += 1
            row = _release(held, (leaving[0].path, leaving[1]))
            yield self._finish(row if row is not None else self._row(random_access, *leaving))
        self._finished = True  # the next pass (a new __iter__) reads the next epoch


def _release(held: dict, key, copy: bool = True):
    """One copy of `key` leaves the buffer: its step (a copy while others stay), None when not held."""
    entry = held.get(key)
    if entry is None:
        return None
    entry[1] -= 1
    if entry[1] > 0 and not copy:
        return entry[0]
    if entry[1] > 0:  # items are finished (decoded, filled) in place: the copies left keep theirs
        step = entry[0]
        return {
            k: v.copy() if isinstance(v, np.ndarray) else list(v) if isinstance(v, list) else v for k, v in step.items()
        }
    del held[key]
    return entry[0]


def _decoded(data: bytes) -> np.ndarray:
    pixels = decode(data)
    return pixels if pixels.flags.writeable else pixels.copy()  # PIL's arrays are read-only; torch wants writable


__all__ = ["MixtureDataset", "collate", "IntegrityError", "ManifestError"]
