"""The real app in a subprocess on 127.0.0.1: API, streaming, presets, rebuild, security, load.

Two servers start once for the module, in parallel (each on a free port, with its corpus, index
and cache under tmp_path):

* ``app``: the real configuration (MiniLM embeddings, SmolLM2 with backend ``auto``: llama.cpp
  when installed, else transformers), with a small queue (3) so "queue full" can be provoked,
  and 64 new tokens to keep answers short;
* ``fast_app``: extractive answers (no language model) behind ``CHATBOT_AUTH``: the load test
  runs here so 16 clients x 5 questions and 200 preset calls finish in seconds.

The converted SmolLM2 cache is linked read-only from the checkout's ``.cache`` when it is
complete there; otherwise the first server converts it once into a session temp folder.
Load figures go to ``$CHATBOT_ARTIFACTS_DIR/load.json`` when that variable is set.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

REPO = Path(__file__).resolve().parent.parent
PRESET = "Can you use a base model directly for a chatbot?"
GENERATIVE = "How do open-weight models differ from proprietary models?"
AUTH = ("tester", "s3cret-pass")
PASSWD_MARKER = "root:x:0:0"

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------------------------- server helpers
@dataclass
class Server:
    """One `python app.py` process and the folders it was given."""

    proc: subprocess.Popen[bytes]
    port: int
    root: Path
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def link_model_cache(cache_dir: Path, shared_models: Path) -> None:
    """Give the server a converted SmolLM2 without writing outside the temp folders.

    When the checkout's cache holds a complete conversion of the installed GGUF, its files are
    linked one by one (read-only use). Otherwise ``models`` points at a session-wide temp
    folder, so the conversion (~30 s) happens at most once per test session.
    """
    from chatbot.doctor import expected_cache_dir
    from chatbot.generate import bundled_gguf_path, converted_cache_dir
    from chatbot.generate import cache_complete as _cache_complete

    models = cache_dir / "models"
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        gguf = bundled_gguf_path()
        repo_conv = expected_cache_dir(gguf, REPO / ".cache" / "models")
    except Exception:
        return  # no bundled model: the server falls back to extractive answers
    if _cache_complete(repo_conv):
        models.mkdir()
        local = converted_cache_dir(gguf, models)  # writes the hash file under tmp only
        # a real folder of per-file links: what the server adds (the extracted GGUF blocks) or
        # deletes (a blocks file it rejects) stays in tmp, the checkout's cache is only read
        local.mkdir(parents=True, exist_ok=True)
        for item in repo_conv.iterdir():
            (local / item.name).symlink_to(item)
    else:
        shared_models.mkdir(parents=True, exist_ok=True)
        models.symlink_to(shared_models, target_is_directory=True)


def start_server(
    root: Path,
    shared_models: Path | None = None,
    files: dict[str, str] | None = None,
    corpus: Path | None = None,
    **env: str,
) -> Server:
    """Start `python app.py` with its own corpus copy (plus ``files``), index and cache.

    ``corpus``: a folder to serve instead of the bundled pages."""
    shutil.copytree(corpus or REPO / "corpus", root / "corpus")
    for name, text in (files or {}).items():
        (root / "corpus" / name).write_text(text, encoding="utf-8")
    if shared_models is not None:
        link_model_cache(root / "cache", shared_models)
    port = free_port()
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CHATBOT_", "GRADIO_"))},
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(root / "gradio-tmp"),
        "MPLCONFIGDIR": str(root / "mpl"),
        "PYTHONUNBUFFERED": "1",
        "CHATBOT_CORPUS_DIR": str(root / "corpus"),
        "CHATBOT_INDEX_DIR": str(root / "index"),
        "CHATBOT_CACHE_DIR": str(root / "cache"),
        "CHATBOT_PORT": str(port),
        **env,
    }
    log = root / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "app.py")],
            cwd=root,  # no stray .env, Gradio's scratch files stay in tmp
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(proc, port, root, log, env)


def wait_ready(server: Server, timeout_s: float = 180.0) -> None:
    """Poll the port until the server accepts connections (the index is built before that)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(
                f"server exited with {server.proc.returncode}:\n{server.log_text()[-3000:]}"
            )
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", server.port), timeout=1),
        ):
            return
        time.sleep(0.5)
    pytest.fail(f"server not ready after {timeout_s} s:\n{server.log_text()[-3000:]}")


