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
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import gradio as gr

from chatbot.config import Settings
from chatbot.pipeline import Answer, InvalidQuestion, Partial, Pipeline, write_jsonl

log = logging.getLogger(__name__)

CSS = """
.refusal { border-left: 4px solid #d97706; padding-left: 8px; }
.src { border: 1px solid #e5e7eb; border-radius: 8px; padding: 8px 10px; margin-bottom: 8px; }
.src.cited { border-color: #2563eb; }
.src .meta { font-size: 0.85em; color: #6b7280; }
.src .passage { white-space: pre-wrap; font-size: 0.92em; margin-top: 4px; }
"""

_CITE = re.compile(r"\[(\d+(?:,\s*\d+)*)\]")
Chat = list[dict[str, Any]]


def _escape_md(text: str) -> str:
    """Escape HTML and neutralise Markdown that could turn corpus text into links or images."""
    text = html.escape(text, quote=False)
    return re.sub(r"([!\[\]`*_])", r"\\\1", text)


def format_answer(answer: Answer) -> str:
    """Chat message Markdown: escaped answer text, [n] as links to the sources panel."""
    if answer.refused:
        lines = [f"**{_escape_md(answer.answer)}**"]
        if answer.suggestions:
            lines.append("\nYou could ask:")
            lines += [f"- {_escape_md(s)}" for s in answer.suggestions]
        return "\n".join(lines)

    body = html.escape(answer.answer, quote=False)
    body = re.sub(r"([!`*_])", r"\\\1", body)  # keep [n] brackets for the links below

    def link(m: re.Match[str]) -> str:
        nums = [n.strip() for n in m.group(1).split(",")]
        return " ".join(f"[\\[{n}\\]](#src-{n})" for n in nums)

    text = _CITE.sub(link, body)
    if answer.note:
        text += f"\n\n_{_escape_md(answer.note)}_"
    return text


def format_sources(answer: Answer | None) -> str:
    """Sources panel HTML: every retrieved passage, the cited ones first and highlighted."""
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
        return f"Index unreadable: {html.escape(str(exc))}"
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
    return [str(m["content"]) for m in chat if m.get("role") == "user" and m.get("content")]


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


