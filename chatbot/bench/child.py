"""The fresh-process harness: start a new interpreter that loads the pipeline and answers one
question, to measure warm and cold starts and peak memory as a user's process sees them.

    python -m chatbot.bench.child '{"settings": {...}, "question": "..."}'

The child prints one JSON line per event (``ready``, ``answered``) stamped with the wall clock,
so the parent counts from spawning it: interpreter start and imports included.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from chatbot.config import PROJECT_ROOT, Settings


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
    )
    return env


def parse_events(stdout: str, t0: float) -> dict[str, Any]:
    """The child's JSON event lines by name, ``at`` turned into seconds since ``t0``."""
    events: dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            event["wall_s"] = round(event.pop("at") - t0, 3)
            events[event["event"]] = event
    return events


def run_child(s: Settings, question: str, timeout_s: float = 600.0) -> dict[str, Any]:
    """Spawn the child with these settings; its events once it has answered."""
    payload = json.dumps({"settings": s.model_dump(mode="json"), "question": question})
    t0 = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatbot.bench.child", payload],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=str(PROJECT_ROOT),
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"benchmark child did not answer within {timeout_s:.0f} s") from None
    events = parse_events(stdout, t0)
    if "answered" not in events:
        raise RuntimeError(f"benchmark child failed (exit {proc.returncode}): {stderr[-2000:]}")
    return events


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM belongs to the address space an exec
    creates, so unlike ru_maxrss (kept across exec on Linux) it does not include the memory of
    the benchmark process this child was forked from."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "at": time.time(), **fields}), flush=True)


def child_main(payload: str) -> None:
    """Runs in the subprocess: report when ready and when the first answer is done."""
    t0 = time.perf_counter()
    from chatbot.pipeline import Pipeline

    data = json.loads(payload)
    s = Settings(**data["settings"])
    t_import = time.perf_counter() - t0
    pipe = Pipeline(s)
    pipe.ensure_index()
    t_index = time.perf_counter() - t0
    pipe.embedder.encode(["warm up"])
    t_embedder = time.perf_counter() - t0
    gen = pipe.generator
    t_model = time.perf_counter() - t0
    _emit(
        "ready",
        import_s=round(t_import, 3),
        index_s=round(t_index - t_import, 3),
        embedder_s=round(t_embedder - t_index, 3),
        generator_s=round(t_model - t_embedder, 3),
        generator_load_s=round(float(getattr(gen, "load_seconds", 0.0)), 3),
        generator=getattr(gen, "name", None),
    )
    answer = pipe.ask(data["question"])
    _emit(
        "answered",
        mode=answer.mode,
        answer_s=round(time.perf_counter() - t0 - t_model, 3),
        peak_rss_mb=peak_rss_mb(),
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m chatbot.bench.child PAYLOAD (started by chatbot bench)")
    logging.basicConfig(level=logging.WARNING)
    child_main(sys.argv[1])
