"""Every error the package raises on purpose, in one hierarchy.

Callers (the CLI, the UI, the API) catch ``ChatbotError`` once and show its message; the
subclasses exist so that each layer can tell "the index is missing" from "the model failed"
without string matching. ``hint`` is the command a user should run next, when there is one.
"""

from __future__ import annotations


class ChatbotError(Exception):
    """Base class: an expected failure with a message meant for the user."""

    hint = ""


class InvalidQuestion(ChatbotError, ValueError):
    """The question cannot be answered as given; the message is shown to the user as is."""


class CorpusError(ChatbotError):
    """The corpus as a whole is unusable (missing directory, no readable file)."""


class IndexUnavailable(ChatbotError):
    """The index cannot be used as it is."""

    hint = "run `chatbot index` to build it"


class IndexMissing(IndexUnavailable):
    """No build has been published yet."""


class IndexCorrupt(IndexUnavailable):
    """A published build fails its checks (hashes, shapes, pointer)."""

    hint = "run `chatbot index --full` to rebuild it"


class IndexMismatch(IndexUnavailable):
    """Built with another embedding model or chunking: its vectors must not be searched."""

    hint = "run `chatbot index --full` to rebuild it"


class IndexBuildError(ChatbotError):
    """A build could not finish; the previous build stays live."""


class IndexLocked(IndexBuildError):
    """Another process holds the build lock."""


class EmbeddingError(ChatbotError):
    """The embedding model could not be loaded or run."""


class GenerationError(ChatbotError):
    """The instruct model could not be loaded or failed while answering."""
