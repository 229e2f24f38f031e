"""Grounded decoding: the model writes the answer, but only out of the evidence's own clauses.

Measured on this project's questions, SmolLM2-135M given the right sentences and left free
invents names, loops ("a task or a task or ...") and flips yes/no. Masked to the evidence's
vocabulary, or allowed to copy any span of it, it still stitches fragments into claims the
evidence never makes ("No, it is a prerequisite to running a local LLM"): fact recall 0.57
against 0.81 for the same evidence shown as it is.

So the model decodes under a clause grammar. The evidence sentences are cut into clauses (at
commas, semicolons and colons, and before "while", "but", "because" ...); each sentence of the
answer begins where an evidence sentence begins or after its lead-ins ("For example,", "For
most product teams,"), goes on through the clauses that follow without a gap, each copied
whole, and stops after a whole clause; sentences keep their evidence order. The model decides
what a small LM can decide well: which sentences answer the question, where each begins and
where it stops. No word order, name, number or negation can change inside a clause, and no
condition between two kept clauses can be dropped; the check in ``compose`` still makes sure
the asked fact was kept.

The grammar works on characters, so it is independent of the tokenizer: a token is allowed when
its text keeps the answer parseable. Decoding is greedy over the model's top candidates.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

JOIN_PUNCT = ",;."
MIN_CLAUSE_WORDS = 4  # a shorter piece (a list item, "For example") stays with its neighbour
# where a clause may end: after , ; : and before a relative or contrastive word
_CUT = re.compile(
    r"(?<=[,;:])\s+|(?<!\band)(?<!\bor)\s+(?=(?:while|whereas|but|because|although)\b)"
)
# a clause that cannot open an answer or a sentence of it: it leans on the one before
_DEPENDENT = re.compile(r"^(?:and|or|but|which|while|whereas|because|although|so|where|then)\b")
# a lead-in the answer may skip: "For most product teams, foundation models ..." may open at
# "foundation models"; '"Open-weight models," such as Llama, make their weights public' may not
# open at "make their weights public", which would read as an instruction
_LEAD_IN = re.compile(
    r"^(?:for|in|as|when|if|although|though|rather than|instead of|unlike|since|after|before|by|"
    r"with|like|on|at|during|once|given|today|now|however|moreover|also|additionally|thus|"
    r"therefore|typically|usually|often|generally|historically|originally|in practice|"
    r"e\.g\.|i\.e\.)\b",
    re.I,
)


def clauses(sentence: str) -> list[str]:
    """A sentence's clauses, in order, each without the separator that followed it."""
    out: list[str] = []
    for part in (p.strip() for p in _CUT.split(" ".join(sentence.split()))):
        if not part:
            continue
        if out and (len(part.split()) < MIN_CLAUSE_WORDS or len(out[-1].split()) < 2):
            out[-1] = f"{out[-1]} {part}"
        else:
            out.append(part)
    if len(out) > 1 and len(out[-1].split()) < MIN_CLAUSE_WORDS:
        out[-2:] = [f"{out[-2]} {out[-1]}"]
    return [c.rstrip(",;:").rstrip() for c in out]


@dataclass(frozen=True)
class _Path:
    """One reading of the answer so far: inside clause ``k`` at ``pos`` ("clause"), or after
    clause ``k`` ("join"; -1 before the first) having read ``punct`` and ``space``."""

    kind: str
    k: int = -1
    pos: int = 0
    punct: str = ""
    space: bool = False


