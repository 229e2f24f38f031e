"""Every write of the index goes through this module.

A build's files are written and fsync'd inside a temporary folder that nobody reads until it is
renamed; the names below are looked up at call time, so fault-injection tests can replace
``write_bytes`` or ``sync_dir`` for the index alone (a full disk, a kill between two steps).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from chatbot.atomic import fsync_dir, write_synced

write_bytes = write_synced
sync_dir = fsync_dir


_JSON = json.JSONEncoder(ensure_ascii=False)  # json.dumps(r, ensure_ascii=False), made once


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    write_bytes(path, "".join(_JSON.encode(r) + "\n" for r in records).encode())


def save_vectors(path: Path, vectors: np.ndarray) -> None:
    with path.open("wb") as fh:
        np.save(fh, vectors, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())


def save_faiss(index: Any, path: Path) -> None:
    faiss.write_index(index, str(path))
