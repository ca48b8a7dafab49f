"""The run's report: report.json (what was read, what was dropped and why; deterministic: no
timestamps, byte-identical between identical runs), timings.json (the stages' wall times: the one
file that differs between identical runs) and report.html (both, with plots, for a person:
pipeline/report/page.py).

    python -m pipeline.report OUT      # (re)build OUT/report.html from what OUT holds (__main__.py)
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

TIMINGS_FILE = "timings.json"
HTML_FILE = "report.html"
TIMINGS_BEGIN, TIMINGS_END = "<!-- timings: begin -->", "<!-- timings: end -->"  # report.html's one varying part


def output_digests(out) -> dict:
    """sha256 of what must be identical in a local output directory (comparable_bytes), by relative path;
    the statistics cache (.cache) is left out: it holds what earlier runs computed."""
    import hashlib
    from pathlib import Path

    out = Path(out)
    digests = {}
    for p in sorted(out.rglob("*")):
        if p.is_file() and ".cache" not in p.relative_to(out).parts:
            data = comparable_bytes(p.name, p.read_bytes())
            if data is not None:
                digests[str(p.relative_to(out))] = hashlib.sha256(data).hexdigest()
    return digests


def comparable_bytes(name: str, data: bytes) -> bytes | None:
    """What of an output file must be byte-identical between identical runs (any runner, any output
    directory): all of it, but none of timings.json and not report.html's timings section."""
    if name == TIMINGS_FILE:
        return None
    if name == HTML_FILE and TIMINGS_BEGIN.encode() in data:
        a, b = data.index(TIMINGS_BEGIN.encode()), data.index(TIMINGS_END.encode())
        return data[:a] + data[b:]
    return data


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 problem', '2 problems', '1 dataset'; `many` for irregular plurals."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"


@dataclass
class Report:
    episodes_read: Counter = field(default_factory=Counter)  # dataset -> episodes kept
    steps_read: Counter = field(default_factory=Counter)
    problems: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. "depth skipped: ..."
    not_sampled: Counter = field(default_factory=Counter)  # dataset -> steps kept for chunks, never sampled
    timings: list[dict] = field(default_factory=list)  # per stage run: wall seconds (timings.json, not report.json)
    failure: str | None = None  # why the run failed on its data (e.g. a dataset that lost every episode)

    def fail(self, line: str) -> str:
        self.failure = line
        return line

    def add_problems(self, records) -> None:
        seen = {json.dumps(p, sort_keys=True) for p in self.problems}
        for p in records:
            key = json.dumps(p, sort_keys=True)
            if key not in seen:  # stages re-read the same input: report each problem once
                seen.add(key)
                self.problems.append(p)

    @property
    def dropped(self) -> list[dict]:
        return [p for p in self.problems if p["episodes_lost"] > 0]

    @property
    def kept_with_notes(self) -> list[dict]:
        """Problems that lost nothing (e.g. a missing instruction, an outlier): flagged, the episode kept."""
        return [p for p in self.problems if p["episodes_lost"] == 0]

    def episodes_lost(self) -> int:
        return sum(p["episodes_lost"] for p in self.problems)

    @contextlib.contextmanager
    def timed(self, stage: str):
        """Record a stage's wall time (into timings.json; report.json stays free of times)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings.append({"stage": stage, "seconds": round(time.perf_counter() - t0, 3)})

    def timings_dict(self, total_seconds: float, runner: str, mixture: str, stopped: str | None = None) -> dict:
        """timings.json: the stages' wall times, and how the run that took them ended."""
        return {"mixture": mixture, "runner": runner, "stages": self.timings, "stopped": stopped,
                "total_seconds": round(total_seconds, 3)}  # fmt: skip

    def to_dict(self) -> dict:
        by_dataset = defaultdict(lambda: {"episodes_lost": 0, "reasons": Counter()})
        for p in self.problems:
            d = by_dataset[p["dataset"]]
            d["episodes_lost"] += p["episodes_lost"]
            d["reasons"][p["reason"].split(" (")[0] if p["episodes_lost"] else p["reason"]] += 1
        problems = sorted(self.problems, key=lambda p: (p["dataset"], p["file"], p["episode_id"] or "", p["reason"]))
        return {
            "datasets": {
                name: {
                    "episodes_read": self.episodes_read[name],
                    "steps_read": self.steps_read[name],
                    "steps_not_sampled": self.not_sampled[name],
                    "episodes_lost": by_dataset[name]["episodes_lost"] if name in by_dataset else 0,
                    "problems": dict(sorted(by_dataset[name]["reasons"].items())) if name in by_dataset else {},
                }
                for name in sorted(set(self.episodes_read) | set(by_dataset))
            },
            "episodes_lost": self.episodes_lost(),
            "problems": problems,
            "notes": self.notes,
            **({"failure": self.failure} if self.failure else {}),
        }

    def first_problem_line(self) -> str:
        p = min(self.problems, key=lambda p: (p["dataset"], p["file"], p["episode_id"] or ""))
        ep = f" episode {p['episode_id']}" if p["episode_id"] else ""
        return f"dataset '{p['dataset']}' file {p['file']}{ep}: {p['reason']}"

    def summary_lines(self, report_path: str) -> list[str]:
        """What was dropped and what was kept with notes, for the run's closing summary."""
        lines = []
        if self.dropped:
            lines.append(
                f"  dropped: {plural(self.episodes_lost(), 'episode')} "
                f"({plural(len(self.dropped), 'problem')}; see {report_path})"
            )
            reasons: dict[str, int] = {}
            for p in self.dropped:
                key = f"{p['dataset']}: {p['reason'].split(' (')[0]}"
                reasons[key] = reasons.get(key, 0) + p["episodes_lost"]
            lines += [f"    {n} x {k}" for k, n in sorted(reasons.items())[:10]]
        else:
            lines.append("  dropped: nothing")
        kept = self.kept_with_notes
        if kept:
            reasons = Counter(p["reason"] for p in kept)
            top = ", ".join(f"{n} x {r}" for r, n in sorted(reasons.items(), key=lambda x: (-x[1], x[0]))[:3])
            more = f", {len(reasons) - 3} more kind(s)" if len(reasons) > 3 else ""
            lines.append(f"  kept with notes: {plural(len(kept), 'problem')} ({top}{more}; see {report_path})")
        return lines
