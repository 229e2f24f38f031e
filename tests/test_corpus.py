"""Reading the corpus.

The corpus is edited by hand, so one bad file must be reported and skipped while the rest still
loads; and the shipped corpus itself must be clean content (no scraped site chrome, complete
metadata), since every sentence in it can end up quoted to a user as a cited source.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import yaml

from chatbot.chunking import parse_sections
from chatbot.corpus import CorpusError, Document, corpus_files
from chatbot.entries import MAX_PAGE_BYTES
from chatbot.readers import load_corpus, parse_document

REAL_CORPUS = Path(__file__).resolve().parent.parent / "corpus"
GOOD = "---\ntitle: Good Page\nsource: Somewhere\nterms: [Good, Page]\n---\n# Good Page\n\nText.\n"


def write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# ------------------------------------------------------------------------------ parsing


def test_front_matter_fields_are_parsed_from_a_real_file() -> None:
    path = REAL_CORPUS / "base-model-foundation-model-glossary.md"
    doc = parse_document(path, path.read_bytes())
    assert doc.doc_id == "base-model-foundation-model-glossary"
    assert doc.title == "Base Model"
    assert doc.source == "unknown"
    assert doc.terms == ("Base Model", "Foundation Model")
    # the body starts right after the closing '---', at the H1, not inside the front matter
    assert doc.body.startswith("# Base Model (Foundation Model)")
    assert "title:" not in doc.body
    assert doc.text[: doc.body_start].count("---") == 2


def test_document_without_front_matter_falls_back_to_h1_and_defaults() -> None:
    doc = parse_document(Path("plain.md"), b"Intro line.\n\n# Plain Title #\n\nBody text.\n")
    assert doc.title == "Plain Title"
    assert doc.source == "unknown"
    assert doc.terms == ("Plain Title",)
    assert doc.body_start == 0


def test_document_without_title_or_h1_uses_file_stem() -> None:
    doc = parse_document(Path("some-stem.md"), b"Just text, no heading.\n")
    assert doc.title == "some-stem"


def test_terms_given_as_a_string_become_one_term() -> None:
    doc = parse_document(Path("x.md"), b"---\ntitle: X\nterms: Lone Term\n---\nBody.\n")
    assert doc.terms == ("Lone Term",)


def test_crlf_front_matter_and_utf8_bom_are_accepted() -> None:
    data = "\ufeff---\r\ntitle: Crlf\r\nsource: S\r\n---\r\n# Crlf\r\n\r\nBody.\r\n".encode()
    doc = parse_document(Path("crlf.md"), data)
    assert (doc.title, doc.source) == ("Crlf", "S")
    assert doc.body.startswith("# Crlf")


def test_sha256_is_of_the_raw_bytes() -> None:
    a = parse_document(Path("a.md"), GOOD.encode())
    b = parse_document(Path("a.md"), (GOOD + "More.\n").encode())
    assert a.sha256 != b.sha256
    assert a.sha256 == hashlib.sha256(GOOD.encode()).hexdigest()


# ------------------------------------------------------------------------------ bad files

BAD_FILES: dict[str, tuple[bytes, str]] = {
    "empty.md": (b"", "empty file"),
    "blank.md": (b"  \n\t\n", "empty file"),
    "latin1.md": ("# Café\n\nCrème brûlée.\n".encode("latin-1"), "not UTF-8"),
    "binary.md": (b"# Title\n\x00\x01\x02binary", "binary file"),
    "broken-yaml.md": (b"---\ntitle: [unclosed\nsource: x\n---\n# X\n\nBody.\n", "broken YAML"),
    "unclosed.md": (b"---\ntitle: Never closed\n# X\n\nBody.\n", "never closed"),
    "only-meta.md": (b"---\ntitle: Nothing else\n---\n\n", "no content"),
    "list-meta.md": (b"---\n- a\n- b\n---\n# X\n\nBody.\n", "must be a mapping"),
    "bad-terms.md": (
        b"---\ntitle: T\nterms: {a: 1}\n---\n# T\n\nBody.\n",
        "'terms' must be a list",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_each_bad_file_is_skipped_with_a_reason(tmp_path: Path, name: str) -> None:
    data, reason = BAD_FILES[name]
    write(tmp_path, "good.md", GOOD)
    write(tmp_path, name, data)
    corpus = load_corpus(tmp_path)
    assert [d.path.name for d in corpus.documents] == ["good.md"]
    assert len(corpus.skipped) == 1
    skipped = corpus.skipped[0]
    assert skipped.path.name == name
    assert reason in skipped.reason
    assert str(skipped).startswith(f"{name}: ")


def test_broken_yaml_reason_names_the_line(tmp_path: Path) -> None:
    write(tmp_path, "bad.md", "---\ntitle: ok\nsource: [x\n---\n# X\n\nBody.\n")
    (skipped,) = load_corpus(tmp_path).skipped
    assert re.search(r"broken YAML front matter at line \d+", skipped.reason)


def test_huge_file_is_skipped_before_parsing(tmp_path: Path) -> None:
    write(tmp_path, "good.md", GOOD)
    write(tmp_path, "huge.md", b"# Huge\n\n" + b"a" * MAX_PAGE_BYTES)
    corpus = load_corpus(tmp_path)
    assert [d.path.name for d in corpus.documents] == ["good.md"]
    (skipped,) = corpus.skipped
    assert skipped.path.name == "huge.md"
    assert "too large" in skipped.reason


def test_all_bad_files_together_leave_the_good_ones_loaded(tmp_path: Path) -> None:
    for name, (data, _) in BAD_FILES.items():
        write(tmp_path, name, data)
    write(tmp_path, "good.md", GOOD)
    write(tmp_path, "also-good.markdown", "# Also\n\nFine.\n")
    corpus = load_corpus(tmp_path)
    assert sorted(d.path.name for d in corpus.documents) == ["also-good.markdown", "good.md"]
    assert sorted(s.path.name for s in corpus.skipped) == sorted(BAD_FILES)
    assert all(s.reason for s in corpus.skipped)


def test_same_stem_with_two_suffixes_is_reported_not_merged(tmp_path: Path) -> None:
    """doc_id is the stem: two files sharing it would share chunk ids (and the incremental
    index would reuse each one's vectors for the other)."""
    write(tmp_path, "page.md", GOOD)
    write(tmp_path, "page.markdown", "# Other\n\nOther text.\n")
    corpus = load_corpus(tmp_path)
    assert len(corpus.documents) == 1
    (skipped,) = corpus.skipped
    assert "same name as" in skipped.reason
    assert len({d.doc_id for d in corpus.documents}) == len(corpus.documents)


def test_hidden_and_backup_files_are_ignored_and_unknown_formats_skipped(tmp_path: Path) -> None:
    write(tmp_path, "good.md", GOOD)
    write(tmp_path, ".hidden.md", GOOD)
    write(tmp_path, "~lock.md", GOOD)
    write(tmp_path, "good.md~", GOOD)
    write(tmp_path, "diagram.xyz", "not a glossary")
    (tmp_path / "sub.md").mkdir()  # a directory with a Markdown-looking name
    assert [p.name for p in corpus_files(tmp_path)] == ["diagram.xyz", "good.md"]
    corpus = load_corpus(tmp_path)
    assert [d.path.name for d in corpus.documents] == ["good.md"]
    (skipped,) = corpus.skipped
    assert skipped.path.name == "diagram.xyz" and "unsupported format" in skipped.reason


def test_missing_corpus_directory_is_a_corpus_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="not found"):
        load_corpus(tmp_path / "nope")


