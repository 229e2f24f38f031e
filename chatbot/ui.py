"""Gradio chat UI: ``create_app(settings) -> gr.Blocks`` (pure, testable) and a thin ``launch()``.

Formatting lives in plain functions (``format_answer``, ``format_sources``...) so it is tested
without a browser. Everything that comes from the corpus or the model is HTML-escaped before it
reaches the page: a corpus file is user-editable text, not trusted markup.
"""

from __future__ import annotations

import html
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import gradio as gr

from chatbot.config import Settings, get_settings
from chatbot.progress import ProgressTracker
from chatbot.pipeline import (
    Answer,
    InvalidQuestion,
    Partial,
    Pipeline,
    clean_question,
    write_jsonl,
)

log = logging.getLogger(__name__)

CSS = """
.refusal { border-left: 4px solid #d97706; padding-left: 8px; }
.src { border: 1px solid #e5e7eb; border-radius: 8px; padding: 8px 10px; margin-bottom: 8px; }
.src.cited { border-color: #2563eb; }
.src .meta { font-size: 0.85em; color: #6b7280; }
.src .passage { white-space: pre-wrap; font-size: 0.92em; margin-top: 4px; }
"""

_CITE = re.compile(r"\[(\d+(?:,\s*\d+)*)\]")
# Markdown that could turn text into a link, an image, code, emphasis, a heading, a table or
# LaTeX; the backslash first, or "\\[x](u)" would un-escape the bracket after it.
_MD_SPECIAL = re.compile(r"([\\!\[\]`*_~|#$])")
Chat = list[dict[str, Any]]
PENDING = "<p class='meta'>Searching the glossary…</p>"


def _escape_md(text: str) -> str:
    """Escape HTML and neutralise Markdown that could turn corpus text into links or images."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def format_answer(answer: Answer) -> str:
    """Chat message Markdown: escaped answer text, [n] as links to the sources panel."""
    if answer.refused:
        lines = [f"**{_escape_md(answer.answer)}**"]
        if answer.suggestions:
            lines.append("\nYou could ask:")
            lines += [f"- {_escape_md(s)}" for s in answer.suggestions]
        return "\n".join(lines)

    def link(m: re.Match[str]) -> str:
        nums = [int(n) for n in m.group(1).split(",")]
        if not all(1 <= n <= len(answer.sources) for n in nums):
            return _escape_md(m.group(0))  # no such source: plain text, not a dead link
        return " ".join(f"[\\[{n}\\]](#src-{n})" for n in nums)

    # Only the [n] citations become links; every other character is escaped, so a "[x](url)"
    # or "![x](url)" written by the model or found in the corpus stays literal text.
    parts, pos = [], 0
    for m in _CITE.finditer(answer.answer):
        parts += [_escape_md(answer.answer[pos : m.start()]), link(m)]
        pos = m.end()
    text = "".join([*parts, _escape_md(answer.answer[pos:])])
    if answer.note:
        text += f"\n\n_{_escape_md(answer.note)}_"
    return text


def format_sources(answer: Answer | None) -> str:
    """Sources panel HTML: every retrieved passage as ``#src-n``, the cited ones highlighted."""
    if answer is None:
        return "<p class='meta'>Sources of the last answer appear here.</p>"
    if answer.refused:
        return "<p class='meta'>No passage in the glossary matches this question.</p>"
    cited = {c.n for c in answer.citations}
    parts = []
    for n, src in enumerate(answer.sources, 1):
        is_cited = n in cited
        text = html.escape(_display_passage(src["text"]))
        heading = html.escape(src["heading"].rsplit(" > ", 1)[-1])
        parts.append(
            f"<div class='src{' cited' if is_cited else ''}' id='src-{n}'>"
            f"<b>[{n}]</b> {html.escape(src['title'])} — {heading}"
            f"<div class='meta'>{html.escape(src['doc'])} · score {src['score']:.4f}"
            f"{' · cited' if is_cited else ''}</div>"
            f"<details{' open' if is_cited else ''}><summary>passage</summary>"
            f"<div class='passage'>{text}</div></details></div>"
        )
    return "\n".join(parts) or "<p class='meta'>No sources.</p>"


