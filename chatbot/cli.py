"""Command line: a thin layer over the pipeline with stable JSON for scripts.

Errors a user can cause (empty question, missing corpus, broken index) print one line on stderr
and exit non-zero; tracebacks are for bugs only.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from pydantic import ValidationError

from chatbot.config import Settings, apply_runtime_env, get_settings

if TYPE_CHECKING:
    from chatbot.pipeline import Pipeline

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="glossary-chat: cited answers from a glossary corpus.",
)
eval_app = typer.Typer(no_args_is_help=True, help="Measure retrieval and answers on an eval set.")
app.add_typer(eval_app, name="eval")

CorpusOpt = Annotated[Path | None, typer.Option("--corpus", help="corpus directory")]
IndexOpt = Annotated[Path | None, typer.Option("--index", help="index directory")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
FileOpt = Annotated[
    Path | None, typer.Option("--file", "-f", help="JSONL file with a 'question' per line")
]


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _settings(corpus: Path | None = None, index: Path | None = None, **kw: Any) -> Settings:
    try:
        return get_settings(corpus_dir=corpus, index_dir=index, **kw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        fail(f"invalid setting {where}: {first.get('msg')}")


def _pipeline(settings: Settings) -> Pipeline:
    from chatbot.pipeline import Pipeline

    return Pipeline(settings)


def _known_errors() -> tuple[type[BaseException], ...]:
    from chatbot.answer import InvalidQuestion
    from chatbot.corpus import CorpusError
    from chatbot.embedding import EmbeddingError
    from chatbot.errors import GenerationError
    from chatbot.index import IndexBuildError, IndexUnavailable

    return (
        InvalidQuestion,
        CorpusError,
        IndexUnavailable,
        IndexBuildError,
        EmbeddingError,
        GenerationError,
        ValueError,
    )


def _questions(file: Path) -> Iterator[tuple[Any, str]]:
    """(id, question) per line of a JSONL file; other fields are ignored."""
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {file}: {exc}")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            yield record.get("id"), record["question"]
        except (ValueError, KeyError, TypeError, AttributeError):
            fail(f"{file}:{n}: each line must be a JSON object with a 'question'")


def _for_each_question(
    file: Path | None, question: str | None, one: Callable[[Any, str], None]
) -> None:
    """``one(id, question)`` for each line of ``file``, or once for the single ``question``."""
    if file is not None:
        for qid, q in _questions(file):
            one(qid, q)
    else:
        assert question is not None
        one(None, question)


def _progress_bar() -> Any:
    """A live bar (with rate and ETA) on a terminal; plain lines every few seconds otherwise."""
    from tqdm import tqdm

    from chatbot.progress import PlainProgress

    if not sys.stderr.isatty():
        return PlainProgress()
    bars: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(
                total=total,
                desc=stage,
                unit="chunk",
                file=sys.stderr,
                leave=False,
            )
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return update


def _run(fn: Any) -> Any:
    try:
        return fn()
    except _known_errors() as exc:
        hint = getattr(exc, "hint", "")
        fail(f"{exc}" + (f" ({hint})" if hint else ""))


@app.command()
def index(
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    full: Annotated[bool, typer.Option("--full", help="re-embed every file")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Build or update the index after editing the corpus (only changed files are re-embedded)."""
    settings = _settings(corpus, index)
    if not settings.corpus_dir.is_dir():
        fail(f"corpus directory not found: {settings.corpus_dir}")
    pipe = _pipeline(settings)
    summary = _run(
        lambda: pipe.store.build(settings.corpus_dir, full=full, progress=_progress_bar())
    )
    if as_json:
        typer.echo(json.dumps(summary.to_dict()))
    else:
        typer.echo(summary.describe())