def test_files_load_in_stable_sorted_order(tmp_path: Path) -> None:
    for name in ("c.md", "a.md", "b.md"):
        write(tmp_path, name, f"# {name}\n\nText.\n")
    assert [d.doc_id for d in load_corpus(tmp_path).documents] == ["a", "b", "c"]


# ------------------------------------------------------------------------------ the real corpus

# Phrases of site chrome (navigation, calls to action, trial pitches, legal footers) that a
# scrape drags in. None belongs in a glossary passage that may be quoted as a source.
CHROME = re.compile(
    r"free trial|sign ?up|sign in|log ?in\b|start for free|get started|book a demo|"
    r"request a demo|try (it )?(for )?free|pricing|subscribe|newsletter|cookie|"
    r"all rights reserved|©|privacy policy|terms of (use|service)|skip to (main )?content|"
    r"read more|learn more|share on|https?://|www\.|insertchat|\]\(|<[a-z/!]",
    re.IGNORECASE,
)


@pytest.fixture(scope="module")
def real_docs() -> list[Document]:
    corpus = load_corpus(REAL_CORPUS)
    assert corpus.skipped == [], [str(s) for s in corpus.skipped]
    assert len(corpus.documents) >= 5
    return corpus.documents


def test_real_corpus_bodies_have_no_site_chrome(real_docs: list[Document]) -> None:
    found = {
        d.path.name: sorted({m.group(0) for m in CHROME.finditer(d.body)})
        for d in real_docs
        if CHROME.search(d.body)
    }
    assert found == {}


def test_real_corpus_front_matter_declares_title_source_and_terms(
    real_docs: list[Document],
) -> None:
    for doc in real_docs:
        meta = yaml.safe_load(doc.text[: doc.body_start].strip().strip("-"))
        assert isinstance(meta, dict), doc.path.name
        for key in ("title", "source", "terms"):
            assert meta.get(key), f"{doc.path.name} lacks {key}"
        assert isinstance(meta["terms"], list)
        assert doc.title == meta["title"]
        assert doc.title in doc.terms  # the page's own term is searchable as a term


def test_real_corpus_h1_matches_title(real_docs: list[Document]) -> None:
    for doc in real_docs:
        h1 = [s for s in parse_sections(doc) if s.level == 1]
        assert len(h1) == 1, doc.path.name
        assert h1[0].title.startswith(doc.title), doc.path.name


def faq_entries(doc: Document) -> list[tuple[str, str]]:
    """(question, answer) of each FAQ entry, read from the parsed sections."""
    entries = []
    for sec in parse_sections(doc):
        if sec.is_faq_entry():
            body = doc.text[sec.start : sec.end].split("\n", 1)
            answer = body[1].strip() if len(body) > 1 else ""
            if answer:
                entries.append((sec.title, answer))
    return entries


def test_real_corpus_has_no_duplicate_faq_question_within_a_file(
    real_docs: list[Document],
) -> None:
    total = 0
    for doc in real_docs:
        questions = [q.casefold().strip() for q, _ in faq_entries(doc)]
        total += len(questions)
        assert len(questions) == len(set(questions)), doc.path.name
    assert total >= 6  # the FAQ sections are really parsed, not silently empty


def test_real_corpus_faq_questions_all_have_answers(real_docs: list[Document]) -> None:
    for doc in real_docs:
        question_headings = [
            s for s in parse_sections(doc) if s.level >= 3 and s.title.endswith("?")
        ]
        entries = faq_entries(doc)
        assert len(entries) == len(question_headings), doc.path.name
        assert all(len(answer) > 40 for _, answer in entries)


def test_real_corpus_has_no_repeated_paragraph_within_a_file(real_docs: list[Document]) -> None:
    """Scraped pages repeat nav blocks and teasers; a clean page says each thing once."""
    for doc in real_docs:
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", doc.body) if len(p.strip()) > 30]
        assert len(paragraphs) == len(set(paragraphs)), doc.path.name
