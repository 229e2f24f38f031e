"""``results.md``: the results rendered through ``templates/report.md.j2`` (Jinja2).

Every part of the results may be missing (a skipped or failed stage): a missing value renders as
"–", every figure of a backend that did not run as "n/a", with the reason below its table.
"""

from __future__ import annotations

from typing import Any

import jinja2

from chatbot.bench.common import DIM
from chatbot.bench.generation import BACKENDS, LLAMA_CPP
from chatbot.bench.targets import check_targets

TEMPLATE = "report.md.j2"
MISSING = "–"
NOT_RUN = "n/a"
LABELS = {LLAMA_CPP: "llama.cpp"}


def fmt(value: Any, digits: int = 3) -> str:
    """One table cell: 3 significant digits, thousands separators, yes/no, "–" for nothing."""
    if value is None or isinstance(value, jinja2.Undefined):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.{digits}}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {fmt(v)}" for k, v in value.items()) or MISSING
    return str(value).replace("|", "\\|").replace("\n", " ")


class NotRun(dict[str, Any]):
    """The figures of a backend that did not run: every one of them is "n/a"."""

    def __missing__(self, key: str) -> str:
        return NOT_RUN


def backend_columns(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One column per backend of the generation table, llama.cpp last."""
    found = (results.get("generation") or {}).get("backends") or {}
    names = list(dict.fromkeys([*BACKENDS, *found, LLAMA_CPP]))
    names.remove(LLAMA_CPP)
    columns = []
    for name in [*names, LLAMA_CPP]:
        fig = found.get(name) or {}
        measured = fig.get("status") == "measured"
        columns.append(
            {
                "name": name,
                "label": LABELS.get(name, name),
                "measured": measured,
                "status": fig.get("status") or "not measured",
                "fig": fig if measured else NotRun(),
            }
        )
    return columns


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("chatbot.bench", "templates"),
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # Markdown, not HTML
    )
    env.filters["fmt"] = fmt
    return env


def render_markdown(results: dict[str, Any]) -> str:
    """results.json as readable tables; every section tolerates missing (skipped) parts."""
    template = environment().get_template(TEMPLATE)
    return str(
        template.render(
            r=results,
            targets=results.get("targets") or check_targets(results),
            columns=backend_columns(results),
            dim=DIM,
        )
    )
