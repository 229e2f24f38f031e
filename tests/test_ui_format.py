"""What the UI shows for any corpus: blurb from the corpus, a paged and filtered Index tab,
a bounded and searchable preset list, related questions after an answer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from chatbot.pipeline import Pipeline
from chatbot.ui import related_questions, related_samples
from chatbot.ui_format import FILE_PAGE_SIZE, corpus_blurb, file_table, preset_samples

pytestmark = pytest.mark.unit
MakePipeline = Callable[..., Pipeline]


def test_blurb_names_the_corpus_topics_and_sources(make_pipeline: MakePipeline) -> None:
    pipe = make_pipeline()
    pipe.ensure_index()
    title, description, placeholder = corpus_blurb(pipe)
    assert title == "Glossary chat"
    assert "Base Model" in description and "Foundation Model" in description
    assert "5 entries" in description
    assert placeholder.startswith("Ask a question, e.g.")


def test_blurb_of_another_corpus_names_no_topic_it_lacks(
    tmp_path: Path, make_pipeline: MakePipeline
) -> None:
    corpus = tmp_path / "networks"
    corpus.mkdir()
    rows = [
        "Router,Forwards packets between networks.",
        "Network switch,Connects devices in one network.",
        "Network address,Identifies a host on a network.",
    ]
    (corpus / "net.csv").write_text("term,definition\n" + "\n".join(rows) + "\n")
    (corpus / "hub.md").write_text("# Hub\n\nA device joining network segments.\n")
    pipe = make_pipeline(corpus_dir=corpus, index_dir=tmp_path / "idx")
    pipe.ensure_index()
    _, description, placeholder = corpus_blurb(pipe)
    assert "net.csv (3 entries) and 1 more entry" in description  # an entry, not a file
    assert "**network**" in description
    assert "base model" not in (description + placeholder).lower()
    override = make_pipeline(
        corpus_dir=corpus, index_dir=tmp_path / "idx", title="Net terms", description="Ours."
    )
    assert corpus_blurb(override)[:2] == ("Net terms", "Ours.")


def test_index_table_counts_filters_searches_and_pages(
    tmp_path: Path, make_pipeline: MakePipeline
) -> None:
    corpus = tmp_path / "many"
    corpus.mkdir()
    for i in range(FILE_PAGE_SIZE + 10):
        (corpus / f"term-{i:03d}.md").write_text(f"# Term {i}\n\nDefinition {i}.\n")
    (corpus / "zz-broken.md").write_bytes(b"\xff\xfe\x00binary")
    (corpus / "notes.xyz").write_text("unsupported")
    pipe = make_pipeline(corpus_dir=corpus, index_dir=tmp_path / "idx")
    pipe.ensure_index()
    rows, line = file_table(pipe)
    assert line.startswith(f"**{FILE_PAGE_SIZE + 12} files**: 2 skipped, {FILE_PAGE_SIZE + 10}")
    assert [r[1] for r in rows[:2]] == ["skipped", "skipped"] and rows[0][2]  # reasons first
    assert len(rows) == FILE_PAGE_SIZE and "page 1 of 2" in line
    rows2, line2 = file_table(pipe, page=2)
    assert len(rows2) == 12 and "page 2 of 2" in line2
    only, _ = file_table(pipe, status="skipped")
    assert {r[0] for r in only} == {"zz-broken.md", "notes.xyz"}
    found, found_line = file_table(pipe, query="TERM-00")
    assert [r[0] for r in found] == [f"term-00{i}.md" for i in range(10)]
    assert "showing 10 of 10" in found_line
    assert file_table(pipe, page=99)[1].endswith("page 2 of 2")  # clamped, not empty


def test_presets_are_bounded_and_searchable(make_pipeline: MakePipeline) -> None:
    pipe = make_pipeline(presets_shown=3)
    pipe.ensure_index()
    assert len(pipe.presets()) > 3
    assert len(preset_samples(pipe)) == 3
    found = preset_samples(pipe, "chatbot BASE")
    assert found == [["Can you use a base model directly for a chatbot?"]]
    assert preset_samples(pipe, "no such words at all") == []


def test_related_questions_follow_the_last_question(make_pipeline: MakePipeline) -> None:
    pipe = make_pipeline()
    asked = "Can you use a base model directly for a chatbot?"
    related = related_questions(pipe, [{"role": "user", "content": asked}])
    assert len(related) == 3 and asked not in related
    assert set(related) <= set(pipe.presets())
    assert related_questions(pipe, []) == []
    earlier = related[0]
    chat = [{"role": "user", "content": earlier}, {"role": "user", "content": asked}]
    assert earlier not in related_questions(pipe, chat)  # already asked in this chat
    assert related_samples(pipe, []).visible is False


def test_filtering_the_index_tab_updates_its_counts_line(
    tmp_path: Path, make_pipeline: MakePipeline
) -> None:
    from chatbot.ui_index import index_view

    corpus = tmp_path / "few"
    corpus.mkdir()
    for name in ("alpha", "beta", "gamma"):
        (corpus / f"{name}.md").write_text(f"# {name}\n\nAbout {name}.\n")
    pipe = make_pipeline(corpus_dir=corpus, index_dir=tmp_path / "idx")
    pipe.ensure_index()
    rows, summary = index_view(pipe, "all", "beta", 1)
    assert [r[0] for r in rows] == ["beta.md"]
    assert "**3 files**" in summary and "showing 1 of 1" in summary and "**Index**" in summary
