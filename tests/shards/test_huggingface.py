"""shards.huggingface.load_export: a whole export as one `datasets` dataset, nothing copied into the cache."""

import io
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from shards.huggingface import load_export
from shards.manifest import ManifestError
from tests.pipeline.test_end_to_end import read_rows

ROOT = Path(__file__).resolve().parents[2]


def shard_tables(out: Path) -> dict[str, pa.Table]:
    """Each dataset's rows, read with pyarrow alone, in manifest order."""
    manifest = json.loads((out / "manifest.json").read_text())
    return {name: read_rows(out, manifest, name) for name in manifest["datasets"]}


def cache_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    """The datasets cache, moved where its growth can be measured."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    return cache


def assert_rows_equal_shards(rows: list[dict], out: Path, columns: list[str]) -> None:
    """Every row equal to its shard row (images by their bytes), absent columns None, datasets in order."""
    expected = [
        (name, i, t) for name, t in shard_tables(out).items() for i in range(t.num_rows)
    ]  # fmt: skip
    assert len(rows) == len(expected)
    cache = {}
    for row, (name, i, table) in zip(rows, expected):
        assert list(row) == columns
        assert row["dataset"] == name
        for column in columns:
            if column not in table.column_names:
                assert row[column] is None, (name, column)
                continue
            key = (name, column)
            if key not in cache:
                cache[key] = table.column(column).to_pylist()
            want = cache[key][i]
            if isinstance(row[column], Image.Image):  # decoded: the same pixels as the JPEG
                ref = np.asarray(Image.open(io.BytesIO(want)).convert("RGB"))
                np.testing.assert_array_equal(np.asarray(row[column].convert("RGB")), ref)
            elif isinstance(row[column], dict):  # Image(decode=False): the very bytes
                assert row[column]["bytes"] == want, (name, column, i)
            elif isinstance(want, list) and want and isinstance(want[0], float):
                np.testing.assert_array_equal(np.float32(row[column]), np.float32(want))
            else:
                assert row[column] == want, (name, column, i)


def union_columns(out: Path) -> list[str]:
    columns = []
    for table in shard_tables(out).values():
        columns += [c for c in table.column_names if c not in columns]
    return columns


def test_a_whole_export_in_one_dataset_nothing_cached(sample_export, hf_cache):
    ds = load_export(str(sample_export))
    assert isinstance(ds, datasets.Dataset)
    columns = union_columns(sample_export)
    assert ds.column_names == columns and {"dataset", "wrist_image", "proprio"} <= set(columns)
    assert isinstance(ds.features["image"], datasets.Image) and isinstance(ds.features["wrist_image"], datasets.Image)
    # proprio has 7 dims in taco_play and dobbe, 8 in fractal: a variable-length list in the union
    assert ds.features["proprio"] == datasets.List(datasets.Value("float32"))
    assert ds.features["action"] == datasets.List(datasets.Value("float32"), length=7)
    assert_rows_equal_shards(list(load_export(str(sample_export), decode_images=False)), sample_export, columns)
    row = ds[0]  # images decode to PIL, the same pixels as the JPEG
    assert isinstance(row["image"], Image.Image)
    first = shard_tables(sample_export)[row["dataset"]]
    ref = np.asarray(Image.open(io.BytesIO(first.column("image")[0].as_py())).convert("RGB"))
    np.testing.assert_array_equal(np.asarray(row["image"]), ref)
    assert cache_bytes(hf_cache) == 0


def test_streaming_reads_the_same_rows_nothing_cached(sample_export, hf_cache):
    stream = load_export(str(sample_export), streaming=True)
    assert isinstance(stream, datasets.IterableDataset)
    columns = union_columns(sample_export)
    assert_rows_equal_shards(
        list(load_export(str(sample_export), streaming=True, decode_images=False)), sample_export, columns
    )
    assert cache_bytes(hf_cache) == 0


def test_interleaving_follows_the_effective_weights(sample_export, hf_cache):
    manifest = json.loads((sample_export / "manifest.json").read_text())
    names = list(manifest["datasets"])
    w = {n: manifest["weights"][n] * manifest["datasets"][n]["num_transitions"] for n in names}
    probabilities = [w[n] / sum(w.values()) for n in names]  # weight x transitions, normalized
    for streaming in (False, True):
        mixed = load_export(str(sample_export), interleave=True, seed=3, streaming=streaming)
        whole = load_export(str(sample_export), streaming=streaming)  # datasets one after the other
        offsets = np.cumsum([0] + [manifest["datasets"][n]["num_transitions"] for n in names])
        if streaming:
            parts = [whole.skip(int(a)).take(int(b - a)) for a, b in zip(offsets[:-1], offsets[1:])]
        else:
            parts = [whole.select(range(a, b)) for a, b in zip(offsets[:-1], offsets[1:])]
        theirs = datasets.interleave_datasets(parts, probabilities=probabilities, seed=3)
        key = lambda r: (r["dataset"], r["episode_id"], r["step"])  # noqa: E731
        ours = [key(r) for r in mixed.select_columns(["dataset", "episode_id", "step"])]
        assert ours == [key(r) for r in theirs.select_columns(["dataset", "episode_id", "step"])]
        drawn = Counter(d for d, _, _ in ours)
        assert set(drawn) == set(names) and max(drawn, key=drawn.get) == max(w, key=w.get)
    balanced = load_export(
        str(sample_export), interleave=True, seed=3, balance=False, stopping_strategy="all_exhausted"
    )
    assert Counter(balanced["dataset"]).keys() == set(names)
    assert cache_bytes(hf_cache) == 0


def test_the_cache_path_holds_the_same_rows_and_says_what_it_costs(sample_export, hf_cache, capsys):
    ds = load_export(str(sample_export), in_memory=False, decode_images=False)
    assert_rows_equal_shards(list(ds), sample_export, union_columns(sample_export))
    shards = sum(p.stat().st_size for p in (sample_export / "shards").rglob("*.arrow"))
    copied = cache_bytes(hf_cache)
    assert copied > shards  # a decompressed copy, at least as large as the export
    with capsys.disabled():
        print(f"\n  datasets cache: {copied} bytes written for {shards} bytes of shards ({copied / shards:.2f}x)")


def test_the_real_bridge_slice_with_images(bridge_export, hf_cache):
    ds = load_export(str(bridge_export / "manifest.json"), "bridge_orig")
    assert len(ds) == 200 and "proprio" in ds.column_names
    raw = load_export(str(bridge_export / "manifest.json"), "bridge_orig", decode_images=False)
    assert_rows_equal_shards(list(raw), bridge_export, union_columns(bridge_export))
    table = shard_tables(bridge_export)["bridge_orig"]
    for i in (0, 99, 199):
        ref = np.asarray(Image.open(io.BytesIO(table.column("image")[i].as_py())).convert("RGB"))
        np.testing.assert_array_equal(np.asarray(ds[i]["image"]), ref)
    assert cache_bytes(hf_cache) == 0


def test_refusals(bridge_export, tmp_path):
    with pytest.raises(ManifestError, match=r"no dataset\(s\) \['nope'\]"):
        load_export(str(bridge_export), "nope")
    import shutil

    changed = tmp_path / "changed"
    shutil.copytree(bridge_export, changed)
    shard = next((changed / "shards" / "bridge_orig").glob("*.arrow"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 1  # same size, other bytes
    shard.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="sha256 does not match"):
        load_export(str(changed))


def test_an_export_larger_than_memory_is_refused_before_reading(bridge_export, monkeypatch, hf_cache):
    import shards.huggingface as hf

    monkeypatch.setattr(hf, "available_memory", lambda: 4_000_000)  # 4 MB free: 2.95 MB of shards > half
    with pytest.raises(MemoryError, match=r"more than 50% of the 0.0 GB of memory available: load it with streaming"):
        load_export(str(bridge_export))
    assert len(list(load_export(str(bridge_export), streaming=True))) == 200  # streaming is bounded: allowed


def test_readme_hugging_face_runs_as_written(bridge_export, tmp_path):
    text = (ROOT / "README.md").read_text()
    body = text.split("\n## Hugging Face\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", body, re.S)
    assert len(blocks) == 1
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "bridge").symlink_to(bridge_export)
    script = blocks[0] + "\nprint(len(ds), type(ds[0]['image']).__name__, len(list(stream)), len(mixed))\n"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env["HF_DATASETS_CACHE"] = str(tmp_path / "hf-cache")
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-4:] == ["200", "JpegImageFile", "200", "200"]
    assert cache_bytes(tmp_path / "hf-cache") == 0