def stop_server(server: Server) -> None:
    """Stop the process we started (its own session), by id: TERM, then KILL."""
    if server.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.proc.pid, signal.SIGTERM)
        try:
            server.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(timeout=15)


def client_for(server: Server, auth: tuple[str, str] | None = None) -> Any:
    from gradio_client import Client

    return Client(server.url, auth=auth, verbose=False, httpx_kwargs={"timeout": 120})


def last_message(chat: list[dict[str, Any]]) -> str:
    """Text of the last chat message as the API returns it (str or Gradio 6 parts)."""
    content = chat[-1]["content"]
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return str(content)


def raw_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """GET with the path sent byte for byte (httpx would normalise "../" away)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read(200_000).decode("utf-8", "replace")
    finally:
        conn.close()


# ------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    shared = tmp_path_factory.getbasetemp() / "shared-model-cache"
    started: list[Server] = []
    try:
        started.append(
            start_server(
                tmp_path_factory.mktemp("app"),
                shared,
                CHATBOT_QUEUE_SIZE="3",
                CHATBOT_MAX_NEW_TOKENS="64",
            )
        )
        started.append(
            start_server(
                tmp_path_factory.mktemp("fast"),
                None,
                CHATBOT_BACKEND="extractive",
                CHATBOT_AUTH=":".join(AUTH),
                CHATBOT_QUEUE_SIZE="64",
            )
        )
        for server in started:
            wait_ready(server)
        yield started[0], started[1]
    finally:
        for server in started:
            stop_server(server)


@pytest.fixture(scope="module")
def app(servers: tuple[Server, Server]) -> Server:
    return servers[0]


@pytest.fixture(scope="module")
def fast_app(servers: tuple[Server, Server]) -> Server:
    return servers[1]


@pytest.fixture(scope="module")
def load_report() -> Iterator[dict[str, Any]]:
    """Figures collected by the load tests, written once for the bench at module end."""
    report: dict[str, Any] = {}
    yield report
    folder = os.environ.get("CHATBOT_ARTIFACTS_DIR")
    if folder and report:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "load.json").write_text(json.dumps(report, indent=1))


# ------------------------------------------------------------------------------ chat, presets, API
def test_binds_localhost_by_default(app: Server, fast_app: Server) -> None:
    for server in (app, fast_app):
        listening = [
            c.laddr
            for c in psutil.Process(server.proc.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == server.port
        ]
        assert listening and {a.ip for a in listening} == {"127.0.0.1"}, listening
        assert f"http://127.0.0.1:{server.port}" in server.log_text()


def test_chat_streams_an_answer_with_citations(app: Server) -> None:
    client = client_for(app)
    job = client.submit(GENERATIVE, [], api_name="/chat")
    updates = list(job)  # every streamed update, in order
    assert len(updates) >= 2, updates
    box, chat, sources = updates[-1]
    assert box.get("interactive") is True
    assert updates[0][0].get("interactive") is False  # textbox disabled while answering
    assert [m["role"] for m in chat] == ["user", "assistant"]
    text = last_message(chat)
    assert "(#src-" in text and "▌" not in text
    assert "class='src cited'" in sources
    # whatever streamed before the end is a prefix of the final text: nothing is taken back
    final_text = _visible(text)
    for update in updates[1:-1]:
        shown = last_message(update[1])
        if shown != "…":
            assert final_text.startswith(_visible(shown)), (shown, text)


def _visible(markdown: str) -> str:
    """A message as read: citation links as their numbers, without the typing cursor."""
    return re.sub(r"\[\\\[(\d+)\\\]\]\(#src-\d+\)", r"\\[\1\\]", markdown).replace(" ▌", "")


def test_chat_api_exposes_no_generation_knobs(app: Server) -> None:
    info = client_for(app).view_api(return_format="dict", print_info=False)
    params = [p["parameter_name"] for p in info["named_endpoints"]["/chat"]["parameters"]]
    assert params == ["message", "history"]
    assert set(info["named_endpoints"]) == {"/chat", "/preset", "/rebuild"}


def test_over_long_question_gets_a_clear_message_not_an_answer(app: Server) -> None:
    question = ("Why is a base model useful? " * 200)[:5000]
    _, chat, sources = client_for(app).predict(question, [], api_name="/chat")
    text = last_message(chat)
    assert "too long" in text and "5,000" in text and "1,000" in text
    assert "#src-" not in text and "appear here" in sources
    assert len(last_message(chat[:-1])) <= 1001  # the echoed question is capped too


def test_preset_returns_the_cached_answer(app: Server) -> None:
    client = client_for(app)
    markdown, sources = client.predict(PRESET, api_name="/preset")
    assert "complete text rather than follow instructions" in markdown
    assert "(#src-" in markdown and "class='src cited'" in sources
    cached = [json.loads(p.read_text()) for p in (app.cache / "presets").rglob("*.json")]
    assert any(c["question"] == PRESET and c["mode"] == "faq" for c in cached)
    again, _ = client.predict(PRESET, api_name="/preset")
    assert again == markdown
    # Text that is not a preset is answered but never written to the cache.
    client.predict("What is transfer learning in base models?", api_name="/preset")
    questions = {
        json.loads(p.read_text())["question"] for p in (app.cache / "presets").rglob("*.json")
    }
    assert "What is transfer learning in base models?" not in questions


ZORBLAX = """---
title: Zorblax Embedding
source: test
---
# Zorblax Embedding

