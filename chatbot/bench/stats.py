"""Statistics of repeated timings: percentiles, summaries, recall of approximate search, ratios."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), numpy's linear interpolation; None for no values."""
    if len(values) == 0:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50)


def rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def summary(values: Sequence[float], digits: int = 4) -> dict[str, Any]:
    """p50/p95/min/max/n of a list of timings, rounded; None fields for an empty list."""
    empty = len(values) == 0
    return {
        "p50": rounded(percentile(values, 50), digits),
        "p95": rounded(percentile(values, 95), digits),
        "min": None if empty else round(float(min(values)), digits),
        "max": None if empty else round(float(max(values)), digits),
        "n": len(values),
    }


def recall_at_k(approx: np.ndarray, exact: np.ndarray, k: int = 10) -> float:
    """Mean share of the exact top-k found in the approximate top-k (ids < 0 never match)."""
    if len(exact) == 0:
        return 1.0
    found = 0
    for a, e in zip(approx, exact, strict=True):
        truth = {int(i) for i in e[:k] if i >= 0}
        found += len(truth & {int(i) for i in a[:k] if i >= 0})
    return found / (k * len(exact))


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator to 3 decimals; None when either is missing or the divisor is 0."""
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def decode_rate(n_tokens: int, ttft: float, total: float) -> float | None:
    """Tokens per second after the first one (the first token's time is prefill)."""
    if n_tokens < 2 or total <= ttft:
        return None
    return (n_tokens - 1) / (total - ttft)
