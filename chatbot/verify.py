"""Checking a generated answer against its passages, and answering from the passages directly.

A 135M-parameter model is fluent and often wrong (it has answered "Yes, you can use a base model
directly for a chatbot" next to a passage saying the opposite). So every generated answer is
checked: invented citation numbers are dropped, each sentence must be lexically grounded in the
passages it cites, must not flip the polarity of its best-matching passage sentence, and must not
degenerate into repetition. A failed check falls back to an extractive answer built from the
passages' own sentences, so the user always gets something correct and cited.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from chatbot.chunking import Chunk
from chatbot.text import CITATION as _CITATION
from chatbot.text import LEADING_CITATIONS, parse_citations, split_sentences
from chatbot.tokens import tokenize

_NEGATION = re.compile(
    r"\b(not|no|never|cannot|can't|won't|isn't|aren't|doesn't|don't|without|neither|nor)\b|n't\b",
    re.IGNORECASE,
)
_AFFIRM = re.compile(r"^\s*(yes|yeah|sure|absolutely|of course)\b", re.IGNORECASE)
_IDK = re.compile(
    r"\b(i don'?t know|i do not know|not (?:covered|mentioned)|no information)\b", re.I
)
# Specifics a small model likes to invent: numbers and names (a capitalised word that does not
# start the sentence). Word overlap alone lets "coined by Harvard in 2019" pass next to
# "coined by Stanford in 2021"; these must appear in the passages themselves.
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][A-Za-z0-9-]*[a-z0-9][A-Za-z0-9-]*\b|\b[A-Z]{2,}\b")


def clean_citations(text: str, n_passages: int) -> tuple[str, list[int], int]:
    """Drop citations of passages that do not exist; returns (text, valid numbers, dropped)."""
    dropped = 0

    def fix(m: re.Match[str]) -> str:
        nonlocal dropped
        nums = [int(p) for p in re.split(r"[,;]", m.group(1))]
        good = [n for n in nums if 1 <= n <= n_passages]
        dropped += len(nums) - len(good)
        return "[" + ", ".join(str(n) for n in dict.fromkeys(good)) + "]" if good else ""

    cleaned = _CITATION.sub(fix, text)
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip()
    return cleaned, [n for n in parse_citations(cleaned) if 1 <= n <= n_passages], dropped


def _repetitive(text: str) -> bool:
    words = text.lower().split()
    if len(words) < 12:
        return False
    grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    return len(set(grams)) / len(grams) < 0.7


@dataclass
class Verdict:
    supported: bool
    score: float
    reasons: list[str] = field(default_factory=list)


class SupportChecker:
    """Is each answer sentence grounded in the passages it cites?"""

    def __init__(self, threshold: float = 0.55) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError("support threshold must be within [0, 1]")
        self.threshold = threshold

    def sentences(
        self, answer: str, passages: Sequence[Chunk], question: str = ""
    ) -> list[tuple[str, str]]:
        """Each answer sentence with "" when it is grounded, else the reason it is not."""
        passage_sents = [
            (i + 1, s, set(tokenize(s))) for i, p in enumerate(passages) for s in p.sentences()
        ]
        out: list[tuple[str, str]] = []
        for sentence in split_sentences(answer):
            cited = [n for n in parse_citations(sentence) if 1 <= n <= len(passages)]
            bare = _CITATION.sub("", sentence).strip()
            if not cited and passages:
                # checked against the passage it will be cited with, not against all of them:
                # "the mascot is Foundation Model" passed on a name from another passage
                cited = [best_passage(bare, passages)]
            tokens = set(tokenize(bare))
            if _IDK.search(bare):
                out.append((sentence, "the model said it does not know"))
                continue
            if problem := form_problem(bare, question):
                out.append((sentence, problem))
                continue
            if len(tokens) < 2:
                out.append((sentence, "" if out else "no claim"))
                continue
            pool = [ps for ps in passage_sents if ps[0] in cited]
            vocab = set().union(*(ps[2] for ps in pool)) if pool else set()
            score = len(tokens & vocab) / len(tokens)
            if score < self.threshold:
                out.append((sentence, f"unsupported ({score:.2f}): {bare[:80]!r}"))
                continue
            invented = _unsupported_specifics(bare, " ".join(ps[1] for ps in pool))
            if invented:
                out.append((sentence, f"not in the passages: {', '.join(invented[:3])}"))
                continue
            best = max(pool, key=lambda ps: len(tokens & ps[2]), default=None)
            if best is not None:
                said_neg = bool(_NEGATION.search(bare))
                src_neg = bool(_NEGATION.search(best[1]))
                if (said_neg != src_neg) or (_AFFIRM.search(bare) and src_neg):
                    out.append((sentence, f"contradicts passage {best[0]}: {bare[:80]!r}"))
                    continue
            out.append((sentence, ""))
        return out

    def run(self, answer: str, passages: Sequence[Chunk]) -> Verdict:
        """Supported only if every sentence is."""
        text = answer.strip()
        if not text:
            return Verdict(False, 0.0, ["empty answer"])
        if _repetitive(text):
            return Verdict(False, 0.0, ["the answer repeats itself"])
        checked = self.sentences(text, passages)
        reasons = [r for _, r in checked if r]
        ok = sum(1 for _, r in checked if not r)
        return Verdict(not reasons and ok > 0, ok / max(1, len(checked)), reasons)

    def supported_prefix(
        self, answer: str, passages: Sequence[Chunk], question: str = ""
    ) -> tuple[str, Verdict]:
        """The leading sentences that are grounded: a small model often starts right and then
        drifts, so keep what it got right and cut where it starts inventing."""
        text = answer.strip()
        if not text or _repetitive(text):
            return "", Verdict(False, 0.0, ["empty or repetitive answer"])
        kept: list[str] = []
        checked = self.sentences(text, passages, question)
        for sentence, reason in checked:
            if reason:
                break
            kept.append(sentence)
        reasons = [r for _, r in checked if r]
        # a sentence cut off by the token limit is not kept either
        if kept and not re.search(r"[.!?\])]\s*$", kept[-1]):
            kept.pop()
        claims = [k for k in kept if len(tokenize(_CITATION.sub("", k))) >= 2]
        return " ".join(kept), Verdict(bool(claims), len(kept) / max(1, len(checked)), reasons)


_MARKUP = re.compile(r"<[a-z][a-z ,/&'-]{1,60}>|\{[^{}]*\}")


def form_problem(sentence: str, question: str) -> str:
    """Why a sentence is not an answer at all, whatever its grounding: a question, an echo of
    the question, a fragment such as a title, or dictionary markup copied from a passage."""
    words = [w for w in sentence.split() if any(ch.isalnum() for ch in w)]
    if sentence.rstrip(" .").endswith("?"):
        return "a question, not an answer"
    if len(words) < 5 and not re.match(r"^(?:yes|no)\b", sentence, re.I):
        return f"a fragment, not a sentence: {sentence[:60]!r}"
    if _MARKUP.search(sentence):
        return "copies dictionary markup"
    said, asked = set(tokenize(sentence)), set(tokenize(question))
    if asked and said and len(said - asked) <= 1:
        return "repeats the question"
    return ""


def best_passage(sentence: str, passages: Sequence[Chunk]) -> int:
    """The number (from 1) of the passage sharing most words with ``sentence``: the citation an
    uncited sentence gets, and so the passage the verifier checks it against."""
    words = set(tokenize(_CITATION.sub("", sentence)))
    shared = [len(words & set(tokenize(p.text))) for p in passages]
    return 1 + max(range(len(passages)), key=shared.__getitem__)


def _unsupported_specifics(sentence: str, passage_text: str) -> list[str]:
    """Numbers and names in ``sentence`` that the passages never mention."""
    haystack = passage_text.lower()
    words = set(re.findall(r"[a-z0-9]+", haystack))
    out = [n for n in _NUMBER.findall(sentence) if n not in passage_text]
    for name in _NAME.findall(sentence.strip()):
        if name.lower() not in words and name.lower() not in haystack:
            out.append(name)
    return list(dict.fromkeys(out))


# What a question names that an answer must be about: a number of two or more digits or a
# version ("2031", "24.04", "3.12"), and a model or product code, a letter before a digit
# ("M3", "GPT-4", "Z80A"; not "64-bit" or "mid-1990s", whose number is checked as a number)
_ASKED_NUMBER = re.compile(r"(?<![\w.])(?:\d{2,}(?:\.\d+)*|\d+(?:\.\d+)+)(?![\w.])")
_ASKED_CODE = re.compile(r"(?<![\w-])[A-Za-z][\w-]*?\d[\w-]*")
_ALTERNATIVES = re.compile(r"(?<![\w.])(\d{2,})\s*(?:/|\bor\b)\s*(\d{2,})(?![\w.])")
_DECADE = re.compile(r"^(?:(?:mid|early|late)-)?\d+(?:s|st|nd|rd|th)$", re.I)
# a name's version in one digit, mid-sentence: "When was Python 3 released?", "Windows 7"
_ASKED_VERSION = re.compile(r"(?<=[a-z,;:]\s)([A-Z][\w+#-]*)\s+(\d)(?![\w.%-])")


def unmentioned_specifics(question: str, passage_texts: Sequence[str]) -> list[str]:
    """Numbers and product codes the question names that no passage mentions: "Who won the
    award in 2023?" is not answered from a 1988 entry, nor "How many cores has the M3 Max?"
    from an entry about cores in general, nor "When was Python 3 released?" from Python's."""
    haystack = " ".join(passage_texts)
    out = [
        n
        for n in _ASKED_NUMBER.findall(question)
        if not re.search(rf"(?<!\d){re.escape(n)}(?!\d)", haystack)
    ]
    for pair in _ALTERNATIVES.finditer(question):  # "around 2018/2019": either will do
        if not {pair.group(1), pair.group(2)} <= set(out):
            out = [n for n in out if n not in pair.groups()]
    tokens = re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", haystack.lower())
    seen = {t.replace("-", "") for t in tokens} | {a + b for a, b in pairwise(tokens)}
    seen |= {t[:-1] for t in seen if re.search(r"\ds$", t)}  # "ASR-33s", "PDP-11s": plurals
    for found in _ASKED_CODE.finditer(question):
        code = found.group().rstrip("-")
        key = code.lower().replace("-", "")
        # "the string F00LF00LF00L...": the question quotes the start of a longer string
        cut = question[found.end() :].startswith(("...", "…"))
        if _DECADE.match(code) or key in seen or (cut and any(t.startswith(key) for t in seen)):
            continue
        out.append(code)
    for name, digit in _ASKED_VERSION.findall(question):
        if f"{name.lower().replace('-', '')}{digit}" not in seen:
            out.append(f"{name} {digit}")
    return list(dict.fromkeys(out))


def attach_citations(text: str, passages: Sequence[Chunk]) -> tuple[str, list[int]]:
    """Give every sentence without a citation the passage that shares most words with it."""
    out = []
    for sentence in split_sentences(text):
        lead = LEADING_CITATIONS.match(sentence)
        if lead and sentence[lead.end() :].strip():
            # "[1] A pre-trained model ..." reads as a broken list: cite at the end instead
            rest, cite = sentence[lead.end() :].strip(), lead.group(0).strip()
            end = re.search(r"[.!?]$", rest)
            sentence = f"{rest[:-1]} {cite}{rest[-1]}" if end else f"{rest} {cite}"
        if not parse_citations(sentence):
            best = best_passage(sentence, passages)  # the passage the verifier checked it against
            end = re.search(r"[.!?]$", sentence)
            sentence = f"{sentence[:-1]} [{best}]{sentence[-1]}" if end else f"{sentence} [{best}]"
        out.append(sentence)
    joined = " ".join(out)
    return joined, parse_citations(joined)
