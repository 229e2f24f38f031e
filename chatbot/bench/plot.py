"""``latency.png``: where the time of one answer goes, per stage and per backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatbot.bench.report import backend_columns

Bar = tuple[str, float | None, float | None]  # label, p50 ms, p95 ms
S_TO_MS = 1000.0
COLORS = {"llama-cpp": "#c44e52", "onnx-genai": "#55a868", "transformers": "#4c72b0"}


def _ms(value: Any) -> float | None:
    return None if value is None else float(value) * S_TO_MS


def backend_bars(label: str, fig: dict[str, Any]) -> list[Bar]:
    bars: list[Bar] = [
        (f"{label}: first token", _ms(fig.get("ttft_p50_s")), _ms(fig.get("ttft_p95_s"))),
        (
            f"{label}: first verified sentence",
            _ms(fig.get("first_sentence_p50_s")),
            _ms(fig.get("first_sentence_p95_s")),
        ),
        (f"{label}: whole answer", _ms(fig.get("e2e_p50_s")), _ms(fig.get("e2e_p95_s"))),
    ]
    if fig.get("decode_tok_s"):
        bars.insert(1, (f"{label}: one decoded token", S_TO_MS / fig["decode_tok_s"], None))
    return bars


def latency_bars(results: dict[str, Any]) -> list[tuple[Bar, str]]:
    """(bar, colour) of every measured stage: retrieval, then each backend that ran, then the
    preset cache; an empty list when nothing was measured."""
    ret = results.get("retrieval") or {}
    bars: list[tuple[Bar, str]] = []
    grey = "#8c8c8c"
    for stage, v in (ret.get("stages") or {}).items():
        label = f"retrieval: {stage.removesuffix('_ms')}"
        bars.append(((label, (v or {}).get("p50"), (v or {}).get("p95")), grey))
    bars.append((("retrieval: total", ret.get("p50_ms"), ret.get("p95_ms")), grey))
    for col in backend_columns(results):
        if col["measured"]:
            color = COLORS.get(col["name"], "#8172b3")
            bars += [(bar, color) for bar in backend_bars(col["label"], col["fig"])]
    cached = (results.get("generation") or {}).get("preset_cached_ms")
    if cached is not None:
        bars.append((("preset from cache", cached, None), grey))
    return [(b, c) for b, c in bars if b[1] is not None and b[1] > 0]


def plot_latency(results: dict[str, Any], path: Path) -> Path | None:
    """Bar chart (p50 bars, p95 whiskers, log scale); None when nothing was measured or
    matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    bars = latency_bars(results)
    if not bars:
        return None
    labels = [b[0] for b, _ in bars]
    p50 = [float(b[1] or 0) for b, _ in bars]
    err = [max(0.0, float(b[2]) - float(b[1] or 0)) if b[2] is not None else 0.0 for b, _ in bars]
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(bars) + 1.2))
    ax.barh(labels, p50, xerr=[[0] * len(err), err], color=[c for _, c in bars], capsize=3)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds (p50; whisker to p95; log scale)")
    ax.set_title("glossary-chat: latency per stage")
    for y, (v, e) in enumerate(zip(p50, err, strict=True)):
        label = f"{v:,.0f} ms" if v >= 100 else f"{v:.3g} ms"
        ax.text((v + e) * 1.15, y, label, va="center", fontsize=8)
    ax.set_xlim(min(p50) / 2, max(v + e for v, e in zip(p50, err, strict=True)) * 8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
