"""The UI's layout: which components exist and where. Handlers are wired in ``ui``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from chatbot.config import Settings
from chatbot.ui_format import STATUSES, format_sources


@dataclass
class Layout:
    """The components that handlers read and write, as ``create_app`` lays them out."""

    blurb: Any = None
    chatbot: Any = None
    msg: Any = None
    send: Any = None
    stop: Any = None
    clear: Any = None
    hidden: Any = None
    presets: Any = None
    preset_search: Any = None
    related: Any = None
    sources: Any = None
    index_tab: Any = None
    summary: Any = None
    files: Any = None
    status_filter: Any = None
    file_search: Any = None
    page: Any = None
    rebuild_btn: Any = None
    refresh_btn: Any = None
    rebuild_status: Any = None
    notice: Any = None
    turns: Any = None
    export_md: Any = None
    export_json: Any = None
    insights_tab: Any = None
    insights_summary: Any = None
    insights_groups: Any = None
    insights_modes: Any = None
    insights_refresh: Any = None


def chat_tab(settings: Settings, placeholder: str, presets: list[list[str]], ui: Layout) -> None:
    with gr.Tab("Chat", id="chat"), gr.Row():
        with gr.Column(scale=3):
            ui.notice = gr.Markdown("", visible=False, elem_id="corpus-notice")
            ui.turns = gr.State([])  # the answers of this chat, with their sources, for export
            ui.chatbot = gr.Chatbot(
                label="Chat",
                show_label=False,  # the label floats over the first message
                height=520,
                buttons=["copy"],
                elem_id="chat",
                sanitize_html=True,
                render_markdown=True,
            )
            with gr.Row():
                ui.msg = gr.Textbox(
                    placeholder=placeholder,
                    show_label=False,
                    scale=6,
                    max_lines=4,
                    elem_id="question",
                    max_length=settings.max_question_chars,
                )
                ui.send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                ui.stop = gr.Button("Stop", variant="stop", scale=1, elem_id="stop")
            with gr.Row():
                ui.clear = gr.Button("Clear chat", size="sm", elem_id="clear")
                ui.export_md = gr.DownloadButton(
                    "Export Markdown", size="sm", interactive=False, elem_id="export-md"
                )
                ui.export_json = gr.DownloadButton(
                    "Export JSON", size="sm", interactive=False, elem_id="export-json"
                )
            ui.hidden = gr.Textbox(visible=False)
            ui.related = gr.Dataset(
                components=[ui.hidden],
                samples=[],
                label="Related questions",
                elem_id="related",
                visible=False,
            )
            ui.presets = gr.Dataset(
                components=[ui.hidden],
                samples=presets,
                label="Frequently asked — tap to ask",
                elem_id="presets",
                samples_per_page=max(1, settings.presets_shown),
            )
            ui.preset_search = gr.Textbox(
                placeholder="Search the frequently asked questions…",
                show_label=False,
                elem_id="preset-search",
                max_length=200,
            )
        with gr.Column(scale=2):
            gr.Markdown("### Sources")
            ui.sources = gr.HTML(format_sources(None), elem_id="sources")


def index_tab(rows: list[list[str]], summary: str, ui: Layout) -> None:
    with gr.Tab("Index", id="index") as ui.index_tab:
        ui.summary = gr.Markdown(summary, elem_id="index-summary")
        with gr.Row():
            ui.status_filter = gr.Dropdown(
                list(STATUSES), value="all", label="status", elem_id="status-filter", scale=1
            )
            ui.file_search = gr.Textbox(label="file name", elem_id="file-search", scale=3)
            ui.page = gr.Number(value=1, minimum=1, precision=0, label="page", scale=1)
        ui.files = gr.Dataframe(
            headers=["file", "status", "detail"],
            value=rows,
            interactive=False,
            elem_id="index-files",
        )
        with gr.Row():
            ui.rebuild_btn = gr.Button("Rebuild index", variant="primary", elem_id="rebuild")
            ui.refresh_btn = gr.Button("Refresh status", elem_id="refresh")
        ui.rebuild_status = gr.Markdown(visible=False)
