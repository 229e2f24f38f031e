"""Gradio chat UI: ``create_app(settings) -> gr.Blocks`` (pure, testable) and a thin ``launch()``.

Formatting lives in plain functions (``format_answer``, ``format_sources``...) so it is tested
without a browser. Everything that comes from the corpus or the model is HTML-escaped before it
reaches the page: a corpus file is user-editable text, not trusted markup.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import gradio as gr

from chatbot.answer import Answer, InvalidQuestion, Partial, clean_question
from chatbot.atomic import append_jsonl
from chatbot.config import Settings, get_settings
from chatbot.export import ExportTurn, turn_record, write_exports
from chatbot.gaps import GapLog
from chatbot.pipeline import Pipeline
from chatbot.presets import cached_answer
from chatbot.rewrite import asked_with_answers
from chatbot.ui_format import (
    CSS,
    PENDING,
    Chat,
    blurb_markdown,
    corpus_blurb,
    escape_md,
    file_table,
    format_answer,
    format_sources,
    format_summary,
    preset_samples,
)
from chatbot.ui_index import (
    refresh,
    warm_presets_in_background,
    wire_index,
    wire_watch,
)
from chatbot.ui_insights import insights_allowed, insights_tab, wire_insights
from chatbot.ui_layout import Layout, chat_tab, index_tab
from chatbot.watch import CorpusWatcher

log = logging.getLogger(__name__)


def _user_questions(chat: Chat) -> list[str]:
    """Earlier questions for follow-up rewriting (not the "…" shown for an empty message),
    each with the entry its answer named (``asked_with_answers``)."""
    return asked_with_answers(
        (str(m.get("role")), "" if m.get("content") == "…" else str(m.get("content") or ""))
        for m in chat
    )


def _chat_list(history: Any) -> Chat:
    """Accept only well-formed message dicts from the client; cap what a client can send."""
    if not isinstance(history, list):
        return []
    out: Chat = []
    for m in history[-40:]:
        if isinstance(m, dict) and m.get("role") in ("user", "assistant"):
            content = _text_of(m.get("content"))
            if content is not None:
                out.append({"role": m["role"], "content": content[:20_000]})
    return out


def _text_of(content: Any) -> str | None:
    """Gradio 6 sends message content as a list of parts ({"type": "text", "text": ...})."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict) and isinstance(content.get("text"), str):
        return str(content["text"])
    if isinstance(content, list):
        texts = [t for part in content if (t := _text_of(part)) is not None]
        return "\n".join(texts) if texts else None
    return None


def _shown_question(message: str, limit: int) -> str:
    """What the chat shows of the user's message: never more than the limit (+ an ellipsis)."""
    return message if len(message) <= limit else message[:limit] + "…"


# ------------------------------------------------------------------------------------- handlers
# Module-level so they are tested without a server; create_app only wires them to components.


def respond(
    pipe: Pipeline, message: Any, history: Any, turns: list[ExportTurn] | None = None
) -> Iterator[tuple[Any, Chat, str]]:
    """Chat handler: yields (textbox update, chat, sources HTML), streaming the answer.

    The textbox is disabled while an answer is being written and re-enabled at the end, also
    when the question is rejected or answering fails; the chat history is never lost. The
    final answer is appended to ``turns`` (the session's export record) when given.
    """
    limit = pipe.settings.max_question_chars
    chat = _chat_list(history)
    asked = _user_questions(chat)
    message = message if isinstance(message, str) else ""
    chat.append({"role": "user", "content": _shown_question(message, limit) or "…"})

    def with_reply(content: str) -> Chat:
        # A new list each time: Gradio diffs a streamed value against the previous one.
        return [*chat, {"role": "assistant", "content": content}]

    try:
        clean_question(message, limit)  # cheap: reject before showing "searching…"
    except InvalidQuestion as exc:
        reply = with_reply(f"⚠️ {escape_md(str(exc))}")
        yield gr.Textbox(value=message[:limit], interactive=True), reply, format_sources(None)
        return
    yield gr.Textbox(value="", interactive=False), with_reply("…"), PENDING
    try:
        for event in pipe.stream(message, asked):
            if isinstance(event, Partial):
                reply = with_reply(escape_md(event.text) + " ▌")
                yield gr.Textbox(value="", interactive=False), reply, PENDING
            else:
                reply = with_reply(format_answer(event))
                if turns is not None:
                    turns.append(turn_record(event))
                yield gr.Textbox(value="", interactive=True), reply, format_sources(event)
                return
        failure = "⚠️ Sorry, no answer was produced."
    except InvalidQuestion as exc:
        failure = f"⚠️ {escape_md(str(exc))}"
    except Exception as exc:  # index unusable, model crashed: say so, keep the chat
        log.exception("answer failed")
        failure = f"⚠️ Sorry, that failed: {escape_md(str(exc))}"
    yield gr.Textbox(value="", interactive=True), with_reply(failure), format_sources(None)


