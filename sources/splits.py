"""TFDS split specs ('train', 'train[:10%]', 'train[5:20]', 'train[-3:]', 'train+val[10:]', 'all',
'train[1shard:3shard]'), parsed and resolved to episode ranges as TFDS does, without TFDS.

The grammar and arithmetic are TFDS's (tensorflow_datasets/core/splits.py: `ReadInstruction.from_spec`
and `to_absolute`), checked against TFDS itself on a table of specs (tests/sources/test_specs.py):
a percent boundary is `int(round(p * n / 100.0))` (Python's round, half to even), a negative boundary
counts from the end, `split[k shard]` reads one shard, and the unit of a slice is its first
boundary's unit (else the second's). What TFDS refuses is refused here, each with a one-line reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# <split_name>[<split_selector>], e.g. train[54%:]
_SUB_SPEC = re.compile(r"^(?P<split_name>[\w-]+)(\[(?P<split_selector>[\d\w%:.-]+)\])?$")
# <val><unit>, e.g. -54%
_BOUNDARY = re.compile(r"^((?P<val>-?[\d_.]+)(?P<unit>(?:%|shard))?)?$")
_PLUS = re.compile(r"\s*\+\s*")
ALL = "all"  # every split of the dataset, in dataset_info.json's order


class SplitSpecError(ValueError):
    """A split spec that TFDS's grammar refuses or that does not fit the dataset; one line."""


@dataclass(frozen=True)
class RelativeSlice:
    """One term of a spec before the split sizes are known: `split[start:stop]` in `unit`."""

    split: str
    start: int | float | None = None
    stop: int | float | None = None
    unit: str = "abs"  # "abs" (episodes), "%" or "shard"


def parse(spec: str) -> list[RelativeSlice]:
    """The terms of a split spec, in order; SplitSpecError when it is not one."""
    terms = []
    for sub in _PLUS.split(str(spec)):
        m = _SUB_SPEC.match(sub)
        if not m:
            raise SplitSpecError(f"unrecognized split format {sub!r} (e.g. train, train[:10%], train[5:20], train+val)")
        name, selector = m.group("split_name"), m.group("split_selector")
        if name == ALL:
            if selector:
                raise SplitSpecError(f"{sub!r}: '{ALL}' takes no slice")
            terms.append(RelativeSlice(ALL))
            continue
        if selector is None:
            terms.append(RelativeSlice(name))
            continue
        bounds = [_BOUNDARY.match(x) for x in selector.split(":")]
        if not all(bounds) or not any(b.group(0) for b in bounds) or len(bounds) > 2:
            raise SplitSpecError(f"unrecognized split format {sub!r} (e.g. train, train[:10%], train[5:20], train+val)")
        try:
            if len(bounds) == 1:  # split[k]: one shard
                start, unit = bounds[0]["val"], bounds[0]["unit"] or "abs"
                if unit != "shard":
                    raise SplitSpecError(f"{sub!r}: episodes and percents take a slice, [from:to]")
                stop = int(start) + 1
            else:
                start, stop = bounds[0]["val"], bounds[1]["val"]
                unit = bounds[0]["unit"] or bounds[1]["unit"] or "abs"
            convert = float if unit == "%" else int
            start = None if start is None else convert(start)
            stop = None if stop is None else convert(stop)
        except ValueError as e:
            if isinstance(e, SplitSpecError):
                raise
            raise SplitSpecError(f"{sub!r}: {e}") from None
        if unit == "%" and (abs(start or 0) > 100 or abs(stop or 0) > 100):
            raise SplitSpecError(f"{sub!r}: percent boundaries must be within [-100, 100]")
        terms.append(RelativeSlice(name, start, stop, unit))
    return terms


def split_names(spec: str) -> list[str]:
    """The split names a spec reads, in order ('all' stays 'all'); no sizes needed."""
    return [t.split for t in parse(spec)]


def _percent(boundary: float, n: int) -> int:
    return int(round(boundary * n / 100.0))  # TFDS's 'closest' rounding


def resolve(spec: str, shard_lengths: dict[str, list[int]]) -> list[tuple[str, int, int]]:
    """(split, first episode, end) of each term, as TFDS's absolute instructions with their open ends
    made explicit; `shard_lengths`: each split's episodes per shard, in dataset_info.json's order."""
    out = []
    for term in parse(spec):
        if term.split == ALL:
            out += resolve("+".join(shard_lengths), shard_lengths) if shard_lengths else []
            continue
        if term.split not in shard_lengths:
            raise SplitSpecError(f"no split '{term.split}' (has: {', '.join(shard_lengths) or 'none'})")
        lengths = shard_lengths[term.split]
        n = sum(lengths)
        start, stop = term.start, term.stop
        if term.unit == "%":
            start = 0 if start is None else _percent(start, n)
            stop = n if stop is None else _percent(stop, n)
        elif term.unit == "shard":
            start = 0 if start is None else sum(lengths[:start])
            if stop is not None and stop <= 0:
                stop = len(lengths) + stop
            stop = n if stop is None else sum(lengths[:stop])
        else:
            start = 0 if start is None else start
            stop = n if stop is None else stop
        if abs(start) > n or abs(stop) > n:
            raise SplitSpecError(f"'{term.split}' has {n} episode(s): [{start}:{stop}] is out of range")
        out.append((term.split, n + start if start < 0 else start, n + stop if stop < 0 else stop))
    return out
