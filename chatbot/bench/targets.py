"""The issue's targets for this machine, and whether a run meets them."""

from __future__ import annotations

from typing import Any

# target: (where in results.json, comparison, limit). The generation figures are the primary
# backend's (onnx-genai when it loads, else transformers); ratios are against llama.cpp measured
# in the same run, so a run without llama.cpp leaves that target unmeasured.
TARGETS: dict[str, tuple[str, str, float]] = {
    "onnx-genai decode vs llama.cpp": ("generation.backends.onnx-genai.decode_ratio", ">=", 1.2),
    "time to first verified sentence, p50 (s)": ("generation.first_sentence_p50_s", "<", 0.8),
    "warm start to ready (s)": ("generation.warm_start_s", "<", 5.0),
    "time to first token, p50 (s)": ("generation.ttft_p50_s", "<", 1.0),
    "preset answer from cache (ms)": ("generation.preset_cached_ms", "<", 50.0),
    "retrieval p50 (ms)": ("retrieval.p50_ms", "<", 30.0),
    "peak RSS (MB)": ("generation.peak_rss_mb", "<", 1536.0),
    "no-op reindex (s)": ("index.noop_rebuild_s", "<", 0.5),
}


def lookup(results: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted path (``a.b.c``); None where any part is missing."""
    node: Any = results
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def meets(value: Any, op: str, limit: float) -> bool | None:
    """Whether a measured number is within the limit; None when nothing was measured."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value < limit if op == "<" else value >= limit


def check_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured value and whether it is met (None: not measured)."""
    rows = []
    for name, (path, op, limit) in TARGETS.items():
        value = lookup(results, path)
        rows.append(
            {
                "target": name,
                "key": path,
                "op": op,
                "limit": limit,
                "value": value,
                "met": meets(value, op, limit),
            }
        )
    return rows
