"""Any transformers causal LM on CPU (an HF id, a local folder, or the bundled model's
float32 conversion): the fallback when onnxruntime-genai is not installed, and the backend for
models that have no ONNX build."""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chatbot.config import BUNDLED_MODEL, Settings
from chatbot.errors import GenerationError
from chatbot.generate.base import (
    BUNDLED_NAME,
    SCORE_PREFIX_TOKENS,
    GenerationOptions,
    IncrementalText,
    Message,
    threaded_stream,
)
from chatbot.generate.model_cache import load_or_rebuild, resolve_model_dir
from chatbot.grounded import ClauseGrammar, grounded_tokens

log = logging.getLogger(__name__)


class TransformersGenerator:
    """Greedy/low-temperature decoding with a transformers causal LM on CPU."""

    def __init__(
        self,
        model_dir: Path | str,
        options: GenerationOptions | None = None,
        *,
        name: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        opts = options or GenerationOptions()
        if opts.threads:  # once, at load: never changed per answer (it is process-wide)
            torch.set_num_threads(opts.threads)
        self.name = name or Path(str(model_dir)).name
        self.temperature, self.repetition_penalty = opts.temperature, opts.repetition_penalty
        t0 = time.perf_counter()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
            self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        except Exception as exc:
            raise GenerationError(f"cannot load model {model_dir}: {exc}") from exc
        self.model.eval()
        self.weights = "float32"
        self.load_seconds = time.perf_counter() - t0
        self._cache_arg = (
            "cache"
            if "cache" in inspect.signature(self.model.forward).parameters
            else "past_key_values"
        )  # transformers 5 renamed it
        eos = self.model.generation_config.eos_token_id
        self._eos = {
            int(t)
            for t in ([*eos] if isinstance(eos, list | tuple) else [eos])
            + [self.tokenizer.eos_token_id]
            if t is not None
        }
        self._lock = threading.Lock()  # one generation at a time: 2 cores, no gain from more

    @classmethod
    def from_settings(cls, settings: Settings) -> TransformersGenerator:
        bundled = settings.model == BUNDLED_MODEL
        name = BUNDLED_NAME if bundled else settings.model

        options = GenerationOptions.from_settings(settings)

        def load(folder: Path | str) -> TransformersGenerator:
            return cls(folder, options, name=name)

        return load_or_rebuild(load, lambda: resolve_model_dir(settings), bundled=bundled)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def score(self, prefixes: list[str], continuation: str) -> list[float]:
        """Mean log-probability of ``continuation`` after each prefix, in one padded batch.

        A 135M model writes unreliably but ranks reliably: how well a sentence predicts the
        question (query likelihood) finds the sentence that answers it.
        """
        import torch

        if not prefixes:
            return []
        tok = self.tokenizer
        cont = tok.encode(continuation, add_special_tokens=False)
        if not cont:
            return [0.0] * len(prefixes)
        bos = [tok.bos_token_id if tok.bos_token_id is not None else 0]
        seqs = [
            (tok.encode(p, add_special_tokens=False)[-SCORE_PREFIX_TOKENS:] or bos) + cont
            for p in prefixes
        ]
        width = -(-max(len(s) for s in seqs) // 32) * 32  # few distinct shapes: kernels are reused
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
        with self._lock, torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        out = []
        for row, s in enumerate(seqs):
            start = len(s) - len(cont)
            targets = torch.tensor(s[start:])
            picked = logp[row, start - 1 : len(s) - 1].gather(1, targets[:, None])
            out.append(float(picked.mean()))
        return out

    def render(self, messages: list[Message]) -> str:
        return str(
            self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        prompt = self.render(messages)
        ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
        return threaded_stream(lambda stop: self._decode(ids, max_new_tokens, stop), self._lock)

    def _decode(self, ids: Any, max_new_tokens: int, stop: threading.Event) -> Iterator[str]:
        """Prefill, then one token per step, yielding the new text as soon as it is whole.

        A plain loop rather than ``model.generate``, so a stop request ends it before the next
        token and text is yielded as soon as it is whole. Greedy decoding with the repetition
        penalty over prompt and answer, as ``generate`` does; temperature > 0 samples with
        top-p 0.9.
        """
        import torch
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        seen = ids[0].clone()
        text = IncrementalText(lambda t: str(self.tokenizer.decode(t, skip_special_tokens=True)))
        x = ids
        with torch.inference_mode():
            for _ in range(max_new_tokens):
                if stop.is_set():
                    return
                logits = self._next_logits(x, cache)
                token = self._pick(self._penalise(logits, seen))
                if token in self._eos:
                    break
                seen = torch.cat([seen, torch.tensor([token])])
                x = torch.tensor([[token]])
                piece = text.add(token)
                if piece:
                    yield piece
        rest = text.flush()
        if rest:
            yield rest

    def grounded(
        self, messages: list[Message], grammar: ClauseGrammar, max_new_tokens: int
    ) -> Iterator[str]:
        """Decode under ``grammar`` (grounded.py), as the onnx-genai backend does: the model's
        own scores pick each token among those the grammar allows."""
        prompt = self.render(messages)
        ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids

        def produce(stop: threading.Event) -> Iterator[str]:
            import torch
            from transformers import DynamicCache

            cache = DynamicCache(config=self.model.config)

            def scores_after(token: int | None) -> Any:
                x = ids if token is None else torch.tensor([[token]])
                with torch.inference_mode():
                    return self._next_logits(x, cache).numpy()

            yield from grounded_tokens(
                scores_after,
                lambda t: str(self.tokenizer.decode([t])),
                grammar,
                self._eos,
                max_new_tokens=max_new_tokens,
                encode=lambda text: list(self.tokenizer.encode(text, add_special_tokens=False)),
            )

        return threaded_stream(produce, self._lock)

    def _next_logits(self, x: Any, cache: Any) -> Any:
        out = self.model(input_ids=x, **{self._cache_arg: cache}, use_cache=True, logits_to_keep=1)
        return out.logits[0, -1].float()

    def _penalise(self, logits: Any, seen: Any) -> Any:
        import torch

        penalty = self.repetition_penalty
        if penalty != 1.0:
            prev = logits[seen]
            logits[seen] = torch.where(prev < 0, prev * penalty, prev / penalty)
        return logits

    def _pick(self, logits: Any) -> int:
        import torch

        if self.temperature <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / self.temperature, dim=-1)
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < 0.9  # top-p 0.9
        sorted_probs = sorted_probs * keep
        return int(order[torch.multinomial(sorted_probs / sorted_probs.sum(), 1)])
