"""Integrity at read time (shards.integrity): checksums per record batch and column, pinned by the
manifest, verified as each batch is read; python -m shards.verify for every byte; construction that
reads the manifest only (bytes measured with /proc/self/io, small vs large export)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from shards.integrity import IntegrityError, column_digest
from shards.manifest import ManifestError
from shards.reader import MixtureDataset
from shards.verify import verify
from tests.conftest import ROOT
from tests.shards.exports import build_export, steps_table

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
EPISODES = {"a": [[6, 5, 7], [9]], "b": [[8, 8]]}


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """Images of 300 random bytes (found verbatim in the files: zstd stores incompressible data as is),
    4 rows per record batch."""
    out = tmp_path_factory.mktemp("integrity")
    build_export(out, EPISODES, {"a": 1.0, "b": 1.0}, rows_per_batch=4, image_bytes=300)
    return out


def copy_of(export, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(export, dst)
    return dst


def flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


def image_offset(path, table, row):
    """Where row `row`'s image bytes lie in the shard file."""
    offset = path.read_bytes().find(table.column("image")[row].as_py())
    assert offset > 0
    return offset


def rows_read(ds) -> list:
    return [(s["episode_id"], int(s["step"]), bytes(s["image"])) for s in ds]


def test_checksums_of_values_are_the_same_in_memory_and_read_back():
    """The writer hashes slices of in-memory arrays; the reader the arrays it reads back (offset 0,
    rebased offsets, validity bitmaps dropped): equal for every type, with and without nulls."""
    arrays = [
        pa.array([1, None, 3, 4, 5, 6], pa.int32()),
        pa.array([True, False, None, True, True, False]),
        pa.array(["a", "bc", None, "", "def", "g"]),
        pa.array([b"x", b"yz", b"", None, b"w", b"v"], pa.binary()),
        pa.array([[1.0, 2.0], [3.0, 4.0], None, [5.0, 6.0], [7.0, 8.0], [9.0, 0.0]], pa.list_(pa.float32(), 2)),
        pa.array([[1], [2, 3], [], None, [4, 5, 6], [7]], pa.list_(pa.int32())),
        pa.array([{"k": 1}, {"k": 2}, None, {"k": 4}, {"k": 5}, {"k": 6}]),  # other types: serialized
    ]
    table = pa.table({f"c{i}": a for i, a in enumerate(arrays)})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as w:
        w.write_table(table, max_chunksize=4)
    back = pa.ipc.open_file(sink.getvalue())
    written = table.to_batches(max_chunksize=4)
    for b in range(2):
        for name in table.column_names:
            assert written[b].column(name).offset == 4 * b
            assert column_digest(written[b].column(name)) == column_digest(back.get_batch(b).column(name)), name
    assert column_digest(arrays[0].slice(0, 3)) != column_digest(arrays[0].slice(1, 3))


def test_a_corrupted_byte_is_refused_when_its_batch_is_read(export, tmp_path):
    """A byte of a record batch not read at construction nor by the first items: the items of the
    batches before it are served, then the reader stops with one line naming the shard, batch and column."""
    copy = copy_of(export, tmp_path)
    path = copy / "shards" / "a" / "train-00000-of-00002.arrow"
    table = steps_table("a", EPISODES["a"][0], 0, image_bytes=300)
    original = {(e, s): img for e, s, img in rows_read(MixtureDataset(str(export), mode="epoch"))}
    for row in (5, 13, 17):  # batches 1, 3 and the last (4: rows 16-17)
        dst = copy_of(export, tmp_path / f"r{row}")
        flip(dst / path.relative_to(copy), image_offset(path, table, row) + 7)
        ds = MixtureDataset(str(dst), mode="epoch", shuffle_buffer=1, seed=0, columns=["image"])
        served = []
        with pytest.raises(IntegrityError) as e:
            for item in ds:
                served.append(item)
        batch = row // 4
        assert str(e.value) == (
            f"shard shards/a/train-00000-of-00002.arrow of dataset 'a': record batch {batch} "
            f"(rows {4 * batch}-{min(4 * batch + 3, 17)}), column 'image' does not match its checksum "
            "(corrupt or changed since the export)"
        )
        assert served  # items came before the bad batch was read
        # verify=False trusts the bytes: the flipped image is served as it is
        trusted = {(e, s): img for e, s, img in rows_read(MixtureDataset(str(dst), mode="epoch", verify=False))}
        changed = [k for k, img in trusted.items() if img != original[k]]
        assert len(trusted) == 43 and changed == [
            ("a-0#" + str(int(row >= 6) + int(row >= 11)), row - [0, 6, 11][int(row >= 6) + int(row >= 11)])
        ]


