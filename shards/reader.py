"""The trainer's reader: a PyTorch IterableDataset over an export's manifest (no Beam, no TensorFlow).

    ds = MixtureDataset("output/oxe_magic_soup", mode="stream", seed=0, chunk=4, decode_images=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=4)

Sampling. Each step comes from dataset d with probability equal to its effective weight
(weight x transitions, normalized: OpenVLA's balancing; `balance=False` uses the given
weights alone). `mode="stream"` is endless: every worker samples datasets by weight from all
shards, with its own random stream. `mode="epoch"` reads every step exactly once: shards are
dealt disjointly and completely to the (rank, worker) slots, and each slot interleaves its
datasets by weight until all are exhausted.

Mechanics. All sampling and shuffling happens on row indices; rows are fetched from record
batches read on demand from memory-mapped shards (a small LRU bounded by the shuffle buffer),
so memory is bounded by the buffer, not the data. A resumed reader replays only the index
stream, which is cheap, and continues exactly where it stopped.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from manifests.weights import effective_weights
from shards.manifest import export_dir, load_manifest, shard_path, verify_manifest
from shards.schema import open_ipc
from transforms.frames import decode


@dataclass(frozen=True)
class Shard:
    dataset: str
    path: str
    num_rows: int


class _Batches:
    """Record batches of shards, decompressed on demand, least recently used dropped first."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.cache: OrderedDict = OrderedDict()
        self.readers: dict = {}
        self.offsets: dict = {}

    def _reader(self, path: str):
        if path not in self.readers:
            reader = open_ipc(path)
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
        verify: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
    ):
        super().__init__()
        if mode not in ("stream", "epoch"):
            raise ValueError(f"mode must be 'stream' or 'epoch', got {mode!r}")
        out_dir = export_dir(out_dir)
        self.manifest = verify_manifest(out_dir, check_hashes=True) if verify else load_manifest(out_dir)
        self.out_dir, self.mode, self.seed = out_dir, mode, seed
        self.buffer, self.chunk, self.decode_images = max(1, shuffle_buffer), chunk, decode_images
        datasets = self.manifest["datasets"]
        self.weights = effective_weights(
            self.manifest["weights"], {n: d["num_transitions"] for n, d in datasets.items()}, balance
        )
        self.names = sorted(datasets)
        self.shards = [
            Shard(n, shard_path(out_dir, s), s["num_rows"]) for n in self.names for s in datasets[n]["shards"]
        ]
        if rank is None and torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
        self.rank, self.world_size = rank or 0, world_size or 1
        self.epoch, self.consumed = 0, 0
        self._episode_ends: dict[str, np.ndarray] = {}

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
        return self.rank * workers + worker, self.world_size * workers

    def _my_shards(self, slot: int, slots: int) -> list[Shard]:
        if self.mode == "stream":
            return self.shards
        return [s for i, s in enumerate(self.shards) if i % slots == slot]

    def events(self):
        """(leaving, entering) per step of the shuffle buffer, as (shard, row) pairs or None: `entering`
        went into the buffer, `leaving` came out of it (what the reader yields). Endless in stream mode.
        Pure index arithmetic: replaying it to resume reads no data."""
        slot, slots = self._slot()
        rng = np.random.default_rng([self.seed, self.epoch, slot])
        shards = self._my_shards(slot, slots)
        by_dataset = {n: [s for s in shards if s.dataset == n and s.num_rows] for n in self.names}
        live = [n for n in self.names if by_dataset[n]]
        queues = {n: self._rows(by_dataset[n], rng) for n in live}
        buffer: list = []
        while live:
            p = np.array([self.weights[n] for n in live])
            choices = rng.choice(len(live), size=1024, p=p / p.sum())  # drawn in blocks: cheaper than per step
            swaps = rng.random(1024)
            for c, u in zip(choices.tolist(), swaps.tolist()):
                item = next(queues[live[c]], None)
                if item is None:  # exhausted (epoch mode): draw again without it
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

    def _rows(self, shards: list[Shard], rng):
        """Rows of a dataset's shards, shards in a random order (every pass, endlessly in stream mode)."""
        while True:
            for i in rng.permutation(len(shards)):
                s = shards[i]
                for row in range(s.num_rows):
                    yield s, row
            if self.mode == "epoch":
                return

    # ------------------------------------------------------------ rows

    def _episode_end(self, batches: _Batches, shard: Shard) -> np.ndarray:
        if shard.path not in self._episode_ends:
            reader = open_ipc(shard.path, columns=["is_last"])  # one column decompressed
            last = np.flatnonzero(reader.read_all().column("is_last").to_numpy(zero_copy_only=False))
            ends = np.empty(shard.num_rows, np.int64)
            start = 0
            for e in last:
                ends[start : e + 1] = e + 1
                start = e + 1
            self._episode_ends[shard.path] = ends
        return self._episode_ends[shard.path]

    def _row(self, batches: _Batches, shard: Shard, row: int) -> dict:
        cols, i = batches.locate(shard.path, row)
        step = {k: v[i] for k, v in cols.items()}
        if self.chunk:
            end = self._episode_end(batches, shard)[row]
            rows = [min(r, end - 1) for r in range(row, row + self.chunk)]
            acts, toks = [], []
            for r in rows:
                c, j = batches.locate(shard.path, r)
                acts.append(c["action"][j])
                toks.append(c["action_tokens"][j])
            step["action_chunk"] = np.stack(acts)  # padded at the episode's end by repeating its last step
            step["token_chunk"] = np.stack(toks)
            step["chunk_mask"] = np.arange(row, row + self.chunk) < end
        return step

    def _finish(self, step: dict) -> dict:
        """Work done as a row leaves the buffer, so the buffer holds encoded images only."""
        if self.decode_images:
            for key in ("image", "wrist_image"):
                if step.get(key) is not None:
                    step[key] = decode(step[key])
        return step

    def __iter__(self):
        # rows are fetched as they enter the shuffle buffer (sequential reads) and held until they leave
        sequential = _Batches(capacity=2 * len(self.names) + 2)
        random_access = _Batches(capacity=8)  # rows that entered the buffer while a resume was replayed
        held: dict = {}
        to_skip = self.consumed
        for leaving, entering in self.events():
            if entering is not None and to_skip == 0:
                held[(entering[0].path, entering[1])] = self._row(sequential, *entering)
            if leaving is None:
                continue
            if to_skip:
                to_skip -= 1
                continue
            self.consumed += 1
            row = held.pop((leaving[0].path, leaving[1]), None)
            yield self._finish(row if row is not None else self._row(random_access, *leaving))
        self.epoch, self.consumed = self.epoch + 1, 0
