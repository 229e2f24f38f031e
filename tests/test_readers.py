"""Corpus formats: each file type is read into citeable entries, and bad files say why.

Every test writes small files of its own into a temp folder; dictd pairs are encoded here with
the format's base64 offsets, so the reader is checked against an independent writer.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from chatbot.corpus import corpus_files
from chatbot.readers import KnownFile, load_corpus, read_dictd

pytestmark = pytest.mark.unit
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64(n: int) -> str:
    out = ""
    while True:
        out = _B64[n % 64] + out
        n //= 64
        if n == 0:
            return out


def write_dictd(folder: Path, name: str, entries: list[tuple[list[str], str]], dz: bool) -> None:
    """entries: (headwords, entry text); the first headword is the entry's own title line."""
    blob, index = b"", []
    for words, text in entries:
        data = text.encode("utf-8")
        for w in words:
            index.append(f"{w}\t{b64(len(blob))}\t{b64(len(data))}")
        blob += data
    index.append(f"00-database-short\t{b64(0)}\t{b64(1)}")
    (folder / f"{name}.index").write_text("\n".join(sorted(index)) + "\n", encoding="utf-8")
    if dz:
        (folder / f"{name}.dict.dz").write_bytes(gzip.compress(blob))
    else:
        (folder / f"{name}.dict").write_bytes(blob)


COMPILER = (
    "compiler\n\n   <programming, tool> A program that converts another program from some\n"
    "   {source language} to {machine language}.\n\n   (1994-11-07)\n\n"
)
BYTE_MAG = "Byte\n\n   <publication> A popular computing magazine.\n\n"
BYTE_UNIT = (
    "byte\nbite\n\n   <unit> A component in the machine {data hierarchy}; now nearly\n"
    "   always eight bits.\n\n"
)


@pytest.mark.parametrize("dz", [True, False])
def test_dictd_pair_gives_one_entry_per_definition(tmp_path: Path, dz: bool) -> None:
    write_dictd(
        tmp_path,
        "mini",
        [(["compiler"], COMPILER), (["byte"], BYTE_MAG), (["byte", "bite"], BYTE_UNIT)],
        dz,
    )
    corpus = load_corpus(tmp_path)
    assert corpus.skipped == []
    assert [p.name for p in corpus_files(tmp_path)] == ["mini.index"]  # the data file is its pair
    by_title = {d.title: d for d in corpus.documents}
    assert set(by_title) == {"compiler", "Byte", "byte"}
    compiler = by_title["compiler"]
    assert "{" not in compiler.text and "source language to machine language." in compiler.text
    assert compiler.text.startswith("# compiler\n")
    assert "\n   " not in compiler.text  # hard wraps joined into prose
    assert "bite" in by_title["byte"].terms  # an alias headword
    assert len({d.doc_id for d in corpus.documents}) == 3


def test_soft_hyphens_are_dropped_from_entries_and_pages(tmp_path: Path) -> None:
    """The Jargon File writes "mar\u00adket\u00ading droid": split words that no search finds."""
    write_dictd(tmp_path, "mini", [(["marketroid"], "   A mar\u00adket\u00ading droid.\n")], False)
    (tmp_path / "page.md").write_text("# Page\n\nA zero\u200bwidth mar\u00adket.\n", "utf-8")
    texts = {d.title: d.text for d in load_corpus(tmp_path).documents}
    assert "A marketing droid." in texts["marketroid"]
    assert "A zerowidth market." in texts["Page"]


def test_a_box_drawn_table_reads_as_one_paragraph_per_row(tmp_path: Path) -> None:
    """The Jargon File's "random numbers": borders are no text, a wrapped cell one sentence."""
    table = (
        "random numbers\n\n   Preferred numbers:\n\n"
        "   ┌───┬──────────────────────────┐\n"
        "   │   │Long described at MIT as  │\n"
        "   │17 │the least random number.  │\n"
        "   ├───┼──────────────────────────┤\n"
        "   │23:│Sacred number of Eris.    │\n"
        "   └───┴──────────────────────────┘\n\n   See also foo.\n"
    )
    write_dictd(tmp_path, "mini", [(["random numbers"], table)], False)
    (doc,) = load_corpus(tmp_path).documents
    assert not set("┌│├└─") & set(doc.text)
    assert "\n\n17: Long described at MIT as the least random number.\n\n" in doc.text
    assert "\n\n23: Sacred number of Eris.\n\nSee also foo." in doc.text