def test_no_corrupted_byte_anywhere_is_ever_served(export, tmp_path):
    """Byte flips all over a shard: the reader (all columns) refuses in one line naming the shard, or
    serves exactly the original rows (a flip in bytes no reader interprets: padding); shards.verify
    finds every one of them."""
    path = export / "shards" / "b" / "train-00000-of-00001.arrow"
    original = rows_read(MixtureDataset(str(export), mode="epoch", seed=0))
    size = path.stat().st_size
    refused = 0
    offsets = np.linspace(0, size - 1, 101).astype(int).tolist()
    for offset in offsets:
        copy = copy_of(export, tmp_path / str(offset))
        flip(copy / path.relative_to(export), offset)
        try:
            got = rows_read(MixtureDataset(str(copy), mode="epoch", seed=0))
        except ManifestError as e:
            assert str(e).startswith("shard shards/b/train-00000-of-00001.arrow of dataset 'b': ") and "\n" not in str(
                e
            )
            refused += 1
        else:
            assert got == original, offset
        problems = verify(str(copy), threads=1, echo=lambda line: None)
        assert len(problems) == 1 and "shards/b/train-00000-of-00001.arrow" in problems[0], offset
        shutil.rmtree(copy)
    # ~16% of a shard's bytes change nothing a reader decodes (flatbuffer padding and fields the file
    # reader does not use, the leading schema's padding): served identical, as the checksums prove
    assert refused >= 0.6 * len(offsets)


def test_shards_verify_checks_every_byte_once(export, tmp_path):
    run = lambda *args: subprocess.run([sys.executable, "-m", "shards.verify", *map(str, args)], env=ENV,
                                       capture_output=True, text=True, timeout=120)  # fmt: skip
    ok = run(export)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.splitlines()[-1].endswith(
        "checked every byte of 3 shard(s), 43 rows, "
        + ok.stdout.split("rows, ")[1].split(" in ")[0]
        + " in "
        + ok.stdout.split(" in ")[-1].split(":")[0]
        + ": everything matches the manifest"
    )
    copy = copy_of(export, tmp_path)
    a0 = copy / "shards" / "a" / "train-00000-of-00002.arrow"
    flip(a0, image_offset(a0, steps_table("a", EPISODES["a"][0], 0, image_bytes=300), 9))
    b0 = copy / "shards" / "b" / "train-00000-of-00001.arrow"
    b0.write_bytes(b0.read_bytes()[:-1])
    bad = run(copy)
    lines = bad.stdout.splitlines()
    assert bad.returncode == 1 and len(lines) == 3, bad.stdout
    assert lines[0] == (
        "shard shards/a/train-00000-of-00002.arrow of dataset 'a': sha256 does not match the manifest; "
        "record batch 2 (rows 8-11), column 'image' does not match its checksum (corrupt or changed since the export)"
    )
    assert (
        lines[1].startswith("shard shards/b/train-00000-of-00001.arrow of dataset 'b': ")
        and "bytes, the manifest says" in lines[1]
    )
    assert lines[2].endswith(": 2 problem(s)")
    quick = run(copy, "--quick")  # sizes only: finds the truncated shard, not the flipped byte
    assert quick.returncode == 1 and len(quick.stdout.splitlines()) == 2 and "dataset 'b'" in quick.stdout
    missing = run(tmp_path / "nowhere")
    assert missing.returncode == 2 and missing.stderr.startswith("error: ") and "no manifest" in missing.stderr


