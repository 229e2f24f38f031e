"""The pipeline with a generator that decodes under the clause grammar (the bundled model)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chatbot.answer import Answer, Partial
from chatbot.config import Settings
from chatbot.errors import GenerationError
from chatbot.grounded import ClauseGrammar
from chatbot.pipeline import Pipeline
from chatbot.text import CITATION, parse_citations, split_sentences
from tests.fakes import FakeEmbedder, FakeGroundedGenerator

pytestmark = pytest.mark.unit
GENERAL = "How is a foundation model trained?"


def evidence(messages: list[dict[str, str]]) -> list[str]:
    said = messages[-1]["content"].removeprefix("Evidence: ").rsplit("\nQuestion:", 1)[0]
    return split_sentences(said)


def build(settings: Settings, gen: object) -> Pipeline:
    return Pipeline(settings, embedder=FakeEmbedder(), generator_factory=lambda: gen)  # type: ignore[arg-type,return-value]


def run(pipe: Pipeline, question: str) -> tuple[list[Partial], Answer]:
    events = list(pipe.stream(question))
    assert isinstance(events[-1], Answer)
    return [e for e in events if isinstance(e, Partial)], events[-1]


def whole(messages: list[dict[str, str]], clauses: list[str]) -> str:
    return " ".join(evidence(messages))


def test_a_composition_that_keeps_the_facts_is_the_answer(settings: Settings) -> None:
    gen = FakeGroundedGenerator(whole)
    partials, answer = run(build(settings, gen), GENERAL)
    assert answer.mode == "generated" and len(gen.calls) == 1
    bare = CITATION.sub("", answer.answer).replace(" .", ".").strip()
    assert bare == " ".join(evidence(gen.calls[0]))
    # cited as the reader cited that sentence: a passage that holds its words
    assert parse_citations(answer.answer) == [c.n for c in answer.citations] != []
    source = answer.sources[answer.citations[0].n - 1]["text"]
    assert bare.rstrip(".")[:40] in " ".join(source.split())
    assert all(answer.answer.startswith(p.text) for p in partials)


def test_a_composition_the_check_rejects_is_never_shown(settings: Settings) -> None:
    gen = FakeGroundedGenerator(whole)
    pipe = build(settings, gen)
    pipe.composer.check = lambda *args, **kwargs: "left out the asked fact"  # type: ignore[method-assign]
    partials, answer = run(pipe, GENERAL)
    assert len(gen.calls) == 1
    assert answer.mode == "extractive" and partials == []
    assert split_sentences(CITATION.sub("", answer.answer))[0].strip() in " ".join(
        evidence(gen.calls[0])
    )


class Failing(FakeGroundedGenerator):
    def grounded(
        self, messages: list[dict[str, str]], grammar: ClauseGrammar, max_new_tokens: int
    ) -> Iterator[str]:
        raise GenerationError("the model broke")
        yield ""  # pragma: no cover - makes this a generator


def test_a_failing_model_leaves_the_reader_answer(settings: Settings) -> None:
    partials, answer = run(build(settings, Failing(lambda m, c: "")), GENERAL)
    assert answer.mode == "extractive" and answer.citations and partials == []


def test_a_lookup_definition_is_composed_too(settings: Settings) -> None:
    gen = FakeGroundedGenerator(whole)
    _, answer = run(build(settings, gen), "What is a base model?")
    assert answer.mode == "generated" and len(gen.calls) == 1
    assert "Base Model:" not in answer.answer  # the entry label is not copied
    assert answer.citations


def test_a_lookup_by_an_alias_says_which_entry_answers(
    settings: Settings, corpus_dir: Path
) -> None:
    (corpus_dir / "bfi.md").write_text(
        "---\ntitle: Brute force and ignorance\naliases: [BFI]\n---\n# Brute force and "
        "ignorance\n\nA popular design technique that ignores how problems were solved before.\n"
    )
    gen = FakeGroundedGenerator(whole)
    _, answer = run(build(settings, gen), "My colleague called my code 'BFI'. What does he mean?")
    assert answer.mode == "generated" and len(gen.calls) == 1
    assert answer.answer.startswith("Brute force and ignorance: A popular design technique")
    assert answer.standalone_question.endswith("What does BFI mean?")


def test_a_composition_reports_its_prompt_and_decode(settings: Settings) -> None:
    gen = FakeGroundedGenerator(whole)
    _, answer = run(build(settings, gen), GENERAL)
    t = answer.timings
    assert answer.mode == "generated"
    assert t["prompt_tokens"] > 0 and t["decode_tokens"] > 0
    assert 0 <= t["ttft_s"] <= t["compose_s"] + t["retrieve_s"] + 1.0 and t["decode_tok_s"] > 0


def test_composition_can_be_switched_off(settings: Settings) -> None:
    gen = FakeGroundedGenerator(whole)
    _, answer = run(build(settings.model_copy(update={"compose": False}), gen), GENERAL)
    assert answer.mode == "extractive" and gen.calls == [] and answer.citations