class ClauseGrammar:
    """Which continuations keep an answer made of whole evidence clauses, in evidence order."""

    def __init__(self, sentences: Sequence[str]) -> None:
        self.clauses: list[str] = []
        self.sentence_of: list[int] = []  # the evidence sentence each clause comes from
        self.opens: list[bool] = []  # the clause may begin a sentence of the answer
        for i, sentence in enumerate(sentences):
            cut = [c.rstrip(".") for c in clauses(sentence) if c.rstrip(".")]
            self.clauses += cut
            self.sentence_of += [i] * len(cut)
            for j, clause in enumerate(cut):
                skippable = all(_LEAD_IN.match(c) for c in cut[:j])
                self.opens.append(skippable and not _DEPENDENT.match(clause.lower()))
        if not self.clauses:
            raise ValueError("a clause grammar needs at least one evidence sentence")

    def start(self) -> tuple[_Path, ...]:
        return (_Path("join", punct="."),)

    def advance(self, paths: tuple[_Path, ...], text: str) -> tuple[_Path, ...]:
        """The readings after ``text`` is appended; empty when it cannot be read at all."""
        for ch in text:
            paths = tuple(dict.fromkeys(q for p in paths for q in self._step(p, ch)))
            if not paths:
                break
        return paths

    def can_end(self, paths: tuple[_Path, ...]) -> bool:
        """An answer may stop right after a whole clause (its last separator becomes a full
        stop: see ``finish``) of the last evidence sentence: the reader adds a sentence only
        for a fact the first lacks, so the model may trim each sentence but not drop one."""
        last = self.sentence_of[-1]
        return any(
            p.kind == "join" and p.k >= 0 and not p.space and self.sentence_of[p.k] == last
            for p in paths
        )

    @staticmethod
    def finish(text: str) -> str:
        return text.rstrip().rstrip(",;.") + "." if text.strip() else ""

    def forced(self, paths: tuple[_Path, ...]) -> str:
        """What decoding writes when none of the model's candidates is allowed: the rest of
        the word being copied, else the way on to the next clause (its punctuation, the space,
        its first word), so the answer is never left cut off; nothing where it may end."""
        if self.can_end(paths):
            return ""
        for p in paths:
            if p.kind == "clause" and p.pos < len(self.clauses[p.k]):
                rest = self.clauses[p.k][p.pos :]
                n = len(rest) - len(rest.lstrip(" "))
                while n < len(rest) and rest[n].isalnum():
                    n += 1
                return rest[: max(n, 1)]
        for p in paths:
            for text in self._onward(p):
                if self.advance((p,), text):
                    return text
        return ""

    def _onward(self, p: _Path) -> list[str]:
        if p.kind == "clause":  # the evidence's own sentence goes on where it can
            return [",", "."]
        if not p.space:
            return [" "]
        opening = p.punct == "."
        words = [self.clauses[k].split(" ", 1)[0] for k in range(p.k + 1, len(self.clauses))]
        return [w[:1].upper() + w[1:] if opening else w for w in words]

    def _step(self, p: _Path, ch: str) -> list[_Path]:
        return [q for q in self._moves(p, ch) if self._viable(q)]

    def _viable(self, p: _Path) -> bool:
        """Can this reading still become a whole answer? A comma after a sentence's last
        clause, or a space after the answer's last full stop, leads nowhere: allowing it let
        the model write "... in 1986, " and stop there, cut off."""
        if p.kind == "clause":
            end = p.pos == len(self.clauses[p.k])
            return not end or any(self._viable(_Path("join", p.k, punct=c)) for c in JOIN_PUNCT)
        if p.k >= 0 and not p.space and self.sentence_of[p.k] == self.sentence_of[-1]:
            return True  # it may end here
        opening = p.punct == "."
        return any(self._may_follow(p, k, opening) for k in range(p.k + 1, len(self.clauses)))

    def _moves(self, p: _Path, ch: str) -> list[_Path]:
        if p.kind == "clause":
            text = self.clauses[p.k]
            if p.pos < len(text) and text[p.pos] == ch:
                return [_Path("clause", p.k, p.pos + 1)]
            if p.pos == len(text) and ch in JOIN_PUNCT:
                return [_Path("join", p.k, punct=ch)]
            return []
        if ch == " ":
            return (
                []
                if p.space or (p.k >= 0 and not p.punct)
                else [_Path("join", p.k, 0, p.punct, True)]
            )
        if ch in JOIN_PUNCT or (p.k >= 0 and not p.space):
            return []
        opening = p.punct == "."
        return [
            _Path("clause", k, 1)
            for k in range(p.k + 1, len(self.clauses))
            if self._may_follow(p, k, opening)
            and ch == (self.clauses[k][0].upper() if opening else self.clauses[k][0])
        ]

    def _may_follow(self, p: _Path, k: int, opening: bool) -> bool:
        """The answer opens in the first evidence sentence (the reader's best: where the asked
        fact is); after a full stop, a clause that may begin a sentence (its sentence's first,
        or one after lead-ins such as "For most product teams,"); after a comma or semicolon,
        only the next clause of the same sentence ("coined by Stanford, and Gemini are base
        models" would join two sentences into a claim neither makes, and 'continues with "Paris"
        --, it might generate another question' would drop the condition between them)."""
        if p.k < 0 and self.sentence_of[k] != 0:
            return False
        if opening:
            return self.opens[k]
        return k == p.k + 1 and self.sentence_of[k] == self.sentence_of[p.k]


TokenText = Callable[[int], str]


def grounded_tokens(
    scores_after: Callable[[int | None], np.ndarray],
    token_text: TokenText,
    grammar: ClauseGrammar,
    eos: set[int],
    *,
    max_new_tokens: int,
    encode: Callable[[str], list[int]],
    top_k: int = 64,
) -> Iterator[str]:
    """Greedy decoding restricted to the grammar; yields each accepted token's text.

    ``scores_after(token)`` feeds ``token`` to the model (None: nothing yet, after the
    prompt) and returns the next-token scores. Among the ``top_k`` best tokens the first the
    grammar accepts is taken (the end token only where an answer may end); when none is, the
    evidence is copied on (``ClauseGrammar.forced``). Decoding stops where the answer may end
    and the model proposes nothing allowed.
    """
    paths, token = grammar.start(), None
    for _ in range(max_new_tokens):
        scores = scores_after(token)
        token = None
        top = (
            np.argpartition(-scores, top_k)[:top_k]
            if len(scores) > top_k
            else np.arange(len(scores))
        )
        for cand in top[np.argsort(-scores[top])].tolist():
            if cand in eos:
                if grammar.can_end(paths):
                    return
                continue
            piece = token_text(cand)
            nxt = grammar.advance(paths, piece) if piece else ()
            if nxt:
                paths, token = nxt, int(cand)
                break
        if token is None and (rest := grammar.forced(paths)):
            token = encode(rest)[0]
            paths = grammar.advance(paths, token_text(token))
        if token is None or not paths:
            return
        yield token_text(token)
