"""Stream RLDS episodes (TFDS TFRecord shards) as numpy columns, one episode at a time.

Shards are found from the dataset's `dataset_info.json`; the per-step layout comes from
its `features.json` (sources/features.py) and split slices from TFDS's split-spec grammar
(sources/splits.py), both read here as TFDS reads them, without TFDS. Records are read from the
TFRecord container directly (checksums verified) and only the requested keys are converted;
nothing is ever decoded here: image features stay encoded bytes, so a stage that asks for action
fields alone never touches an image. Files are read through storage.files, so `gs://` roots work
like local ones; records are parsed with protobuf alone (sources/example_proto.py): reading needs
neither TensorFlow nor TFDS.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from sources.features import FeatureSpecError, FieldInfo, parse_features
from sources.splits import ALL, SplitSpecError, resolve, split_names
from sources.tfrecord import BadChecksum, CorruptRecord, count_records, read_records
from storage import files
from transforms.episode import RawEpisode


class RLDSError(Exception):
    """A dataset that cannot be read; the message names the dataset/file and what is wrong.
    `first_lost`: where a damaged shard stops being readable (its episodes from there are lost)."""

    def __init__(self, message: str, first_lost: int | None = None):
        super().__init__(message)
        self.first_lost = first_lost


@dataclass(frozen=True)
class BadRecord:
    """A record of a shard that could not be turned into an episode (or records not read), and why."""

    dataset: str
    episode_id: str | None
    file: str
    reason: str
    episodes_lost: int = 1


@dataclass(frozen=True)
class ShardSlice:
    """Episodes [start, stop) of one shard file; `offset` = split index of its episode 0. A slice
    is a piece of the split's range [range_start, range_stop) in this shard, which holds `listed`
    episodes by dataset_info.json: damage is reported against the whole range, so every slicing
    of it reports the same."""

    path: str
    start: int
    stop: int
    offset: int
    range_start: int = 0
    range_stop: int = -1  # -1: stop
    listed: int = -1  # -1: unknown

    def __post_init__(self):
        if self.range_stop < 0:
            object.__setattr__(self, "range_stop", self.stop)

    @property
    def num_episodes(self) -> int:
        return self.stop - self.start


def _check_info(info, where: str) -> None:
    """The parts of dataset_info.json that reading relies on: a one-line RLDSError when malformed."""
    if not isinstance(info, dict) or not isinstance(info.get("splits", []), list):
        raise RLDSError(f"{where}: not a TFDS dataset_info (expected an object with a 'splits' list)")
    for i, split in enumerate(info.get("splits", [])):
        lengths = split.get("shardLengths", []) if isinstance(split, dict) else None
        if not isinstance(split, dict) or not isinstance(split.get("name"), str) or not isinstance(lengths, list):
            raise RLDSError(f"{where}: splits[{i}] needs a 'name' and a 'shardLengths' list")
        for n in lengths:
            if not (isinstance(n, int | str) and str(n).isdigit()):
                raise RLDSError(f"{where}: split '{split['name']}': shard length {n!r} is not a count of episodes")


class RLDSDataset:
    """One RLDS dataset directory: `<root>/<name>/<version>/` with its JSON metadata and shards."""

    def __init__(self, directory: str, name: str | None = None):
        self.directory = directory.rstrip("/")
        self.name = name or posixpath.basename(posixpath.dirname(self.directory))
        info_path = files.join(self.directory, "dataset_info.json")
        if not files.exists(info_path):
            raise RLDSError(f"dataset '{self.name}': no dataset_info.json in {self.directory}")
        try:
            self.info = json.loads(files.read_text(info_path))
        except json.JSONDecodeError as e:
            raise RLDSError(f"dataset '{self.name}': {info_path}: not valid JSON ({e.msg})") from None
        _check_info(self.info, f"dataset '{self.name}': {info_path}")
        self._fields: dict[str, FieldInfo] | None = None

    # ------------------------------------------------------------ metadata

    @property
    def tfds_name(self) -> str:
        """The name in the shard file names (e.g. bridge_orig's files are `bridge_dataset-*`)."""
        return self.info.get("name", self.name)

    @property
    def splits(self) -> dict[str, int]:
        return {s["name"]: sum(int(n) for n in s.get("shardLengths", [])) for s in self.info.get("splits", [])}

    def _split_info(self, split: str) -> dict:
        for s in self.info.get("splits", []):
            if s["name"] == split:
                return s
        raise RLDSError(f"dataset '{self.name}': no split '{split}' (has: {', '.join(self.splits) or 'none'})")

    def shard_files(self, split: str) -> list[tuple[str, int]]:
        """(path, number of episodes) of each shard of a split, in order."""
        s = self._split_info(split)
        lengths = [int(n) for n in s.get("shardLengths", [])]
        template = s.get("filepathTemplate", "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}")
        fileformat = self.info.get("fileFormat", "tfrecord")
        if fileformat != "tfrecord":
            raise RLDSError(f"dataset '{self.name}': file format '{fileformat}' is not supported (only tfrecord)")
        out = []
        for i, n in enumerate(lengths):
            fname = (
                template.replace("{DATASET}", self.tfds_name)
                .replace("{SPLIT}", split)
                .replace("{FILEFORMAT}", fileformat)
                .replace("{SHARD_X_OF_Y}", f"{i:05d}-of-{len(lengths):05d}")
                .replace("{SHARD_INDEX}", f"{i:05d}")
                .replace("{NUM_SHARDS}", f"{len(lengths):05d}")
            )
            out.append((files.join(self.directory, fname), n))
        return out

    @property
    def fields(self) -> dict[str, FieldInfo]:
        if self._fields is None:
            path = files.join(self.directory, "features.json")
            if not files.exists(path):
                raise RLDSError(f"dataset '{self.name}': no features.json in {self.directory}")
            try:
                self._fields = parse_features(json.loads(files.read_text(path)))
            except json.JSONDecodeError as e:
                raise RLDSError(f"dataset '{self.name}': {path}: not valid JSON ({e.msg})") from None
            except FeatureSpecError as e:
                raise RLDSError(
                    f"dataset '{self.name}': {path}: not a TFDS feature spec ({files.one_line(e)})"
                ) from None
        return self._fields

    # ------------------------------------------------------------ planning

    def plan(self, split_spec: str = "train") -> list[ShardSlice]:
        """Shard slices covering a TFDS split spec: 'train', 'train[:10%]', 'train[5:20]', 'train+val'."""
        try:
            names = split_names(split_spec)
        except SplitSpecError as e:
            raise RLDSError(f"dataset '{self.name}': bad split '{split_spec}': {e}") from None
        for name in names:
            if name != ALL:
                self._split_info(name)  # the one-line "no split" error, naming the splits it has
        lengths = {s["name"]: [int(n) for n in s.get("shardLengths", [])] for s in self.info.get("splits", [])}
        try:
            ranges = resolve(split_spec, lengths)
        except SplitSpecError as e:
            raise RLDSError(f"dataset '{self.name}': bad split '{split_spec}': {e}") from None
        slices, taken = [], {}
        for split, lo, hi in ranges:
            for other_lo, other_hi in taken.get(split, []):
                if lo < other_hi and other_lo < hi:  # the same episodes twice would count twice
                    raise RLDSError(
                        f"dataset '{self.name}': bad split '{split_spec}': episodes {max(lo, other_lo)}.."
                        f"{min(hi, other_hi) - 1} of '{split}' are named twice"
                    )
            taken.setdefault(split, []).append((lo, hi))
            offset = 0
            for path, n in self.shard_files(split):
                start, stop = max(lo - offset, 0), min(hi - offset, n)
                if start < stop:
                    slices.append(ShardSlice(path, start, stop, offset, start, stop, n))
                offset += n
        return slices

    # ------------------------------------------------------------ reading

    def resolve_keys(self, keys: Iterable[str] | None) -> dict[str, FieldInfo]:
        fields = self.fields
        if keys is None:
            return dict(fields)
        out = {}
        for k in keys:
            if k not in fields:
                near = [f for f in fields if f.endswith(k.split("/")[-1])][:3]
                hint = f" (similar: {', '.join(near)})" if near else ""
                raise RLDSError(f"dataset '{self.name}': no feature '{k}' in features.json{hint}")
            out[k] = fields[k]
        return out

    def read(self, shard: ShardSlice, keys: Iterable[str] | None = None) -> Iterator[RawEpisode | BadRecord]:
        """Episodes of one shard slice, with only `keys` converted (all keys when None).

        A record that does not match features.json or fails its checksum comes out as a BadRecord
        and the slice goes on. A file that is missing, ends early or whose framing is broken raises
        RLDSError after the episodes before the damage (first_lost says where it starts). Records
        the file holds beyond those dataset_info.json lists come out as one BadRecord."""
        wanted = self.resolve_keys(keys)
        where = f"dataset '{self.name}': {shard.path}"
        if not files.exists(shard.path):
            raise RLDSError(f"dataset '{self.name}': shard {shard.path} listed in dataset_info.json is missing",
                            shard.range_start)  # fmt: skip
        fname = posixpath.basename(shard.path)
        index = shard.start
        try:
            for record in read_records(shard.path, shard.start, shard.stop):
                episode_id = f"{fname}#{index}"
                index += 1
                if isinstance(record, BadChecksum):
                    yield BadRecord(
                        self.name, episode_id, shard.path, f"corrupted record at byte {record.offset} (data checksum)"
                    )
                    continue
                try:
                    steps, meta = _episode_columns(record, wanted)
                except ValueError as e:
                    yield BadRecord(self.name, episode_id, shard.path, f"does not match features.json ({e})")
                    continue
                yield RawEpisode(self.name, episode_id, shard.path, steps, meta)
            if index < shard.stop:  # the file ended first; a slice that skipped to its start has not seen where
                index = count_records(shard.path)
                raise RLDSError(f"{where}: the file holds {index} episode(s), dataset_info.json lists {shard.listed}",
                                max(index, shard.range_start))  # fmt: skip
            if shard.stop == shard.listed:  # the slice that ends the file: anything after it is unlisted
                extra = count_records(shard.path) - shard.listed
                if extra > 0:
                    yield BadRecord(self.name, None, shard.path, f"the file holds {extra} record(s) more than the "
                                    f"{shard.listed} dataset_info.json lists (not read)", extra)  # fmt: skip
        except CorruptRecord as e:
            raise RLDSError(f"{where}: corrupt TFRecord, episodes from {e.index} unreadable ({e})",
                            max(e.index, shard.range_start)) from None  # fmt: skip

    def episodes(self, split_spec: str = "train", keys: Iterable[str] | None = None) -> Iterator[RawEpisode]:
        """Every episode of a split spec; a record that does not match features.json raises RLDSError."""
        for shard in self.plan(split_spec):
            for item in self.read(shard, keys):
                if isinstance(item, BadRecord):
                    raise RLDSError(f"dataset '{self.name}': {item.file}: episode {item.episode_id}: {item.reason}")
                yield item


def _episode_columns(record: bytes, wanted: dict) -> tuple[dict, dict]:
    """(steps, metadata) of one serialized tf.train.Example, only the wanted fields converted."""
    from google.protobuf.message import DecodeError

    from sources.example_proto import Example

    try:
        feature = Example.FromString(record).features.feature
    except DecodeError as e:
        raise ValueError(f"not a tf.train.Example: {e}") from None
    steps, meta = {}, {}
    for f in wanted.values():
        if f.serialized_key not in feature:
            raise ValueError(f"no feature '{f.serialized_key}'")
        value = feature[f.serialized_key]
        dt = np.dtype(f.dtype)
        if dt.kind == "O":
            flat = np.array(list(value.bytes_list.value), dtype=object)
        elif dt.kind == "f":
            flat = np.array(value.float_list.value, dtype=np.float32)  # TFDS stores every float as a float_list
        else:
            flat = np.array(value.int64_list.value, dtype=np.int64)
        try:
            (steps if f.per_step else meta)[f.key] = _to_numpy(flat, f)
        except ValueError:
            raise ValueError(
                f"'{f.key}' has {flat.size} values, not a whole number of steps of shape {f.shape}"
            ) from None
    if len({len(v) for v in steps.values()}) > 1:
        raise ValueError("step fields of different lengths")
    return steps, meta


def _to_numpy(flat: np.ndarray, f: FieldInfo) -> np.ndarray:
    dt = np.dtype(f.dtype)
    value = flat if dt.kind == "O" else flat.astype(dt, copy=False)
    if f.per_step:
        return value.reshape((-1, *f.shape)) if f.shape else value
    return (
        value.reshape(f.shape)
        if f.shape and -1 not in f.shape
        else (value[0] if not f.shape and len(value) == 1 else value)
    )


# ---------------------------------------------------------------- finding datasets under a data root


def find_dataset_dir(data_root: str, name: str, version: str, dir_names: Iterable[str] = ()) -> str | None:
    """`<root>/<dir>/<version>` for the first of the dataset's directory names that has a dataset_info.json."""
    for d in dict.fromkeys([*dir_names, name]):
        path = files.join(data_root, d, version)
        if files.exists(files.join(path, "dataset_info.json")):
            return path
    return None


def open_dataset(data_root: str, cfg) -> RLDSDataset:
    """The registry dataset `cfg` under `data_root`, or an RLDSError saying where it looked."""
    if not files.exists(data_root):
        raise RLDSError(f"data dir '{data_root}' does not exist")
    path = find_dataset_dir(data_root, cfg.name, cfg.version, cfg.rlds_dirs)
    if path is None:
        tried = ", ".join(files.join(data_root, d, cfg.version) for d in dict.fromkeys([*cfg.rlds_dirs, cfg.name]))
        raise RLDSError(f"dataset '{cfg.name}' {cfg.version}: not found (looked for dataset_info.json in {tried})")
    return RLDSDataset(path, cfg.name)


def fingerprint(ds: RLDSDataset, split_spec: str, extra: str = "") -> str:
    """A content key of what a split slice of a dataset reads: its metadata files, and for each
    shard its name, size, modification time and the bytes of its head and tail. Cheap on TB-size
    data (no full read) and changes whenever a file is rewritten."""
    import hashlib

    h = hashlib.sha256(extra.encode())
    for meta in ("dataset_info.json", "features.json"):
        h.update(files.read_text(files.join(ds.directory, meta)).encode())
    for s in ds.plan(split_spec):
        h.update(f"{posixpath.basename(s.path)}:{s.start}:{s.stop}".encode())
        if not files.exists(s.path):
            h.update(b"missing")
            continue
        length = files.size(s.path)
        h.update(f":{length}:{files.modified(s.path)}".encode())
        with files.open_file(s.path, "rb") as f:
            h.update(f.read(1 << 16))
            if length > 1 << 17:
                f.seek(length - (1 << 16))
                h.update(f.read())
    return h.hexdigest()
