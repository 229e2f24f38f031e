"""Follow-up questions become standalone questions before retrieval.

"and why do companies release them?" retrieves nothing useful on its own: the subject lives in
the previous turn. A heuristic rewrite (pronoun -> the glossary term last talked about) costs
microseconds, where asking a 135M model to rewrite costs seconds and often changes the meaning.

The subject can also live in the question's own first sentences: "I keep seeing CLX mentioned.
What is it?" asks what CLX is, and is looked up as such (``own_context``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from chatbot.terms import TermIndex
from chatbot.text import marked_terms, question_sentences

_LEADING = re.compile(r"^\s*(and|but|so|also|ok(ay)?|then|what about|how about)\b[\s,]*", re.I)
_SINGULAR = re.compile(r"\b(it|its|this one|that one)\b", re.I)
_PLURAL = re.compile(r"\b(they|them|their|these|those)\b", re.I)
# What makes a question lean on the one before: a connector ("and why?", "what about ..."),
# a personal pronoun, or "this" / "that" standing for a thing ("why is that?", "how does this
# work?"), not the relative "that" of "the companies that provide ...". A question that only
# opens with "what" or "how" is not one: "What do you call the variation in packet arrival
# times?" after a question about MTU is about jitter, not "(mtu)".
_FOLLOWUP_HINT = re.compile(
    r"^\s*(and|but|so|also|what about|how about)\b"
    r"|\b(it|its|they|them|their|these|those)\b"
    r"|\b(this|that)(?=\s*(?:[?.!,;]|$)|\s+(?:one|work|works|mean|means|happen|happens|"
    r"matter|matters|is|was|does|do|differ|differs|compare)\b)",
    re.I,
)
# "why?", "how so?", "what else?", "examples?": nothing but asking, so about the last subject
_BARE = re.compile(
    r"^\s*(?:(?:why|how|what|when|who|where|so|then|exactly|else|really|not|come|any|more|"
    r"examples?)\b[\s,]*){1,3}[?.!]*\s*$",
    re.I,
)


# "Jitter: The variation in ..." -- an answer that names its entry first (a lookup, a "what do
# you call ...?" answer); Markdown emphasis around the name is allowed
_ANSWER_LABEL = re.compile(r"^[*_\s]*([^:\n*_]{2,60}?)[*_]*:\s")


def asked_with_answers(messages: Iterable[tuple[str, str]]) -> list[str]:
    """Earlier questions for the rewriter, from a chat's (role, text) messages in order: each
    non-empty user message with the entry that the assistant reply after it named, when the
    reply opens with one. After "What do you call the variation in packet arrival times?"
    (reply: "Jitter: ..."), "why does it matter?" is about jitter. The UI and the API both
    read their conversations through this."""
    turns: list[list[str]] = []
    for role, text in messages:
        if role == "user":
            turns.append([text, ""])
        elif role == "assistant" and turns and not turns[-1][1]:
            turns[-1][1] = text
    out = []
    for asked, answer in turns:
        if asked.strip():
            label = _ANSWER_LABEL.match(answer)
            out.append(f"{asked} ({label.group(1).strip()})" if label else asked)
    return out


def _plural(term: str) -> str:
    return term if term.endswith("s") else term + "s"


# "What is it?", "what does that mean", "What does he mean?", "what does the acronym stand
# for": an asked sentence that names its term only by a pronoun. The words after it are
# limited, so "what is the name of the protocol ..." is no such sentence.
_LEANS_ON_CONTEXT = re.compile(
    r"^(?P<head>.*?\bwh?at\s*(?:'s|’s|\s+is|\s+was|\s+does|\s+do|\s+did)\s+)"
    r"(?P<pronoun>(?:that|this|the)\s+(?:word|term|acronym|abbreviation|phrase|expression|name)"
    r"|it|that|this|he|she|they)"
    r"(?P<tail>(?:\s+(?:exactly|mean|means|stand|stands|for|refer|refers|to|short|actually|"
    r"really|again|here|there|supposed|used|do|does|about|in|this|that|context|case))*)\s*[?.!]*$",
    re.I,
)


# "my boss said our design is pure BFI, what does that mean?": the context in a clause
_LAST_CLAUSE = re.compile(
    r"^(?P<context>.*\w\W*?)\s*[,;:]\s+(?P<ask>(?:so\s+)?wh?at\b[^,;:]*)$", re.I
)


def own_context(question: str) -> str:
    """The question with its last sentence's pronoun replaced by the one term that the
    sentences before it mark (in quotes, else in capitals): "I keep seeing CLX mentioned. What
    is it?" -> "... What is CLX?". Those sentences' question marks become full stops ('said
    "bubble sort? that's BFI"' asks nothing), so the rewritten sentence is the one asked. Two
    marked terms are ambiguous: the question is left as it is. The context may also be a
    clause before the asked one ("... pure BFI, what does that mean?")."""
    sentences = question_sentences(question)
    if len(sentences) == 1 and (clause := _LAST_CLAUSE.match(question.strip())):
        sentences = [clause.group("context") + ".", clause.group("ask")]
    ask = _LEANS_ON_CONTEXT.match(sentences[-1]) if len(sentences) > 1 else None
    if ask is None:
        return question
    terms = marked_terms(" ".join(sentences[:-1]))
    if len(terms) != 1 or terms[0].lower() in sentences[-1].lower():
        return question
    asked = f"{ask.group('head')}{terms[0]}{ask.group('tail')}".rstrip() + "?"
    context = [s[:-1] + "." if s.endswith("?") else s for s in sentences[:-1]]
    return " ".join([*context, asked])


class FollowUpRewriter:
    """Rewrites a follow-up using the glossary terms mentioned earlier in the conversation."""

    def __init__(self, terms: Iterable[str] | TermIndex) -> None:
        self.index = (
            terms
            if isinstance(terms, TermIndex)
            else TermIndex.build({"doc_id": t, "title": t} for t in terms if t and t.strip())
        )

    def mentioned(self, text: str) -> str | None:
        """The longest glossary term in ``text`` ("foundation model" wins over "model"),
        found by dictionary look-ups: one regex per term does not scale to 10,000 entries."""
        return self.index.mentioned(text)

    def run(self, question: str, history: Sequence[str]) -> str:
        """``history``: earlier user questions, oldest first."""
        if (own := own_context(question)) != question:
            return own
        leans = _FOLLOWUP_HINT.search(question) or _BARE.match(question)
        if not history or self.mentioned(question) or not leans:
            return question
        subject = next((t for h in reversed(history) if (t := self.mentioned(h))), None)
        if subject is None:
            return question
        text = _LEADING.sub("", question).strip() or question.strip()
        replaced = _PLURAL.sub(lambda m: _possessive(_plural(subject), m.group(0)), text, count=1)
        if replaced == text:
            replaced = _SINGULAR.sub(
                lambda m: _possessive(f"a {subject}", m.group(0)), text, count=1
            )
        if replaced == text:
            replaced = f"{text.rstrip('?').rstrip()} ({subject})?"
        return replaced[0].upper() + replaced[1:]


def _possessive(noun: str, pronoun: str) -> str:
    if pronoun.lower() in {"its", "their"}:
        return (
            noun.removeprefix("a ") + "'" if noun.endswith("s") else noun.removeprefix("a ") + "'s"
        )
    return noun
