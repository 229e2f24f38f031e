"""onnxruntime-genai: the bundled model as an ONNX graph, the default when installed.

The first load builds it once from the float32 transformers folder of the model cache with
onnxruntime-genai's own model builder (``-p int4 -e cpu``: block-32 int4 weights, int8
activations in the matmuls, fused attention with a preallocated KV cache); later loads read
the ~90 MB build in well under a second and need neither torch nor transformers. The
decoding loop, repetition penalty and sampling all run inside onnxruntime-genai.

The int4 weights are a second rounding of the GGUF's Q4_1 weights (the builder's symmetric
round-to-nearest cannot reproduce Q4_1's per-block minimum): measured against the GGUF's own
float32 outputs on 3 prompts (64 answer tokens each), the most likely next token agrees on 68%
of answer positions. ``onnx_precision=int8`` agrees on 97%, at 3x the size and a slower decode.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from chatbot.config import BUNDLED_MODEL, RUNTIME_ENV, Settings
from chatbot.errors import GenerationError
from chatbot.generate.base import (
    BUNDLED_NAME,
    SCORE_PREFIX_TOKENS,
    GenerationOptions,
    Message,
    mean_logprob,
    threaded_stream,
)
from chatbot.generate.model_cache import (
    bundled_gguf_path,
    cache_complete,
    converted_cache_dir,
    load_or_rebuild,
    onnx_cache_dir,
    publish_folder,
    resolve_model_dir,
)
from chatbot.grounded import ClauseGrammar, grounded_tokens

log = logging.getLogger(__name__)
GENAI_CONFIG = "genai_config.json"
BUILD_TIMEOUT_S = 900
PREFIX_ROOM = 2048  # tokens a kept prefix generator holds: prefix, question and answer


@cache
def onnx_genai_available() -> bool:
    """Whether onnxruntime-genai imports here (checked once, when a backend is chosen)."""
    try:
        import onnxruntime_genai  # noqa: F401
    except Exception:  # not installed, or its native library does not load
        return False
    return True


def build_onnx(hf_dir: Path, folder: Path, precision: str = "int4") -> None:
    """Run onnxruntime-genai's model builder on a transformers folder, writing into ``folder``.

    A separate process: the builder imports transformers and onnx, which this process may
    never need; its scratch files go to a temp folder beside ``folder``, never to the cwd.
    """
    scratch = folder.parent / f".tmp-builder-{uuid.uuid4().hex[:6]}"
    scratch.mkdir()
    cmd = [
        sys.executable,
        "-m",
        "onnxruntime_genai.models.builder",
        *("-i", str(hf_dir), "-o", str(folder), "-p", precision, "-e", "cpu"),
        *("-c", str(scratch / "cache")),
    ]
    env = {**os.environ, **RUNTIME_ENV}  # offline: the builder must not reach a model hub
    try:
        done = subprocess.run(
            cmd, cwd=scratch, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as exc:
        raise GenerationError(f"the ONNX model build took over {BUILD_TIMEOUT_S} s") from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if done.returncode != 0 or not (folder / GENAI_CONFIG).is_file():
        tail = (done.stderr or done.stdout or "")[-800:]
        raise GenerationError(f"the ONNX model build failed (exit {done.returncode}): {tail}")


def resolve_onnx_dir(settings: Settings) -> Path:
    """The onnxruntime-genai folder to load: the bundled model's build (made on first use) or
    a folder given as ``CHATBOT_MODEL`` that already holds a ``genai_config.json``."""
    if settings.model != BUNDLED_MODEL:
        folder = Path(settings.model).expanduser()
        if (folder / GENAI_CONFIG).is_file():
            return folder
        raise GenerationError(
            f"backend onnx-genai needs the bundled model or a folder with {GENAI_CONFIG} "
            f"(from `python -m onnxruntime_genai.models.builder`), not {settings.model!r}"
        )
    gguf = bundled_gguf_path()
    precision = settings.onnx_precision
    out = onnx_cache_dir(converted_cache_dir(gguf, settings.model_cache_dir), precision)
    if cache_complete(out):
        return out
    if out.exists():
        log.warning("ONNX model cache %s is incomplete or corrupted: building it again", out)
    hf_dir = Path(resolve_model_dir(settings))  # the float32 folder, converted first if needed
    print(
        f"glossary-chat: building the ONNX {precision} model once into {out} (~15 s)",
        file=sys.stderr,
        flush=True,
    )
    t0 = time.perf_counter()
    publish_folder(out, lambda tmp: build_onnx(hf_dir, tmp, precision=precision), hf_dir.name)
    log.info("ONNX model built in %.1f s", time.perf_counter() - t0)
    return out


class OnnxGenaiGenerator:
    """The ``Generator`` protocol on an onnxruntime-genai model folder."""

    def __init__(
        self,
        folder: Path,
        options: GenerationOptions | None = None,
        *,
        name: str | None = None,
        weights: str = "onnx",
    ) -> None:
        opts = options or GenerationOptions()
        threads = opts.threads
        t0 = time.perf_counter()
        try:
            import onnxruntime_genai as og

            config = og.Config(str(folder))
            if threads:  # once, for the session: every later call runs on this pool
                pool = {"intra_op_num_threads": threads, "inter_op_num_threads": 1}
                config.overlay(json.dumps({"model": {"decoder": {"session_options": pool}}}))
            self.model: Any = og.Model(config)
            self.tokenizer: Any = og.Tokenizer(self.model)
        except Exception as exc:  # missing/damaged files, a foreign folder
            raise GenerationError(f"cannot load ONNX model {folder}: {exc}") from exc
        self._og: Any = og
        self.load_seconds = time.perf_counter() - t0
        self.name = name or folder.name
        self.weights = weights
        self.temperature, self.repetition_penalty = opts.temperature, opts.repetition_penalty
        self._eos = {int(t) for t in self.tokenizer.eos_token_ids}
        self._bos = int(self.tokenizer.bos_token_id)
        self._lock = threading.Lock()  # one generation at a time: 2 cores, no gain from more
        self._texts: dict[int, str] = {}  # token -> its text, for the grounded decoder
        self._prefix: tuple[list[int], Any] | None = None  # a prefilled prompt prefix, kept

    @classmethod
    def from_settings(cls, settings: Settings) -> OnnxGenaiGenerator:
        bundled = settings.model == BUNDLED_MODEL
        name = BUNDLED_NAME if bundled else settings.model

        weights = f"onnx-{settings.onnx_precision}" if bundled else "onnx"
        options = GenerationOptions.from_settings(settings)

        def load(folder: Path | str) -> OnnxGenaiGenerator:
            return cls(Path(folder), options, name=name, weights=weights)

        return load_or_rebuild(load, lambda: resolve_onnx_dir(settings), bundled=bundled)

    def _encode(self, text: str) -> list[int]:
        return [int(t) for t in self.tokenizer.encode(text)]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text)) if text else 0

    def render(self, messages: list[Message], generation_prompt: bool = True) -> str:
        return str(
            self.tokenizer.apply_chat_template(
                json.dumps(messages), add_generation_prompt=generation_prompt
            )
        )

    def _search_options(self, max_length: int) -> dict[str, Any]:
        sample = self.temperature > 0
        options: dict[str, Any] = {
            "max_length": max_length,
            "do_sample": sample,
            "repetition_penalty": self.repetition_penalty,
        }
        if sample:
            options |= {"temperature": self.temperature, "top_p": 0.9}
        return options

    def _start(self, ids: list[int], extra: int) -> Any:
        """A fresh og.Generator with ``ids`` appended (prefilled), room for ``extra`` more."""
        og = self._og
        params = og.GeneratorParams(self.model)
        params.set_search_options(**self._search_options(len(ids) + extra))
        generator = og.Generator(self.model, params)
        generator.append_tokens(np.asarray(ids, dtype=np.int32))
        return generator

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        ids = self._encode(self.render(messages))
        return threaded_stream(lambda stop: self._decode(ids, max_new_tokens, stop), self._lock)

    def _decode(self, ids: list[int], max_new_tokens: int, stop: threading.Event) -> Iterator[str]:
        """Prefill, then one token per step; the tokenizer stream holds back partial characters."""
        generator = self._start(ids, max_new_tokens)
        text = self.tokenizer.create_stream()
        for _ in range(max_new_tokens):
            if stop.is_set() or generator.is_done():
                return
            generator.generate_next_token()
            token = int(generator.get_next_tokens()[0])
            if token in self._eos:
                return
            piece = text.decode(token)
            if piece:
                yield piece

    def grounded(
        self, messages: list[Message], grammar: ClauseGrammar, max_new_tokens: int
    ) -> Iterator[str]:
        """Decode under ``grammar`` (grounded.py): the model's own scores pick each token
        among those the grammar allows; logits are read, never modified.

        The conversation before the last user turn (instruction and examples, the same for
        every question) is prefilled once and kept: each call rewinds to it and prefills only
        the question's evidence, a fifth of the prompt.
        """
        ids = self._encode(self.render(messages))
        prefix = self._encode(self.render(messages[:-1], generation_prompt=False))

        def produce(stop: threading.Event) -> Iterator[str]:
            generator = self._with_prefix(prefix, ids, max_new_tokens)

            def scores_after(token: int | None) -> np.ndarray:
                if token is not None:
                    generator.append_tokens(np.asarray([token], dtype=np.int32))
                return np.asarray(generator.get_logits()).reshape(-1)

            yield from grounded_tokens(
                scores_after,
                self._token_text,
                grammar,
                self._eos,
                max_new_tokens=max_new_tokens,
                encode=self._encode,
            )

        return threaded_stream(produce, self._lock)

    def _with_prefix(self, prefix: list[int], ids: list[int], max_new_tokens: int) -> Any:
        """A generator holding ``ids`` prefilled, reusing the kept ``prefix`` when it can."""
        if not prefix or ids[: len(prefix)] != prefix or len(ids) + max_new_tokens > PREFIX_ROOM:
            return self._start(ids, max_new_tokens)
        if self._prefix is None or self._prefix[0] != prefix:
            self._prefix = (prefix, self._start(prefix, PREFIX_ROOM - len(prefix)))
        generator = self._prefix[1]
        generator.rewind_to(len(prefix))
        generator.append_tokens(np.asarray(ids[len(prefix) :], dtype=np.int32))
        return generator

    def _token_text(self, token: int) -> str:
        text = self._texts.get(token)
        if text is None:
            text = self._texts[token] = str(self.tokenizer.decode(np.asarray([token], np.int32)))
        return text

    def score(self, prefixes: list[str], continuation: str) -> list[float]:
        """Mean log-probability of ``continuation`` after each prefix (query likelihood).

        One forward pass per prefix: the exported graph keeps the logits of every position
        (its LM head is not pruned), read from the raw ``logits`` output after the prefill.
        """
        cont = self._encode(continuation)
        if not cont:
            return [0.0] * len(prefixes)
        out = []
        with self._lock:
            for prefix in prefixes:
                ids = (self._encode(prefix)[-SCORE_PREFIX_TOKENS:] or [self._bos]) + cont
                logits = self._start(ids, 1).get_output("logits")[0]
                start = len(ids) - len(cont)
                out.append(mean_logprob(logits[start - 1 : len(ids) - 1], cont))
        return out
