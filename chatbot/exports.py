"""Spreadsheet and JSON exports of a glossary: one entry per row or object.

Column names differ between tools ("term", "name", "headword"; "definition", "description"),
so each role is matched against a short list of names. Columns with no role ("Year",
"createdBy", "License") are facts about the term and stay in the entry as fields.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from pathlib import Path

from chatbot.corpus import Document
from chatbot.entries import MAX_EXPORT_BYTES, check_size, decode_text, entry_document, entry_id

# Column names of glossary exports, most specific first (compared case-insensitively).
TERM_COLUMNS = ("term", "name", "title", "word", "headword", "keyword", "concept", "entry")
DEFINITION_COLUMNS = ("definition", "description", "meaning", "explanation", "text", "body")
QUESTION_COLUMNS = ("question", "q", "faq")
ANSWER_COLUMNS = ("answer", "a", "response")
ALIAS_COLUMNS = ("aliases", "alias", "synonyms", "synonym", "also known as", "aka")
URL_COLUMNS = ("url", "link", "source_url", "href")
SOURCE_COLUMNS = ("source", "publisher")
# columns that identify a row rather than say something about the term
_ID_COLUMN = re.compile(r"^(?:id|uuid|guid|slug|key|pk|index|row|#|_.*|.*[ _]id)$", re.I)


def _pick(row: dict[str, str], names: tuple[str, ...]) -> str:
    lowered = {k.strip().lower(): v for k, v in row.items() if isinstance(k, str)}
    for name in names:
        value = lowered.get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    return ""


def records_to_documents(path: Path, records: Iterable[object]) -> list[Document]:
    """Rows of a glossary export: term + definition, optional question/answer, aliases, url."""
    docs: list[Document] = []
    used: set[str] = set()
    for n, rec in enumerate(records, 1):
        if not isinstance(rec, dict):
            raise ValueError(f"entry {n} is not an object with named fields")
        row = {str(k): "" if v is None else _flat(v) for k, v in rec.items()}
        term = _pick(row, TERM_COLUMNS)
        definition = _pick(row, DEFINITION_COLUMNS)
        question, answer = _pick(row, QUESTION_COLUMNS), _pick(row, ANSWER_COLUMNS)
        if not term and question:
            term = question.rstrip("?")
        if not term or not (definition or answer):
            continue  # a blank or partial row in a spreadsheet is common and harmless
        aliases = [a.strip() for a in re.split(r"[;|]", _pick(row, ALIAS_COLUMNS)) if a.strip()]
        doc_id = entry_id(path, term, used)
        faq = [(question, answer)] if question and answer else []
        picked = {term, definition, question, answer}
        docs.append(
            entry_document(
                path,
                doc_id,
                term,
                definition,
                terms=aliases,
                source=_pick(row, SOURCE_COLUMNS) or path.name,
                url=_pick(row, URL_COLUMNS),
                faq=faq,
                fields=_other_fields(rec, picked),
            )
        )
    if not docs:
        raise ValueError(
            "no entries found: expected columns such as term + definition "
            "(or name + description, or question + answer)"
        )
    return docs


_KNOWN_COLUMNS = {
    *TERM_COLUMNS, *DEFINITION_COLUMNS, *QUESTION_COLUMNS, *ANSWER_COLUMNS, *ALIAS_COLUMNS,
    *URL_COLUMNS, *SOURCE_COLUMNS,
}  # fmt: skip


def _other_fields(record: dict[object, object], picked: set[str]) -> list[tuple[str, str]]:
    """The row's columns besides term, definition, FAQ, aliases, source and URL, as
    ("Release year", "2018"): kept in the entry, not dropped. Ids and nested objects are not
    facts about the term."""
    out = []
    for key, value in record.items():
        name = " ".join(re.sub(r"(?<=[a-z])(?=[A-Z])|[_-]+", " ", str(key)).split())
        raw = str(key).strip()
        if not name or {raw.lower(), name.lower()} & _KNOWN_COLUMNS or _ID_COLUMN.match(raw):
            continue
        if value is None or isinstance(value, dict):
            continue
        text = _flat(value).strip()
        if text and text not in picked and not re.fullmatch(r"(?i)n/?a|none|null|-", text):
            first, *rest = name.split()
            words = [w.lower() if w.istitle() else w for w in rest]  # "createdBy": "Created by"
            out.append((" ".join([first[0].upper() + first[1:], *words]), text))
    return out


def _flat(value: object) -> str:
    if isinstance(value, list):
        return "; ".join(_flat(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def read_table(path: Path, data: bytes) -> list[Document]:
    """CSV or TSV with a header row."""
    check_size(data, MAX_EXPORT_BYTES)
    text = decode_text(data)
    if path.suffix.lower() == ".tsv":
        dialect: type[csv.Dialect] | csv.Dialect = csv.excel_tab
    else:
        try:
            dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
    try:
        return records_to_documents(path, csv.DictReader(io.StringIO(text), dialect=dialect))
    except csv.Error as exc:
        raise ValueError(f"broken CSV ({exc})") from None


def read_json(path: Path, data: bytes) -> list[Document]:
    """A JSON list of objects (or {"entries": [...]}) or JSON Lines, one object per line."""
    check_size(data, MAX_EXPORT_BYTES)
    text = decode_text(data)
    try:
        if path.suffix.lower() == ".jsonl":
            records: list[object] = [json.loads(x) for x in text.splitlines() if x.strip()]
        else:
            loaded = json.loads(text)
            if isinstance(loaded, dict):
                lists = [v for v in loaded.values() if isinstance(v, list)]
                if len(lists) == 1:
                    loaded = lists[0]
                elif all(isinstance(v, str) for v in loaded.values()):
                    loaded = [{"term": k, "definition": v} for k, v in loaded.items()]
            if not isinstance(loaded, list):
                raise ValueError("expected a list of entries")
            records = loaded
    except json.JSONDecodeError as exc:
        raise ValueError(f"broken JSON at line {exc.lineno}") from None
    return records_to_documents(path, records)