@app.command()
def search(
    question: Annotated[str | None, typer.Argument(help="the question")] = None,
    file: FileOpt = None,
    as_json: JsonOpt = False,
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", min=1, max=50)] = None,
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
) -> None:
    """Retrieve passages for a question (no language model is loaded)."""
    if question is None and file is None:
        fail("give a question or --file")
    settings = _settings(corpus, index, top_k=top_k)
    if not settings.corpus_dir.is_dir():
        fail(f"corpus directory not found: {settings.corpus_dir}")
    from chatbot.answer import clean_question

    if question is not None:
        _run(lambda: clean_question(question, settings.max_question_chars))
    pipe = _pipeline(settings)
    _run(pipe.ensure_index)

    def one(qid: Any, q: str) -> None:
        result = _run(lambda: pipe.retrieve(q)).to_dict()
        result = {"id": qid, **result} if qid is not None else result
        if as_json:
            typer.echo(json.dumps(result, ensure_ascii=False))
        else:
            flag = "" if result["relevant"] else "  (nothing relevant: below the threshold)"
            typer.echo(f"Q: {q}{flag}")
            for i, h in enumerate(result["hits"], 1):
                snippet = " ".join(h["text"].split())[:140]
                typer.echo(
                    f"  [{i}] {h['score']:.4f} {h['title']} > {h['heading']}\n      {snippet}"
                )

    _for_each_question(file, question, one)


def _print_answer(answer: Any) -> None:
    typer.echo("")
    if answer.note:
        typer.secho(answer.note, fg="yellow", err=True)
    if answer.suggestions:
        typer.echo("You could ask: " + " | ".join(answer.suggestions))
    for c in answer.citations:
        typer.echo(f"[{c.n}] {c.title} > {c.heading.rsplit(' > ', 1)[-1]} ({c.doc})")


@app.command()
def ask(
    question: Annotated[str | None, typer.Argument(help="the question")] = None,
    file: FileOpt = None,
    as_json: JsonOpt = False,
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
) -> None:
    """Answer a question with citations (streams to the terminal)."""
    if question is None and file is None:
        fail("give a question or --file")
    settings = _settings(corpus, index)
    from chatbot.answer import clean_question

    if question is not None:
        _run(lambda: clean_question(question, settings.max_question_chars))
    pipe = _pipeline(settings)
    _run(pipe.ensure_index)

    def one(qid: Any, q: str) -> None:
        if as_json:
            _print_json_answer(pipe, qid, q)
        else:
            _stream_answer(pipe, q)

    _for_each_question(file, question, one)


ANSWER_KEYS = (
    "question",
    "answer",
    "refused",
    "citations",
    "sources",
    "timings",
    "mode",
    "suggestions",
    "note",
)


def _print_json_answer(pipe: Any, qid: Any, q: str) -> None:
    data = _run(lambda: pipe.ask(q)).to_dict()
    out = {"id": qid} if qid is not None else {}
    out.update({k: data[k] for k in ANSWER_KEYS})
    typer.echo(json.dumps(out, ensure_ascii=False))


def _stream_answer(pipe: Any, q: str) -> None:
    """Verified sentences as they come; each update extends what is already printed."""
    from chatbot.answer import Answer, Partial

    shown = ""
    final: list[Answer] = []

    def consume() -> None:
        nonlocal shown
        for event in pipe.stream(q):
            if isinstance(event, Partial) and event.text.startswith(shown):
                sys.stdout.write(event.text[len(shown) :])
                sys.stdout.flush()
                shown = event.text
            elif isinstance(event, Answer):
                final.append(event)

    _run(consume)
    answer = final[-1]
    rest = answer.answer[len(shown) :] if answer.answer.startswith(shown) else answer.answer
    typer.echo(rest)
    _print_answer(answer)


def _eval_setup(
    file: Path | None, corpus: Path | None, index: Path | None
) -> tuple[list[Any], Pipeline]:
    """The eval items and a pipeline with its index ready: both eval commands start alike."""
    from chatbot.evaluate import DEFAULT_EVAL_FILE, load_items

    path = file or DEFAULT_EVAL_FILE
    if not path.exists():
        fail(f"eval file not found: {path}")
    items = _run(lambda: load_items(path))
    pipe = _pipeline(_settings(corpus, index))
    _run(pipe.ensure_index)
    return items, pipe