def create_app(settings: Settings | None = None, pipeline: Pipeline | None = None) -> gr.Blocks:
    settings = settings or Settings()
    pipe = pipeline or Pipeline(settings)

    def respond(message: str, history: Any) -> Iterator[tuple[Any, Chat, str]]:
        chat = _chat_list(history)
        asked = _user_questions(chat)
        message = message if isinstance(message, str) else ""
        chat = [*chat, {"role": "user", "content": message[: settings.max_question_chars + 1]}]
        try:
            events = pipe.stream(message, asked)
            first = next(events)
        except InvalidQuestion as exc:
            chat[-1]["content"] = chat[-1]["content"] or "…"
            chat.append({"role": "assistant", "content": f"⚠️ {_escape_md(str(exc))}"})
            yield gr.Textbox(value=message, interactive=True), chat, format_sources(None)
            return
        except Exception as exc:  # index unusable, model crashed: say so, keep the chat
            log.exception("answer failed")
            chat.append(
                {"role": "assistant", "content": f"⚠️ Sorry, that failed: {_escape_md(str(exc))}"}
            )
            yield gr.Textbox(value="", interactive=True), chat, format_sources(None)
            return
        chat.append({"role": "assistant", "content": "…"})
        pending = "<p class='meta'>Searching the glossary…</p>"
        event: Partial | Answer = first
        while True:
            if isinstance(event, Partial):
                chat[-1]["content"] = _escape_md(event.text) + " ▌"
                yield gr.Textbox(value="", interactive=False), chat, pending
            else:
                chat[-1]["content"] = format_answer(event)
                yield gr.Textbox(value="", interactive=True), chat, format_sources(event)
                return
            try:
                event = next(events)
            except StopIteration:
                return

    def ask_preset(evt: gr.SelectData, history: Any) -> tuple[Chat, str]:
        chat = _chat_list(history)
        question = evt.value[0] if isinstance(evt.value, list) else str(evt.value)
        try:
            answer = pipe.cached_answer(question)
        except InvalidQuestion as exc:
            return [*chat, {"role": "assistant", "content": f"⚠️ {exc}"}], format_sources(None)
        chat += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": format_answer(answer)},
        ]
        return chat, format_sources(answer)

    def preset_api(question: str) -> tuple[str, str]:
        """API twin of a preset tap: the cached answer's Markdown and sources HTML."""
        answer = pipe.cached_answer(question)
        return format_answer(answer), format_sources(answer)

    def rebuild(progress: gr.Progress | None = None) -> tuple[str, list[list[str]], Any, str]:
        progress = progress or gr.Progress()

        def report(stage: str, done: int, total: int) -> None:
            progress(done / max(total, 1), desc=f"{stage} {done}/{total}")

        t0 = time.perf_counter()
        try:
            summary = pipe.rebuild(progress=report)
            status = f"✅ {summary.describe()}"
        except Exception as exc:
            log.exception("rebuild failed")
            status = (
                f"❌ Rebuild failed: {_escape_md(str(exc))}. The previous index is still in use."
            )
        status += f" ({time.perf_counter() - t0:.1f} s)"
        threading.Thread(target=pipe.warm_presets, daemon=True).start()
        return (
            status + "\n\n" + format_summary(pipe),
            file_rows(pipe),
            gr.Dataset(samples=[[q] for q in _presets()]),
            status,
        )

    def _presets() -> list[str]:
        try:
            return pipe.presets()
        except Exception:
            log.exception("cannot list presets")
            return []

    def refresh() -> tuple[str, list[list[str]], Any]:
        return format_summary(pipe), file_rows(pipe), gr.Dataset(samples=[[q] for q in _presets()])

    def feedback(data: gr.LikeData, history: Any) -> None:
        chat = _chat_list(history)
        idx = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        answer = chat[idx]["content"] if isinstance(idx, int) and idx < len(chat) else ""
        question = next(
            (
                m["content"]
                for m in reversed(chat[: idx if isinstance(idx, int) else 0])
                if m["role"] == "user"
            ),
            "",
        )
        write_jsonl(
            settings.feedback_file,
            {
                "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "liked": bool(data.liked),
                "question": question,
                "answer": answer,
            },
        )

    with gr.Blocks(title="Glossary chat", analytics_enabled=False) as demo:
        gr.Markdown(
            "# Glossary chat\nAsk about **base models** and **foundation models**. Answers come "
            "only from the glossary pages and cite them; if the glossary does not cover a "
            "question, the bot says so."
        )
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                with gr.Row():
                    with gr.Column(scale=3):
                        chatbot = gr.Chatbot(
                            label="Chat",
                            height=460,
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
                            samples=[[q] for q in _presets()],
                            label="Frequently asked — tap to ask",
                            elem_id="presets",
                            samples_per_page=20,
                        )
                    with gr.Column(scale=2):
                        gr.Markdown("### Sources")
                        sources = gr.HTML(format_sources(None), elem_id="sources")
            with gr.Tab("Index", id="index"):
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
            respond,
            [msg, chatbot],
            [msg, chatbot, sources],
            api_name="chat",
            concurrency_limit=settings.concurrency,
        )
        click_evt = send.click(
            respond,
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
        presets.select(ask_preset, [chatbot], [chatbot, sources], api_visibility="private")
        preset_btn = gr.Button(visible=False)
        preset_btn.click(
            preset_api,
            [hidden],
            [gr.Markdown(visible=False), gr.HTML(visible=False)],
            api_name="preset",
        )
        rebuild_btn.click(
            rebuild,
            None,
            [summary, files, presets, rebuild_status],
            api_name="rebuild",
            concurrency_limit=1,
            concurrency_id="rebuild",
        )
        refresh_btn.click(refresh, None, [summary, files, presets], api_visibility="private")
        chatbot.like(feedback, [chatbot], None, api_visibility="private")
        demo.load(refresh, None, [summary, files, presets], api_visibility="private")
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency)
    demo.pipeline = pipe  # type: ignore[attr-defined]  # for tests and launch()
    return demo


def launch(settings: Settings | None = None, **kwargs: Any) -> gr.Blocks:
    """Serve the UI: localhost only unless configured, no share link, no file serving."""
    settings = settings or Settings()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    pipe = Pipeline(settings)
    pipe.ensure_index()  # build or refresh before the first page view
    demo = create_app(settings, pipe)
    if settings.preload:

        def warm() -> None:
            pipe.preload().join()
            pipe.warm_presets()

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
