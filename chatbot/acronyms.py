"""Acronyms asked about and spelled out: "What does CRFM stand for?" is answered only by a
sentence spelling CRFM out ("Center for Research on Foundation Models"), and which sentence does
is decided by letters, not by meaning: initials in order, or word prefixes ("Ada Programming
Support Environment" spells APSE; "Read-Only Memory" spells ROM)."""

from __future__ import annotations

import re

from chatbot.text import ACRONYM

# "What does CRFM stand for?", "What is RAM short for?", "clut stands for what?", "the full
# form of ISDN": only a sentence spelling the acronym out answers. Where nothing else marks the
# word as the acronym, it must be written as one ("CRFM", "LoRA"): "what does the name stand
# for?" names none.
_ACRONYM = rf"((?-i:{ACRONYM}))"
_WORD = r"(?!(?:it|this|that|these|those|they|he|she|we|you)\b)([a-z][a-z0-9]{1,9})"
_EXPANSION_ASKED = [
    re.compile(p, re.I)
    for p in (
        r"\b(?:what|whats|which words?)\b.{0,40}?\b" + _ACRONYM + r"\b[\"')]?"
        r"(?:\s+(?:in|from|of)\s+[^?]{1,40}?|(?:\s+(?-i:[a-z']+)){1,2})?\s+(?:actually\s+|really\s+)?"
        r"(?:stand|stands|short|is short|an abbreviation|an acronym)\s+(?:for|of)\b",
        r"^(?:so\s+)?" + _WORD + r"\s+(?:stands?|is short)\s+for\s+what\b",
        r"\b(?:full|long|expanded)\s+(?:form|name)\s+of\s+(?:the\s+)?(?:acronym\s+|"
        r"abbreviation\s+)?" + _WORD + r"\b",
        r"^what\s+does\s+(?:the\s+)?(?:acronym|abbreviation|initialism)\s+"
        + _WORD
        + r"\s+(?:mean|stand\s+for)\b",
        r"^what\s+does\s+" + _WORD + r"\s+(?:actually\s+|really\s+)?stand\s+for\b",
        # "admd in x.400, what's that short for?"
        r"^(?!(?:so|and|but|ok|okay|in|on|at|the|also|now|well|hey|hi|then|yes|no)\b)"
        + _WORD
        + r"\b[^?,]{0,40}?,\s*what(?:'?s|\s+is|\s+does)\s+(?:that|it|this)\s+"
        r"(?:short\s+for|stands?\s+for)\b",
    )
]
SMALL_WORDS = frozenset(
    ("a", "an", "and", "as", "at", "by", "for", "from", "in", "of", "on", "or", "the")
)


def asked_expansion(question: str) -> str:
    """The acronym whose expansion is asked for ("CRFM"), or ""."""
    m = next((m for p in _EXPANSION_ASKED if (m := p.search(question.strip()))), None)
    return m.group(1) if m else ""


def _in_order(letters: str, words: list[str]) -> bool:
    """Each letter starts its word, but for an X from inside one ("Extensible Markup Language"
    for XML, "mail exchange" for MX)."""
    return len(words) == len(letters) and all(
        word[0].lower() == letter or (letter == "x" and "x" in word.lower())
        for letter, word in zip(letters, words, strict=True)
    )


def _by_prefixes(letters: str, words: list[str]) -> bool:
    """Each capitalised word gives the acronym a prefix of itself, in order: "ADministration
    Management Domain" is ADMD, "MOdulator DEModulator" is MODEM."""
    if not words or not letters:
        return not words and not letters
    word = words[0].lower()
    return words[0][0].isupper() and any(
        word.startswith(letters[:k]) and _by_prefixes(letters[k:], words[1:])
        for k in range(1, min(len(letters), len(word)) + 1)
    )


def _capitals_spell(acronym: str, words: list[str]) -> bool:
    """The words' capitals spell the acronym, over more than one word and without the acronym
    itself among them: "ALgorIthmic ASsembly" is ALIAS, "SLD resolution" is not SLD."""
    capped = [w for w in words if any(c.isupper() for c in w)]
    capitals = "".join(c for w in capped for c in w if c.isupper()).lower()
    return (
        len(capped) >= 2
        and capped[0] == words[0]  # "logic, programming> (Selected, ..." starts at "Selected"
        and capped[-1] == words[-1]
        and capitals == acronym
        and all(w.lower() != acronym for w in words)
    )


def _initials_spell(letters: str, window: list[str], content: list[str]) -> bool:
    """The words' initials make the acronym: in order, small words counted or not, or in
    another order when the words are capitalised."""
    every = [w[0].lower() for w in window]
    initials = [w[0].lower() for w in content]
    capitals = sum(w[0].isupper() for w in content)
    return (
        _in_order(letters, window)
        or _in_order(letters, content)
        or (
            sorted(letters) in (sorted(every), sorted(initials))
            and 3 * capitals >= 2 * len(content)
        )
    )


def spells_out(sentence: str, acronym: str) -> bool:
    """Does the sentence hold words whose initials make the acronym?"""
    return bool(expansion_in(sentence, acronym))


def expansion_in(sentence: str, acronym: str) -> str:
    """The words of the sentence whose initials make the acronym, as written there: in order,
    small words counted or not ("Center for Research on Foundation Models"), or in another order
    when the words are capitalised ("Problem Exists between Chair and Keyboard" for PEBKAC);
    or with some words giving more than one letter ("ADministration Management Domain"), or
    spelled by the capitals ("ALgorIthmic ASsembly" for ALIAS); "" when none do."""
    letters = acronym.lower()
    spans = list(re.finditer(r"[A-Za-z0-9]+", sentence))
    words = [m.group() for m in spans]
    for i, first in enumerate(words):
        if first.lower() in SMALL_WORDS:
            continue
        for size in range(2, len(letters) + 4):
            window = words[i : i + size]
            if len(window) < size or window[-1].lower() in SMALL_WORDS:
                continue
            content = [w for w in window if w.lower() not in SMALL_WORDS]
            if all(len(w) == 1 for w in content):
                continue  # "/D·D·T/" is how DDT is said, not what it stands for
            if _capitals_spell(letters, window) or (
                _by_prefixes(letters, content)  # fewer words than letters: some give several
                if size < len(letters)
                else _initials_spell(letters, window, content)
            ):
                return sentence[spans[i].start() : spans[i + size - 1].end()]
    return ""
