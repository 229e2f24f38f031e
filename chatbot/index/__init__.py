"""The on-disk vector index: build incrementally, swap atomically, load only what is consistent.

Layout of ``index/``::

    CURRENT                 name of the active build (replaced atomically with os.replace)
    builds/<build_id>/      manifest.json, chunks.jsonl, documents.jsonl, vectors.npy, faiss.index
    builds/.tmp-<id>/       a build in progress; removed on failure, swept by the next build
    embcache/               vectors embedded by an unfinished build, so a killed one resumes
    .lock                   file lock held by the one process that is rebuilding

The modules: ``manifest`` (the typed, validated manifest), ``loaded`` (a verified build read
from disk), ``build`` (plan, chunk, embed, write a build folder), ``store`` (the directory:
CURRENT, load, lock, publish, garbage collection, the no-op check) and ``disk`` (every write).
"""

from chatbot.errors import (
    IndexBuildError,
    IndexCorrupt,
    IndexLocked,
    IndexMismatch,
    IndexMissing,
    IndexUnavailable,
)
from chatbot.index.build import (
    BuildSummary,
    Progress,
    choose_index_type,
    document_record,
    make_faiss_index,
)
from chatbot.index.loaded import LoadedIndex
from chatbot.index.manifest import ARTIFACTS, FORMAT_VERSION, Manifest
from chatbot.index.store import FileStatus, IndexStore

__all__ = [
    "ARTIFACTS",
    "FORMAT_VERSION",
    "BuildSummary",
    "FileStatus",
    "IndexBuildError",
    "IndexCorrupt",
    "IndexLocked",
    "IndexMismatch",
    "IndexMissing",
    "IndexStore",
    "IndexUnavailable",
    "LoadedIndex",
    "Manifest",
    "Progress",
    "choose_index_type",
    "document_record",
    "make_faiss_index",
]
