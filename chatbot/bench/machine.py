"""What the benchmark ran on: CPU, cores, memory, library versions, load average."""

from __future__ import annotations

import contextlib
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from chatbot.config import Settings

PACKAGES = (
    "torch",
    "transformers",
    "faiss-cpu",
    "sentence-transformers",
    "numpy",
    "bm25s",
    "onnxruntime",
    "onnxruntime-genai",
    "llama-cpp-python",
)


def loadavg() -> float | None:
    """The 1-minute load average: how busy the shared machine was."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def ram_gb() -> float | None:
    try:
        import psutil
    except ImportError:
        return None
    return round(psutil.virtual_memory().total / 2**30, 1)


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each package; None when it is not installed."""
    found: dict[str, str | None] = {}
    for pkg in packages:
        try:
            found[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            found[pkg] = None
    return found


def torch_threads() -> int | None:
    try:
        import torch
    except ImportError:
        return None
    return int(torch.get_num_threads())


def machine_info(settings: Settings) -> dict[str, Any]:
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "ram_gb": ram_gb(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions(),
        "threads": settings.effective_threads(),
        "torch_threads": torch_threads(),
    }