def preset_answer(pipe: Pipeline, question: Any) -> Answer:
    """A preset's cached answer; any other text is answered but never written to the cache.

    The question comes from the client (select events and the API carry the text), so only
    the corpus's own FAQ questions may create cache files: otherwise anyone could fill the
    disk with one cache file per made-up question.
    """
    q = question if isinstance(question, str) else ""
    if q in pipe.presets():
        return cached_answer(pipe, q)
    return pipe.ask(q)


def ask_preset(
    pipe: Pipeline, question: Any, history: Any, turns: list[ExportTurn] | None = None
) -> tuple[Chat, str]:
    """Preset tap: the question and its (cached) answer appended to the chat (and ``turns``)."""
    chat = _chat_list(history)
    shown = _shown_question(question if isinstance(question, str) else "", 300)
    chat.append({"role": "user", "content": shown or "…"})
    try:
        answer = preset_answer(pipe, question)
    except InvalidQuestion as exc:
        chat.append({"role": "assistant", "content": f"⚠️ {escape_md(str(exc))}"})
        return chat, format_sources(None)
    except Exception as exc:
        log.exception("preset answer failed")
        chat.append(
            {"role": "assistant", "content": f"⚠️ Sorry, that failed: {escape_md(str(exc))}"}
        )
        return chat, format_sources(None)
    chat.append({"role": "assistant", "content": format_answer(answer)})
    if turns is not None:
        turns.append(turn_record(answer))
    return chat, format_sources(answer)


def preset_api(pipe: Pipeline, question: Any) -> tuple[str, str]:
    """API twin of a preset tap: the cached answer's Markdown and sources HTML."""
    try:
        answer = preset_answer(pipe, question)
    except InvalidQuestion as exc:
        raise gr.Error(str(exc)) from None  # shown to the caller even with show_error=False
    return format_answer(answer), format_sources(answer)


def related_questions(pipe: Pipeline, history: Any) -> list[str]:
    """After an answer: three FAQ questions of the corpus close to the last question."""
    asked = _user_questions(_chat_list(history))
    if not asked:
        return []
    seen = {q.strip().lower() for q in asked}
    try:  # never offer what this chat has already asked
        return [q for q in pipe.related(asked[-1], n=3 + len(seen)) if q.lower() not in seen][:3]
    except Exception:  # an invalid question, an unusable index: simply no related ones
        log.debug("no related questions", exc_info=True)
        return []


def related_samples(pipe: Pipeline, history: Any) -> Any:
    related = related_questions(pipe, history)
    return gr.Dataset(samples=[[q] for q in related], visible=bool(related))


def record_feedback(
    settings: Settings, index: Any, liked: Any, history: Any, gaps: GapLog | None = None
) -> None:
    """Append a like/dislike with the question and answer it was about to the feedback file;
    a thumbs-down also goes to the knowledge-gap log, with the answer it judged."""
    chat = _chat_list(history)
    idx = index[0] if isinstance(index, (list, tuple)) and index else index
    if not isinstance(idx, int) or not 0 <= idx < len(chat):
        return  # not a message of this chat: nothing to record
    question = next((m["content"] for m in reversed(chat[:idx]) if m["role"] == "user"), "")
    append_jsonl(
        settings.feedback_file,
        {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "liked": bool(liked),
            "question": question,
            "answer": chat[idx]["content"],
        },
    )
    if gaps is not None and not liked:
        gaps.thumbs_down(question, chat[idx]["content"])


def create_app(
    settings: Settings | None = None,
    pipeline: Pipeline | None = None,
    watcher: CorpusWatcher | None = None,
) -> gr.Blocks:
    """Build the Blocks (no server, no threads): the handlers above wired to the components.

    The served app logs knowledge gaps (``pipe.gap_log``); ``watcher``, when given, is polled
    for "corpus updated" notices (``launch`` starts it)."""
    settings = settings or (pipeline.settings if pipeline is not None else get_settings())
    pipe = pipeline or Pipeline(settings)
    if pipe.gap_log is None:
        pipe.gap_log = GapLog.from_settings(settings)
    title, _, placeholder = corpus_blurb(pipe)
    ui = Layout()
    rows, line = file_table(pipe)
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        ui.blurb = gr.Markdown(blurb_markdown(pipe), elem_id="blurb")
        with gr.Tabs():
            chat_tab(settings, placeholder, preset_samples(pipe), ui)
            index_tab(rows, line + "\n\n" + format_summary(pipe), ui)
            if insights_allowed(settings):
                insights_tab(ui)
                wire_insights(pipe, ui)
        _wire_chat(pipe, settings, ui, title)
        wire_index(pipe, ui)
        if watcher is not None:
            wire_watch(watcher, ui)
        demo.load(
            lambda: refresh(pipe),
            None,
            [ui.summary, ui.files, ui.presets, ui.blurb],
            api_visibility="private",
        )
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency)
    demo.pipeline = pipe  # for tests and launch()
    return demo


