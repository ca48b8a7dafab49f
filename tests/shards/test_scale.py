"""Many shards, many slots, kept so: an export of 20,001 shards (one tiny shard per dataset written by
write_table, hard-linked under 20,001 names, and its manifest) constructs in < 10 s and gives its
first item through a DataLoader with 2 workers in < 5 s; 64 ranks x 8 workers (512 slots, each slot's
index stream computed here without processes) share an epoch equally (within 1%), never serve a step
twice, and hold every dataset's weight, the 3-row one included."""

import itertools
import os
import time

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from shards.reader import MixtureDataset
from shards.schema import shard_name
from tests.shards.exports import steps_table, write_manifest, write_shard

SHARDS = {"big": 15_000, "mid": 5_000, "tiny": 1}
EPISODES = {"big": [4, 6], "mid": [10], "tiny": [3]}  # per shard: big 10 rows, mid 10, tiny 3
WEIGHTS = {"big": 1.0, "mid": 1.0, "tiny": 20_000.0}  # the tiny dataset upweighted, as mixtures do
RANKS, WORKERS = 64, 8


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    out = tmp_path_factory.mktemp("many")
    datasets = {}
    for name, count in SHARDS.items():
        first = out / "shards" / name / shard_name("train", 0, count)
        entry = write_shard(out, first, steps_table(name, EPISODES[name]), rows_per_batch=1024)
        entries = [entry]
        for i in range(1, count):  # the same bytes under another name: a valid shard of the dataset
            path = out / "shards" / name / shard_name("train", i, count)
            os.link(first, path)
            entries.append({**entry, "path": str(path.relative_to(out))})
        datasets[name] = {"shards": entries}
    write_manifest(out, datasets, WEIGHTS)
    return out


def test_twenty_thousand_shards_construct_in_seconds_and_serve_the_first_item(many):
    t0 = time.perf_counter()
    ds = MixtureDataset(str(many), mode="stream", seed=0)  # the default shuffle buffer: 10,000 steps
    construction = time.perf_counter() - t0
    assert len(ds.shards) == 20_001 and construction < 10, construction
    t0 = time.perf_counter()
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2)))
    first = time.perf_counter() - t0
    print(f"construction {construction:.2f} s, first item {first:.2f} s")
    assert len(batch["dataset"]) == 8 and first < 5, first


def test_512_slots_share_an_epoch_equally_and_serve_every_step_once(many):
    ds = MixtureDataset(str(many), mode="epoch", shuffle_buffer=16, seed=1)
    slots = RANKS * WORKERS
    seen, shares = set(), []
    for slot in range(slots):
        mine = [(s.path, r) for s, r in ds.indices(slot, slots)]
        shares.append(len(mine))
        seen.update(mine)
        assert len(seen) == sum(shares), f"slot {slot} serves a step another slot served"
    total = sum(n * sum(EPISODES[d]) for d, n in SHARDS.items())
    assert len(seen) == total == 200_003
    mean = total / slots
    assert max(abs(s - mean) for s in shares) <= 0.01 * mean, (min(shares), max(shares), mean)


def test_512_slots_hold_every_weight_however_small_the_dataset(many):
    """disjoint mode (what build_datasets uses): big and mid are spread over the slots, tiny (3 rows,
    fewer than the slots) is shared by all of them; over every slot's stream the datasets come at their
    effective weights (weight x rows)."""
    ds = MixtureDataset(str(many), mode="disjoint", shuffle_buffer=8, seed=2)
    slots, n = RANKS * WORKERS, 60
    counts = dict.fromkeys(SHARDS, 0)
    big_rows = set()
    for slot in range(slots):
        parts = ds._parts(slot, slots)
        assert all(parts[d] for d in SHARDS), f"slot {slot} has no rows of some dataset"
        for shard, row in itertools.islice(ds.indices(slot, slots), n):
            counts[shard.dataset] += 1
            if shard.dataset == "big":
                big_rows.add((shard.path, row))
    rows = {d: SHARDS[d] * sum(EPISODES[d]) for d in SHARDS}
    raw = {d: WEIGHTS[d] * rows[d] for d in SHARDS}
    expected = np.array([raw[d] / sum(raw.values()) * slots * n for d in SHARDS])
    stat, p = chisquare([counts[d] for d in SHARDS], expected)
    assert p > 0.001 and counts["tiny"] > 0.2 * slots * n, (counts, expected)
    assert len(big_rows) == counts["big"]  # spread: no big row drawn by two slots (or twice) in this window