@eval_app.command("retrieval")
def eval_retrieval_cmd(
    file: FileOpt = None,
    mode: Annotated[
        str | None, typer.Option(help="hybrid | dense | bm25 (default: config)")
    ] = None,
    as_json: JsonOpt = False,
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
) -> None:
    """hit@1/3/5 and MRR of evidence passages, and the relevance flag on unanswerables."""
    from chatbot.evaluate import eval_retrieval

    items, pipe = _eval_setup(file, corpus, index)
    modes = [mode] if mode else ["dense", "bm25", "hybrid"]
    results = {m: eval_retrieval(pipe, items, mode=m) for m in modes}
    if as_json:
        typer.echo(json.dumps(results))
        return
    typer.echo(
        f"{'mode':8} {'hit@1':>6} {'hit@3':>6} {'hit@5':>6} {'MRR':>6} "
        f"{'unans.flagged':>13} {'ans.flagged':>11}"
    )
    for m, r in results.items():
        typer.echo(
            f"{m:8} {r['hit@1']:6.3f} {r['hit@3']:6.3f} {r['hit@5']:6.3f} {r['mrr']:6.3f} "
            f"{r['unanswerable_flagged']:13.3f} {r['answerable_flagged']:11.3f}"
        )
    for m, r in results.items():
        if "lookups" in r:
            typer.echo(
                f"{m}: exact entry at rank 1 for {r['exact_entry@1']:.3f} of {r['lookups']} "
                f"lookups (top 3: {r['exact_entry@3']:.3f})"
            )
    for m, r in results.items():
        misses = [
            row["id"] for row in r["rows"] if row["answerable"] and not (row["rank"] or 9) <= 3
        ]
        if misses:
            typer.echo(f"{m}: evidence not in top 3 for {', '.join(misses)}")


@eval_app.command("answers")
def eval_answers_cmd(
    file: FileOpt = None,
    as_json: JsonOpt = False,
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
) -> None:
    """Fact recall, refusals, citations and seconds per answer, per question and in total."""
    from chatbot.evaluate import eval_answers

    items, pipe = _eval_setup(file, corpus, index)
    result = eval_answers(pipe, items)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    for r in result["rows"]:
        status = ("REFUSED" if r["refused"] else r["mode"]).ljust(10)
        ok = (
            ""
            if r["facts_recalled"] is None
            else ("facts ok" if r["facts_recalled"] else "MISSING")
        )
        typer.echo(f"{r['id']:5} {status} {ok:8} {r['seconds']:6.2f}s  {r['answer'][:90]!r}")
    summary = {k: v for k, v in result.items() if k != "rows"}
    typer.echo(json.dumps(summary, indent=1))


@app.command()
def gaps(
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    as_json: JsonOpt = False,
    since: Annotated[
        str | None, typer.Option("--since", help="only questions from this date (YYYY-MM-DD) on")
    ] = None,
) -> None:
    """The questions the corpus failed (refused, thumbs-down, low confidence), grouped."""
    from datetime import datetime

    from chatbot.insights import gap_report

    try:
        floor = datetime.fromisoformat(since) if since else None
    except ValueError:
        fail(f"--since must be a date such as 2026-11-01, not {since!r}")
    report = _run(lambda: gap_report(_pipeline(_settings(corpus, index)), floor))
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    if not report.groups:
        typer.echo(f"no knowledge gaps logged ({report.records} records read)")
        return
    for g in report.groups:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(g.kinds.items()))
        closest = f"closest entry: {g.closest_title or '-'}"
        typer.echo(f"{g.count:4}x  {g.example}\n       {kinds} · {closest} · last {g.last_seen}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="port")] = None,
) -> None:
    """Start the web UI (same as `python app.py`)."""
    from chatbot.ui import launch

    launch(_settings(host=host, port=port))


@app.command()
def doctor(corpus: CorpusOpt = None, index: IndexOpt = None) -> None:
    """Check that models, cache and index are present, consistent and fresh."""
    from chatbot.doctor import run_checks

    ok = run_checks(_settings(corpus, index), typer.echo)
    raise typer.Exit(0 if ok else 1)


@app.command()
def bench(
    no_reference: Annotated[bool, typer.Option("--no-reference", help="skip llama.cpp")] = False,
    out: Annotated[Path, typer.Option(help="results folder")] = Path("bench"),
    questions: Annotated[int, typer.Option(help="generation questions", min=1)] = 10,
    quick: Annotated[bool, typer.Option(help="small scaling table (CI smoke run)")] = False,
) -> None:
    """Measure index, retrieval and generation speed; writes bench/results.json and a table."""
    from chatbot.bench.runner import run_bench

    run_bench(_settings(), out, reference=not no_reference, n_questions=questions, quick=quick)


def main() -> None:
    apply_runtime_env()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("bm25s", "httpx", "sentence_transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass
    app()


if __name__ == "__main__":
    main()
