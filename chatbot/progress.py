"""Progress of long index builds, as text with a rate and an ETA.

A 10,000-entry glossary takes minutes to embed on 2 cores. A terminal gets a live bar; a log file
or CI (stderr not a terminal) gets one plain line every few seconds instead of minutes of silence;
the UI shows the same text in its progress bar. One tracker computes the numbers for all three.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@dataclass
class ProgressTracker:
    """Rate and ETA per stage, measured from the stage's first report."""

    clock: Callable[[], float] = time.monotonic
    _started: dict[str, tuple[float, int]] = field(default_factory=dict)

    def describe(self, stage: str, done: int, total: int) -> str:
        now = self.clock()
        start, first_done = self._started.setdefault(stage, (now, done))
        elapsed = now - start
        text = f"{stage} {done:,}/{total:,}"
        if total:
            text += f" ({100 * done / total:.0f}%)"
        if elapsed > 0 and done > first_done:
            rate = (done - first_done) / elapsed
            text += f" · {rate:,.0f}/s"
            if total > done:
                text += f" · ETA {_duration((total - done) / rate)}"
        return text


class PlainProgress:
    """One line per stage every ``interval`` seconds (and at the end): for logs and CI."""

    def __init__(
        self,
        interval: float = 5.0,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.stream = stream or sys.stderr
        self.clock = clock
        self.tracker = ProgressTracker(clock)
        self._last: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        text = self.tracker.describe(stage, done, total)
        now = self.clock()
        last = self._last.get(stage)
        if last is None or now - last >= self.interval or done >= total:
            self._last[stage] = now
            print(text, file=self.stream, flush=True)