def _display_passage(text: str) -> str:
    """Passage as plain reading text: no heading line, no Markdown emphasis markers."""
    lines = text.strip().split("\n")
    if lines and lines[0].lstrip().startswith("#"):
        lines = lines[1:]
    return "\n".join(lines).replace("**", "").strip()


def format_summary(pipeline: Pipeline) -> str:
    build = pipeline.last_build
    try:
        manifest = pipeline.store.read_manifest() or {}
    except Exception as exc:
        return f"Index unreadable: {_escape_md(str(exc))}"
    lines = [
        f"**Index** `{manifest.get('build_id', 'none')}` · {manifest.get('chunk_count', 0)} chunks"
        f" · built {manifest.get('created_at', 'never')}"
    ]
    if build is not None:
        lines.append(_escape_md(build.describe()).replace("\n", "  \n"))
    return "\n\n".join(lines)


def file_rows(pipeline: Pipeline) -> list[list[str]]:
    try:
        return [
            [s.file, s.status, s.reason]
            for s in pipeline.store.file_statuses(pipeline.settings.corpus_dir)
        ]
    except Exception as exc:
        return [["(corpus)", "error", str(exc)]]


def _user_questions(chat: Chat) -> list[str]:
    """Earlier questions for follow-up rewriting (not the "…" shown for an empty message)."""
    return [
        str(m["content"])
        for m in chat
        if m.get("role") == "user" and m.get("content") and m["content"] != "…"
    ]


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


def respond(pipe: Pipeline, message: Any, history: Any) -> Iterator[tuple[Any, Chat, str]]:
    """Chat handler: yields (textbox update, chat, sources HTML), streaming the answer.

    The textbox is disabled while an answer is being written and re-enabled at the end, also
    when the question is rejected or answering fails; the chat history is never lost.
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
        reply = with_reply(f"⚠️ {_escape_md(str(exc))}")
        yield gr.Textbox(value=message[:limit], interactive=True), reply, format_sources(None)
        return
    yield gr.Textbox(value="", interactive=False), with_reply("…"), PENDING
    try:
        for event in pipe.stream(message, asked):
            if isinstance(event, Partial):
                reply = with_reply(_escape_md(event.text) + " ▌")
                yield gr.Textbox(value="", interactive=False), reply, PENDING
            else:
                reply = with_reply(format_answer(event))
                yield gr.Textbox(value="", interactive=True), reply, format_sources(event)
                return
        failure = "⚠️ Sorry, no answer was produced."
    except InvalidQuestion as exc:
        failure = f"⚠️ {_escape_md(str(exc))}"
    except Exception as exc:  # index unusable, model crashed: say so, keep the chat
        log.exception("answer failed")
        failure = f"⚠️ Sorry, that failed: {_escape_md(str(exc))}"
    yield gr.Textbox(value="", interactive=True), with_reply(failure), format_sources(None)


def preset_answer(pipe: Pipeline, question: Any) -> Answer:
    """A preset's cached answer; any other text is answered but never written to the cache.

    The question comes from the client (select events and the API carry the text), so only
    the corpus's own FAQ questions may create cache files: otherwise anyone could fill the
    disk with one cache file per made-up question.
    """
    q = question if isinstance(question, str) else ""
    if q in pipe.presets():
        return pipe.cached_answer(q)
    return pipe.ask(q)


def ask_preset(pipe: Pipeline, question: Any, history: Any) -> tuple[Chat, str]:
    """Preset tap: the question and its (cached) answer appended to the chat."""
    chat = _chat_list(history)
    shown = _shown_question(question if isinstance(question, str) else "", 300)
    chat.append({"role": "user", "content": shown or "…"})
    try:
        answer = preset_answer(pipe, question)
    except InvalidQuestion as exc:
        chat.append({"role": "assistant", "content": f"⚠️ {_escape_md(str(exc))}"})
        return chat, format_sources(None)
    except Exception as exc:
        log.exception("preset answer failed")
        chat.append(
            {"role": "assistant", "content": f"⚠️ Sorry, that failed: {_escape_md(str(exc))}"}
        )
        return chat, format_sources(None)
    chat.append({"role": "assistant", "content": format_answer(answer)})
    return chat, format_sources(answer)


def preset_api(pipe: Pipeline, question: Any) -> tuple[str, str]:
    """API twin of a preset tap: the cached answer's Markdown and sources HTML."""
    try:
        answer = preset_answer(pipe, question)
    except InvalidQuestion as exc:
        raise gr.Error(str(exc)) from None  # shown to the caller even with show_error=False
    return format_answer(answer), format_sources(answer)


