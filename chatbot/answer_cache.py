"""Preset answers cached on disk, so a tap on a frequently asked question answers at once.

Keys cover everything that changes an answer: the index fingerprint, every answer-affecting
setting, the prompt template version and the question. A rebuild changes the fingerprint, and the
folders of other fingerprints are dropped, so a cached answer never outlives its index. Entries
are written atomically; a damaged entry is treated as a miss and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from chatbot.atomic import write_atomic
from chatbot.config import Settings

log = logging.getLogger(__name__)
# Settings that do not change an answer: paths, the server, limits and secrets.
NOT_ANSWER_SETTINGS = frozenset(
    {
        "corpus_dir",
        "index_dir",
        "cache_dir",
        "host",
        "port",
        "auth",
        "queue_size",
        "concurrency",
        "preload",
        "openai_api_key",
        "threads",
        "max_question_chars",
        "title",
        "description",
        "presets_shown",
        "api",
        "api_key",
        "log_questions",
        "gap_log_max_bytes",
        "low_confidence_score",
        "watch",
        "watch_settle_s",
    }
)


class AnswerCache:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @staticmethod
    def key(fingerprint: str, settings: Settings, prompt_version: str, question: str) -> str:
        raw = json.dumps(
            [
                fingerprint,
                settings.model_dump(mode="json", exclude=set(NOT_ANSWER_SETTINGS)),
                prompt_version,
                question,
            ]
        )
        return hashlib.sha256(raw.encode()).hexdigest()[:24]

    def _path(self, fingerprint: str, key: str) -> Path:
        return self.folder / fingerprint / f"{key}.json"

    def get(self, fingerprint: str, key: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self._path(fingerprint, key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def put(self, fingerprint: str, key: str, data: dict[str, Any]) -> None:
        try:
            write_atomic(self._path(fingerprint, key), json.dumps(data).encode("utf-8"))
        except OSError as exc:  # a full disk costs speed, never an answer
            log.warning("cannot write preset cache: %s", exc)

    def prune(self, keep: str) -> None:
        """Drop the answers cached for every other index."""
        if not self.folder.is_dir():
            return
        for sub in self.folder.iterdir():
            if sub.is_dir() and sub.name != keep:
                shutil.rmtree(sub, ignore_errors=True)
