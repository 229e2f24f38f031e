"""The second sentence of an answer to a message that asks two things.

"What happens in a priority inversion, and is there a famous case of it?" asks for the entry's
definition and for the sentence about the Mars Pathfinder. The reader's first sentence answers
the first part; a second one joined it only when it held another kind of fact asked for (a
name, a year) or shared the question's words. A later part whose kind no pattern names
("is there a famous case of it?") is answered by the sentence of the first one's entry closest
to it, read with the entry's title ("it" is the entry). Measured on the eval sets: a quarter of
the answers missing an asked fact had stated another one (README, Quality).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from chatbot.candidates import Candidate
from chatbot.embedding import Embedder, encode_cached
from chatbot.kinds import STRONG_TYPE, AnswerType, later_parts, type_strength


def stating_first(
    order: list[int], cands: Sequence[Candidate], kinds: list[AnswerType], first: Candidate
) -> list[int]:
    """The order in which second sentences are tried: those of the first one's entry stating
    another kind of fact asked for ("born in Budapest in 1948" for "..., where was he born and
    in what year?") before those only holding one ("a senior programmer at Microsoft")."""
    missing = [k for k in kinds[1:] if k in STRONG_TYPE and type_strength(first.text, k) < 1.0]
    stating = [
        i
        for i in order
        if cands[i].title == first.title
        and any(type_strength(cands[i].text, k) == 1.0 for k in missing)
    ]
    return stating + [i for i in order if i not in stating]


def answer_parts(
    question: str,
    cands: Sequence[Candidate],
    picked: list[int],
    embedder: Embedder | None,
    limit: int,
) -> list[int]:
    """``picked`` (indices in ``cands``, the first sentence first) with the sentence of the
    first one's entry closest to a later part of the question, when there is room for it."""
    parts = later_parts(question)
    if embedder is None or not parts or not picked or limit < 2:
        return picked
    first = cands[picked[0]]
    own = [i for i, c in enumerate(cands) if c.title == first.title and c.pos >= 0]
    if len(own) < 2:
        return picked
    texts = [f"{first.title}: {p}" for p in parts] + [
        f"{cands[i].context}: {cands[i].text}" for i in own
    ]
    vecs = encode_cached(embedder, texts)
    closeness = (vecs[len(parts) :] @ vecs[: len(parts)].T).max(axis=1)
    best = own[int(np.argmax(closeness))]
    if best in picked or len(picked) >= limit:
        return picked  # a second sentence from another entry may be the right entry's
    return [*picked, best]
