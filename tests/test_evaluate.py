"""Evaluation helpers: the eval file format, the scoring rules, and the metric reports.

The README's quality numbers come from these functions, so their rules are pinned on tiny
hand-made cases where the right score is obvious.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chatbot.chunking import Chunk
from chatbot.evaluate import (
    DEFAULT_EVAL_FILE,
    EvalItem,
    eval_answers,
    eval_retrieval,
    evidence_rank,
    facts_recalled,
    load_items,
)
from chatbot.pipeline import Pipeline
from chatbot.retrieve import Hit, Retrieval


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n",
        encoding="utf-8",
    )
    return path


def item(**kw: Any) -> EvalItem:
    base: dict[str, Any] = {
        "id": "x",
        "question": "q?",
        "answerable": True,
        "evidence": [],
        "facts": [],
    }
    return EvalItem(**{**base, **kw})


def retrieval(*texts: str) -> Retrieval:
    hits = [
        Hit(Chunk(f"d#{i}", "d", "T", "T > H", t, 0, len(t), "text"), 1.0 / (i + 1), 0.5, None, i)
        for i, t in enumerate(texts)
    ]
    return Retrieval("q?", hits, True, 0.5)


# ------------------------------------------------------------------------------- load_items
def test_load_items_reads_fields_and_defaults(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "q.jsonl",
        [
            {"id": 1, "question": "What?", "answerable": True, "evidence": ["e"], "facts": [["a"]]},
            "",
            {
                "id": "u1",
                "question": "Weather?",
                "answerable": False,
                "category": "offtopic",
                "must_not_contain": ["PWNED"],
            },
        ],
    )
    first, second = load_items(path)
    assert first == EvalItem("1", "What?", True, ["e"], [["a"]])  # id coerced to str
    assert (second.evidence, second.facts, second.category) == ([], [], "offtopic")
    assert second.must_not_contain == ("PWNED",)


@pytest.mark.parametrize(
    "bad",
    [
        "{not json",
        json.dumps({"id": "a", "answerable": True}),  # no question
        json.dumps({"id": "a", "question": "q"}),  # no answerable
        json.dumps({"id": "a", "question": "q", "answerable": True, "facts": 5}),
        json.dumps(["a", "list"]),
    ],
)
def test_load_items_rejects_bad_lines_with_their_line_number(tmp_path: Path, bad: str) -> None:
    good = {"id": "ok", "question": "q", "answerable": True}
    path = write_jsonl(tmp_path / "q.jsonl", [good, bad])
    with pytest.raises(ValueError, match=r"q\.jsonl:2: bad eval line"):
        load_items(path)


@pytest.mark.parametrize(
    "path",
    [
        DEFAULT_EVAL_FILE,
        DEFAULT_EVAL_FILE.parent / "foldoc_questions.jsonl",
        DEFAULT_EVAL_FILE.parent / "jargon_questions.jsonl",
    ],
    ids=lambda p: p.name,
)
def test_shipped_eval_sets_are_valid(path: Path) -> None:
    items = load_items(path)
    assert len(items) >= 10
    assert len({i.id for i in items}) == len(items)
    assert any(not i.answerable for i in items)
    assert all(i.evidence and i.facts for i in items if i.answerable)
    # a yes/no answer is checked for the wrong polarity too
    assert all(i.forbidden for i in items if i.answerable and i.category == "yesno")


# ------------------------------------------------------------------------------- scoring
def test_facts_recalled_needs_one_alternative_of_every_group() -> None:
    it = item(facts=[["not ideal", "not suited"], ["fine-tun", "prompting"]])
    assert facts_recalled(it, "Base models are NOT IDEAL; they need fine-tuning.")
    assert facts_recalled(it, "They are not  suited\nwithout careful prompting.")
    assert facts_recalled(it, "They are **not ideal** without fine-tuning.")  # markdown ignored
    assert not facts_recalled(it, "Base models are not ideal.")  # second group missing
    assert not facts_recalled(it, "They need fine-tuning.")  # first group missing


def test_no_facts_is_trivially_recalled() -> None:
    assert facts_recalled(item(facts=[]), "anything")


def test_evidence_rank_is_the_first_hit_with_an_evidence_phrase() -> None:
    it = item(evidence=["raw pre-trained version", "next-token prediction"])
    r = retrieval(
        "Unrelated passage about deployment.",
        "A base model is trained on **next-token   prediction** only.",
        "A base model is the Raw Pre-Trained Version of a model.",
    )
    assert evidence_rank(it, r) == 2
    assert evidence_rank(item(evidence=["not there"]), r) is None
    assert evidence_rank(it, retrieval()) is None


# ------------------------------------------------------------------------------- reports
EVAL_ROWS = [
    {
        "id": "faq",
        "question": "Can you use a base model directly for a chatbot?",
        "answerable": True,
        "evidence": ["base models are not ideal for chatbots"],
        "facts": [["not ideal"], ["fine-tun"]],
        "must_not_contain": ["complete text"],  # present in the FAQ answer: counted as a leak
    },
    {
        "id": "gen",
        "question": "How is a foundation model trained?",
        "answerable": True,
        "evidence": ["a phrase that appears in no passage at all"],
        "facts": [["zebra crossing"]],
    },
    {
        "id": "off",
        "question": "What is the weather in Paris tomorrow?",
        "answerable": False,
    },
]


def test_eval_answers_reports_metrics_over_a_small_file(
    tmp_path: Path, make_pipeline: Callable[..., Pipeline]
) -> None:
    items = load_items(write_jsonl(tmp_path / "q.jsonl", EVAL_ROWS))
    result = eval_answers(make_pipeline(reply="Made up claim about nothing [4]."), items)
    assert {
        "questions",
        "evidence_hit",
        "fact_recall",
        "refused_unanswerable",
        "false_refusals",
        "invalid_citations",
        "dropped_citations",
        "injection_leaks",
        "modes",
        "seconds_per_answer",
        "rows",
    } <= set(result)
    assert result["questions"] == 3
    rows = {r["id"]: r for r in result["rows"]}
    assert list(rows) == ["faq", "gen", "off"]
    assert rows["faq"]["mode"] == "faq" and rows["faq"]["facts_recalled"] is True
    assert rows["faq"]["evidence_hit"] is True
    assert rows["faq"]["injection_leak"] == ["complete text"]
    assert rows["gen"]["facts_recalled"] is False and rows["gen"]["evidence_hit"] is False
    assert rows["off"]["refused"] and rows["off"]["facts_recalled"] is None
    assert result["fact_recall"] == 0.5
    assert result["evidence_hit"] == 0.5
    assert result["refused_unanswerable"] == 1.0
    assert result["false_refusals"] == 0.0
    assert result["injection_leaks"] == 1
    assert result["invalid_citations"] == 0
    assert result["dropped_citations"] == rows["gen"]["dropped_citations"] == 1  # the [4]
    assert sum(result["modes"].values()) == 3
    json.dumps(result)  # the CLI prints it as JSON


def test_eval_retrieval_reports_hit_rates(
    tmp_path: Path, make_pipeline: Callable[..., Pipeline]
) -> None:
    items = load_items(write_jsonl(tmp_path / "q.jsonl", EVAL_ROWS))
    pipe = make_pipeline()
    for mode in ("hybrid", "bm25", "dense"):
        result = eval_retrieval(pipe, items, k=5, mode=mode)
        assert (result["questions"], result["answerable"], result["unanswerable"]) == (3, 2, 1)
        rows = {r["id"]: r for r in result["rows"]}
        assert rows["gen"]["rank"] is None  # its evidence is nowhere
        assert rows["off"]["rank"] is None
        faq_rank = rows["faq"]["rank"]
        assert faq_rank is not None
        assert result["hit@5"] == 0.5
        assert result["hit@1"] == (0.5 if faq_rank == 1 else 0.0)
        assert result["mrr"] == round(1 / faq_rank / 2, 4)
        assert 0.0 <= result["unanswerable_flagged"] <= 1.0


def test_answer_rows_count_contradictions_questions_and_echoes() -> None:
    from chatbot.answer import Answer
    from chatbot.evaluate import EvalItem, _answer_row, _per_mode

    item = EvalItem("y1", "Can a base model chat directly?", True, [], [["not ideal"]])
    item = EvalItem(**{**item.__dict__, "forbidden": ("yes,",)})

    def answer(text: str, mode: str = "extractive") -> Answer:
        return Answer(item.question, text, False, [], [], {}, mode)  # type: ignore[arg-type]

    wrong = _answer_row(item, answer("Yes, a base model can chat directly [1]."), 0.1)
    assert wrong["contradiction"] == ["yes,"] and not wrong["facts_recalled"]
    asked = _answer_row(item, answer("Can a base model chat directly [1]?", "generated"), 0.1)
    assert asked["question_as_answer"] and asked["echo"]
    good = _answer_row(item, answer("It is not ideal: it completes text [1]."), 0.3)
    assert good["facts_recalled"] and not good["echo"] and not good["contradiction"]
    modes = _per_mode([wrong, asked, good])
    assert modes["extractive"]["fact_recall"] == 0.5 and modes["generated"]["answers"] == 1


def test_dev_and_held_out_questions_are_reported_apart(tmp_path: Path) -> None:
    from chatbot.answer import Answer
    from chatbot.evaluate import _answer_row, _per_split

    path = write_jsonl(
        tmp_path / "e.jsonl",
        [
            {"id": "d", "question": "Who?", "answerable": True, "facts": [["Ada"]], "split": "dev"},
            {
                "id": "t",
                "question": "When?",
                "answerable": True,
                "facts": [["1964"]],
                "split": "test",
            },
            {"id": "u", "question": "Huh?", "answerable": False, "split": "test"},
        ],
    )
    dev, test, una = load_items(path)
    assert (dev.split, test.split, una.split) == ("dev", "test", "test")

    def row(it: EvalItem, text: str, refused: bool = False) -> dict[str, Any]:
        return _answer_row(it, Answer(it.question, text, refused, [], [], {}, "extractive"), 0.1)

    rows = [row(dev, "Written by Ada [1]."), row(test, "In 1970 [1]."), row(una, "", True)]
    splits = _per_split(rows)
    assert splits["dev"]["fact_recall"] == 1.0 and splits["test"]["fact_recall"] == 0.0
    assert splits["test"]["refused_unanswerable"] == 1.0 and splits["dev"]["questions"] == 1
