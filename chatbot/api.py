"""OpenAI-compatible chat API over the pipeline: ``GET /v1/models``, ``POST /v1/chat/completions``.

Served by the UI's own server (``ui.launch`` passes ``api_routes`` to Gradio's FastAPI app), so
any OpenAI client (the ``openai`` package, Open WebUI, this project's ``OpenAIGenerator``) can
ask the glossary. The answer is the pipeline's: the text keeps its ``[n]`` markers, the message
carries the cited passages as ``citations``, and a refusal is an ordinary answer
(``finish_reason: "stop"``). Streaming sends only verified text: each ``Partial`` of the pipeline
is a verified prefix, and only its new suffix goes out.

Sampling knobs (``temperature``, ``max_tokens``...) are accepted and ignored: the server's own
limits apply. Errors always have OpenAI's shape, ``{"error": {message, type, param, code}}``,
never a traceback. ``CHATBOT_API_KEY`` turns on bearer auth for ``/v1/*``; Gradio's login
(``CHATBOT_AUTH``) does not apply here. At most ``concurrency`` answers run at once with
``queue_size`` more waiting (the UI's queue settings, counted separately); beyond that, 429.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute

from chatbot.answer import Answer, InvalidQuestion, Partial, clean_question
from chatbot.config import Settings
from chatbot.errors import ChatbotError
from chatbot.pipeline import Pipeline
from chatbot.rewrite import asked_with_answers

log = logging.getLogger(__name__)
PREFIX = "/v1"
MAX_MESSAGES = 1000  # per request; only user turns are read, the last few of them


# ----------------------------------------------------------------------------------- errors
class APIError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = (
            status,
            message,
            type_,
            param,
            code,
        )

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def validation_error(exc: RequestValidationError) -> APIError:
    """FastAPI's 422 as OpenAI's error: unparseable JSON is a 400, a schema mismatch a 422."""
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" or tuple(e.get("loc", ())) == ("body",) for e in errors):
        return APIError(400, "The request body must be a JSON object.", code="invalid_json")
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    message = str(first.get("msg", "Invalid request."))
    if param:
        message = f"{param}: {message}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return APIError(422, message, param=param, code="invalid_request")


def _check_key(request: Request, api_key: str) -> None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise APIError(
            401,
            "Missing API key: send it as 'Authorization: Bearer <key>'.",
            code="invalid_api_key",
        )
    if not secrets.compare_digest(token.strip().encode(), api_key.encode()):
        raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")


def _route_class(api_key: str) -> type[APIRoute]:
    """Routes that check the key first and answer every failure as an OpenAI error.

    A route class (not app-wide exception handlers) so that the Gradio routes served by the
    same app keep their own error format.
    """

    class OpenAIRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                try:
                    if api_key:
                        _check_key(request, api_key)
                    return await handler(request)
                except APIError as exc:
                    return exc.response()
                except RequestValidationError as exc:
                    return validation_error(exc).response()
                except HTTPException as exc:
                    return APIError(exc.status_code, str(exc.detail)).response()
                except Exception:
                    log.exception("API request failed")
                    return _server_error().response()

            return guarded

    return OpenAIRoute


def _server_error() -> APIError:
    return APIError(500, "The server failed to answer; see its log.", "server_error")


def _answer_error(exc: Exception) -> APIError:
    """What a failure while answering becomes: the user's mistake, or the server's state."""
    if isinstance(exc, InvalidQuestion):
        return APIError(400, str(exc), param="messages", code="invalid_question")
    if isinstance(exc, ChatbotError):  # index missing, corpus unusable: said as is
        hint = f" ({exc.hint})" if exc.hint else ""
        return APIError(503, f"{exc}{hint}", "server_error", code="unavailable")
    log.error("answer failed", exc_info=exc)
    return _server_error()


# ---------------------------------------------------------------------------------- requests
class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str = "text"
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        """The message's text: a plain string, or its text parts joined (images are skipped)."""
        if isinstance(self.content, str):
            return self.content
        parts = self.content or []
        return "\n".join(p.text for p in parts if p.text is not None and "text" in p.type)


class ChatCompletionRequest(BaseModel):
    """OpenAI's request; the sampling fields are accepted and ignored (server limits apply)."""

    model_config = ConfigDict(extra="allow")

    model: str = ""
    messages: list[ChatMessage] = Field(max_length=MAX_MESSAGES)
    stream: bool = False
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    user: str | None = None


def conversation(messages: Sequence[ChatMessage], max_chars: int) -> tuple[str, list[str]]:
    """(question, history): the last user message, and the user messages before it, each with
    the entry its answer named (``asked_with_answers``)."""
    last = max((n for n, m in enumerate(messages) if m.role == "user"), default=-1)
    if last < 0:
        raise APIError(
            400, "The messages contain no user message.", param="messages", code="no_question"
        )
    question = messages[last].text()
    try:
        clean_question(question, max_chars)  # cheap: a 400 before any work, even when streaming
    except InvalidQuestion as exc:
        raise _answer_error(exc) from None
    earlier = asked_with_answers((m.role, m.text()) for m in messages[:last])
    history = [h[:max_chars] for h in earlier if h.strip()][-50:]
    return question, history


# ---------------------------------------------------------------------------------- answers
def model_id(settings: Settings) -> str:
    """The one model served: named after the corpus (its title, else its folder)."""
    name = settings.title or settings.corpus_dir.resolve().name
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64] or "glossary"


