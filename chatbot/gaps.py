"""The knowledge-gap log: the questions the corpus failed, kept for the corpus editor.

A FAQ owner's to-do list is the set of questions users asked that the glossary could not answer
well: refusals, thumbs-down and answers built on a weak passage. Each is one JSON line under the
cache directory, appended with an fsync (a crash loses at most the line being written) and
rotated at a size cap so a busy server cannot fill the disk. Ordinary answers are logged only as
their mode and time, without the question, so the Insights tab can chart modes over time.
Nothing about the client (address, user agent, user name) is ever written.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
from filelock import FileLock

from chatbot.answer import Answer
from chatbot.atomic import append_jsonl
from chatbot.config import Settings

GapKind = Literal["refusal", "thumbs_down", "low_confidence", "answer"]
GAP_KINDS: tuple[GapKind, ...] = ("refusal", "thumbs_down", "low_confidence")


@dataclass(frozen=True)
class GapRecord:
    time: str
    kind: GapKind
    mode: str = ""
    question: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    answer: str = ""

    @property
    def when(self) -> datetime:
        return datetime.fromisoformat(self.time)


class GapLog:
    """Append-only JSONL with one rotation; safe across threads and processes (a file lock)."""

    def __init__(self, path: Path, *, max_bytes: int = 5_000_000, enabled: bool = True) -> None:
        if max_bytes < 1_000:
            raise ValueError("max_bytes must be at least 1000")
        self.path = path
        self.max_bytes = max_bytes
        self.enabled = enabled
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> GapLog:
        return cls(
            settings.gap_log_file,
            max_bytes=settings.gap_log_max_bytes,
            enabled=settings.log_questions,
        )

    @property
    def rotated(self) -> Path:
        return self.path.with_name(self.path.name + ".1")

    def record(self, record: GapRecord) -> None:
        if not self.enabled:
            return
        data = {k: v for k, v in record.__dict__.items() if v not in ("", {})}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, FileLock(str(self.path) + ".lock"):
            if self.path.exists() and self.path.stat().st_size >= self.max_bytes:
                self.path.replace(self.rotated)  # the one older file is dropped
            append_jsonl(self.path, data)

    def observe(self, answer: Answer, *, low_confidence: float) -> GapKind:
        """Log one final answer under the kind it deserves; return that kind."""
        kind = classify(answer, low_confidence)
        scores = answer_scores(answer)
        if kind == "answer":  # not a gap: the mode is kept for the chart, the question is not
            self.record(GapRecord(time=_now(), kind=kind, mode=answer.mode))
        else:
            self.record(
                GapRecord(
                    time=_now(),
                    kind=kind,
                    mode=answer.mode,
                    question=answer.question,
                    scores=scores,
                    answer="" if answer.refused else answer.answer,
                )
            )
        return kind

    def thumbs_down(self, question: str, answer: str) -> None:
        self.record(
            GapRecord(time=_now(), kind="thumbs_down", mode="", question=question, answer=answer)
        )

    def read(self, since: datetime | None = None) -> list[GapRecord]:
        """Every readable record, oldest first; a torn or foreign line is skipped, not fatal."""
        out: list[GapRecord] = []
        for path in (self.rotated, self.path):
            if path.exists():
                out.extend(_parse_lines(path.read_text(encoding="utf-8", errors="replace")))
        if since is not None:
            floor = since if since.tzinfo else since.replace(tzinfo=timezone.utc)
            out = [r for r in out if r.when >= floor]
        return out


def classify(answer: Answer, low_confidence: float) -> GapKind:
    if answer.refused:
        return "refusal"
    if answer.mode in ("faq", "lookup"):
        return "answer"  # answered from the entry or FAQ the question names
    best = answer_scores(answer).get("best_dense")
    return "low_confidence" if best is not None and best < low_confidence else "answer"


def answer_scores(answer: Answer) -> dict[str, float]:
    dense = [s["dense_score"] for s in answer.sources if s.get("dense_score") is not None]
    scores = {"best_dense": round(max(dense), 4)} if dense else {}
    if answer.sources:
        scores["best_score"] = round(max(float(s.get("score", 0.0)) for s in answer.sources), 6)
    return scores


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _parse_lines(text: str) -> Iterable[GapRecord]:
    for line in text.splitlines():
        try:
            data = json.loads(line)
            if data.get("kind") not in (*GAP_KINDS, "answer"):
                continue
            record = GapRecord(**data)
            _ = record.when  # a malformed time is a malformed line
        except (ValueError, TypeError, AttributeError):
            continue
        yield record


# ---------------------------------------------------------------------------------- grouping
@dataclass
class GapGroup:
    """Similar failed questions: one corpus to-do item."""

    count: int
    example: str
    questions: list[str]
    kinds: dict[str, int]
    last_seen: str
    closest_title: str = ""
    closest_doc: str = ""
    closest_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


Encode = Callable[[list[str]], np.ndarray]
Nearest = Callable[[str], tuple[str, str, float] | None]


def group_gaps(
    records: Sequence[GapRecord],
    encode: Encode,
    nearest: Nearest | None = None,
    *,
    threshold: float = 0.7,
) -> list[GapGroup]:
    """Cluster the gap questions by embedding (greedy, against running centroids, so the
    result does not depend on a random seed), largest group first."""
    gaps = [r for r in records if r.kind in GAP_KINDS and r.question.strip()]
    if not gaps:
        return []
    vectors = _unit(encode([r.question for r in gaps]))
    members: list[list[int]] = []
    centroids: list[np.ndarray] = []
    for i, vec in enumerate(vectors):
        sims = [float(c @ vec) for c in centroids]
        best = int(np.argmax(sims)) if sims else -1
        if best >= 0 and sims[best] >= threshold:
            members[best].append(i)
            centroids[best] = _unit(vectors[members[best]].mean(axis=0, keepdims=True))[0]
        else:
            members.append([i])
            centroids.append(vec)
    groups = [
        _group([gaps[i] for i in m], vectors[m], c) for m, c in zip(members, centroids, strict=True)
    ]
    if nearest is not None:
        for g in groups:
            hit = nearest(g.example)
            if hit is not None:
                g.closest_title, g.closest_doc, g.closest_score = hit
    groups.sort(key=lambda g: (-g.count, _negated(g.last_seen)))
    return groups


def _group(records: list[GapRecord], vectors: np.ndarray, centroid: np.ndarray) -> GapGroup:
    central = records[int(np.argmax(vectors @ centroid))]
    kinds: dict[str, int] = {}
    unique: list[str] = []
    for r in records:
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
        if r.question not in unique:
            unique.append(r.question)
    return GapGroup(
        count=len(records),
        example=central.question,
        questions=unique[:5],
        kinds=kinds,
        last_seen=max(r.time for r in records),
    )


def _negated(stamp: str) -> float:
    return -datetime.fromisoformat(stamp).timestamp()


def _unit(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norms, 1e-12)


def mode_counts(records: Sequence[GapRecord]) -> dict[str, dict[str, int]]:
    """Answers per day and mode (refusals included), oldest day first: the Insights chart."""
    days: dict[str, dict[str, int]] = {}
    for r in records:
        if r.kind == "thumbs_down" or not r.mode:
            continue
        day = days.setdefault(r.time[:10], {})
        day[r.mode] = day.get(r.mode, 0) + 1
    return dict(sorted(days.items()))
