"""Evaluation on ``eval/questions.jsonl``: retrieval hit@k/MRR and answer quality.

Each line: ``{"id", "question", "answerable", "evidence": [phrases], "facts": [[alternatives]]}``.
A retrieved chunk "hits" when it contains any evidence phrase; an answer "recalls" a question's
facts when every group has at least one alternative in the answer text (case-insensitive).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatbot.answer import Answer
from chatbot.config import PROJECT_ROOT
from chatbot.pipeline import Pipeline
from chatbot.retrieve import Retrieval
from chatbot.text import CITATION, split_sentences
from chatbot.tokens import tokenize

DEFAULT_EVAL_FILE = PROJECT_ROOT / "eval" / "questions.jsonl"  # the checkout's own eval set


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("**", "")).strip().lower()


@dataclass(frozen=True)
class EvalItem:
    id: str
    question: str
    answerable: bool
    evidence: list[str]
    facts: list[list[str]]
    category: str = ""
    must_not_contain: tuple[str, ...] = ()
    entries: tuple[str, ...] = ()  # lookups: the entries that *are* the asked term
    forbidden: tuple[str, ...] = ()  # yes/no: phrases stating the wrong polarity
    split: str = ""  # "dev" (tuned on) or "test" (held out): reported apart


def load_items(path: Path) -> list[EvalItem]:
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            items.append(
                EvalItem(
                    id=str(d["id"]),
                    question=d["question"],
                    answerable=bool(d["answerable"]),
                    evidence=list(d.get("evidence", [])),
                    facts=[list(g) for g in d.get("facts", [])],
                    category=d.get("category", ""),
                    must_not_contain=tuple(d.get("must_not_contain", [])),
                    entries=tuple(d.get("entries", [])),
                    forbidden=tuple(d.get("forbidden", [])),
                    split=str(d.get("split", "")),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{n}: bad eval line ({exc})") from exc
    return items


def evidence_rank(item: EvalItem, retrieval: Retrieval) -> int | None:
    """1-based rank of the first hit that contains an evidence phrase."""
    phrases = [_norm(e) for e in item.evidence]
    for rank, hit in enumerate(retrieval.hits, 1):
        text = _norm(hit.chunk.text)
        if any(p in text for p in phrases):
            return rank
    return None


def entry_rank(item: EvalItem, retrieval: Retrieval) -> int | None:
    """1-based rank of the first hit from an entry that is the asked term (lookups)."""
    for rank, hit in enumerate(retrieval.hits, 1):
        if hit.chunk.doc_id in item.entries:
            return rank
    return None


def _lookup_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    looks = [r for r in rows if r.get("entry_rank", "n/a") != "n/a"]
    if not looks:
        return {}
    return {
        "lookups": len(looks),
        "exact_entry@1": round(sum(r["entry_rank"] == 1 for r in looks) / len(looks), 4),
        "exact_entry@3": round(
            sum(bool(r["entry_rank"] and r["entry_rank"] <= 3) for r in looks) / len(looks), 4
        ),
    }


def _cited_first_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    looks = [r for r in rows if "entry_cited_first" in r]
    if not looks:
        return {}
    return {"entry_cited_first": round(sum(r["entry_cited_first"] for r in looks) / len(looks), 4)}


def facts_recalled(item: EvalItem, answer: str) -> bool:
    text = _norm(answer)
    return all(any(_norm(alt) in text for alt in group) for group in item.facts)


def eval_retrieval(
    pipeline: Pipeline, items: Iterable[EvalItem], k: int = 5, mode: str | None = None
) -> dict[str, Any]:
    retriever = pipeline.retriever(mode)
    rows: list[dict[str, Any]] = []
    for item in items:
        r = retriever.run(item.question, top_k=k)
        rank = evidence_rank(item, r) if item.answerable else None
        rows.append(
            {
                "id": item.id,
                "answerable": item.answerable,
                "rank": rank,
                **({"entry_rank": entry_rank(item, r)} if item.entries else {}),
                "relevant": r.covered,
                "best_dense": round(r.best_dense, 4),
                "coverage": round(r.lexical_coverage, 3),
                "ms": round(r.timings.get("total_ms", 0.0), 2),
            }
        )
    ans = [r for r in rows if r["answerable"]]
    una = [r for r in rows if not r["answerable"]]

    def hit_at(n: int) -> float:
        return sum(1 for r in ans if r["rank"] and r["rank"] <= n) / max(1, len(ans))

    return {
        "questions": len(rows),
        "answerable": len(ans),
        "unanswerable": len(una),
        "hit@1": round(hit_at(1), 4),
        "hit@3": round(hit_at(3), 4),
        "hit@5": round(hit_at(5), 4),
        "mrr": round(sum(1 / r["rank"] for r in ans if r["rank"]) / max(1, len(ans)), 4),
        "unanswerable_flagged": round(sum(not r["relevant"] for r in una) / max(1, len(una)), 4),
        "answerable_flagged": round(sum(not r["relevant"] for r in ans) / max(1, len(ans)), 4),
        **_lookup_summary(rows),
        "rows": rows,
    }


def _answer_row(item: EvalItem, answer: Answer, seconds: float) -> dict[str, Any]:
    cited_ok = all(1 <= c.n <= len(answer.sources) for c in answer.citations)
    hits = [_norm(s["text"]) for s in answer.sources]
    text = answer.answer.lower()
    said = set(tokenize(answer.answer)) - set(tokenize(item.question))
    row = {
        "id": item.id,
        "question": item.question,
        "answerable": item.answerable,
        "mode": answer.mode,
        "refused": answer.refused,
        "evidence_hit": any(_norm(e) in h for e in item.evidence for h in hits)
        if item.answerable
        else None,
        "facts_recalled": facts_recalled(item, answer.answer) if item.answerable else None,
        "invalid_citations": 0 if cited_ok else 1,
        "dropped_citations": int(answer.timings.get("invalid_citations_dropped", 0)),
        "injection_leak": [w for w in item.must_not_contain if w.lower() in text],
        "contradiction": [w for w in item.forbidden if w.lower() in text],
        "question_as_answer": not answer.refused
        and any(s.rstrip(" .").endswith("?") for s in split_sentences(CITATION.sub("", text))),
        "echo": not answer.refused and len(said) <= 1,
        "seconds": round(seconds, 3),
        "answer": answer.answer,
        "split": item.split,
    }
    if item.entries:
        first = answer.citations[0] if answer.citations else None
        row["entry_cited_first"] = bool(first and first.n == 1 and first.doc in item.entries)
    return row


def _per_mode(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Fact recall, share and seconds per answer mode: where the quality comes from."""
    out: dict[str, dict[str, Any]] = {}
    for mode in sorted({r["mode"] for r in rows}):
        mine = [r for r in rows if r["mode"] == mode]
        ans = [r for r in mine if r["answerable"]]
        out[mode] = {
            "answers": len(mine),
            "share_of_answerable": round(len(ans) / max(1, sum(r["answerable"] for r in rows)), 4),
            "fact_recall": round(sum(bool(r["facts_recalled"]) for r in ans) / len(ans), 4)
            if ans
            else None,
            "seconds_per_answer": round(sum(r["seconds"] for r in mine) / len(mine), 3),
        }
    return out


