"""The web UI in a real headless Chromium, against the real app (real embeddings and SmolLM2).

Skipped when /usr/bin/chromium is missing, unless CHATBOT_REQUIRE_BROWSER=1 (CI), where a
missing browser is a failure. One server and one browser serve the whole module. A screenshot
of the finished chat is copied to ``$CHATBOT_ARTIFACTS_DIR/screenshot.png`` when that is set.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_app_live import PRESET, Server, start_server, stop_server, wait_ready

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IMG = '<img src=x onerror="window.__pwned=1">'
SCRIPT = "<script>window.__pwned=2</script>"
XSS_QUESTION = "How is markup shown in an answer?"
XSS_PAGE = f"""---
title: Markup Test Page
source: test
---
# Markup Test Page

A page whose FAQ answer contains markup that must be shown as text.

## Frequently asked questions

### {XSS_QUESTION}

Markup such as {IMG} and {SCRIPT} is shown as text. It is never run by the browser.
"""
BOT = "#chat [data-testid='bot']"

pytestmark = pytest.mark.slow


def _require_browser() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} not found: install the chromium package to run the browser tests"
    if os.environ.get("CHATBOT_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + " (CHATBOT_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _require_browser()
    srv = start_server(
        tmp_path_factory.mktemp("browser-app"),
        tmp_path_factory.getbasetemp() / "shared-model-cache",
        files={"markup-test.md": XSS_PAGE},
        CHATBOT_MAX_NEW_TOKENS="64",
    )
    try:
        wait_ready(srv)
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture(scope="module")
def browser(server: Server) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


def open_page(browser: Any, url: str, ready: str) -> tuple[Any, Any]:
    """A fresh context and page on ``url``, waiting for ``ready`` (Gradio never goes idle);
    page errors are collected in ``page.errors``."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(90_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector(ready, timeout=60_000)
    page.errors = errors
    return context, page


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    context, page = open_page(browser, server.url, "#presets button")
    yield page
    context.close()


def wait_for_final_answer(page: Any, count: int) -> Any:
    """Wait until the chat shows ``count`` bot messages, the last one finished and cited."""
    page.wait_for_function(
        """([sel, n]) => {
            const bots = document.querySelectorAll(sel);
            if (bots.length < n) return false;
            const last = bots[bots.length - 1];
            return last.querySelector("a[href^='#src-']") && !last.innerText.includes("▌");
        }""",
        arg=[BOT, count],
    )
    return page.locator(BOT).nth(count - 1)


def test_preset_then_follow_up(page: Any, tmp_path: Path) -> None:
    page.locator("#presets").get_by_text(PRESET, exact=True).click()
    first = wait_for_final_answer(page, 1)
    assert "complete text rather than follow instructions" in first.inner_text()
    assert first.locator("a[href='#src-1']").count() >= 1
    cited = page.locator("#sources .src.cited")
    assert cited.count() >= 1 and cited.first.is_visible()
    assert "base-model-insertchat" in cited.first.inner_text()

    box = page.locator("#question textarea")
    box.fill("How can it be adapted for specific tasks?")
    box.press("Enter")
    second = wait_for_final_answer(page, 2)
    assert len(second.inner_text().strip()) > 20
    assert page.locator("#chat [data-testid='user']").count() == 2
    page.wait_for_function("!document.querySelector('#question textarea').disabled")
    assert box.input_value() == ""

    second.locator("a[href^='#src-']").first.click()  # a citation jumps to its passage
    assert page.url.split("#", 1)[1].startswith("src-")
    assert page.locator("#chat [data-testid='user']").count() == 2  # still on the page

    shot = tmp_path / "screenshot.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    artifacts = os.environ.get("CHATBOT_ARTIFACTS_DIR")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / "screenshot.png")
    assert page.errors == []


def test_markup_from_the_corpus_is_shown_not_run(page: Any) -> None:
    box = page.locator("#question textarea")
    box.fill(XSS_QUESTION)
    box.press("Enter")
    answer = wait_for_final_answer(page, 1)
    text = answer.inner_text()
    assert IMG in text and SCRIPT in text  # shown literally
    assert answer.locator("img, script").count() == 0
    sources = page.locator("#sources")
    assert IMG in sources.inner_text() and SCRIPT in sources.inner_text()
    assert page.locator("#sources img, #sources script").count() == 0
    page.wait_for_timeout(500)  # give a payload (if any) time to run
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.errors == []


