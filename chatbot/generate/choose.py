"""Which backend the settings select, and the generator built for it.

``choose_backend`` is the one place that decides: ``create_generator`` builds what it returns
and ``chatbot doctor`` checks what it returns, so the two never disagree.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from chatbot.config import BUNDLED_MODEL, Settings
from chatbot.errors import GenerationError
from chatbot.generate.base import GenerationOptions, Generator
from chatbot.generate.llamacpp_backend import LlamaCppGenerator, llama_cpp_available
from chatbot.generate.model_cache import bundled_gguf_path
from chatbot.generate.onnx_genai import OnnxGenaiGenerator, onnx_genai_available
from chatbot.generate.openai_backend import OpenAIGenerator
from chatbot.generate.transformers_backend import TransformersGenerator

log = logging.getLogger(__name__)
Backend = Literal["extractive", "openai", "onnx-genai", "llama-cpp", "transformers"]


def choose_backend(settings: Settings) -> Backend:
    """The backend that answers: an explicit ``CHATBOT_BACKEND`` as given; ``auto`` picks the
    OpenAI-compatible server when a URL is set, else for the bundled model onnxruntime-genai
    when it imports (then llama-cpp-python when installed), else transformers."""
    backend = settings.backend
    if backend == "openai" or (backend == "auto" and settings.openai_base_url):
        return "openai"
    if backend != "auto":
        return backend
    if settings.model == BUNDLED_MODEL:
        if onnx_genai_available():
            return "onnx-genai"
        if llama_cpp_available():
            return "llama-cpp"
    return "transformers"


def create_generator(settings: Settings) -> Generator | None:
    """The generator the settings ask for; None means answers are extractive only."""
    backend = choose_backend(settings)
    if backend == "extractive":
        return None
    if backend == "openai":
        return OpenAIGenerator(
            settings.openai_base_url,
            settings.openai_model,
            api_key=settings.openai_api_key,
            temperature=settings.temperature,
            timeout_s=settings.openai_timeout_s,
        )
    if backend == "llama-cpp":
        gguf = bundled_gguf_path() if settings.model == BUNDLED_MODEL else Path(settings.model)
        options = GenerationOptions.from_settings(settings)
        return LlamaCppGenerator(gguf, options, n_ctx=settings.context_tokens)
    if backend == "onnx-genai":
        try:
            return OnnxGenaiGenerator.from_settings(settings)
        except GenerationError as exc:
            if settings.backend != "auto":
                raise
            log.warning("onnxruntime-genai unusable (%s): using transformers", exc)
    return TransformersGenerator.from_settings(settings)
