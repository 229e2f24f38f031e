"""Knowledge-gap insights: the gap log grouped over a live pipeline, for the CLI and the UI.

``chatbot gaps`` and the Insights tab show the same report, so both are built here from the
pipeline's embedder (grouping) and retriever (the closest entry the corpus already has).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from chatbot.gaps import GapGroup, GapLog, group_gaps, mode_counts
from chatbot.pipeline import Pipeline


@dataclass
class GapReport:
    groups: list[GapGroup]
    modes: dict[str, dict[str, int]]
    feedback: dict[str, int]
    records: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": [g.to_dict() for g in self.groups],
            "modes_by_day": self.modes,
            "feedback": self.feedback,
            "records": self.records,
        }


def gap_report(pipe: Pipeline, since: datetime | None = None) -> GapReport:
    """``since`` without a time zone is read as UTC, the zone the log is written in."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    records = GapLog.from_settings(pipe.settings).read(since)

    def nearest(question: str) -> tuple[str, str, float] | None:
        hits = pipe.retrieve(question).hits
        if not hits:
            return None
        top = hits[0]
        dense = top.dense_score if top.dense_score is not None else top.score
        return top.chunk.title, top.chunk.doc_id, round(float(dense), 4)

    groups = group_gaps(records, pipe.embedder.encode, nearest)
    return GapReport(
        groups=groups,
        modes=mode_counts(records),
        feedback=feedback_counts(pipe.settings.feedback_file, since),
        records=len(records),
    )


def feedback_counts(path: Path, since: datetime | None = None) -> dict[str, int]:
    counts = {"up": 0, "down": 0}
    if not path.exists():
        return counts
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            data = json.loads(line)
            if since is not None and datetime.fromisoformat(data["time"]) < since:
                continue
        except (ValueError, KeyError, TypeError):
            continue
        counts["up" if data.get("liked") else "down"] += 1
    return counts
