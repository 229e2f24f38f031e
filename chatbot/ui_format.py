"""What the UI shows, as plain functions: answers, sources, the Index tab, the corpus blurb.

Everything that comes from the corpus or the model is HTML-escaped before it reaches the page: a
corpus file is user-editable text, not trusted markup. Kept apart from ``ui`` (which wires these
to Gradio components) so each is tested without a browser.
"""

from __future__ import annotations

import html
import logging
import re
from collections import Counter
from typing import Any

from chatbot.pipeline import Answer, Pipeline
from chatbot.terms import main_entries

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


def escape_md(text: str) -> str:
    """Escape HTML and neutralise Markdown that could turn corpus text into links or images."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def format_answer(answer: Answer) -> str:
    """Chat message Markdown: escaped answer text, [n] as links to the sources panel."""
    if answer.refused:
        lines = [f"**{escape_md(answer.answer)}**"]
        if answer.note:  # why: 'No entry of the glossary mentions "Activision".'
            lines.append(f"\n_{escape_md(answer.note)}_")
        if answer.suggestions:
            lines.append("\nYou could ask:")
            lines += [f"- {escape_md(s)}" for s in answer.suggestions]
        return "\n".join(lines)

    def link(m: re.Match[str]) -> str:
        nums = [int(n) for n in m.group(1).split(",")]
        if not all(1 <= n <= len(answer.sources) for n in nums):
            return escape_md(m.group(0))  # no such source: plain text, not a dead link
        return " ".join(f"[\\[{n}\\]](#src-{n})" for n in nums)

    # Only the [n] citations become links; every other character is escaped, so a "[x](url)"
    # or "![x](url)" written by the model or found in the corpus stays literal text.
    parts, pos = [], 0
    for m in _CITE.finditer(answer.answer):
        parts += [escape_md(answer.answer[pos : m.start()]), link(m)]
        pos = m.end()
    text = "".join([*parts, escape_md(answer.answer[pos:])])
    if answer.note:
        text += f"\n\n_{escape_md(answer.note)}_"
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
        return f"Index unreadable: {escape_md(str(exc))}"
    lines = [
        f"**Index** `{manifest.get('build_id', 'none')}` · {manifest.get('chunk_count', 0)} chunks"
        f" · built {manifest.get('created_at', 'never')}"
    ]
    if build is not None:
        lines.append(escape_md(build.describe()).replace("\n", "  \n"))
    return "\n\n".join(lines)


def file_rows(pipeline: Pipeline) -> list[list[str]]:
    try:
        return [
            [s.file, s.status, s.reason]
            for s in pipeline.store.file_statuses(pipeline.settings.corpus_dir)
        ]
    except Exception as exc:
        return [["(corpus)", "error", str(exc)]]


FILE_PAGE_SIZE = 50
STATUSES = ("all", "skipped", "changed", "new", "removed", "indexed")
_STATUS_ORDER = {s: i for i, s in enumerate(STATUSES[1:])}
_TITLE_STOPWORDS = frozenset(
    "a an and the of in on for to with by or as at from is are".split()  # noqa: SIM905
)


def file_table(
    pipeline: Pipeline, status: str = "all", query: str = "", page: int = 1
) -> tuple[list[list[str]], str]:
    """One page of the corpus files (skipped ones first, with reasons) and a line of counts.

    A 10,000-file corpus does not fit one table: the counts come first, then a filter by status,
    a search by name and pages of FILE_PAGE_SIZE rows.
    """
    rows = file_rows(pipeline)
    counts = Counter(r[1] for r in rows)
    rows.sort(key=lambda r: (_STATUS_ORDER.get(r[1], len(_STATUS_ORDER)), r[0].lower()))
    if status in _STATUS_ORDER:
        rows = [r for r in rows if r[1] == status]
    needle = (query or "").strip().lower()
    if needle:
        rows = [r for r in rows if needle in r[0].lower()]
    pages = max(1, -(-len(rows) // FILE_PAGE_SIZE))
    page = min(max(1, int(page or 1)), pages)
    shown = rows[(page - 1) * FILE_PAGE_SIZE : page * FILE_PAGE_SIZE]
    total = sum(counts.values())
    parts = [f"{n:,} {s}" for s, n in sorted(counts.items(), key=lambda kv: _rank(kv[0]))]
    line = f"**{total:,} files**: " + (", ".join(parts) or "none")
    line += f" · showing {len(shown):,} of {len(rows):,} · page {page} of {pages}"
    return shown, line


def _rank(status: str) -> int:
    return _STATUS_ORDER.get(status, len(_STATUS_ORDER))


def blurb_markdown(pipeline: Pipeline) -> str:
    """The page header: recomputed on page load and after the corpus changes, so the entry
    count is never the one the server started with."""
    title, description, _ = corpus_blurb(pipeline)
    return f"# {escape_md(title)}\n{description}"


def corpus_blurb(pipeline: Pipeline) -> tuple[str, str, str]:
    """(title, description, placeholder) from settings, else from what the corpus holds.

    Never a topic the corpus lacks: the sources are named with their entry counts, and the
    topics are the titles several entries share (or the words most common in titles).
    """
    s = pipeline.settings
    try:
        docs = pipeline.index.documents
        main = main_entries(pipeline.index.chunks, 1)
    except Exception:  # no usable index yet: a neutral text, never a wrong topic
        docs, main = [], []
    sources = Counter(str(d.get("source") or d.get("file") or "") for d in docs)
    titles = Counter(str(d.get("title", "")) for d in docs)
    shared = [t for t, n in titles.most_common(3) if n > 1]
    if not shared:
        words = Counter(
            w
            for t in titles
            for w in re.findall(r"[a-z][a-z-]{2,}", t.lower())
            if w not in _TITLE_STOPWORDS
        )
        shared = [w for w, _ in words.most_common(3)]
    big = [(src, n) for src, n in sources.most_common(3) if n > 1 and src not in ("", "unknown")]
    rest = len(docs) - sum(n for _, n in big)
    named = ", ".join(f"{src} ({n:,} entries)" for src, n in big)
    if rest:
        noun = "entry" if rest == 1 else "entries"
        named += f" and {rest:,} more {noun}" if big else f"{rest:,} {noun}"
    topics = ", ".join(f"**{escape_md(t)}**" for t in shared)
    title = s.title or "Glossary chat"
    description = s.description or (
        f"Ask about the glossary{': ' + escape_md(named) if named else ''}"
        f"{' — for example ' + topics if topics else ''}. Answers come only from its entries "
        "and cite them; if the glossary does not cover a question, the bot says so."
    )
    top = titles.most_common(1)
    example = top[0][0] if top and top[0][1] > 1 else next(iter(main), "")
    placeholder = f"Ask a question, e.g. “What is {example}?”" if example else "Ask a question…"
    return title, description, placeholder


def preset_samples(pipe: Pipeline, query: str = "") -> list[list[str]]:
    """The preset buttons: the first ``presets_shown`` FAQ questions, or those matching a search
    (a 10,000-entry glossary can hold hundreds of FAQ questions; a wall of buttons helps no one)."""
    try:
        questions = pipe.presets()
    except Exception:
        log.exception("cannot list presets")
        return []
    words = (query or "").lower().split() if isinstance(query, str) else []
    if words:
        questions = [q for q in questions if all(w in q.lower() for w in words)]
    return [[q] for q in questions[: pipe.settings.presets_shown]]