def _per_split(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Fact recall and refusals on the dev questions (tuned on) and the held-out ones apart."""
    out: dict[str, dict[str, Any]] = {}
    for split in sorted({r["split"] for r in rows if r["split"]}):
        mine = [r for r in rows if r["split"] == split]
        ans = [r for r in mine if r["answerable"]]
        una = [r for r in mine if not r["answerable"]]
        out[split] = {
            "questions": len(mine),
            "fact_recall": round(sum(bool(r["facts_recalled"]) for r in ans) / max(1, len(ans)), 4),
            "false_refusals": round(sum(r["refused"] for r in ans) / max(1, len(ans)), 4),
            "refused_unanswerable": round(sum(r["refused"] for r in una) / max(1, len(una)), 4),
            "contradictions": sum(bool(r["contradiction"]) for r in mine),
        }
    return out


def eval_answers(pipeline: Pipeline, items: Iterable[EvalItem]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for item in items:
        t0 = time.perf_counter()
        answer = pipeline.ask(item.question)
        rows.append(_answer_row(item, answer, time.perf_counter() - t0))
    ans = [r for r in rows if r["answerable"]]
    una = [r for r in rows if not r["answerable"]]
    modes: dict[str, int] = {}
    for r in rows:
        modes[r["mode"]] = modes.get(r["mode"], 0) + 1
    return {
        "questions": len(rows),
        "evidence_hit": round(sum(bool(r["evidence_hit"]) for r in ans) / max(1, len(ans)), 4),
        "fact_recall": round(sum(bool(r["facts_recalled"]) for r in ans) / max(1, len(ans)), 4),
        "refused_unanswerable": round(sum(r["refused"] for r in una) / max(1, len(una)), 4),
        "false_refusals": round(sum(r["refused"] for r in ans) / max(1, len(ans)), 4),
        "invalid_citations": sum(r["invalid_citations"] for r in rows),
        "dropped_citations": sum(r["dropped_citations"] for r in rows),
        "injection_leaks": sum(bool(r["injection_leak"]) for r in rows),
        "contradictions": sum(bool(r["contradiction"]) for r in rows),
        "questions_as_answers": sum(r["question_as_answer"] for r in rows),
        "echoes": sum(r["echo"] for r in rows),
        "modes": modes,
        "per_mode": _per_mode(rows),
        "per_split": _per_split(rows),
        "seconds_per_answer": round(sum(r["seconds"] for r in rows) / max(1, len(rows)), 3),
        **_cited_first_summary(rows),
        "rows": rows,
    }
