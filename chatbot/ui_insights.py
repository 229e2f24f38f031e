"""The Insights tab: what the corpus failed to answer, answer modes per day, feedback counts.

It shows the same report as ``chatbot gaps``. The questions users typed are private to the FAQ
owner, so the tab exists only when the app has a login (``CHATBOT_AUTH``) or is bound to this
machine alone; a public, open server never renders it.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from chatbot.config import Settings
from chatbot.insights import gap_report
from chatbot.pipeline import Pipeline
from chatbot.ui_format import escape_md
from chatbot.ui_layout import Layout

log = logging.getLogger(__name__)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MODES = ("lookup", "faq", "generated", "extractive", "refusal")
GROUP_HEADERS = ["count", "example question", "kinds", "closest entry", "last asked"]


def insights_allowed(settings: Settings) -> bool:
    return bool(settings.auth) or settings.host in LOOPBACK


def insights_tab(ui: Layout) -> None:
    with gr.Tab("Insights", id="insights") as ui.insights_tab:
        ui.insights_summary = gr.Markdown("", elem_id="insights-summary")
        gr.Markdown("### Questions the glossary could not answer well")
        ui.insights_groups = gr.Dataframe(
            headers=GROUP_HEADERS, value=[], interactive=False, elem_id="insights-gaps"
        )
        gr.Markdown("### Answers per day, by mode")
        ui.insights_modes = gr.Dataframe(
            headers=["day", *MODES], value=[], interactive=False, elem_id="insights-modes"
        )
        ui.insights_refresh = gr.Button("Refresh", size="sm", elem_id="insights-refresh")


def insights_view(pipe: Pipeline) -> tuple[str, list[list[Any]], list[list[Any]]]:
    """Summary line, gap groups and modes per day; a failure is reported in the summary."""
    try:
        report = gap_report(pipe)
    except Exception as exc:
        log.exception("insights failed")
        return f"⚠️ Insights are unavailable: {escape_md(str(exc))}", [], []
    if not pipe.settings.log_questions:
        head = "Question logging is off (`CHATBOT_LOG_QUESTIONS=0`); nothing new is recorded."
    else:
        head = f"{report.records} logged answers and feedback events."
    feedback = f"Feedback: 👍 {report.feedback['up']} · 👎 {report.feedback['down']}."
    groups = [
        [
            g.count,
            g.example,
            ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in sorted(g.kinds.items())),
            g.closest_title or "—",
            g.last_seen.replace("T", " ")[:16],
        ]
        for g in report.groups
    ]
    modes = [[day, *(counts.get(m, 0) for m in MODES)] for day, counts in report.modes.items()]
    gaps = f"{len(groups)} groups of unanswered or weak questions." if groups else "No gaps yet."
    return f"{head} {feedback} {gaps}", groups, modes


def wire_insights(pipe: Pipeline, ui: Layout) -> None:
    outputs = [ui.insights_summary, ui.insights_groups, ui.insights_modes]
    for event in (ui.insights_tab.select, ui.insights_refresh.click):
        event(lambda: insights_view(pipe), None, outputs, api_visibility="private")
