"""What every generator shares: the ``Generator`` protocol and the streaming machinery.

A backend produces text pieces on a worker thread (``threaded_stream``) so that the consumer
(the pipeline, the UI) can stop reading at any moment: the worker sees the stop event before
its next token and ends, releasing the model for the next question.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from chatbot.config import Settings
from chatbot.errors import GenerationError

Message = dict[str, str]
BUNDLED_NAME = "SmolLM2-135M-Instruct"
STALL_SECONDS = 120.0  # no piece for this long: the generation is given up
SCORE_PREFIX_TOKENS = 400  # a scored prefix keeps its last this many tokens


@dataclass(frozen=True)
class GenerationOptions:
    """The settings every local backend decodes with; one object, so no backend takes a row
    of floats side by side."""

    temperature: float = 0.0
    repetition_penalty: float = 1.15
    threads: int = 0  # 0 = every core; set once, when the model is loaded

    @classmethod
    def from_settings(cls, settings: Settings) -> GenerationOptions:
        return cls(settings.temperature, settings.repetition_penalty, settings.effective_threads())


@runtime_checkable
class Generator(Protocol):
    name: str

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        """Yield text pieces of the assistant reply as they are produced."""
        ...

    def count_tokens(self, text: str) -> int: ...


Produce = Callable[[threading.Event], Iterator[str]]


def threaded_stream(
    produce: Produce, lock: threading.Lock, stall_s: float = STALL_SECONDS
) -> Iterator[str]:
    """Run ``produce(stop)`` on a worker thread holding ``lock``; yield its pieces as they come.

    When the consumer stops iterating (closes this generator, or drops it), ``stop`` is set and
    the worker ends before its next token; its errors reach the consumer as GenerationError.
    """
    pieces: queue.Queue[str | None] = queue.Queue()
    errors: list[BaseException] = []
    stop = threading.Event()

    def work() -> None:
        try:
            with lock:
                for piece in produce(stop):
                    pieces.put(piece)
                    if stop.is_set():
                        break
        except BaseException as exc:  # surfaced in the consumer thread
            errors.append(exc)
        finally:
            pieces.put(None)

    thread = threading.Thread(target=work, daemon=True, name="generate")
    thread.start()
    try:
        while True:
            try:
                item = pieces.get(timeout=stall_s)
            except queue.Empty:
                raise GenerationError(f"generation stalled for {stall_s:.0f} s") from None
            if item is None:
                break
            yield item
    finally:
        stop.set()  # consumer went away (client stopped): end generation early
        thread.join(timeout=30)
    if errors:
        raise GenerationError(f"generation failed: {errors[0]}") from errors[0]


class IncrementalText:
    """The text of a growing token list, handed out piece by piece once it is whole.

    A multi-byte character split over tokens decodes as U+FFFD until its last token arrives:
    such a piece waits.
    """

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self.decode = decode
        self.tokens: list[int] = []
        self.shown = ""

    def _new(self, text: str) -> str:
        if len(text) > len(self.shown) and text.startswith(self.shown):
            piece, self.shown = text[len(self.shown) :], text
            return piece
        return ""

    def add(self, token: int) -> str:
        self.tokens.append(token)
        text = self.decode(self.tokens)
        return "" if text.endswith("\ufffd") else self._new(text)

    def flush(self) -> str:
        return self._new(self.decode(self.tokens)) if self.tokens else ""


def mean_logprob(logits: Any, targets: Sequence[int]) -> float:
    """Mean log-probability of ``targets`` under ``logits`` (one row per target position)."""
    import numpy as np

    x = np.asarray(logits, dtype=np.float64)
    top = x.max(axis=-1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(x - top).sum(axis=-1))
    picked = x[np.arange(len(targets)), np.asarray(targets)]
    return float((picked - log_norm).mean())