def _wire_chat(pipe: Pipeline, settings: Settings, ui: Layout, title: str) -> None:
    def on_message(message: str, history: Any, turns: Any) -> Iterator[tuple[Any, ...]]:
        kept = _turn_list(turns)
        for update in respond(pipe, message, history, kept):
            yield (*update, kept)

    def on_like(data: gr.LikeData, history: Any) -> None:
        record_feedback(settings, data.index, data.liked, history, pipe.gap_log)

    io = {
        "inputs": [ui.msg, ui.chatbot, ui.turns],
        "outputs": [ui.msg, ui.chatbot, ui.sources, ui.turns],
    }
    # The textbox is re-enabled by the answer's last update, a moment before Gradio marks the
    # event done; "always_last" runs a question sent in that moment next instead of dropping it.
    limit = {"concurrency_limit": settings.concurrency, "trigger_mode": "always_last"}
    submit_evt = ui.msg.submit(on_message, **io, api_name="chat", **limit)
    click_evt = ui.send.click(on_message, **io, api_visibility="private", **limit)
    show_related = {"fn": lambda h: related_samples(pipe, h), "api_visibility": "private"}
    exports = {
        "fn": lambda t: export_buttons(t, title),
        "inputs": [ui.turns],
        "outputs": [ui.export_md, ui.export_json],
        "api_visibility": "private",
    }
    for evt in (submit_evt, click_evt):
        evt.then(inputs=[ui.chatbot], outputs=[ui.related], **show_related)
        evt.then(**exports)
    ui.stop.click(
        lambda: gr.Textbox(interactive=True),
        None,
        [ui.msg],
        cancels=[submit_evt, click_evt],
        queue=False,
        api_visibility="private",
    )
    ui.clear.click(
        lambda: ([], format_sources(None), gr.Dataset(samples=[], visible=False), []),
        None,
        [ui.chatbot, ui.sources, ui.related, ui.turns],
        queue=False,
        api_visibility="private",
    ).then(**exports)
    _wire_presets(pipe, ui, show_related, exports)
    ui.chatbot.like(on_like, [ui.chatbot], None, api_visibility="private")


def _wire_presets(
    pipe: Pipeline, ui: Layout, show_related: dict[str, Any], exports: dict[str, Any]
) -> None:
    """Preset and related-question taps, the preset search, and the preset API endpoint."""

    def on_preset(evt: gr.SelectData, history: Any, turns: Any) -> tuple[Chat, str, list[Any]]:
        value = evt.value[0] if isinstance(evt.value, list) and evt.value else evt.value
        kept = _turn_list(turns)
        return (*ask_preset(pipe, value, history, kept), kept)

    for dataset in (ui.presets, ui.related):
        dataset.select(
            on_preset,
            [ui.chatbot, ui.turns],
            [ui.chatbot, ui.sources, ui.turns],
            api_visibility="private",
        ).then(inputs=[ui.chatbot], outputs=[ui.related], **show_related).then(**exports)
    ui.preset_search.change(
        lambda q: gr.Dataset(samples=preset_samples(pipe, q)),
        [ui.preset_search],
        [ui.presets],
        api_visibility="private",
    )
    gr.Button(visible=False).click(
        lambda q: preset_api(pipe, q),
        [ui.hidden],
        [gr.Markdown(visible=False), gr.HTML(visible=False)],
        api_name="preset",
    )


def _turn_list(turns: Any) -> list[ExportTurn]:
    """The session's export record; anything else a client sends starts a fresh one."""
    return turns if isinstance(turns, list) else []


def export_buttons(turns: Any, title: str) -> tuple[Any, Any]:
    """Both download buttons pointing at this chat's files, or disabled for an empty chat."""
    kept = [t for t in _turn_list(turns) if isinstance(t, dict)]
    if not kept:
        return gr.DownloadButton(value=None, interactive=False), gr.DownloadButton(
            value=None, interactive=False
        )
    md, js = write_exports(kept, title)
    return gr.DownloadButton(value=str(md), interactive=True), gr.DownloadButton(
        value=str(js), interactive=True
    )


def launch(settings: Settings | None = None, **kwargs: Any) -> gr.Blocks:
    """Serve the UI: localhost only unless configured, no share link, no file serving."""
    from chatbot.api import api_routes  # the /v1 API, same app, its own key (not Gradio's login)

    settings = settings or get_settings()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    pipe = Pipeline(settings)
    pipe.ensure_index()  # build or refresh before the first page view
    watcher = CorpusWatcher(pipe, settle_s=settings.watch_settle_s) if settings.watch else None
    demo = create_app(settings, pipe, watcher=watcher)
    if watcher is not None:
        watcher.start()
    if settings.preload:

        def warm() -> None:
            pipe.preload().join()
            warm_presets_in_background(pipe)

        threading.Thread(target=warm, name="warm", daemon=True).start()
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=False,
        auth=settings.auth_pair(),
        max_file_size="1kb",
        allowed_paths=[],
        blocked_paths=[str(settings.cache_dir), str(settings.index_dir)],
        footer_links=["api"],
        show_error=False,
        theme=gr.themes.Soft(),
        css=CSS,
        app_kwargs={"routes": api_routes(pipe, settings)},
        **kwargs,
    )
    return demo
