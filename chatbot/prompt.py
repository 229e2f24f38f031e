"""Grounded prompt construction under a token budget.

Templates live in ``chatbot/prompts/*.txt`` (package data) so wording can be tuned without
touching code; their hash is the prompt version that keys cached answers. Passages are counted
in the model's own tokens, not characters, so the prompt always leaves room for the answer.
Passage text is neutralised (chat-template tokens, our delimiters, fake "[n]" markers at line
starts) so a corpus file cannot impersonate the system prompt or another passage.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from string import Template

from chatbot.retrieve import Hit

_SPECIAL_TOKEN = re.compile(r"<\|[^|>]{0,40}\|>|</?s>|<\|?(?:system|assistant|user)\|?>", re.I)
_FAKE_MARKER = re.compile(r"^\s*\[(\d+)\]", re.MULTILINE)
_ROLE_LINE = re.compile(r"^\s*(system|assistant|user)\s*:", re.IGNORECASE | re.MULTILINE)


def _template(name: str) -> str:
    return resources.files("chatbot").joinpath(f"prompts/{name}").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Templates:
    system: str
    user: str
    passage: str
    compose: str = ""  # the grounded composer's instruction and examples (compose.py)

    @classmethod
    def load(cls) -> Templates:
        return cls(
            _template("system.txt").strip(),
            _template("user.txt"),
            _template("passage.txt"),
            _template("compose.txt"),
        )

    @property
    def version(self) -> str:
        data = "\x00".join([self.system, self.user, self.passage, self.compose]).encode()
        return hashlib.sha256(data).hexdigest()[:10]


@dataclass(frozen=True)
class Prompt:
    messages: list[dict[str, str]]
    passages: list[Hit]  # passages[i] is cited as [i + 1]
    prompt_tokens: int
    truncated: bool
    version: str


def neutralize(text: str) -> str:
    """Passage text that cannot close our delimiters or pose as a role or a passage number."""
    text = _SPECIAL_TOKEN.sub(" ", text)
    text = text.replace("<<<", "«").replace(">>>", "»")
    text = _FAKE_MARKER.sub(lambda m: f"({m.group(1)})", text)
    return _ROLE_LINE.sub(lambda m: f"{m.group(1)} -", text)


class PromptBuilder:
    def __init__(
        self,
        count_tokens: Callable[[str], int],
        context_tokens: int = 2048,
        max_new_tokens: int = 160,
        templates: Templates | None = None,
    ) -> None:
        if max_new_tokens >= context_tokens:
            raise ValueError("max_new_tokens must be smaller than the context size")
        self.count_tokens = count_tokens
        self.context_tokens = context_tokens
        self.max_new_tokens = max_new_tokens
        self.templates = templates or Templates.load()

    @property
    def version(self) -> str:
        return self.templates.version

    def _passage(self, n: int, hit: Hit, text: str | None = None) -> str:
        chunk = hit.chunk
        body = text if text is not None else chunk.body_without_heading() or chunk.text
        return (
            Template(self.templates.passage)
            .safe_substitute(
                n=n,
                title=neutralize(chunk.title),
                heading=neutralize(chunk.heading.rsplit(" > ", 1)[-1]),
                text=neutralize(body),
            )
            .strip()
        )

    def run(self, question: str, hits: Sequence[Hit], max_passages: int = 3) -> Prompt:
        question = neutralize(question)
        user = Template(self.templates.user)
        empty_user = user.safe_substitute(passages="", question=question)
        overhead = self.count_tokens(self.templates.system) + self.count_tokens(empty_user) + 16
        budget = self.context_tokens - self.max_new_tokens - overhead
        if budget <= 0:
            raise ValueError("question too long for the model's context")

        blocks: list[str] = []
        used: list[Hit] = []
        truncated = False
        for hit in hits[:max_passages]:
            block = self._passage(len(used) + 1, hit)
            cost = self.count_tokens(block) + 2
            if cost <= budget:
                blocks.append(block)
                used.append(hit)
                budget -= cost
                continue
            if not used and budget > 32:  # always keep the best passage, cut to fit
                body = hit.chunk.body_without_heading() or hit.chunk.text
                while body and self.count_tokens(self._passage(1, hit, body)) + 2 > budget:
                    body = body[: int(len(body) * 0.8)]
                if body:
                    blocks.append(self._passage(1, hit, body + " …"))
                    used.append(hit)
            truncated = True
            break

        content = user.safe_substitute(passages="\n\n".join(blocks), question=question)
        # Small models follow one user turn better than a system prompt: system.txt may be empty.
        messages = [{"role": "user", "content": content}]
        if self.templates.system:
            messages.insert(0, {"role": "system", "content": self.templates.system})
        tokens = self.count_tokens(self.templates.system) + self.count_tokens(content)
        return Prompt(messages, used, tokens, truncated, self.version)
