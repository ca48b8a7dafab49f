"""report.json: what was read, what was dropped and why. Deterministic (no timestamps)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field


@dataclass
class Report:
    episodes_read: Counter = field(default_factory=Counter)  # dataset -> episodes kept
    steps_read: Counter = field(default_factory=Counter)
    problems: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. "depth skipped: ..."
    not_sampled: Counter = field(default_factory=Counter)  # dataset -> steps kept for chunks, never sampled

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

    def episodes_lost(self) -> int:
        return sum(p["episodes_lost"] for p in self.problems)

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
        }

    def first_problem_line(self) -> str:
        p = min(self.problems, key=lambda p: (p["dataset"], p["file"], p["episode_id"] or ""))
        ep = f" episode {p['episode_id']}" if p["episode_id"] else ""
        return f"dataset '{p['dataset']}' file {p['file']}{ep}: {p['reason']}"
