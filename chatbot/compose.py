"""The model writes the answer from the reader's evidence, and a check decides if it is kept.

The reader (``reader.py``) picks the sentences that state the asked fact; the model then
composes the answer out of their clauses under the clause grammar (``grounded.py``): it chooses
where to begin, which clauses to keep and where to stop. The composition is kept (mode
``generated``) only when it still says what the evidence says about the question:

- the asked kind of fact (a name for who, a year for when, a number for how many) is stated
  when the evidence states it, and no kept sentence loses a clause that holds one;
- no kept sentence loses its "because" clause: for a why or yes/no question that is the answer;
- a question asking what a thing is keeps every clause of the opening sentence it copies from:
  a definition's last clause ("trained only on next-token prediction") is part of it;
- at least ``min_sentence_share`` of each evidence sentence's words are said: the reader adds
  a second sentence for a fact the first lacks or as the first one's sequel, and the first is
  its best;
- at least ``min_question_coverage`` of the question's words that the evidence holds are said;
- and no sentence of it is a fragment or copies dictionary markup (``verify.py``); it cannot
  be a question: the grammar has no question mark.

Otherwise the reader's own sentences are the answer: nothing was shown before that decision.
Measured on the eval sets (README, Quality): 81% (bundled) and 88% (dict-foldoc) of
answerable questions answered by a kept composition, with no fact lost against the reader's
sentences.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from chatbot.acronyms import asked_expansion, spells_out
from chatbot.chunking import Chunk
from chatbot.generate.base import Message
from chatbot.grounded import ClauseGrammar, clauses
from chatbot.kinds import (
    NAMES_IT,
    asked_types,
    asks_definition,
    asks_term,
    holds_type,
    says_who,
)
from chatbot.prompt import Templates, neutralize
from chatbot.reader import asks_a_name
from chatbot.terms import Lookup, normalize
from chatbot.text import CITATION, split_sentences
from chatbot.tokens import tokenize
from chatbot.verify import form_problem

_TITLE_LABEL = re.compile(r"^(?:Another entry for )?[^:.!?]{1,80}:\s+(?=[A-Z(\"'])")


@runtime_checkable
class GroundedGenerator(Protocol):
    """A generator that can decode under a grammar: it reads its own next-token scores and
    lets ``grounded_tokens`` pick among the tokens the grammar allows (onnx-genai,
    transformers)."""

    def grounded(
        self, messages: list[Message], grammar: ClauseGrammar, max_new_tokens: int
    ) -> Iterator[str]: ...


@dataclass(frozen=True)
class Composition:
    text: str  # the composed answer, without citations ("" when the model wrote nothing)
    problem: str  # why it is not kept, or "" when it is
    messages: list[Message] = field(default_factory=list)  # the prompt the model read
    first_token_s: float | None = None  # from the call to the first token
    tokens: int = 0  # tokens decoded

    def timings(
        self, t0: float, started: float, count_tokens: Callable[[str], int] | None = None
    ) -> dict[str, float]:
        """What the composition cost, begun at ``t0`` for a question asked at ``started``:
        the answer's timings, which the bench reads (time to first token, decode speed)."""
        end = time.perf_counter()
        out = {"compose_s": end - t0}
        if count_tokens is not None:
            out["prompt_tokens"] = count_tokens("\n".join(m["content"] for m in self.messages))
        if self.first_token_s is not None:
            out["ttft_s"] = t0 + self.first_token_s - started
            out["decode_tokens"] = self.tokens
            out["decode_tok_s"] = self.tokens / max(end - t0 - self.first_token_s, 1e-6)
        return out


def evidence_sentences(extract_text: str) -> list[str]:
    """The reader's sentences without citations or "Title:" labels: what may be copied."""
    out = []
    for sentence in split_sentences(CITATION.sub("", extract_text)):
        sentence = _TITLE_LABEL.sub("", " ".join(sentence.split())).strip()
        if sentence:
            out.append(sentence)
    return out


def entry_labels(extract_text: str) -> str:
    """The "Title:" labels of a lookup's definitions: a definition need not repeat its term."""
    return " ".join(
        m.group(0) for s in split_sentences(extract_text) if (m := _TITLE_LABEL.match(s.strip()))
    )


def labelled(
    extract_text: str,
    composed: str,
    lookup: Lookup | None,
    question: str = "",
    cited: Sequence[Chunk] = (),
) -> str:
    """The composed answer with its entry's "Title:" label when the user asked by another name
    ("What does BFI mean?" -> "Brute force and ignorance: A popular ...") or asked for a name
    that is a cited entry's title ("Which language was the first for strings?" -> "COMIT: The
    first string-handling ..."; not a field's "Providers:"). The grammar copies no labels, as a
    definition need not repeat its term, but such an answer must say which entry it is."""
    label = _TITLE_LABEL.match(extract_text.strip())
    title = label.group(0).rstrip().rstrip(":") if label else ""
    alias = lookup is not None and lookup.found and normalize(title) != normalize(lookup.term)
    named = lookup is None and title in {c.title for c in cited} and asks_a_name(question)
    if not title or not (alias or named):
        return composed
    return composed if composed.lower().startswith(title.lower()) else f"{title}: {composed}"


