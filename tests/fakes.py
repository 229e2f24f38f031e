"""Small deterministic stand-ins behind the real interfaces (Embedder, Generator)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from chatbot.grounded import ClauseGrammar, grounded_tokens
from chatbot.tokens import tokenize


class FakeEmbedder:
    """Hashed bag of stemmed words: similar wording -> similar vectors, no model needed."""

    name = "fake-hash"

    def __init__(self, dim: int = 256, tag: str = "v1") -> None:
        self._dim = dim
        self.tag = tag
        self.batch_size = 8
        self.calls = 0
        self.encoded = 0

    @property
    def dim(self) -> int:
        return self._dim

    def fingerprint(self) -> str:
        return f"{self.name}:{self._dim}:{self.tag}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.encoded += len(texts)
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for tok in tokenize(text) or ["<empty>"]:
                h = int(hashlib.md5(tok.encode()).hexdigest()[:8], 16)
                out[row, h % self._dim] += 1.0
            out[row] /= np.linalg.norm(out[row]) or 1.0
        return out


class FakeGenerator:
    """Replies with a scripted answer (or a function of the messages), word by word."""

    name = "fake-llm"

    def __init__(self, reply: str | Callable[[list[dict[str, str]]], str] = "") -> None:
        self.reply = reply
        self.calls: list[list[dict[str, str]]] = []
        self.lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(self, messages: list[dict[str, str]], max_new_tokens: int) -> Iterator[str]:
        with self.lock:
            self.calls.append(messages)
        text = self.reply(messages) if callable(self.reply) else self.reply
        words = text.split(" ")
        for i, word in enumerate(words[:max_new_tokens]):
            yield word if i == 0 else " " + word


class FakeGroundedGenerator(FakeGenerator):
    """Decodes under the clause grammar with a vocabulary of single characters.

    ``choose(messages, evidence)`` gives the answer it would like to write; at each step the
    next character of it scores highest, so the real decoder (``grounded_tokens``) writes it
    where the grammar allows and goes its own way (the forced copy, or the end) where not.
    A token is one character here, so the token budget is taken as 8 characters a token.
    """

    EOS = 0

    def __init__(self, choose: Callable[[list[dict[str, str]], list[str]], str]) -> None:
        super().__init__("")
        self.choose = choose
        self.written: list[str] = []

    def grounded(
        self, messages: list[dict[str, str]], grammar: ClauseGrammar, max_new_tokens: int
    ) -> Iterator[str]:
        with self.lock:
            self.calls.append(messages)
        wanted = self.choose(messages, grammar.clauses)
        chars = sorted(set(wanted) | set("".join(grammar.clauses)) | set(" ,;.?"))
        vocab = ["<eos>", *chars]
        written: list[str] = []

        def scores_after(token: int | None) -> np.ndarray:
            if token is not None:
                written.append(vocab[token])
            scores = np.zeros(len(vocab), dtype=np.float32)
            at = len("".join(written))
            if at < len(wanted):
                scores[vocab.index(wanted[at])] = 10.0
            else:
                scores[self.EOS] = 10.0
            return scores

        out = grounded_tokens(
            scores_after,
            vocab.__getitem__,
            grammar,
            {self.EOS},
            max_new_tokens=max_new_tokens * 8,
            encode=lambda s: [vocab.index(s[0])],
        )
        yield from out
        self.written.append("".join(written))
