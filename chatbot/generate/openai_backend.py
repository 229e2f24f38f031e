"""Any OpenAI-compatible server (vLLM, llama.cpp server, Ollama): how a deployment scales
generation out of the app process."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx

from chatbot.errors import GenerationError
from chatbot.generate.base import Message


class OpenAIGenerator:
    """Streams from an OpenAI-compatible ``/v1/chat/completions`` endpoint (server-sent events)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
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
                        piece = (choice.get("delta") or {}).get("content") or ""
                    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                        continue  # malformed event: skip it
                    if piece and isinstance(piece, str):
                        yield piece
        except httpx.HTTPError as exc:
            raise GenerationError(f"cannot reach model server at {self.base_url}: {exc}") from exc
