"""The export's pieces on their own: frame cache entries, part indexes of a task that ran twice, and
literal paths in the listing they use."""

import json

import pyarrow as pa
import pytest

from beam_jobs.frame_cache import entry_name, frames_key, read_frames, write_frames
from beam_jobs.shard_writing import read_part_indexes
from manifests.registry import load_registry
from sources.episodes import ReadTask
from sources.rlds import ShardSlice
from storage import files


def test_an_entry_holds_its_frames_and_index_and_nothing_else_passes_for_one(tmp_path):
    schema = pa.schema([("image", pa.binary()), ("wrist_image", pa.binary())])
    tables = [pa.table({"image": [b"a", b"b"], "wrist_image": [b"c", b"d"]}, schema=schema),
              pa.table({"image": [b"e"], "wrist_image": [b"f"]}, schema=schema)]  # fmt: skip
    index = {"task": "t", "episodes": [{"episode_id": "f#0", "rows": 2}, {"episode_id": "f#2", "rows": 1}],
             "problems": [{"episode_id": "f#1", "reason": "bad image"}], "frame_sizes": {"64x64": 2}}  # fmt: skip
    path = str(tmp_path / "e.arrow")
    write_frames(path, schema, tables, index)
    table, back = read_frames(path)
    assert table.column("image").to_pylist() == [b"a", b"b", b"e"] and table.column("wrist_image")[2].as_py() == b"f"
    assert back == {"format": 1, **index}
    assert [p.name for p in tmp_path.iterdir()] == ["e.arrow"]  # no temporary left

    other = tmp_path / "other.arrow"
    with pa.OSFile(str(other), "wb") as f, pa.ipc.new_file(f, schema) as w:
        w.write_table(tables[0])
    with pytest.raises(ValueError, match="not a frame cache entry"):
        read_frames(str(other))
    write_frames(path, schema, tables[:1], index)  # 2 rows, its index lists 3
    with pytest.raises(ValueError, match="2 rows, its index lists another count"):
        read_frames(path)


def test_entry_names_and_keys():
    shard = ShardSlice("gs://b/x/my robot#1.tfrecord-00000", 8, 16, 0)
    name = entry_name(ReadTask("r", "gs://b/x", shard))
    assert name.startswith("my_robot_1.tfrecord-00000-") and name.endswith(".8-16.arrow") and "#" not in name
    cfg = load_registry().datasets["droid"]  # its camera is drawn from the seed: the seed is in the key
    assert frames_key("v", "fp", cfg, 224, None, 0) != frames_key("v", "fp", cfg, 224, None, 1)
    bridge = load_registry().datasets["bridge_orig"]  # one camera: the seed is not
    assert frames_key("v", "fp", bridge, 224, None, 0) == frames_key("v", "fp", bridge, 224, None, 1)
    keys = {frames_key(*a) for a in [("v", "fp", bridge, 224, None, 0), ("w", "fp", bridge, 224, None, 0),
                                      ("v", "fq", bridge, 224, None, 0), ("v", "fp", bridge, 128, None, 0),
                                      ("v", "fp", bridge, 224, {"model": "zoe"}, 0)]}  # fmt: skip
    assert len(keys) == 5


def test_a_task_that_ran_twice_counts_once(tmp_path):
    work = tmp_path / "work [1]*"  # a literal path: brackets and stars are not a pattern
    work.mkdir()
    for name, task, sampled in (("b", "d/f#0-8", 3), ("a", "d/f#0-8", 3), ("c", "d/f#8-16", 1)):
        (work / f"{name}.arrow").write_bytes(b"")
        index = {"dataset": "d", "task": task, "path": str(work / f"{name}.arrow"), "steps_not_sampled": sampled,
                 "episodes": [{"episode_id": "f#0", "rows": 5, "bytes": 9}], "problems": [], "worker": "w"}  # fmt: skip
        (work / f"{name}.json").write_text(json.dumps(index))
    indexes = read_part_indexes(str(work))
    assert [(i["task"], i["path"].rsplit("/", 1)[-1]) for i in indexes] == [("d/f#0-8", "a.arrow"),
                                                                           ("d/f#8-16", "c.arrow")]  # fmt: skip
    assert sum(i["steps_not_sampled"] for i in indexes) == 4


@pytest.mark.parametrize("root", ["local", "memory://lit [x]*?"])
def test_glob_in_takes_the_directory_literally(tmp_path, root):
    base = str(tmp_path / "lit [x]*?") if root == "local" else root
    decoy = str(tmp_path / "lit xyz") if root == "local" else "memory://lit xyz"  # what the pattern matches
    for d in (base, decoy):
        for rel in ("a/one.tmp-1", "a/two.arrow", "b/three.tmp-2"):
            files.write_bytes(files.join(d, rel), b"x")
    found = files.glob_in(base, "*/*.tmp-*")
    assert found == [files.join(base, "a", "one.tmp-1"), files.join(base, "b", "three.tmp-2")]
    assert files.glob_in(base, "*.json") == [] and files.glob_in(files.join(base, "absent"), "*") == []