@pytest.fixture(scope="module")
def glossary_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The app over a corpus of five formats and no bundled page."""
    from tests.test_readers import write_five_formats

    _require_browser()
    corpus = tmp_path_factory.mktemp("five-formats")
    write_five_formats(corpus)
    srv = start_server(
        tmp_path_factory.mktemp("glossary-app"),
        tmp_path_factory.getbasetemp() / "shared-model-cache",
        corpus=corpus,
        CHATBOT_BACKEND="extractive",
    )
    try:
        wait_ready(srv)
        yield srv
    finally:
        stop_server(srv)


def test_ui_over_another_glossary_names_its_own_topics_and_filters_files(
    browser: Any, glossary_server: Server
) -> None:
    context, page = open_page(browser, glossary_server.url, "#blurb")
    blurb = page.locator("#blurb").inner_text()
    placeholder = page.locator("#question textarea").get_attribute("placeholder") or ""
    assert "5 entries" in blurb and "compiler" in blurb
    assert "base model" not in (blurb + placeholder).lower()
    assert "foundation" not in (blurb + placeholder).lower()

    box = page.locator("#question textarea")
    box.fill("What is a compiler?")
    box.press("Enter")
    answer = wait_for_final_answer(page, 1)
    assert "converts another program" in answer.inner_text()
    assert "computing:compiler" in page.locator("#sources .src.cited").first.inner_text()

    page.get_by_role("tab", name="Index").click()
    summary = page.locator("#index-summary")
    page.wait_for_function("document.querySelector('#index-summary').innerText.includes('6 files')")
    assert "1 skipped" in summary.inner_text() and "5 indexed" in summary.inner_text()
    table = page.locator("#index-files")
    assert "diagram.vsdx" in table.inner_text()  # skipped files come first
    page.locator("#file-search textarea, #file-search input").first.fill("sharding")
    page.wait_for_function(
        "!document.querySelector('#index-files').innerText.includes('diagram.vsdx')"
    )
    assert "sharding.html" in table.inner_text()
    assert page.errors == []
    context.close()


def test_streamed_states_are_prefixes_of_the_final_answer(page: Any) -> None:
    """The user never reads text that is later withdrawn: record every state of the answer."""
    page.evaluate(
        """() => {
            window.__states = [];
            const chat = document.querySelector('#chat');
            new MutationObserver(() => {
                const bots = chat.querySelectorAll("[data-testid='bot']");
                if (bots.length) window.__states.push(bots[bots.length - 1].innerText);
            }).observe(chat, {subtree: true, childList: true, characterData: true});
        }"""
    )
    box = page.locator("#question textarea")
    box.fill("How are foundation models trained?")
    box.press("Enter")
    final_text = wait_for_final_answer(page, 1).inner_text().strip()
    states = [s.replace("▌", "").strip() for s in page.evaluate("window.__states")]
    shown = [s for s in states if s and s != "…"]
    assert shown and shown[-1] == final_text
    for state in shown:
        assert final_text.startswith(state), (state, final_text)
    assert page.errors == []


OFF_TOPIC = [
    "What is the weather in Paris tomorrow?",
    "Will it rain in Paris tomorrow?",
    "Paris weather forecast for tomorrow?",
]


def test_insights_tab_groups_refusals_and_thumbs_down(page: Any, server: Server) -> None:
    from tests.test_app_live import client_for

    client = client_for(server)
    for q in OFF_TOPIC:
        client.predict(q, [], api_name="/chat")
    page.locator("#presets").get_by_text(PRESET, exact=True).click()
    answer = wait_for_final_answer(page, 1)
    answer.hover()
    page.locator("#chat button[aria-label='Dislike'], #chat button[title='Dislike']").last.click()
    page.get_by_role("tab", name="Insights").click()
    page.wait_for_function(
        "document.querySelector('#insights-gaps').innerText.includes('thumbs down')"
    )
    table = page.locator("#insights-gaps").inner_text()
    assert "refusal 3" in table and PRESET in table, table
    assert any(q in table for q in OFF_TOPIC)
    assert "👎 1" in page.locator("#insights-summary").inner_text()
    assert page.errors == []


def exported_markdown(page: Any, turns: int, timeout_s: float = 30.0) -> str:
    """The Markdown export once it holds ``turns`` answers. The buttons get the new files from
    an event that follows the answer, so right after the answer shows they may still offer the
    previous export: download until the file holds the last answer, or fail at the deadline."""
    button = page.locator("#export-md")
    deadline = time.monotonic() + timeout_s
    while True:
        page.wait_for_function("!document.querySelector('#export-md').disabled")
        with page.expect_download() as info:
            button.click()
        text = Path(info.value.path()).read_text(encoding="utf-8")
        if len(re.findall(r"^## \d\. ", text, re.M)) >= turns or time.monotonic() > deadline:
            return text
        page.wait_for_timeout(250)


def test_export_downloads_every_answer_with_its_sources(page: Any) -> None:
    box = page.locator("#question textarea")
    page.locator("#presets").get_by_text(PRESET, exact=True).click()
    wait_for_final_answer(page, 1)
    for n, q in enumerate(["What is a foundation model?", "How are base models trained?"], 2):
        page.wait_for_function("!document.querySelector('#question textarea').disabled")
        box.fill(q)
        box.press("Enter")
        wait_for_final_answer(page, n)
    answers = [page.locator(BOT).nth(i).inner_text().strip() for i in range(3)]
    text = exported_markdown(page, turns=3)
    assert len(re.findall(r"^## \d\. ", text, re.M)) == 3 and text.count("**Sources**") == 3
    for q in (PRESET, "What is a foundation model?", "How are base models trained?"):
        assert q in text
    for shown in answers:  # each answer as read on screen, citations as [n]
        first_words = shown.split("[")[0].strip()[:40]
        assert first_words in text, (first_words, text[:2000])
    assert "> " in text  # the cited passages themselves
    assert page.errors == []