def test_a_shard_written_before_checksums_is_hashed_whole_when_opened(export, tmp_path):
    copy = copy_of(export, tmp_path)
    path = copy / "shards" / "b" / "train-00000-of-00001.arrow"
    table = pa.ipc.open_file(pa.memory_map(str(path))).read_all().replace_schema_metadata({"rows_per_batch": "4"})
    with open(path, "wb") as f, pa.ipc.new_file(f, table.schema) as w:  # as write_table wrote them before
        w.write_table(table, max_chunksize=4)
    manifest = json.loads((copy / "manifest.json").read_text())
    entry = manifest["datasets"]["b"]["shards"][0]
    del entry["checksums_sha256"]
    import hashlib

    entry.update(bytes=path.stat().st_size, sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert len(rows_read(MixtureDataset(str(copy), mode="epoch"))) == 43
    flip(path, path.stat().st_size // 2)
    with pytest.raises(IntegrityError, match=r"dataset 'b': sha256 does not match the manifest"):
        rows_read(MixtureDataset(str(copy), mode="epoch"))


def test_a_rewrite_refuses_a_corrupted_shard_and_pins_the_new_ones(export, tmp_path):
    from shards.rewrite import commit_rewrite, plan_rewrite, rewrite_shard
    from storage.jsonio import read_json

    copy = copy_of(export, tmp_path)
    manifest = read_json(str(copy / "manifest.json"))
    jobs = plan_rewrite(str(copy), manifest, {"new": "grid"}, None)
    encode = lambda actions: np.full((len(actions), 3), 7, np.int32)
    path = copy / "shards" / "a" / "train-00000-of-00002.arrow"
    flip(path, image_offset(path, steps_table("a", EPISODES["a"][0], 0, image_bytes=300), 3))
    with pytest.raises(IntegrityError, match=r"record batch 0 \(rows 0-3\), column 'image' does not match"):
        rewrite_shard(jobs[0], encode)  # never rewritten under fresh checksums
    path.write_bytes((export / path.relative_to(copy)).read_bytes())
    for job in jobs:
        rewrite_shard(job, encode)
    new = commit_rewrite(str(copy), manifest, jobs, {"new": "grid"}, None)
    assert all(s["checksums_sha256"] != o["checksums_sha256"] for d in new["datasets"] for s, o in
               zip(new["datasets"][d]["shards"], manifest["datasets"][d]["shards"]))  # fmt: skip
    items = list(MixtureDataset(str(copy), mode="epoch"))
    assert len(items) == 43 and all(i["action_tokens"].tolist() == [7, 7, 7] for i in items)


CONSTRUCTION = """
import json, sys
def io():
    return {k: int(v) for k, v in (line.split(": ") for line in open("/proc/self/io").read().splitlines())}
from shards.reader import MixtureDataset
from shards.verify import verify
from shards.spatialvla import build_datasets
from tests.shards.test_spatialvla import data_args
MixtureDataset(sys.argv[1], mode="disjoint", seed=0), build_datasets(data_args(sys.argv[1]), None)  # lazy imports
before = io()
MixtureDataset(sys.argv[1], mode="disjoint", seed=0)
between = io()
build_datasets(data_args(sys.argv[1]), None)
after = io()
print(json.dumps({"reader": between["rchar"] - before["rchar"], "build_datasets": after["rchar"] - between["rchar"],
                  "reader_disk": between["read_bytes"] - before["read_bytes"]}))
"""


def construction_bytes(out) -> dict:
    proc = subprocess.run([sys.executable, "-c", CONSTRUCTION, str(out)], env=ENV, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_construction_reads_the_manifest_only_whatever_the_export_size(tmp_path):
    """The same datasets and shards, 50x the bytes: MixtureDataset and build_datasets read as much
    (the manifest and, for build_datasets, the statistics), not a byte of a shard."""
    from tests.shards.test_spatialvla import build

    sizes = {}
    for name, image_bytes in (("small", 50), ("large", 20_000)):
        out = tmp_path / name
        out.mkdir()
        build(out)  # the spatialvla fixture's statistics and inputs, then this export's shards and manifest
        manifest = json.loads((out / "manifest.json").read_text())
        lengths = {"alpha": [[6, 4, 7, 5]] * 3, "beta": [[5, 8, 3, 9, 4]] * 3}
        shutil.rmtree(out / "shards")
        new = build_export(out, lengths, manifest["weights"], image_bytes=image_bytes,
                           statistics=manifest["statistics"], statistics_sha256=manifest["statistics_sha256"],
                           inputs=manifest["inputs"], mixture="test_mix")  # fmt: skip
        sizes[name] = sum(s["bytes"] for d in new["datasets"].values() for s in d["shards"])
        stats = json.loads((out / "dataset_statistics.json").read_text())
        for n, d in new["datasets"].items():  # statistics agree with the new shards' counts
            d["intrinsics"] = manifest["datasets"][n]["intrinsics"]
            stats[n]["num_transitions"], stats[n]["num_trajectories"] = d["num_transitions"], d["num_trajectories"]
        from storage.jsonio import sha256_of

        (out / "dataset_statistics.json").write_text(json.dumps(stats))
        new["statistics_sha256"] = sha256_of(stats)
        (out / "manifest.json").write_text(json.dumps(new))
        sizes[name + "_read"] = construction_bytes(out)
        sizes[name + "_manifest"] = (out / "manifest.json").stat().st_size
    assert sizes["large"] > 50 * sizes["small"]
    small, large = sizes["small_read"], sizes["large_read"]
    for key in ("reader", "build_datasets"):
        assert abs(large[key] - small[key]) <= 64, sizes  # the manifests differ in a few digits only
    # the manifest, and /proc/self/io itself; build_datasets: also the statistics it reads
    assert small["reader"] < sizes["small_manifest"] + 1024 and small["reader_disk"] == 0, sizes
