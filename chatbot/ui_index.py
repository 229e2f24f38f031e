"""The Index tab and everything that changes the live index: rebuild, refresh, the file
table's filters, and the auto re-index notices.

A rebuild keeps the chat usable: it runs in its own concurrency group, and the previous index
answers until the new one is live.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import gradio as gr

from chatbot.pipeline import Pipeline
from chatbot.presets import warm_presets
from chatbot.progress import ProgressTracker
from chatbot.ui_format import (
    blurb_markdown,
    escape_md,
    file_table,
    format_summary,
    preset_samples,
)
from chatbot.ui_layout import Layout
from chatbot.watch import CorpusWatcher

log = logging.getLogger(__name__)


def index_view(
    pipe: Pipeline, status: Any = "all", query: Any = "", page: Any = 1
) -> tuple[list[list[str]], str]:
    """The Index tab's table, filtered and paged, and its summary with the matching counts
    ("showing N of M · page p of q" follows the filter)."""
    rows, line = file_table(
        pipe,
        status if isinstance(status, str) else "all",
        query if isinstance(query, str) else "",
        int(page) if isinstance(page, int | float) else 1,
    )
    return rows, line + "\n\n" + format_summary(pipe)


def warm_presets_in_background(pipe: Pipeline) -> threading.Thread:
    """Fill the preset cache off the request path; at most one warm-up runs at a time."""

    def work() -> None:
        warm_presets(pipe)  # returns at once when another warm-up is running

    thread = threading.Thread(target=work, name="warm-presets", daemon=True)
    thread.start()
    return thread


def rebuild(
    pipe: Pipeline, progress: Callable[..., Any] | None = None
) -> tuple[str, list[list[str]], Any, str]:
    """Rebuild the index from the corpus folder; on failure the previous index stays live."""

    tracker = ProgressTracker()

    def report(stage: str, done: int, total: int) -> None:
        if progress is not None:
            progress(done / max(total, 1), desc=tracker.describe(stage, done, total))

    t0 = time.perf_counter()
    try:
        summary = pipe.rebuild(progress=report)
        status = f"✅ {escape_md(summary.describe())}"
    except Exception as exc:
        log.exception("rebuild failed")
        status = f"❌ Rebuild failed: {escape_md(str(exc))}. The previous index is still in use."
    status += f" ({time.perf_counter() - t0:.1f} s)"
    warm_presets_in_background(pipe)
    rows, line = file_table(pipe)
    return (
        status.replace("\n", "  \n") + "\n\n" + line + "\n\n" + format_summary(pipe),
        rows,
        gr.Dataset(samples=preset_samples(pipe)),
        status,
    )


def refresh(pipe: Pipeline) -> tuple[str, list[list[str]], Any, str]:
    """Everything that shows what the corpus holds: the Index tab's summary and files, the
    preset questions and the page header's entry count."""
    rows, line = file_table(pipe)
    return (
        line + "\n\n" + format_summary(pipe),
        rows,
        gr.Dataset(samples=preset_samples(pipe)),
        blurb_markdown(pipe),
    )


def watch_notice(watcher: CorpusWatcher, seen: Any) -> tuple[Any, int, Any, Any]:
    """Timer tick: show the newest watcher event once per session (and a failure in the Index
    tab as well), with the header's entry count brought up to date; nothing changes while
    there is no new event."""
    event = watcher.last
    seen_seq = seen if isinstance(seen, int) else 0
    if event is None or event.seq <= seen_seq:
        return gr.skip(), seen_seq, gr.skip(), gr.skip()
    icon = "🔄" if event.ok else "⚠️"
    notice = gr.Markdown(f"{icon} {escape_md(event.message)}", visible=True)
    status = gr.skip() if event.ok else gr.Markdown(f"❌ {escape_md(event.message)}", visible=True)
    blurb = blurb_markdown(watcher.pipe) if event.ok else gr.skip()
    return notice, event.seq, status, blurb


def wire_watch(watcher: CorpusWatcher, ui: Layout) -> None:
    seen = gr.State(0)
    gr.Timer(2.0).tick(
        lambda s: watch_notice(watcher, s),
        [seen],
        [ui.notice, seen, ui.rebuild_status, ui.blurb],
        api_visibility="private",
        queue=False,
        show_progress="hidden",
    )


def wire_index(pipe: Pipeline, ui: Layout) -> None:
    def on_rebuild(
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects it by this default
    ) -> tuple[str, list[list[str]], Any, str]:
        return rebuild(pipe, progress)

    views = [ui.summary, ui.files, ui.presets, ui.blurb]
    ui.rebuild_btn.click(
        on_rebuild,
        None,
        [ui.summary, ui.files, ui.presets, ui.rebuild_status],
        api_name="rebuild",
        concurrency_limit=1,
        concurrency_id="rebuild",
    ).then(lambda: refresh(pipe), None, views, api_visibility="private")
    ui.refresh_btn.click(lambda: refresh(pipe), None, views, api_visibility="private")
    # opening the tab after editing corpus/ shows the files as changed, without a click
    ui.index_tab.select(lambda: refresh(pipe), None, views, api_visibility="private")
    filters = [ui.status_filter, ui.file_search, ui.page]
    for control in filters:
        control.change(
            lambda st, q, pg: index_view(pipe, st, q, pg),
            filters,
            [ui.files, ui.summary],
            api_visibility="private",
        )