A zorblax embedding packs every glossary page into exactly seventeen purple dimensions.
"""


def test_rebuild_indexes_a_new_file_and_answers_from_it(app: Server) -> None:
    (app.corpus / "zorblax-embedding.md").write_text(ZORBLAX)
    client = client_for(app)
    summary, files, _presets, status = client.predict(api_name="/rebuild")
    assert "1 added" in status and "1 added" in summary, status
    rows = files["data"] if isinstance(files, dict) else files
    assert ["zorblax-embedding.md", "indexed", ""] in [list(r) for r in rows]
    _, chat, sources = client.predict("What is a zorblax embedding?", [], api_name="/chat")
    text = last_message(chat)
    assert "(#src-" in text, text
    cited = [part for part in sources.split("<div class='src") if part.startswith(" cited")]
    assert cited and all("zorblax-embedding" in part for part in cited), sources


def test_queue_full_is_a_clear_busy_error_not_a_hang(
    app: Server, load_report: dict[str, Any]
) -> None:
    from gradio_client.utils import QueueError, Status

    client = client_for(app)
    t0 = time.monotonic()
    busy = client.submit("What are LoRA and QLoRA used for?", [], api_name="/chat")
    started = (Status.PROCESSING, Status.ITERATING, Status.PROGRESS, Status.FINISHED)
    while busy.status().code not in started and time.monotonic() - t0 < 60:
        time.sleep(0.02)  # until the server works on it: the next ones must wait in the queue
    # questions that are neither presets nor cached: each takes the model a composition
    # (tenths of a second), far longer than the burst of submissions takes
    questions = [f"How are foundation models adapted to task {n}?" for n in range(8)]
    jobs = [client.submit(q, [], api_name="/chat") for q in questions]
    outcomes: list[str] = []
    for job in jobs:
        try:
            job.result(timeout=90)
            outcomes.append("ok")
        except QueueError as exc:
            outcomes.append(str(exc))
    busy.result(timeout=90)
    assert time.monotonic() - t0 < 90
    rejected = [o for o in outcomes if o != "ok"]
    assert rejected and "ok" in outcomes, outcomes
    assert all("Queue is full" in o and "try again" in o for o in rejected)
    assert len(outcomes) - len(rejected) <= 3 + 1  # queue size 3 (+1 if one slipped in late)
    load_report.update(
        queue_size=3,
        queue_burst=len(outcomes),
        queue_rejected=len(rejected),
        queue_full_message=rejected[0],
        queue_burst_s=round(time.monotonic() - t0, 2),
    )


# ----------------------------------------------------------------------------------- security
TRAVERSALS = [
    "/file=/etc/passwd",
    "/file=../../../../etc/passwd",
    "/gradio_api/file=../../etc/passwd",
    "/gradio_api/file=/etc/passwd",
    "/gradio_api/file=%2Fetc%2Fpasswd",
    "/gradio_api/file=//etc/passwd",
    "/gradio_api/file=%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/gradio_api/file=..%2F..%2F..%2Fetc%2Fpasswd",
    "/gradio_api/file=%252e%252e%252fetc%252fpasswd",
    "/gradio_api/file%3D/etc/passwd",
    "/FILE=/etc/passwd",
    "/GRADIO_API/FILE=/etc/passwd",
    "/gradio_api/File=/etc/passwd",
    "/gradio_api/file=/proc/self/environ",
    "/static/../../../../etc/passwd",
    "/assets/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/gradio_api/file=/./etc/passwd",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_file_can_be_read_through_the_server(app: Server, path: str) -> None:
    status, body = raw_get(app.port, path)
    assert PASSWD_MARKER not in body and "CHATBOT_" not in body, (status, body[:200])
    if "file" in path.lower():
        assert status in (400, 403, 404, 405), (status, body[:200])
    # the same request through httpx (which normalises the path) must not leak either
    resp = httpx.get(app.url + path, timeout=30)
    assert not (resp.status_code == 200 and PASSWD_MARKER in resp.text)


def test_index_cache_and_corpus_files_are_not_served(app: Server) -> None:
    current = (app.root / "index" / "CURRENT").read_text().strip()
    for target in [
        app.root / "index" / "builds" / current / "manifest.json",
        app.cache / "models" / "gguf-hashes.json",
        app.corpus / "base-model-insertchat.md",
        app.log,
    ]:
        status, body = raw_get(app.port, f"/gradio_api/file={target}")
        assert status in (403, 404), (target, status)
        assert "build_id" not in body and "sha256" not in body and "---" not in body


def test_auth_refuses_anonymous_api_calls(fast_app: Server) -> None:
    from gradio_client import Client

    for method, path in [
        ("GET", "/config"),
        ("GET", "/gradio_api/info"),
        ("POST", "/gradio_api/call/chat"),
        ("POST", "/gradio_api/queue/join"),
    ]:
        resp = httpx.request(method, fast_app.url + path, json={"data": [PRESET, []]})
        assert resp.status_code == 401, (path, resp.status_code, resp.text[:200])
    with pytest.raises(Exception, match=r"credentials|login|Not authenticated"):
        Client(fast_app.url, verbose=False)
    with pytest.raises(Exception, match="login"):
        Client(fast_app.url, verbose=False, auth=(AUTH[0], "wrong-password"))
    client = client_for(fast_app, AUTH)
    _, chat, sources = client.predict(PRESET, [], api_name="/chat")
    assert "(#src-" in last_message(chat) and "class='src cited'" in sources


# ---------------------------------------------------------------------------------------- load
LOAD_QUESTIONS = [
    PRESET,
    "What is a foundation model?",
    "Why do companies release base models?",
    "How do open-weight models differ from proprietary models?",
    "What are LoRA and QLoRA used for?",
    "Can I use a foundation model without fine-tuning it?",
    "What is continued pre-training?",
    "Who coined the term foundation model?",
]


class RssSampler:
    """Peak resident memory of one process, sampled in the background."""

    def __init__(self, pid: int, every_s: float = 0.1) -> None:
        self.proc = psutil.Process(pid)
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)

    def _run(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def test_load_16_clients_x_5_questions(fast_app: Server, load_report: dict[str, Any]) -> None:
    """Extractive backend (no LLM): 80 answers through the queue, all correct, none lost."""
    n_clients, per_client = 16, 5
    start = threading.Barrier(n_clients)

    def one_client(i: int) -> list[tuple[float, str, str]]:
        client = client_for(fast_app, AUTH)
        start.wait(timeout=60)  # all 16 ask at the same moment
        out = []
        for k in range(per_client):
            question = LOAD_QUESTIONS[(i + k) % len(LOAD_QUESTIONS)]
            seconds, (_, chat, _) = timed(
                lambda q=question: client.predict(q, [], api_name="/chat")
            )
            out.append((seconds, question, last_message(chat)))
        return out

    with RssSampler(fast_app.proc.pid) as rss, ThreadPoolExecutor(n_clients) as pool:
        t0 = time.perf_counter()
        results = [r for rows in pool.map(one_client, range(n_clients)) for r in rows]
        wall = time.perf_counter() - t0
    assert len(results) == n_clients * per_client  # an exception in any client fails above
    errors = [(q, text) for _, q, text in results if "(#src-" not in text or "⚠️" in text]
    assert not errors, errors[:3]
    latencies = sorted(s for s, _, _ in results)
    p50 = statistics.median(latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    load_report.update(
        backend="extractive",
        clients=n_clients,
        questions_per_client=per_client,
        requests=len(results),
        errors=len(errors),
        wall_s=round(wall, 2),
        p50_s=round(p50, 3),
        p95_s=round(p95, 3),
        max_s=round(latencies[-1], 3),
        peak_rss_mb=round(rss.peak / 2**20, 1),
    )
    print(f"load: {json.dumps(load_report)}")
    assert wall < 120


def test_memory_is_flat_over_200_requests(fast_app: Server, load_report: dict[str, Any]) -> None:
    """RSS after 20 and after 200 preset calls (4 clients in parallel) within 10 %."""
    proc = psutil.Process(fast_app.proc.pid)
    clients = [client_for(fast_app, AUTH) for _ in range(4)]
    presets = [LOAD_QUESTIONS[0], LOAD_QUESTIONS[2], LOAD_QUESTIONS[5]]

    def burst(n: int) -> None:
        def work(c: int) -> None:
            for k in range(n // len(clients)):
                markdown, _ = clients[c].predict(presets[k % len(presets)], api_name="/preset")
                assert "(#src-" in markdown

        with ThreadPoolExecutor(len(clients)) as pool:
            list(pool.map(work, range(len(clients))))

    with RssSampler(fast_app.proc.pid) as rss:
        burst(20)
        after_20 = proc.memory_info().rss
        t0 = time.perf_counter()
        burst(180)
        seconds = time.perf_counter() - t0
        after_200 = proc.memory_info().rss
    growth = (after_200 - after_20) / after_20
    load_report.update(
        rss_after_20_mb=round(after_20 / 2**20, 1),
        rss_after_200_mb=round(after_200 / 2**20, 1),
        rss_growth=round(growth, 4),
        preset_requests_per_s=round(180 / seconds, 1),
        peak_rss_mb=round(max(rss.peak / 2**20, load_report.get("peak_rss_mb", 0)), 1),
    )
    print(f"memory: {json.dumps(load_report)}")
    assert abs(growth) <= 0.10, load_report


# ----------------------------------------------------------------------------- auto re-index
def test_a_corpus_edit_is_answered_without_a_click(
    fast_app: Server, load_report: dict[str, Any]
) -> None:
    """The watcher rebuilds after the edit settles; the next answers use the new text."""
    question = "What is a quibblefrotz?"
    page = (
        "---\ntitle: Quibblefrotz\n---\n# Quibblefrotz\n\n"
        "A quibblefrotz is a seven-sided lookup table used only in glossary tests.\n"
    )
    client = client_for(fast_app, AUTH)
    before = last_message(client.predict(question, [], api_name="/chat")[1])
    assert "seven-sided" not in before
    (fast_app.corpus / "quibblefrotz.md").write_text(page, encoding="utf-8")
    edited = time.monotonic()
    deadline = edited + 90  # a generous bound for a busy CI machine; the time is reported
    text = before
    while time.monotonic() < deadline and "seven-sided" not in text:
        text = last_message(client.predict(question, [], api_name="/chat")[1])
    assert "seven-sided" in text, fast_app.log_text()[-2000:]
    load_report["auto_reindex_s"] = round(time.monotonic() - edited, 2)
    assert "corpus changed" in fast_app.log_text()
