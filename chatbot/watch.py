"""Auto re-index: the running app watches the corpus folder and rebuilds after edits settle.

Editing a glossary page should need no button. ``watchfiles`` (Rust notify, polling where
inotify is unavailable) reports changes; we wait until the folder has been quiet for
``settle_s`` so that an editor's save-rename-delete dance or a ``git pull`` of many files
becomes one incremental rebuild. ``Pipeline.rebuild`` publishes the new build atomically and
swaps the live index, so answers already in flight finish on the old one; a failed rebuild
leaves the old index live and is reported, never hidden.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatbot.pipeline import Pipeline

log = logging.getLogger(__name__)
Watch = Callable[..., Iterator[set[tuple[Any, str]]]]


@dataclass(frozen=True)
class WatchEvent:
    """The outcome of one automatic rebuild: ``seq`` counts events, ``version`` the indexes
    made live (a failure is a new event on the same version)."""

    seq: int
    version: int
    ok: bool
    files: int
    message: str
    at: float


class CorpusWatcher:
    def __init__(self, pipe: Pipeline, *, settle_s: float = 2.0, watch: Watch | None = None):
        if settle_s <= 0:
            raise ValueError("settle_s must be positive")
        self.pipe = pipe
        self.settle_s = settle_s
        self._watch = watch
        self._stop = threading.Event()
        self.ready = threading.Event()  # set once the folder is being watched
        self._thread: threading.Thread | None = None
        self._changed = threading.Condition()
        self.last: WatchEvent | None = None
        self.version = 0
        self.seq = 0

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self._run, name="corpus-watch", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        watch = self._watch or _watchfiles()
        folder = self.pipe.settings.corpus_dir
        quiet_ms = int(self.settle_s * 1000)
        try:
            for changes in watch(
                folder,
                step=quiet_ms,  # yield once nothing has changed for this long
                debounce=max(quiet_ms * 10, 20_000),  # but never hold changes back longer
                stop_event=self._stop,
                raise_interrupt=False,
                rust_timeout=1_000,
                yield_on_timeout=True,  # an empty batch each second: the watch is live
            ):
                self.ready.set()
                if changes:
                    self.apply(path for _, path in changes)
        except Exception:  # the folder vanished, inotify limits: say so, keep serving
            log.exception("watching %s stopped", folder)
            self._record(False, 0, f"auto re-index stopped: cannot watch {folder}")

    def apply(self, paths: Iterable[str]) -> WatchEvent | None:
        """Rebuild after a batch of changes; None when nothing indexable changed."""
        touched = sorted({Path(p).name for p in paths})
        log.info("corpus changed (%s); rebuilding", ", ".join(touched[:5]))
        try:
            summary = self.pipe.rebuild()
        except Exception as exc:
            log.exception("auto re-index failed")
            return self._record(
                False, 0, f"auto re-index failed: {exc}. The previous index is still in use."
            )
        if summary.up_to_date:
            return None  # saved without a change, or a file the index ignores
        files = len(summary.added) + len(summary.changed) + len(summary.removed)
        noun = "file" if files == 1 else "files"
        return self._record(True, files, f"corpus updated: {files} {noun}")

    def _record(self, ok: bool, files: int, message: str) -> WatchEvent:
        with self._changed:
            self.seq += 1
            self.version += ok
            self.last = WatchEvent(self.seq, self.version, ok, files, message, time.time())
            self._changed.notify_all()
            return self.last

    def wait(self, after_seq: int, timeout: float) -> WatchEvent | None:
        """Block until an event newer than ``after_seq`` (for tests and scripts, not the UI)."""
        with self._changed:
            self._changed.wait_for(lambda: self.seq > after_seq, timeout)
            return self.last if self.seq > after_seq else None


def _watchfiles() -> Watch:
    from watchfiles import watch

    return watch
