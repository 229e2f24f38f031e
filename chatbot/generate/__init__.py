"""Text generators behind one small interface: ``stream(messages, max_new_tokens)``.

One backend per module; ``choose.choose_backend`` decides which one the settings select.

- ``onnx_genai``: onnxruntime-genai on an ONNX int4 build of the bundled SmolLM2-135M-Instruct
  (the default when installed); built once from the converted cache.
- ``transformers_backend``: any transformers causal LM, including the bundled model's float32
  conversion (the fallback).
- ``openai_backend``: any OpenAI-compatible server: how a deployment scales generation out of
  the app process.
- ``llamacpp_backend``: llama-cpp-python on the GGUF itself, when that extra is installed.
- ``model_cache``: the bundled GGUF and the folders converted from it, keyed by its hash.
"""

from __future__ import annotations

from chatbot.errors import GenerationError
from chatbot.generate.base import Generator, Message
from chatbot.generate.choose import Backend, choose_backend, create_generator
from chatbot.generate.llamacpp_backend import LlamaCppGenerator, llama_cpp_available
from chatbot.generate.model_cache import (
    bundled_gguf_path,
    cache_complete,
    converted_cache_dir,
    expected_cache_dir,
    onnx_cache_dir,
    resolve_model_dir,
)
from chatbot.generate.onnx_genai import OnnxGenaiGenerator, onnx_genai_available
from chatbot.generate.openai_backend import OpenAIGenerator
from chatbot.generate.transformers_backend import TransformersGenerator

__all__ = [
    "Backend",
    "GenerationError",
    "Generator",
    "LlamaCppGenerator",
    "Message",
    "OnnxGenaiGenerator",
    "OpenAIGenerator",
    "TransformersGenerator",
    "bundled_gguf_path",
    "cache_complete",
    "choose_backend",
    "converted_cache_dir",
    "create_generator",
    "expected_cache_dir",
    "llama_cpp_available",
    "onnx_cache_dir",
    "onnx_genai_available",
    "resolve_model_dir",
]
