"""Helpers every stage shares: timing with an injectable clock, progress lines, stand-ins."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

Clock = Callable[[], float]
Message = dict[str, str]
DIM = 384  # MiniLM's vector size: random vectors for the search benchmarks have it too


def timed(fn: Callable[[], Any], clock: Clock = time.perf_counter) -> tuple[float, Any]:
    """(seconds, value) of one call."""
    t0 = clock()
    value = fn()
    return clock() - t0, value


def run_stream(stream: Iterator[str], clock: Clock = time.perf_counter) -> tuple[float, float, str]:
    """(seconds to the first piece, total seconds, text) of one streamed answer."""
    t0 = clock()
    first = None
    text = ""
    for piece in stream:
        if first is None:
            first = clock()
        text += piece
    end = clock()
    return (first if first is not None else end) - t0, end - t0, text


def per_query_ms(search: Callable[[np.ndarray], Any], queries: np.ndarray) -> float:
    """Median milliseconds of one search, one query at a time, after a warm-up search."""
    search(queries[0:1])
    times = [timed(partial(search, q[None, :]))[0] for q in queries]
    return round(float(np.median(times)) * 1000, 4)


def unit_vectors(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    """n random float32 vectors of length 1 (filled in slices: no float64 copy of the whole)."""
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for i in range(0, n, step):
        block = rng.standard_normal((min(step, n - i), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[i : i + len(block)] = block
    return out


def say(message: str) -> None:
    """A progress line on stderr (stdout carries the report)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Uncached:
    """The real embedder without its query cache: every question is embedded as if new."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.batch_size = getattr(inner, "batch_size", 32)

    @property
    def dim(self) -> int:
        return int(self.inner.dim)

    def fingerprint(self) -> str:
        return str(self.inner.fingerprint())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.inner.encode(texts))


@dataclass
class Probe:
    """Stands in for the generator to capture the exact prompts the pipeline builds."""

    count: Callable[[str], int]
    name: str = "probe"
    calls: list[list[Message]] = field(default_factory=list)

    def count_tokens(self, text: str) -> int:
        return self.count(text)

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        self.calls.append(messages)
        return iter(())
