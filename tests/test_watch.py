"""Auto re-index: corpus edits become a rebuild, the new text is answered, failures are told."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatbot.watch import CorpusWatcher

NEW_PAGE = """---
title: Zorblax
---
# Zorblax

A zorblax is a quantised widget that folds tensors into origami shapes.
"""


def test_an_edit_is_rebuilt_and_announced(make_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipe = make_pipeline(None)
    pipe.ensure_index()
    (pipe.settings.corpus_dir / "zorblax.md").write_text(NEW_PAGE)
    watcher = CorpusWatcher(pipe)
    event = watcher.apply([str(pipe.settings.corpus_dir / "zorblax.md")])
    assert event is not None and event.ok and event.files == 1
    assert event.message == "corpus updated: 1 file" and event.version == 1
    assert "zorblax" in pipe.ask("What is a zorblax?").answer.lower()


def test_a_save_without_change_announces_nothing(make_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipe = make_pipeline(None)
    pipe.ensure_index()
    page = next(pipe.settings.corpus_dir.glob("*.md"))
    page.write_text(page.read_text())
    watcher = CorpusWatcher(pipe)
    assert watcher.apply([str(page)]) is None and watcher.seq == 0


def test_a_failed_rebuild_keeps_the_old_index_and_says_why(make_pipeline, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    pipe = make_pipeline(None)
    live = pipe.ensure_index()

    def broken(**kw: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(pipe, "rebuild", broken)
    event = CorpusWatcher(pipe).apply(["x.md"])
    assert event is not None and not event.ok and event.version == 0
    assert "disk full" in event.message and "previous index is still in use" in event.message
    assert pipe.ensure_index() is live


def test_the_watch_loop_settles_and_stops(make_pipeline) -> None:  # type: ignore[no-untyped-def]
    """A fake watchfiles: the loop passes the settle time and stop event through, applies each
    batch, and ends when stopped."""
    pipe = make_pipeline(None)
    pipe.ensure_index()
    seen: dict[str, Any] = {}
    release = threading.Event()

    def fake_watch(folder: Path, **kw: Any) -> Iterator[set[tuple[int, str]]]:
        seen.update(kw, folder=folder)
        (folder / "zorblax.md").write_text(NEW_PAGE)
        yield set()  # watchfiles' timeout tick: nothing changed yet
        yield {(1, str(folder / "zorblax.md"))}
        release.wait(5)

    watcher = CorpusWatcher(pipe, settle_s=0.5, watch=fake_watch)
    watcher.start()
    event = watcher.wait(0, timeout=30)
    release.set()
    assert watcher.ready.is_set() and watcher.seq == 1  # the empty tick applied nothing
    watcher.stop()
    assert event is not None and event.ok
    assert seen["step"] == 500 and seen["stop_event"] is watcher._stop
    assert seen["folder"] == pipe.settings.corpus_dir


@pytest.mark.slow
def test_real_watchfiles_sees_an_edit(make_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipe = make_pipeline(None)
    pipe.ensure_index()
    watcher = CorpusWatcher(pipe, settle_s=0.3)
    watcher.start()
    try:
        assert watcher.ready.wait(30)
        (pipe.settings.corpus_dir / "zorblax.md").write_text(NEW_PAGE)
        event = watcher.wait(0, timeout=30)
    finally:
        watcher.stop()
    assert event is not None and event.ok, event
    assert "zorblax" in pipe.ask("What is a zorblax?").answer.lower()


def test_settle_time_is_validated(make_pipeline) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        CorpusWatcher(make_pipeline(None), settle_s=0)