def test_dictd_index_without_data_is_skipped_with_reason(tmp_path: Path) -> None:
    (tmp_path / "lonely.index").write_text("x\tA\tB\n", encoding="utf-8")
    (skipped,) = load_corpus(tmp_path).skipped
    assert "without its data file" in skipped.reason


def test_dictd_bad_offsets_are_reported(tmp_path: Path) -> None:
    write_dictd(tmp_path, "mini", [(["compiler"], COMPILER)], dz=False)
    (tmp_path / "mini.index").write_text("compiler\t!!\tB\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad offset"):
        read_dictd(tmp_path / "mini.index", (tmp_path / "mini.index").read_bytes())


def test_csv_rows_become_entries_with_aliases_urls_and_faq(tmp_path: Path) -> None:
    (tmp_path / "gloss.csv").write_text(
        "Term,Definition,Aliases,URL,Question,Answer\n"
        "Latency,Time a request waits.,delay;lag,https://x.test/latency,,\n"
        ",,,,,\n"
        "Throughput,Work done per second.,,,Is throughput latency?,No; they differ.\n",
        encoding="utf-8",
    )
    docs = load_corpus(tmp_path).documents
    assert [d.title for d in docs] == ["Latency", "Throughput"]
    assert docs[0].url == "https://x.test/latency" and {"delay", "lag"} <= set(docs[0].terms)
    assert "### Is throughput latency?\nNo; they differ." in docs[1].text
    assert docs[0].doc_id == "gloss:latency"


def test_other_columns_of_an_export_are_kept_as_fields(tmp_path: Path) -> None:
    """A "Year" or "createdBy" column is a fact users ask about; ids and nested objects are
    not facts, and empty cells say nothing."""
    (tmp_path / "g.csv").write_text(
        "id,Term,Definition,release_year,createdBy,Notes,source_url\n"
        "7,Bison,A parser generator.,1985,Robert Corbett,n/a,https://x.test/bison\n",
        encoding="utf-8",
    )
    (tmp_path / "h.json").write_text(
        json.dumps([{"term": "Llama", "definition": "A model family.", "tags": ["llm", "open"],
                     "meta": {"a": 1}, "licence": None}]),
        encoding="utf-8",
    )  # fmt: skip
    bison, llama = sorted(load_corpus(tmp_path).documents, key=lambda d: d.title)
    assert bison.text == (
        "# Bison\n\nA parser generator.\n\n- Release year: 1985\n- Created by: Robert Corbett\n"
    )
    assert bison.url == "https://x.test/bison"
    assert llama.text == "# Llama\n\nA model family.\n\n- Tags: llm; open\n"


def test_a_page_of_bold_term_lines_is_a_glossary_of_entries(tmp_path: Path) -> None:
    """A Markdown glossary written as "- **Term**: definition" lines: each term an entry, so it
    is found by name; an indented line continues its definition."""
    terms = ["Latency", "Jitter", "MTU", "TTL", "NAT"]
    lines = [f"- **{t}**: What {t} means, in a sentence of its own." for t in terms]
    lines[3] = "* **TTL:** Time to live, a hop counter\n  that stops packets circulating forever."
    intro = "Terms our network team uses, kept short."
    (tmp_path / "net.md").write_text(
        f"# Networking glossary\n\n{intro}\n\n" + "\n".join(lines) + "\n", encoding="utf-8"
    )
    docs = load_corpus(tmp_path).documents
    assert [d.title for d in docs] == ["Networking glossary", *terms]  # the intro is kept
    assert docs[0].text == f"# Networking glossary\n\n{intro}\n"
    ttl = docs[4]
    assert ttl.doc_id == "net:ttl" and "TTL" in ttl.terms
    assert (
        ttl.text == "# TTL\n\nTime to live, a hop counter that stops packets circulating forever.\n"
    )


def test_a_page_with_a_short_related_terms_list_stays_one_page(tmp_path: Path) -> None:
    prose = "A base model is a model trained on broad data before any tuning. " * 12
    related = "\n".join(f"- **Term {i}**: A related idea number {i}." for i in range(6))
    (tmp_path / "base.md").write_text(
        f"# Base model\n\n{prose}\n\n## Related terms\n\n{related}\n", encoding="utf-8"
    )
    assert [d.title for d in load_corpus(tmp_path).documents] == ["Base model"]