def preset_samples(pipe: Pipeline) -> list[list[str]]:
    try:
        return [[q] for q in pipe.presets()]
    except Exception:
        log.exception("cannot list presets")
        return []


_WARMING = threading.Lock()


def warm_presets_in_background(pipe: Pipeline) -> threading.Thread:
    """Fill the preset cache off the request path; at most one warm-up runs at a time."""

    def work() -> None:
        if not _WARMING.acquire(blocking=False):
            return
        try:
            pipe.warm_presets()
        finally:
            _WARMING.release()

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
        status = f"✅ {_escape_md(summary.describe())}"
    except Exception as exc:
        log.exception("rebuild failed")
        status = f"❌ Rebuild failed: {_escape_md(str(exc))}. The previous index is still in use."
    status += f" ({time.perf_counter() - t0:.1f} s)"
    warm_presets_in_background(pipe)
    return (
        status.replace("\n", "  \n") + "\n\n" + format_summary(pipe),
        file_rows(pipe),
        gr.Dataset(samples=preset_samples(pipe)),
        status,
    )


def refresh(pipe: Pipeline) -> tuple[str, list[list[str]], Any]:
    return format_summary(pipe), file_rows(pipe), gr.Dataset(samples=preset_samples(pipe))


def record_feedback(settings: Settings, index: Any, liked: Any, history: Any) -> None:
    """Append a like/dislike with the question and answer it was about to the feedback file."""
    chat = _chat_list(history)
    idx = index[0] if isinstance(index, (list, tuple)) and index else index
    if not isinstance(idx, int) or not 0 <= idx < len(chat):
        return  # not a message of this chat: nothing to record
    question = next((m["content"] for m in reversed(chat[:idx]) if m["role"] == "user"), "")
    write_jsonl(
        settings.feedback_file,
        {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "liked": bool(liked),
            "question": question,
            "answer": chat[idx]["content"],
        },
    )


