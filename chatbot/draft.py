"""The model's free draft, for generators that cannot decode under a grammar.

An OpenAI-compatible endpoint or llama.cpp writes freely from the prompt's passages;
the draft is kept only as far as every sentence is grounded in its passages (``verify.py``).
Nothing of it is shown as it comes: a sentence reaches the user once the verifier accepts it, so
a rejected draft never appears and is then replaced. Backends that can decode under a grammar
(onnx-genai, transformers) do not draft freely: they compose (``compose.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from chatbot.answer import InvalidQuestion, Partial
from chatbot.generate import GenerationError, Generator
from chatbot.prompt import PromptBuilder
from chatbot.retrieve import Hit
from chatbot.verify import SupportChecker, attach_citations, clean_citations, split_sentences

log = logging.getLogger(__name__)


@dataclass
class Draft:
    """The verified draft ("" when nothing of it holds), its citations, and what to tell the
    user about it."""

    text: str = ""
    cited: list[int] = field(default_factory=list)
    note: str = ""


class Drafter:
    """Prompt, decode, and keep the verified leading sentences."""

    def __init__(
        self,
        *,
        checker: SupportChecker,
        context_tokens: int,
        max_new_tokens: int,
        prompt_passages: int,
        max_sentences: int,
    ) -> None:
        if max_sentences < 1 or prompt_passages < 1:
            raise ValueError("max_sentences and prompt_passages must be at least 1")
        self.checker = checker
        self.context_tokens, self.max_new_tokens = context_tokens, max_new_tokens
        self.prompt_passages, self.max_sentences = prompt_passages, max_sentences

    def run(
        self,
        generator: Generator,
        question: str,
        hits: Sequence[Hit],
        timings: dict[str, float],
        started: float,
    ) -> Iterator[Partial | Draft]:
        """Partial updates as sentences are verified, then the Draft; ``timings`` gets the
        prompt size and decode speed, ``ttft_s`` counted from ``started``."""
        builder = PromptBuilder(generator.count_tokens, self.context_tokens, self.max_new_tokens)
        try:
            prompt = builder.run(question, hits, self.prompt_passages)
        except ValueError as exc:  # only when max_question_chars outgrows context_tokens
            raise InvalidQuestion(
                "The question is too long for the language model's context."
            ) from exc
        timings["prompt_tokens"] = prompt.prompt_tokens
        passages = [h.chunk for h in prompt.passages]
        shown: list[str] = []  # verified sentences already on screen: never withdrawn
        draft = Draft()
        text = ""
        for text in self._decode(generator, prompt.messages, timings, draft, started):
            done = split_sentences(clean_citations(text, len(passages))[0])[:-1]
            if len(done) > len(shown):
                kept, verdict = self.checker.supported_prefix(" ".join(done), passages, question)
                sentences = split_sentences(kept)
                if verdict.supported and len(sentences) > len(shown):
                    shown = sentences
                    yield Partial(attach_citations(" ".join(shown), passages)[0])
        cleaned, _, dropped = clean_citations(text, len(passages))
        timings["invalid_citations_dropped"] = dropped
        kept, verdict = self.checker.supported_prefix(cleaned, passages, question)
        if len(split_sentences(kept)) < len(shown):  # e.g. the whole turned out repetitive
            kept = " ".join(shown)
        if verdict.supported or shown:
            draft.text, draft.cited = attach_citations(kept, passages)
            if draft.text != cleaned:
                draft.note = "Unverified sentences of the model's answer were removed."
        elif text and not draft.note:
            log.info("generated answer rejected: %s", "; ".join(verdict.reasons))
            draft.note = (
                "The model's draft did not match the passages; here are the passages' own words."
            )
        yield draft

    def _decode(
        self,
        generator: Generator,
        messages: list[dict[str, str]],
        timings: dict[str, float],
        draft: Draft,
        started: float,
    ) -> Iterator[str]:
        """The draft so far after each piece, stopping at the allowed number of sentences."""
        text = ""
        t_gen = time.perf_counter()
        first: float | None = None
        try:
            for piece in generator.stream(messages, self.max_new_tokens):
                if first is None:
                    first = time.perf_counter()
                    timings["ttft_s"] = first - started
                text += piece
                if len(split_sentences(text)) > self.max_sentences:
                    # a further sentence has begun: stop decoding, drop the fragment
                    text = " ".join(split_sentences(text)[: self.max_sentences])
                    yield text
                    break
                yield text
        except GenerationError as exc:
            log.warning("generation failed: %s", exc)
            draft.note = "The language model failed; this answer is taken from the passages."
        t_end = time.perf_counter()
        if text and first is not None:
            n_tokens = generator.count_tokens(text)
            timings["decode_tokens"] = n_tokens
            timings["decode_tok_s"] = n_tokens / max(t_end - first, 1e-6)
        timings["generate_s"] = t_end - t_gen
