"""Build progress: rate and ETA from a fake clock; plain lines are throttled, never silent."""

from __future__ import annotations

import io

import pytest

from chatbot.progress import PlainProgress, ProgressTracker

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_and_eta_follow_the_stage() -> None:
    clock = Clock()
    tracker = ProgressTracker(clock)
    assert tracker.describe("embed", 0, 1000) == "embed 0/1,000 (0%)"
    clock.now += 10
    assert tracker.describe("embed", 500, 1000) == "embed 500/1,000 (50%) · 50/s · ETA 10s"
    clock.now += 150
    text = tracker.describe("embed", 600, 10_000)
    assert "ETA 41m47s" in text  # 600 in 160 s = 3.75/s; 9,400 left = 2,507 s


def test_plain_lines_are_throttled_but_the_end_is_always_printed() -> None:
    clock, out = Clock(), io.StringIO()
    report = PlainProgress(interval=5.0, stream=out, clock=clock)
    for done in range(0, 100, 10):  # ten reports within one second
        report("embed", done, 100)
        clock.now += 0.1
    clock.now += 5
    report("embed", 95, 100)
    report("embed", 100, 100)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("embed 0/100") and lines[-1].startswith("embed 100/100")