def test_editing_one_csv_row_changes_only_that_entry(tmp_path: Path) -> None:
    rows = [f"T{i},Definition number {i}." for i in range(50)]
    path = tmp_path / "big.csv"
    path.write_text("term,definition\n" + "\n".join(rows) + "\n", encoding="utf-8")
    before = {d.doc_id: d.sha256 for d in load_corpus(tmp_path).documents}
    rows[7] = "T7,An edited definition."
    path.write_text("term,definition\n" + "\n".join(rows) + "\n", encoding="utf-8")
    after = {d.doc_id: d.sha256 for d in load_corpus(tmp_path).documents}
    assert [k for k in before if before[k] != after[k]] == ["big:t7"]


def test_known_unchanged_files_are_hashed_but_not_parsed(
    tmp_path: Path, record_parsing: Callable[[], list[str]]
) -> None:
    """A rebuild reuses an unchanged file's chunks, so its 12,000 entries need not be parsed."""
    write_dictd(tmp_path, "mini", [(["compiler"], COMPILER), (["byte"], BYTE_MAG)], True)
    (tmp_path / "page.md").write_text("# Page\n\nSome text.\n", encoding="utf-8")
    first = load_corpus(tmp_path)
    assert first.reused == set()
    ids = {d.doc_id for d in first.documents if d.file == "mini.index"}
    by_name = {f.name: f for f in first.files}
    known = {
        name: KnownFile(f.sha256, f.entries, frozenset(ids if name == "mini.index" else ()))
        for name, f in by_name.items()
    }
    (tmp_path / "page.md").write_text("# Page\n\nEdited text.\n", encoding="utf-8")
    parsed = record_parsing()
    again = load_corpus(tmp_path, known)
    assert parsed == ["page.md"] and again.reused == {"mini.index"}
    assert [d.file for d in again.documents] == ["page.md"]
    assert again.files[0] == by_name["mini.index"]  # same hash, stats and entry count
    # a new file whose entry ids clash with a known file's: the same file is refused as
    # without reuse (page.markdown is read first and keeps the id "page")
    known["page.md"] = KnownFile(again.files[1].sha256, 1, frozenset({"page"}))
    (tmp_path / "page.markdown").write_text("# Page\n\nAnother page.\n", encoding="utf-8")
    skipped = [s.path.name for s in load_corpus(tmp_path, known).skipped]
    assert skipped == [s.path.name for s in load_corpus(tmp_path).skipped] == ["page.md"]


def test_tsv_json_and_jsonl_exports(tmp_path: Path) -> None:
    (tmp_path / "a.tsv").write_text("name\tdescription\nCache\tA fast store.\n", encoding="utf-8")
    (tmp_path / "b.json").write_text(
        json.dumps({"entries": [{"term": "Queue", "definition": "First in, first out."}]}),
        encoding="utf-8",
    )
    (tmp_path / "c.jsonl").write_text(
        json.dumps({"word": "Stack", "meaning": "Last in, first out."}) + "\n", encoding="utf-8"
    )
    (tmp_path / "d.json").write_text(json.dumps({"Heap": "A tree-shaped pool."}))
    titles = sorted(d.title for d in load_corpus(tmp_path).documents)
    assert titles == ["Cache", "Heap", "Queue", "Stack"]


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("bad.json", "{not json", "broken JSON"),
        ("cols.csv", "colour,size\nred,big\n", "no entries found"),
        ("list.json", json.dumps([1, 2]), "not an object"),
    ],
)
def test_broken_exports_are_skipped_with_reason(
    tmp_path: Path, name: str, data: str, reason: str
) -> None:
    (tmp_path / name).write_text(data, encoding="utf-8")
    (skipped,) = load_corpus(tmp_path).skipped
    assert reason in skipped.reason