def compose_messages(templates: Templates, question: str, evidence: Sequence[str]) -> list[Message]:
    """The instruction, the packaged examples as earlier turns, then this question."""
    instruction, *examples = templates.compose.split("### example")
    messages: list[Message] = [{"role": "system", "content": instruction.strip()}]
    for example in examples:
        asked, _, answer = example.strip().partition("\nAnswer:")
        messages += [
            {"role": "user", "content": asked.strip()},
            {"role": "assistant", "content": answer.strip()},
        ]
    said = neutralize(" ".join(evidence))
    messages.append({"role": "user", "content": f"Evidence: {said}\nQuestion: {question}"})
    return messages


class Composer:
    """The compose stage: a grounded decode, then the keep-or-fall-back check."""

    def __init__(
        self,
        *,
        max_new_tokens: int = 96,
        min_question_coverage: float = 0.7,
        min_sentence_share: float = 0.7,
    ) -> None:
        if max_new_tokens < 8:
            raise ValueError("max_new_tokens must be at least 8")
        if not (0.0 <= min_question_coverage <= 1.0 and 0.0 <= min_sentence_share <= 1.0):
            raise ValueError("min_question_coverage and min_sentence_share must be within [0, 1]")
        self.max_new_tokens = max_new_tokens
        self.min_question_coverage = min_question_coverage
        self.min_sentence_share = min_sentence_share
        self.templates = Templates.load()

    def run(self, question: str, extract_text: str, generator: GroundedGenerator) -> Composition:
        evidence = evidence_sentences(extract_text)
        if not evidence:
            return Composition("", "no evidence to compose from")
        grammar = ClauseGrammar(evidence)
        messages = compose_messages(self.templates, question, evidence)
        # room to copy every clause: a token holds 3 or more characters of English text
        budget = max(self.max_new_tokens, len(" ".join(evidence)) // 3 + 16)
        t0, first, pieces = time.perf_counter(), None, []
        for piece in generator.grounded(messages, grammar, budget):
            first = first if first is not None else time.perf_counter() - t0
            pieces.append(piece)
        raw = "".join(pieces)
        text = ClauseGrammar.finish(raw)
        if raw and not grammar.can_end(grammar.advance(grammar.start(), raw)):
            problem = "cut off inside a clause"  # the token budget ran out, or decoding stuck
        else:
            problem = self.check(question, evidence, text, entry_labels(extract_text))
        return Composition(text, problem, messages, first, len(pieces))

    def check(self, question: str, evidence: Sequence[str], text: str, implied: str = "") -> str:
        """Why the composition does not keep what the evidence says, or "". ``implied``: words
        the answer need not say (the entry's title)."""
        if not text:
            return "the model wrote nothing"
        for sentence in split_sentences(text):
            # no echo test: a clause of the evidence that restates the question is its answer
            if problem := form_problem(sentence, ""):
                return problem
        said = " ".join(text.lower().split())

        def kept(clause: str) -> bool:
            return clause.rstrip(".").lower() in said

        kinds = [k for k in asked_types(question) if k not in ("other", "definition")]
        if any(holds_type(" ".join(evidence), k) and not holds_type(text, k) for k in kinds):
            return "left out the asked fact"
        if implied and asks_term(question) and implied.lower() not in said:
            return "left out the asked fact"  # "What do you call ...?": the name is the answer
        names = [n.strip().lower() for n in implied.split(":") if n.strip()]
        unsaid = names and not any(n in said for n in names)
        if unsaid and "person" in kinds and not says_who(evidence[0]):
            return "left out the asked fact"  # who: "WAP Forum: The official body developing"
        acronym = asked_expansion(question)  # "ISDN: ..." -> "A set of standards ..." drops it
        source = f"{implied} {' '.join(evidence)}"
        if acronym and spells_out(source, acronym) and not spells_out(text, acronym):
            return "left out the asked fact"
        words = set(tokenize(said))
        asked = set(tokenize(question)) - words  # the question's words the answer does not say
        for sentence in evidence:
            parts = clauses(sentence)
            if any(kept(c) for c in parts):
                dropped = [c for c in parts if not kept(c)]
                if any(asked & set(tokenize(c)) for c in dropped):
                    return "left out the asked fact"  # "..., and zeros for the host part"
                if any(c.lower().startswith("because") for c in dropped):
                    return "left out the reason"
                if any(holds_type(c, k) for c in dropped for k in kinds):
                    return "left out the asked fact"
                if asks_term(question) and any(NAMES_IT.search(c) for c in dropped):
                    return "left out the asked fact"  # ", a property known as transfer learning"
        opening = clauses(evidence[0])  # "..., trained only on next-token prediction": all of it
        if asks_definition(question) and 0 < sum(map(kept, opening)) < len(opening):
            return "left out part of the definition"
        for n, sentence in enumerate(evidence):
            # the reader adds a sentence only for a fact the first lacks: each must stay
            own = set(tokenize(sentence))
            if len(own & words) < self.min_sentence_share * len(own):
                return (
                    "left out the evidence's opening statement"
                    if n == 0
                    else "left out an evidence sentence"
                )
        return self._coverage_problem(question, evidence, f"{said} {implied.lower()}")

    def _coverage_problem(self, question: str, evidence: Sequence[str], said: str) -> str:
        asked = set(tokenize(question)) & set(tokenize(" ".join(evidence)))
        if not asked:
            return ""
        share = len(asked & set(tokenize(said))) / len(asked)
        if share < self.min_question_coverage:
            return f"says too little of what was asked ({share:.2f})"
        return ""