def create_app(settings: Settings | None = None, pipeline: Pipeline | None = None) -> gr.Blocks:
    """Build the Blocks (no server, no threads): the handlers above wired to the components."""
    settings = settings or (pipeline.settings if pipeline is not None else get_settings())
    pipe = pipeline or Pipeline(settings)

    def on_message(message: str, history: Any) -> Iterator[tuple[Any, Chat, str]]:
        yield from respond(pipe, message, history)

    def on_preset(evt: gr.SelectData, history: Any) -> tuple[Chat, str]:
        value = evt.value[0] if isinstance(evt.value, list) and evt.value else evt.value
        return ask_preset(pipe, value, history)

    def on_preset_api(question: str) -> tuple[str, str]:
        return preset_api(pipe, question)

    def on_rebuild(
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects it by this default
    ) -> tuple[str, list[list[str]], Any, str]:
        return rebuild(pipe, progress)

    def on_refresh() -> tuple[str, list[list[str]], Any]:
        return refresh(pipe)

    def on_like(data: gr.LikeData, history: Any) -> None:
        record_feedback(settings, data.index, data.liked, history)

    with gr.Blocks(title="Glossary chat", analytics_enabled=False) as demo:
        gr.Markdown(
            "# Glossary chat\nAsk about **base models** and **foundation models**. Answers come "
            "only from the glossary pages and cite them; if the glossary does not cover a "
            "question, the bot says so."
        )
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"), gr.Row():
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(
                        label="Chat",
                        show_label=False,  # the label floats over the first message
                        height=520,
                        buttons=["copy"],
                        elem_id="chat",
                        sanitize_html=True,
                        render_markdown=True,
                    )
                    with gr.Row():
                        msg = gr.Textbox(
                            placeholder="Ask a question about base or foundation models…",
                            show_label=False,
                            scale=6,
                            max_lines=4,
                            elem_id="question",
                            max_length=settings.max_question_chars,
                        )
                        send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                        stop = gr.Button("Stop", variant="stop", scale=1, elem_id="stop")
                    clear = gr.Button("Clear chat", size="sm", elem_id="clear")
                    hidden = gr.Textbox(visible=False)
                    presets = gr.Dataset(
                        components=[hidden],
                        samples=preset_samples(pipe),
                        label="Frequently asked — tap to ask",
                        elem_id="presets",
                        samples_per_page=20,
                    )
                with gr.Column(scale=2):
                    gr.Markdown("### Sources")
                    sources = gr.HTML(format_sources(None), elem_id="sources")
            with gr.Tab("Index", id="index") as index_tab:
                summary = gr.Markdown(format_summary(pipe), elem_id="index-summary")
                files = gr.Dataframe(
                    headers=["file", "status", "detail"],
                    value=file_rows(pipe),
                    interactive=False,
                    elem_id="index-files",
                )
                with gr.Row():
                    rebuild_btn = gr.Button("Rebuild index", variant="primary", elem_id="rebuild")
                    refresh_btn = gr.Button("Refresh status", elem_id="refresh")
                rebuild_status = gr.Markdown(visible=False)

        submit_evt = msg.submit(
            on_message,
            [msg, chatbot],
            [msg, chatbot, sources],
            api_name="chat",
            concurrency_limit=settings.concurrency,
        )
        click_evt = send.click(
            on_message,
            [msg, chatbot],
            [msg, chatbot, sources],
            api_visibility="private",
            concurrency_limit=settings.concurrency,
        )
        stop.click(
            lambda: gr.Textbox(interactive=True),
            None,
            [msg],
            cancels=[submit_evt, click_evt],
            queue=False,
            api_visibility="private",
        )
        clear.click(
            lambda: ([], format_sources(None)),
            None,
            [chatbot, sources],
            queue=False,
            api_visibility="private",
        )
        presets.select(on_preset, [chatbot], [chatbot, sources], api_visibility="private")
        preset_btn = gr.Button(visible=False)
        preset_btn.click(
            on_preset_api,
            [hidden],
            [gr.Markdown(visible=False), gr.HTML(visible=False)],
            api_name="preset",
        )
        rebuild_btn.click(
            on_rebuild,
            None,
            [summary, files, presets, rebuild_status],
            api_name="rebuild",
            concurrency_limit=1,
            concurrency_id="rebuild",
        )
        refresh_btn.click(on_refresh, None, [summary, files, presets], api_visibility="private")
        # opening the tab after editing corpus/ shows the files as changed, without a click
        index_tab.select(on_refresh, None, [summary, files, presets], api_visibility="private")
        chatbot.like(on_like, [chatbot], None, api_visibility="private")
        demo.load(on_refresh, None, [summary, files, presets], api_visibility="private")
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency)
    demo.pipeline = pipe  # for tests and launch()
    return demo


def launch(settings: Settings | None = None, **kwargs: Any) -> gr.Blocks:
    """Serve the UI: localhost only unless configured, no share link, no file serving."""
    settings = settings or get_settings()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    pipe = Pipeline(settings)
    pipe.ensure_index()  # build or refresh before the first page view
    demo = create_app(settings, pipe)
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
        **kwargs,
    )
    return demo
