"""bench/real_glossary.py's report: every measure that has a target says whether it was met."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("real_glossary", REPO / "bench/real_glossary.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(text: str) -> list[list[str]]:
    lines = [x for x in text.split("\n\n", 1)[0].splitlines() if x.startswith("| ")][1:]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


def test_every_measure_with_a_target_says_yes_or_no() -> None:
    bench = _bench()
    result = json.loads((REPO / "bench/real_glossary.json").read_text())
    rows = _rows(bench.render(result))
    assert rows and all(len(row) == 4 for row in rows)
    for measure, _, target, met in rows:
        assert (met in ("yes", "no")) == bool(target), measure
    kill = next(row for row in rows if row[0].startswith("kill -9"))
    result["kill_at_80"]["resumed_share"] = 0.3
    again = next(row for row in _rows(bench.render(result)) if row[0].startswith("kill -9"))
    assert (kill[3], again[3]) == ("yes" if float(kill[1].split("%")[0]) < 25 else "no", "no")
