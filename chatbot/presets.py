"""Preset answers: the corpus's FAQ questions, answered once and kept on disk.

A preset tap must be instant, and the same preset must read the same every time, so each
answer is stored under a key of the index fingerprint, the settings that shape answers and the
prompt version (``AnswerCache``); any change to those computes it afresh.
"""

from __future__ import annotations

import logging

from chatbot.answer import Answer, clean_question
from chatbot.pipeline import Pipeline
from chatbot.prompt import Templates

log = logging.getLogger(__name__)


def cached_answer(pipe: Pipeline, question: str) -> Answer:
    """A preset's answer from the on-disk cache, computed and stored on a miss."""
    pipe.ensure_index()
    q = clean_question(question, pipe.settings.max_question_chars)
    fingerprint = pipe.index.fingerprint
    cache = pipe.answer_cache
    key = cache.key(fingerprint, pipe.settings, Templates.load().version, q)
    data = cache.get(fingerprint, key)
    if data is not None:
        try:
            answer = Answer.from_dict(data)
            answer.timings["cached"] = 1.0
            return answer
        except (TypeError, ValueError):
            pass  # an entry from another version or a damaged file: recompute it
    answer = pipe.ask(q, record=False)  # a warm-up is not a user's question: not logged
    cache.put(fingerprint, key, answer.to_dict())
    return answer


def warm_presets(pipe: Pipeline) -> int:
    """Answer every preset into the cache; a second call while one runs returns at once."""
    lock = pipe.warm_lock
    if not lock.acquire(blocking=False):
        return 0
    try:
        done = 0
        for q in pipe.presets():
            try:
                cached_answer(pipe, q)
                done += 1
            except Exception:
                log.exception("warming preset %r failed", q)
        return done
    finally:
        lock.release()
