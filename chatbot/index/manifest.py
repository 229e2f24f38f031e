"""The manifest of a build: what it was built from and with, as a typed, validated record.

``manifest.json`` is read on every load and on every no-op check, so a damaged or foreign one
must be refused with a clear reason (never a ``KeyError`` deep in the build): ``Manifest.parse``
checks every field against the dataclass annotations and raises ``IndexCorrupt`` naming the
fields that are missing or of the wrong type, or ``IndexMismatch`` for another format version.

A ``Manifest`` also reads as the JSON mapping it was loaded from (``m["files"]``,
``m.get("index_type")``), so callers that only display fields need not know the model.
"""

from __future__ import annotations

import functools
import json
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields, is_dataclass
from functools import cached_property
from importlib import metadata
from typing import Any, Union, get_args, get_origin, get_type_hints

from chatbot.errors import IndexCorrupt, IndexMismatch

FORMAT_VERSION = 2
ARTIFACTS = ("chunks.jsonl", "documents.jsonl", "vectors.npy", "faiss.index")
_VERSIONED = ("glossary-chat", "faiss-cpu", "sentence-transformers", "torch", "bm25s", "numpy")


@dataclass(frozen=True)
class FileRecord:
    """A corpus file as indexed: content hash, (size, mtime_ns) per file of its group, counts."""

    sha256: str
    stat: list[list[int]]
    title: str
    entries: int
    chunks: int


@dataclass(frozen=True)
class SkippedRecord:
    """A corpus file that could not be used, with why; hashed so a fix is noticed."""

    file: str
    reason: str
    sha256: str
    stat: list[list[int]]


@dataclass(frozen=True)
class Manifest(Mapping[str, Any]):
    """Everything a loader needs to trust a build, and a rebuild needs to reuse it."""

    format: int
    build_id: str
    created_at: str
    fingerprint: str  # identifies the content searched: what preset-answer caches are keyed by
    embedding: dict[str, Any]  # name, fingerprint, dim, normalized, metric
    chunking: dict[str, Any]
    index_type: str
    chunk_count: int
    document_count: int
    files: dict[str, FileRecord]
    skipped: list[SkippedRecord]
    artifacts: dict[str, str]  # file name -> sha256
    versions: dict[str, str]
    build: dict[str, Any]  # what this build changed: added, changed, removed, embedded, reused

    # ------------------------------------------------------------------------ load / validate
    @classmethod
    def parse(cls, text: str | bytes) -> Manifest:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise IndexCorrupt(f"index manifest is corrupted ({exc})") from exc
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: object) -> Manifest:
        if not isinstance(data, dict) or not _matches(data.get("format"), int):
            raise IndexCorrupt("index manifest has an unknown format")
        if data["format"] != FORMAT_VERSION:
            raise IndexMismatch(
                f"the index was built by another version of glossary-chat (format "
                f"{data['format']}, now {FORMAT_VERSION})"
            )
        bad = [name for name, kind in _hints(cls).items() if not _matches(data.get(name), kind)]
        if bad:  # valid JSON but not a whole manifest: say so rather than fail with a KeyError
            raise IndexCorrupt(
                f"index manifest is corrupted (missing or invalid: {', '.join(bad)})"
            )
        values = {name: data[name] for name in _hints(cls)}
        values["files"] = {name: FileRecord(**f) for name, f in data["files"].items()}
        values["skipped"] = [SkippedRecord(**s) for s in data["skipped"]]
        return cls(**values)

    # ------------------------------------------------------------------------------- dump
    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["files"] = {name: dict(vars(f)) for name, f in self.files.items()}
        out["skipped"] = [dict(vars(s)) for s in self.skipped]
        return out

    def dumps(self) -> bytes:
        return json.dumps(self.to_dict(), indent=1).encode()

    # ------------------------------------------------------------------------ reading aids
    @property
    def embedding_fingerprint(self) -> str | None:
        return self.embedding.get("fingerprint")

    def known_stats(self) -> dict[str, list[list[int]]]:
        """(size, mtime) per corpus file, indexed or skipped: the no-op check compares these."""
        out = {name: f.stat for name, f in self.files.items()}
        return out | {s.file: s.stat for s in self.skipped}

    # ------------------------------------------------------------- the JSON mapping view
    @cached_property
    def _json(self) -> dict[str, Any]:
        return self.to_dict()

    def __getitem__(self, key: str) -> Any:
        return self._json[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._json)

    def __len__(self) -> int:
        return len(self._json)


def versions() -> dict[str, str]:
    """Versions of the packages a build depends on, for the manifest (diagnostics only)."""
    out = {}
    for pkg in _VERSIONED:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _matches(value: object, kind: Any) -> bool:
    """Whether a JSON value fits an annotation."""
    return _checker(kind)(value)


@functools.cache
def _checker(kind: Any) -> Callable[[object], bool]:
    """A check for the few annotation shapes a manifest uses, built once per annotation (a
    manifest can list 10,000 files: the no-op rebuild reads it every time)."""
    origin, args = get_origin(kind), get_args(kind)
    if kind is Any:
        return lambda v: True
    if origin in (Union, types.UnionType):
        alternatives = [_checker(a) for a in args]
        return lambda v: any(check(v) for check in alternatives)
    if origin is list:
        item = _checker(args[0])
        return lambda v: isinstance(v, list) and all(item(x) for x in v)
    if origin is dict:
        key, val = _checker(args[0]), _checker(args[1])
        return lambda v: isinstance(v, dict) and all(key(k) and val(x) for k, x in v.items())
    if is_dataclass(kind):
        hints = _hints(kind)  # type: ignore[arg-type]
        names, checks = set(hints), [(k, _checker(t)) for k, t in hints.items()]
        return lambda v: (
            isinstance(v, dict) and v.keys() == names and all(c(v[k]) for k, c in checks)
        )
    if kind is int:
        return lambda v: isinstance(v, int) and not isinstance(v, bool)
    return lambda v: isinstance(v, kind)