def test_markdown_without_front_matter_and_plain_text(tmp_path: Path) -> None:
    (tmp_path / "plain.md").write_text("Just a paragraph about caches.\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("Hashing\nMaps keys to buckets.\n", encoding="utf-8")
    docs = {d.doc_id: d for d in load_corpus(tmp_path).documents}
    assert docs["plain"].title == "plain"
    assert docs["notes"].title == "Hashing" and "Maps keys to buckets." in docs["notes"].text


def test_html_page_keeps_main_text_and_drops_navigation(tmp_path: Path) -> None:
    html = (
        "<html><head><title>Sharding - Example Glossary</title></head><body>"
        "<nav><a href='/'>Home</a> <a href='/pricing'>Pricing</a> <a>Login</a></nav>"
        "<div id='cookie'>We use cookies. Accept all cookies?</div>"
        "<article><h1>Sharding</h1><p>Sharding splits one database into several smaller "
        "databases, each holding part of the rows, so that load and storage spread across "
        "machines. Each shard is chosen by a shard key such as a customer id.</p>"
        "<p>Resharding moves rows when shards grow unevenly, which is costly and is planned "
        "ahead by most operators of large systems.</p></article>"
        "<footer>Copyright 2026 Example Inc. All rights reserved.</footer></body></html>"
    )
    (tmp_path / "sharding.html").write_text(html, encoding="utf-8")
    (doc,) = load_corpus(tmp_path).documents
    assert "shard key" in doc.text
    assert "Pricing" not in doc.text and "cookies" not in doc.text
    assert "Sharding" in doc.title


def test_pdf_is_read_through_markitdown(tmp_path: Path) -> None:
    pytest.importorskip("markitdown")
    pdf = _tiny_pdf("Idempotence means that repeating a call has no further effect.")
    (tmp_path / "idempotence.pdf").write_bytes(pdf)
    (doc,) = load_corpus(tmp_path).documents
    assert "repeating a call has no further effect" in doc.text


def test_damaged_pdf_is_skipped_with_reason(tmp_path: Path) -> None:
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    (skipped,) = load_corpus(tmp_path).skipped
    assert skipped.path.name == "broken.pdf" and skipped.reason


def _tiny_pdf(text: str) -> bytes:
    """A one-page PDF with one line of text, written by hand (no PDF library needed)."""
    stream = f"BT /F1 12 Tf 40 700 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for n, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out


def write_five_formats(folder: Path) -> dict[str, str]:
    """One small file per format; returns term -> the file its entry must come from."""
    folder.mkdir(parents=True, exist_ok=True)
    write_dictd(folder, "computing", [(["compiler"], COMPILER)], dz=True)
    (folder / "terms.csv").write_text(
        "term,definition\nLatency,The time a request waits before it is served.\n",
        encoding="utf-8",
    )
    (folder / "sharding.html").write_text(
        "<html><head><title>Sharding</title></head><body><nav>Home | Pricing</nav><article>"
        "<h1>Sharding</h1><p>Sharding splits one database into several smaller databases, each "
        "holding part of the rows, so that load and storage spread across machines.</p>"
        "</article></body></html>",
        encoding="utf-8",
    )
    (folder / "idempotence.pdf").write_bytes(
        _tiny_pdf("Idempotence means that repeating a call has no further effect.")
    )
    (folder / "checksum.md").write_text(
        "# Checksum\n\nA small value computed from data to detect accidental changes.\n",
        encoding="utf-8",
    )
    (folder / "diagram.vsdx").write_bytes(b"PK\x03\x04 not a glossary")
    return {
        "compiler": "computing.index",
        "latency": "terms.csv",
        "sharding": "sharding.html",
        "idempotence": "idempotence.pdf",
        "checksum": "checksum.md",
    }


def test_five_formats_dropped_in_are_indexed_and_cited(
    tmp_path: Path, make_pipeline: object
) -> None:
    folder = tmp_path / "five-formats"
    expected = write_five_formats(folder)
    pipe = make_pipeline(corpus_dir=folder, index_dir=tmp_path / "idx")  # type: ignore[operator]
    summary = pipe.rebuild()
    assert sorted(summary.added) == sorted(expected.values())
    assert [s["file"] for s in summary.skipped] == ["diagram.vsdx"]
    assert "unsupported format" in summary.skipped[0]["reason"]
    for term, file in expected.items():
        answer = pipe.ask(f"What is {term}?")
        assert answer.mode == "lookup", (term, answer.answer)
        first = answer.citations[0]
        assert first.n == 1 and answer.sources[0]["doc"] == first.doc
        chunk_file = next(c.file for c in pipe.index.chunks if c.chunk_id == first.chunk_id)
        assert chunk_file == file, (term, first.doc)
