"""The Insights tab, the auto re-index notice and the export buttons, without a browser."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from chatbot.config import Settings
from chatbot.gaps import GapLog
from chatbot.pipeline import Pipeline
from chatbot.ui import create_app, export_buttons, record_feedback, respond
from chatbot.ui_index import watch_notice
from chatbot.ui_insights import insights_allowed, insights_view
from chatbot.watch import CorpusWatcher

MakePipeline = Callable[..., Pipeline]
OFF_TOPIC = "What is the weather in Paris tomorrow?"


def tabs(demo: gr.Blocks) -> set[str]:
    return {b.id for b in demo.blocks.values() if type(b).__name__ == "Tab"}


def test_insights_tab_only_for_a_login_or_this_machine(settings: Settings) -> None:
    assert insights_allowed(settings)  # 127.0.0.1 by default: the owner's own machine
    public = settings.model_copy(update={"host": "0.0.0.0"})
    assert not insights_allowed(public)
    assert insights_allowed(public.model_copy(update={"auth": "owner:secret"}))


def test_public_open_server_renders_no_insights_tab(
    settings: Settings, make_pipeline: MakePipeline
) -> None:
    public = settings.model_copy(update={"host": "0.0.0.0"})
    assert "insights" not in tabs(create_app(public, make_pipeline(None)))
    assert "insights" in tabs(create_app(settings, make_pipeline(None)))


def test_served_app_logs_refusals_and_thumbs_down_for_insights(
    settings: Settings, make_pipeline: MakePipeline
) -> None:
    pipe = make_pipeline(None)
    create_app(settings, pipe)  # the served app turns the gap log on
    assert isinstance(pipe.gap_log, GapLog)
    for q in (OFF_TOPIC, "Weather in Paris tomorrow?", "What's the weather in Paris?"):
        list(respond(pipe, q, []))
    chat: list[dict[str, Any]] = [
        {"role": "user", "content": "What is a base model?"},
        {"role": "assistant", "content": "A wrong answer [1]."},
    ]
    record_feedback(settings, 1, False, chat, pipe.gap_log)
    record_feedback(settings, 1, True, chat, pipe.gap_log)
    summary, groups, modes = insights_view(pipe)
    assert "👍 1 · 👎 1" in summary
    by_example = {row[1]: row for row in groups}
    assert any(row[0] == 3 and "refusal 3" in row[2] for row in groups), groups
    assert "thumbs down 1" in by_example["What is a base model?"][2]
    assert modes and modes[-1][5] == 3  # three refusals today (the "refusal" column)
    lines = settings.gap_log_file.read_text().splitlines()
    down = [json.loads(x) for x in lines if '"thumbs_down"' in x]
    assert down[0]["answer"] == "A wrong answer [1]."


def test_insights_with_logging_off_says_so(settings: Settings, make_pipeline: MakePipeline) -> None:
    off = settings.model_copy(update={"log_questions": False})
    pipe = make_pipeline(None, log_questions=False)
    create_app(off, pipe)
    list(respond(pipe, OFF_TOPIC, []))
    summary, groups, _ = insights_view(pipe)
    assert "logging is off" in summary and groups == []
    assert not off.gap_log_file.exists()


def test_watch_notice_shows_each_event_once(make_pipeline: MakePipeline) -> None:
    pipe = make_pipeline(None)
    pipe.ensure_index()
    watcher = CorpusWatcher(pipe)
    notice, seen, status, blurb = watch_notice(watcher, 0)
    assert (seen == 0 and notice is gr.skip()) or notice == gr.skip()
    entries = len(pipe.index.documents)
    (pipe.settings.corpus_dir / "new.md").write_text("# New\n\nA new entry about zorblaxes.\n")
    watcher.apply(["new.md"])
    notice, seen, status, blurb = watch_notice(watcher, 0)
    assert seen == 1 and "corpus updated: 1 file" in notice.value and notice.visible
    assert status == gr.skip()  # success is not an Index-tab error
    assert f"{entries + 1} entries" in blurb and f"{entries} entries" not in blurb
    again, seen2, _, blurb2 = watch_notice(watcher, seen)
    assert again == gr.skip() and seen2 == 1 and blurb2 == gr.skip()


def test_watch_failure_is_shown_in_the_index_tab(make_pipeline: MakePipeline, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    pipe = make_pipeline(None)
    pipe.ensure_index()

    def broken(**kw: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(pipe, "rebuild", broken)
    watcher = CorpusWatcher(pipe)
    watcher.apply(["x.md"])
    notice, _, status, blurb = watch_notice(watcher, 0)
    assert "disk full" in notice.value and "disk full" in status.value
    assert blurb == gr.skip()


def test_app_with_a_watcher_polls_it(settings: Settings, make_pipeline: MakePipeline) -> None:
    pipe = make_pipeline(None)
    demo = create_app(settings, pipe, watcher=CorpusWatcher(pipe))
    assert any(type(b).__name__ == "Timer" for b in demo.blocks.values())
    assert not any(type(b).__name__ == "Timer" for b in create_app(settings, pipe).blocks.values())


def test_export_buttons_follow_the_chat(make_pipeline: MakePipeline) -> None:
    pipe = make_pipeline("A base model is pre-trained [1].")
    turns: list[dict[str, Any]] = []
    list(respond(pipe, "What is a base model?", [], turns))
    md_btn, json_btn = export_buttons(turns, "T")
    assert md_btn.interactive and json_btn.interactive
    text = Path(md_btn.value["path"]).read_text()
    assert "What is a base model?" in text and "**Sources**" in text
    empty_md, _ = export_buttons([], "T")
    assert empty_md.interactive is False and empty_md.value is None
