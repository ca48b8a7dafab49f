"""The trainer's reader: a PyTorch IterableDataset over an export's manifest (no Beam, no TensorFlow).

    ds = MixtureDataset("output/oxe_magic_soup", mode="stream", seed=0, chunk=4, decode_images=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=4)

Sampling. Each step comes from dataset d with probability equal to its effective weight
(weight x transitions, normalized: OpenVLA's balancing; `balance=False` uses the given
weights alone). `mode="stream"` is endless: every worker samples datasets by weight from all
shards, with its own random stream. `mode="epoch"` reads every step exactly once: shards are
dealt disjointly and completely to the (rank, worker) slots, and each slot interleaves its
datasets by weight until all are exhausted. `mode="disjoint"` is endless like "stream", but each
dataset's rows are split into equal contiguous parts, one per (rank, worker) slot, so no two slots
ever yield the same step and every slot still sees every dataset at its weight.

Chunks. `chunk=K` adds the episode's actions t..t+K-1; past the episode's end a dimension that the
manifest marks absolute (`absolute_action_mask`, default: the gripper) repeats the last value and
a relative one is 0.0 (normalized zero), as the public OXE pipelines pad; `chunk_mask` says which
entries are real. `obs_window=N` adds the images of steps t-(N-1)d..t (floored at the episode's
first step; `obs_mask` says which are real).

Mechanics. All sampling and shuffling happens on row indices; rows are fetched from record
batches read on demand from memory-mapped shards (a small LRU bounded by the shuffle buffer),
so memory is bounded by the buffer, not the data. A resumed reader replays only the index
stream, which is cheap, fetches what its buffer held in file order, and continues exactly where
it stopped. The index stream reads three small columns of each shard it visits (`is_last`,
`language_instruction`, `dataset`; and `sampled` where the dataset has a sample filter).

Samples. Steps a dataset's sample filter marks `sampled == False` (DROID's still steps) are never
yielded, but serve as context: a step is drawn when any step of its action chunk moves
(transforms.sampling.chunk_sampled, the public chunk filter). `skip_unlabeled=True`: episodes
without any instruction are never drawn.

Trust. Every shard is checked as it is first opened: its rows, columns and `dataset` column against
the manifest (a valid shard of another dataset swapped in is refused); at construction every shard
must exist with the manifest's size, and `verify=True` (the default) also checks each one's sha256,
which reads every byte once: `verify=False` skips only that.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from manifests.weights import effective_weights
from shards.manifest import ManifestError, export_dir, shard_path, verify_manifest
from shards.schema import open_ipc
from transforms.frames import decode
from transforms.sampling import chunk_sampled

ACTION_DIM = 7
DEFAULT_ABSOLUTE_ACTION_MASK = [False] * 6 + [True]  # xyz, rpy deltas relative; the gripper absolute
DISJOINT_BLOCK_ROWS = 1024  # a slot's part is visited in blocks of this many rows, in a random order each pass
MODES = ("stream", "epoch", "disjoint")
REQUIRED_COLUMNS = {"dataset", "episode_id", "step", "is_first", "is_last", "language_instruction", "image", "action"}


@dataclass(frozen=True)
class Shard:
    dataset: str
    path: str
    num_rows: int


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


def disjoint_parts(shards: list[Shard], slot: int, slots: int, block: int = DISJOINT_BLOCK_ROWS) -> list:
    """This slot's equal, contiguous share of the rows of `shards` (one dataset's, in order), as
    (shard, first row, end row) ranges cut at multiples of `block` rows within each shard."""
    total = sum(s.num_rows for s in shards)
    lo, hi = total * slot // slots, total * (slot + 1) // slots
    parts, offset = [], 0
    for s in shards:
        a, b = max(lo - offset, 0), min(hi - offset, s.num_rows)
        cuts = [a, *range((a // block + 1) * block, b, block), b]
        parts += [(s, x, y) for x, y in zip(cuts[:-1], cuts[1:]) if y > x]
        offset += s.num_rows
    return parts


class _Batches:
    """Record batches of shards, decompressed on demand, least recently used dropped first."""

    def __init__(self, capacity: int, columns: list[str] | None = None):
        self.capacity = capacity
        self.columns = columns
        self.cache: OrderedDict = OrderedDict()
        self.readers: dict = {}
        self.offsets: dict = {}

    def _reader(self, path: str):
        if path not in self.readers:
            reader = open_ipc(path, self.columns)
            meta = reader.schema.metadata or {}
            n = reader.num_record_batches
            if b"rows_per_batch" in meta:  # written by shards.schema.write_table: fixed-size batches, the last shorter
                offsets = np.arange(n + 1) * int(meta[b"rows_per_batch"])
            else:
                offsets = np.concatenate([[0], np.cumsum([reader.get_record_batch(i).num_rows for i in range(n)])])
            self.readers[path] = reader
            self.offsets[path] = offsets
        return self.readers[path]

    def locate(self, path: str, row: int) -> tuple[dict, int]:
        reader = self._reader(path)
        b = int(np.searchsorted(self.offsets[path], row, side="right") - 1)
        key = (path, b)
        if key not in self.cache:
            batch = reader.get_record_batch(b)
            self.cache[key] = _columns(batch)
            if len(self.cache) > self.capacity:
                self.cache.popitem(last=False)
        else:
            self.cache.move_to_end(key)
        return self.cache[key], row - int(self.offsets[path][b])


def _columns(batch: pa.RecordBatch) -> dict:
    """A record batch as numpy arrays and python lists, converted once for fast row access."""
    out = {}
    for name, col in zip(batch.schema.names, batch.columns):
        if pa.types.is_fixed_size_list(col.type):
            out[name] = col.values.to_numpy(zero_copy_only=False).reshape(len(col), col.type.list_size)
        elif pa.types.is_integer(col.type) or pa.types.is_boolean(col.type):
            out[name] = col.to_numpy(zero_copy_only=False)
        else:
            out[name] = col.to_pylist()
    return out


class MixtureDataset(torch.utils.data.IterableDataset):
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
        self.manifest = verify_manifest(out_dir, check_hashes=verify)  # sizes always, sha256 unless verify=False
        self.out_dir, self.mode, self.seed = out_dir, mode, seed
        self.buffer, self.chunk, self.decode_images = max(1, shuffle_buffer), chunk, decode_images
        self.obs_window, self.obs_delta, self.skip_unlabeled = obs_window, obs_delta, skip_unlabeled
        datasets = self.manifest["datasets"]
        self.weights = effective_weights(
            self.manifest["weights"], {n: d["num_transitions"] for n, d in datasets.items()}, balance
        )
        self.absolute = absolute_action_masks(self.manifest)
        self.names = sorted(datasets)
        self.shards = [
            Shard(n, shard_path(out_dir, s), s["num_rows"]) for n in self.names for s in datasets[n]["shards"]
        ]
        needed = {"dataset", "episode_id", "step"} | ({"action", "action_tokens"} if chunk else set())
        self.columns = (
            None if columns is None else sorted(set(columns) | needed | ({"image"} if obs_window > 1 else set()))
        )
        if rank is None and torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
        self.rank, self.world_size = rank or 0, world_size or 1
        self.epoch, self.consumed = 0, 0
        self.worker: int | None = None  # the DataLoader worker whose part this reader reads (None: its own)
        self._episodes: dict[str, Episodes] = {}
        self._drawable: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------ resumable state

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "consumed": self.consumed, "seed": self.seed, "mode": self.mode}

    def load_state_dict(self, state: dict) -> None:
        if state["seed"] != self.seed or state["mode"] != self.mode:
            raise ValueError("state was saved by a reader with another seed or mode")
        self.epoch, self.consumed = state["epoch"], state["consumed"]

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.consumed = epoch, 0

    # ------------------------------------------------------------ the index stream

    def _slot(self) -> tuple[int, int]:
        info = torch.utils.data.get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        worker = worker if self.worker is None else self.worker
        return self.rank * workers + worker, self.world_size * workers

    def _parts(self, slot: int, slots: int) -> dict[str, list]:
        """Per dataset, the (shard, first row, end row) ranges that this slot reads."""
        by_dataset = {n: [s for s in self.shards if s.dataset == n and s.num_rows] for n in self.names}
        if self.mode == "disjoint":
            return {n: disjoint_parts(shards, slot, slots) for n, shards in by_dataset.items()}
        if self.mode == "epoch":
            mine = {s.path for i, s in enumerate(self.shards) if i % slots == slot}
            by_dataset = {n: [s for s in shards if s.path in mine] for n, shards in by_dataset.items()}
        return {n: [(s, 0, s.num_rows) for s in shards] for n, shards in by_dataset.items()}

    def events(self):
        """(leaving, entering) per step of the shuffle buffer, as (shard, row) pairs or None: `entering`
        went into the buffer, `leaving` came out of it (what the reader yields). Endless in stream and
        disjoint mode. Index arithmetic: replaying it to resume reads no image data."""
        slot, slots = self._slot()
        rng = np.random.default_rng([self.seed, self.epoch, slot])
        parts = self._parts(slot, slots)
        live = [n for n in self.names if parts[n]]
        queues = {n: self._rows(parts[n], rng) for n in live}
        buffer: list = []
        while live:
            p = np.array([self.weights[n] for n in live])
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

    def indices(self):
        """(shard, row) in the order this slot yields them."""
        return (out for out, _ in self.events() if out is not None)

    def _rows(self, parts: list, rng):
        """Rows of a dataset's parts, parts in a random order (every pass, endlessly unless in epoch mode
        or when there is nothing to draw)."""
        while True:
            drawn = False
            for i in rng.permutation(len(parts)):
                shard, lo, hi = parts[i]
                rows = (np.flatnonzero(self._drawable_rows(shard)[lo:hi]) + lo).tolist()
                for row in rows:
                    drawn = True
                    yield shard, row
            if self.mode == "epoch" or not drawn:
                return

    # ------------------------------------------------------------ rows

    def _episodes_of(self, shard: Shard) -> Episodes:
        """A shard's episodes, read (small columns only) and checked against the manifest once."""
        if shard.path not in self._episodes:
            names = open_ipc(shard.path).schema.names
            missing = sorted(REQUIRED_COLUMNS - set(names))
            unknown = sorted(set(names) - set(self.manifest.get("columns") or names))
            if missing or unknown:
                raise ManifestError(
                    f"shard {shard.path} of dataset '{shard.dataset}': "
                    + (f"no column(s) {missing}" if missing else f"column(s) {unknown} the manifest does not list")
                )
            small = ["is_last", "language_instruction", "dataset"] + (["sampled"] if "sampled" in names else [])
            table = open_ipc(shard.path, columns=small).read_all()
            if table.num_rows != shard.num_rows:
                raise ManifestError(
                    f"shard {shard.path} of dataset '{shard.dataset}': {table.num_rows} rows, the manifest says "
                    f"{shard.num_rows}"
                )
            others = set(table.column("dataset").unique().to_pylist()) - {shard.dataset}
            if others:
                raise ManifestError(
                    f"shard {shard.path}: rows of dataset(s) {sorted(others)}, the manifest lists it under "
                    f"'{shard.dataset}'"
                )
            is_last = table.column("is_last").to_numpy(zero_copy_only=False)
            moves = table.column("sampled").to_numpy(zero_copy_only=False) if "sampled" in names else None
            self._episodes[shard.path] = episodes_of(is_last, table.column("language_instruction").to_pylist(), moves)
        return self._episodes[shard.path]

    def _drawable_rows(self, shard: Shard) -> np.ndarray:
        """bool per row of a shard: may it be yielded (instruction where asked, a chunk that moves)."""
        if shard.path not in self._drawable:
            ep = self._episodes_of(shard)
            ok = chunk_sampled(ep.moves, self.chunk or 1, ep.ends)
            self._drawable[shard.path] = ok & ep.labeled if self.skip_unlabeled else ok
        return self._drawable[shard.path]

    def _row(self, batches: _Batches, shard: Shard, row: int) -> dict:
        episodes = self._episodes_of(shard)  # checks the shard the first time
        cols, i = batches.locate(shard.path, row)
        step = {k: v[i] for k, v in cols.items()}
        if self.chunk:
            end = int(episodes.ends[row])
            wanted = np.arange(row, row + self.chunk)
            rows = np.minimum(wanted, end - 1)
            if i + int(rows[-1]) - row < len(cols["action"]):  # the chunk lies in this record batch: one gather
                acts, toks = cols["action"][rows - row + i], cols["action_tokens"][rows - row + i]
            else:
                located = [batches.locate(shard.path, r) for r in rows.tolist()]
                acts = np.stack([c["action"][j] for c, j in located])
                toks = np.stack([c["action_tokens"][j] for c, j in located])
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
                c, j = batches.locate(shard.path, r)
                step["obs_images"].append(c["image"][j])
        return step

    def _finish(self, step: dict) -> dict:
        """Work done as a row leaves the buffer, so the buffer holds encoded images only."""
        if self.decode_images:
            for key in ("image", "wrist_image"):
                if step.get(key) is not None:
                    step[key] = decode(step[key])
            if "obs_images" in step:
                step["obs_images"] = [decode(b) for b in step["obs_images"]]
        return step

    def __iter__(self):
        # rows are fetched as they enter the shuffle buffer (sequential reads) and held until they leave
        sequential = _Batches(capacity=2 * len(self.names) + 2, columns=self.columns)
        random_access = _Batches(capacity=8, columns=self.columns)  # rows held twice in the buffer
        held: dict = {}
        pending: dict = {}  # while a resume is replayed: what the buffer holds, fetched when the replay ends
        to_skip = self.consumed
        for leaving, entering in self.events():
            if to_skip:
                if entering is not None:
                    pending[(entering[0].path, entering[1])] = entering
                if leaving is not None:
                    pending.pop((leaving[0].path, leaving[1]), None)
                    to_skip -= 1
                    if not to_skip:  # replayed: fetch the buffer's rows in file order
                        held = {k: self._row(sequential, *pending[k]) for k in sorted(pending)}
                        pending = {}
                continue
            if entering is not None:
                held[(entering[0].path, entering[1])] = self._row(sequential, *entering)
            if leaving is None:
                continue
            self.consumed += 1
            row = held.pop((leaving[0].path, leaving[1]), None)
            yield self._finish(row if row is not None else self._row(random_access, *leaving))
        self.epoch, self.consumed = self.epoch + 1, 0
