"""The load test's figures (written by the browser load test), read into the results."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chatbot.config import PROJECT_ROOT

KEYS = ("clients", "requests", "errors", "p50_s", "p95_s")


def load_candidates(out: Path) -> list[Path]:
    """Where the load test may have left its figures, first match wins."""
    paths = [out / "load.json", PROJECT_ROOT / "bench" / "load.json"]
    artifacts = os.environ.get("CHATBOT_ARTIFACTS_DIR")
    if artifacts:
        paths.append(Path(artifacts) / "load.json")
    paths.append(PROJECT_ROOT / "test-artifacts" / "load.json")
    return list(dict.fromkeys(paths))


def read_load(paths: Sequence[Path]) -> tuple[dict[str, Any], str | None]:
    """The load test's figures from the first readable file; nulls and a note otherwise."""
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            result: dict[str, Any] = {k: data.get(k) for k in KEYS}
            result.update({k: v for k, v in data.items() if k not in result})
            result["source"] = str(path)
            return result, None
    return {k: None for k in KEYS} | {"source": None}, (
        "no load-test results found ("
        + ", ".join(str(p) for p in paths)
        + "): run the load test first to fill the load block"
    )
