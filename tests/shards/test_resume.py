"""Resume through torchdata's StatefulDataLoader: interrupted at several points (while the shuffle
buffers fill, past them, at and across an epoch boundary), with 2 and 3 DataLoader workers, in every
mode, on one rank and on 2 simulated ranks, the resumed stream equals the uninterrupted one batch for
batch. A plain DataLoader with workers cannot tell its workers' positions: ds.state_dict() refuses."""

import pickle

import pytest
import torch
from torchdata.stateful_dataloader import StatefulDataLoader

from shards.reader import MixtureDataset
from tests.shards.exports import build_export

# the reader's paths warn about nothing; torchdata 0.11's StatefulDataLoader calls torch.set_vital, which
# torch >= 2.10 deprecates with a warning of its own (not ours: torchdata's newest release does it);
# torch warns when a DataLoader has more workers than the machine has cores (3 here, on 2 cores)
pytestmark = [
    pytest.mark.filterwarnings("error"),
    pytest.mark.filterwarnings("ignore:'set_vital' is deprecated:UserWarning"),
    pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning"),
]

EPISODES = {"a": [[5, 9, 3], [7, 6, 4]], "b": [[10, 2, 8]], "c": [[3] * 8, [3] * 4]}  # 90 steps
BATCH = 4


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume")
    build_export(out, EPISODES, {"a": 1.0, "b": 2.0, "c": 0.5}, wrist=("b",), rows_per_batch=4)
    return out


def keys(batch) -> list:
    return [(e, int(s)) for e, s in zip(batch["episode_id"], batch["step"])]


def reader(export, mode, rank, ranks):
    return MixtureDataset(str(export), mode=mode, shuffle_buffer=16, seed=11, rank=rank, world_size=ranks)


def run(export, mode, workers, rank, ranks, epochs, stop=None, state=None):
    """Batches of the loop `for epoch: ds.set_epoch(epoch); for batch in loader` (endless modes: 30
    batches a round), from `state` (epoch, loader state) when given; stops after `stop` batches and
    returns them with (epoch, loader.state_dict()) at that point."""
    ds = reader(export, mode, rank, ranks)
    loader = StatefulDataLoader(ds, batch_size=BATCH, num_workers=workers)
    first, done = 0, 0
    if state is not None:
        first, done, loader_state = state
        loader.load_state_dict(pickle.loads(pickle.dumps(loader_state)))  # as through a checkpoint file
    out = []
    for epoch in range(first, epochs):
        ds.set_epoch(epoch)
        for batch in loader:
            out.append(keys(batch))
            if stop is not None and len(out) == stop:
                return out, (epoch, stop, loader.state_dict())
            if mode != "epoch" and done + len(out) == 30:  # endless modes: 30 batches
                break
    return out, None


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("mode", ["stream", "disjoint", "epoch"])
@pytest.mark.parametrize("ranks", [1, 2])
def test_an_interrupted_run_resumes_exactly(export, mode, workers, ranks):
    for rank in range(ranks):
        epochs = 2 if mode == "epoch" else 1
        whole, _ = run(export, mode, workers, rank, ranks, epochs)
        first_epoch = len(run(export, mode, workers, rank, ranks, 1)[0])
        assert len(whole) > 8 and len(set(map(tuple, whole))) > 1
        # 2: while the workers' shuffle buffers (16 steps each) fill; 9, 17: past them; the epoch boundary
        # (the last batch of the first epoch) and past it
        points = [2, 9, 17] + ([first_epoch, first_epoch + 2] if mode == "epoch" else [])
        for stop in points:
            head, state = run(export, mode, workers, rank, ranks, epochs, stop=stop)
            tail, _ = run(export, mode, workers, rank, ranks, epochs, state=state)
            assert head + tail == whole, (mode, workers, rank, ranks, stop)


def test_epoch_mode_with_workers_and_ranks_reads_every_step_once_per_epoch(export):
    seen = {0: [], 1: []}
    for rank in range(2):
        for epoch in range(2):
            ds = reader(export, "epoch", rank, 2)
            ds.set_epoch(epoch)
            for batch in StatefulDataLoader(ds, batch_size=BATCH, num_workers=3):
                seen[epoch] += keys(batch)
    steps = {(f"{d}-{i}#{e}", s) for d, shards in EPISODES.items() for i, eps in enumerate(shards)
             for e, t in enumerate(eps) for s in range(t)}  # fmt: skip
    for epoch in (0, 1):
        assert len(seen[epoch]) == len(steps) == len(set(seen[epoch])) and set(seen[epoch]) == steps
    assert seen[0] != seen[1]  # set_epoch: a new order


def test_main_process_state_refuses_when_workers_read(export):
    ds = reader(export, "stream", 0, 1)
    loader = torch.utils.data.DataLoader(ds, batch_size=BATCH, num_workers=2)
    it = iter(loader)
    next(it), next(it)
    with pytest.raises(RuntimeError, match=r"^MixtureDataset.state_dict\(\): DataLoader workers read this dataset"):
        ds.state_dict()
    del it


def test_a_state_is_refused_by_another_slot_layout(export):
    """A position saved by one slot (no workers) loaded into a reader read by 2 workers: refused."""
    ds = reader(export, "stream", 0, 1)
    it = iter(ds)
    for _ in range(5):
        next(it)
    state = ds.state_dict()
    other = reader(export, "stream", 0, 1)
    other.load_state_dict(state)
    with pytest.raises(Exception, match=r"state was saved by slot 0 of 1 .* this reader is slot 0 of 2"):
        next(iter(torch.utils.data.DataLoader(other, batch_size=BATCH, num_workers=2)))
    other = reader(export, "stream", 0, 1)
    with pytest.raises(ValueError, match="state was saved by a reader with seed=11, this one has 12"):
        MixtureDataset(str(export), shuffle_buffer=16, seed=12).load_state_dict(state)
