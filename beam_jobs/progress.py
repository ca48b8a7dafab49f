"""Progress lines for long local runs: episodes done, rate, time left (to stderr, every few seconds)."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, stage: str, total_episodes: int, every_s: float = 5.0):
        self.stage, self.total, self.every = stage, total_episodes, every_s
        self.start = self.last = time.monotonic()
        self.episodes = self.steps = 0

    def update(self, episodes: int, steps: int) -> None:
        self.episodes += episodes
        self.steps += steps
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            print(self.line(now), file=sys.stderr, flush=True)

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self.start, 1e-9)
        rate = self.episodes / elapsed
        text = f"{self.stage}: {self.episodes}"
        if self.total:
            left = max(self.total - self.episodes, 0) / rate if rate > 0 else float("inf")
            text += f"/{self.total} episodes ({100 * self.episodes / self.total:.0f}%)"
            text += f", {rate:.1f} episodes/s, {self.steps / elapsed:.0f} steps/s, ~{left:.0f}s left"
        else:
            text += f" episodes, {rate:.1f} episodes/s"
        return text
