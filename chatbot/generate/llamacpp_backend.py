"""llama-cpp-python on a GGUF itself (the optional ``llama-cpp`` extra): no conversion."""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chatbot.errors import GenerationError
from chatbot.generate.base import GenerationOptions, Message


class LlamaCppGenerator:
    """llama-cpp-python on the GGUF itself: no conversion, fastest decode on CPU."""

    def __init__(
        self,
        gguf: Path,
        options: GenerationOptions | None = None,
        *,
        n_ctx: int = 2048,
    ) -> None:
        opts = options or GenerationOptions()
        from llama_cpp import Llama

        t0 = time.perf_counter()
        # typed Any: llama-cpp-python's stubs exist only when it is installed, and this file
        # must type-check either way
        self.llm: Any = Llama(
            model_path=str(gguf),
            n_ctx=n_ctx,
            n_threads=opts.threads or os.cpu_count(),
            verbose=False,
        )
        self.load_seconds = time.perf_counter() - t0
        self.name = f"llama.cpp:{gguf.stem}"
        self.temperature, self.repetition_penalty = opts.temperature, opts.repetition_penalty
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode(), add_bos=False))

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        # llama.cpp raises ValueError/RuntimeError (context overflow, decode failure): turn them
        # into the GenerationError the pipeline answers extractively from, as other backends do
        with self._lock:
            try:
                for part in self.llm.create_chat_completion(
                    messages=messages,
                    max_tokens=max_new_tokens,
                    temperature=self.temperature,
                    repeat_penalty=self.repetition_penalty,
                    stream=True,
                ):
                    piece = part["choices"][0]["delta"].get("content")
                    if piece:
                        yield piece
            except Exception as exc:
                raise GenerationError(f"llama.cpp failed: {exc}") from exc


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None