class _Slots:
    """At most ``size`` answers at once and ``queue`` waiting, on the running event loop."""

    def __init__(self, size: int, queue: int) -> None:
        self.size, self.queue, self.waiting = size, queue, 0
        self._sem: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._sem is None or self._loop is not loop:  # a new loop (tests): new semaphore
            self._sem, self._loop = asyncio.Semaphore(self.size), loop
        return self._sem

    def check(self) -> None:
        if self._semaphore().locked() and self.waiting >= self.queue:
            raise APIError(
                429, "The server is busy; try again shortly.", "rate_limit_error", code="busy"
            )

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Wait for a slot (callers ``check()`` first, while an error can still be a 429)."""
        sem = self._semaphore()
        self.waiting += 1
        try:
            await sem.acquire()
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            sem.release()


class ChatAPI:
    """The routes' state: one pipeline, its settings, the answer slots."""

    def __init__(self, pipe: Pipeline, settings: Settings | None = None) -> None:
        self.pipe = pipe
        self.settings = settings or pipe.settings
        self.model = model_id(self.settings)
        self.created = int(time.time())
        self.slots = _Slots(self.settings.concurrency, self.settings.queue_size)
        self._urls: tuple[str, dict[str, str]] = ("", {})

    def router(self) -> APIRouter:
        router = APIRouter(prefix=PREFIX, route_class=_route_class(self.settings.api_key))
        router.add_api_route("/models", self.list_models, methods=["GET"])
        router.add_api_route("/models/{model}", self.get_model, methods=["GET"])
        router.add_api_route("/chat/completions", self.chat_completions, methods=["POST"])
        return router

    # ------------------------------------------------------------------------------ models
    def _model_card(self) -> dict[str, Any]:
        return {
            "id": self.model,
            "object": "model",
            "created": self.created,
            "owned_by": "glossary-chat",
        }

    async def list_models(self) -> dict[str, Any]:
        return {"object": "list", "data": [self._model_card()]}

    async def get_model(self, model: str) -> dict[str, Any]:
        if model != self.model:
            raise APIError(
                404, f"The model '{model}' does not exist.", param="model", code="model_not_found"
            )
        return self._model_card()

    # ------------------------------------------------------------------------ completions
    async def chat_completions(self, body: ChatCompletionRequest) -> Response:
        question, history = conversation(body.messages, self.settings.max_question_chars)
        self.slots.check()
        if body.stream:
            return StreamingResponse(
                self._sse(question, history),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        async with self.slots.hold():
            try:
                answer = await run_in_threadpool(self.pipe.ask, question, history)
                citations = await run_in_threadpool(self.citations, answer)
            except Exception as exc:
                raise _answer_error(exc) from None
        message = {"role": "assistant", "content": answer.answer, "citations": citations}
        return JSONResponse(
            {
                **self._envelope("chat.completion"),
                "choices": [
                    {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
                ],
                "glossary": _extras(answer),
            }
        )

    async def _sse(self, question: str, history: list[str]) -> AsyncIterator[str]:
        """``chat.completion.chunk`` events: role, verified text deltas, citations, [DONE]."""
        head = self._envelope("chat.completion.chunk")

        def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            data = {**head, "choices": [choice], **extra}
            return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

        async with self.slots.hold():
            yield event({"role": "assistant", "content": ""})
            events = self.pipe.stream(question, history)
            sent, answer = "", None
            try:
                async for item in iterate_in_threadpool(events):
                    text = item.text if isinstance(item, Partial) else item.answer
                    answer = item if isinstance(item, Answer) else answer
                    if text.startswith(sent) and len(text) > len(sent):
                        yield event({"content": text[len(sent) :]})
                        sent = text
                    elif not text.startswith(sent):  # not expected: shown text is never withdrawn
                        log.warning("streamed text is not a prefix of the answer; kept as sent")
                if answer is None:
                    raise RuntimeError("the pipeline gave no answer")
                citations = await run_in_threadpool(self.citations, answer)
                yield event({"citations": citations}, "stop", glossary=_extras(answer))
            except Exception as exc:
                yield f"data: {json.dumps(_answer_error(exc).body())}\n\n"
            finally:
                close = getattr(events, "close", None)  # a client gone mid-answer: stop decoding
                if close is not None:
                    await run_in_threadpool(close)
        yield "data: [DONE]\n\n"

    def _envelope(self, kind: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": kind,
            "created": int(time.time()),
            "model": self.model,
        }

    def citations(self, answer: Answer) -> list[dict[str, Any]]:
        """The cited passages: number, entry, title, heading, text, and the entry's url if any."""
        urls = self._doc_urls()
        return [
            {
                "n": c.n,
                "doc": c.doc,
                "title": c.title,
                "heading": c.heading,
                "text": c.text,
                "url": urls.get(c.doc) or None,
            }
            for c in answer.citations
        ]

    def _doc_urls(self) -> dict[str, str]:
        index = self.pipe.index  # already loaded: the answer was computed against it
        if self._urls[0] != index.build_id:
            urls = {str(d["doc_id"]): str(d.get("url") or "") for d in index.documents}
            self._urls = (index.build_id, urls)
        return self._urls[1]


def _extras(answer: Answer) -> dict[str, Any]:
    """What the UI shows besides the text: how it was answered, a note, follow-up questions."""
    return {
        "mode": answer.mode,
        "refused": answer.refused,
        "note": answer.note,
        "suggestions": list(answer.suggestions),
    }


def create_router(pipe: Pipeline, settings: Settings | None = None) -> APIRouter:
    """The /v1 routes over ``pipe`` (settings default to the pipeline's)."""
    return ChatAPI(pipe, settings).router()


def api_routes(pipe: Pipeline, settings: Settings | None = None) -> list[BaseRoute]:
    """The routes to serve next to the UI: none when ``CHATBOT_API=0``."""
    settings = settings or pipe.settings
    return list(create_router(pipe, settings).routes) if settings.api else []
