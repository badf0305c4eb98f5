"""A small server that speaks the OpenAI chat completions wire protocol (no internet).

The tests use aimock (tests/aimock/mock.py); this double is left for `bench.ttft`, which needs
the moment the first streamed chunk left the server (`first_chunk_at` in `/_requests`).

    python -m tests.fake_openai --port 8123 [--api-key KEY]

Answers are scripted per stage: the provider's system prompts start with `[stage: <name>]`, and
`POST /_script {"<stage>": [<response>, ...]}` queues responses for that stage (defaults when the
queue is empty). A response is a dict with any of:
  content (str, or an object sent as JSON), tool_calls ([{name, arguments}]),
  chunks (strings streamed one per SSE chunk when the request streams), usage
  ({prompt_tokens, completion_tokens}), status + message (an error), raw (a malformed body),
  delay (seconds to wait first).
`GET /_requests` returns what was received (for assertions), `POST /_reset` clears everything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

DEFAULTS: dict[str, dict[str, Any]] = {
    "intent": {"content": {"intent": "question", "answer": None}},
    "context": {"content": {"sufficiency": "SUFFICIENT", "question": None}},
    "plan": {"content": {"steps": ["Write the answer"]}},
    "step": {"content": "The answer.", "chunks": ["The ", "answer", "."]},
    "reflect": {"content": {"score": 0.9, "critique": "Good."}},
    "complete": {"content": "Completed."},
}
_STAGE = re.compile(r"\[stage: (\w+)\]")


def create_app(api_key: str | None) -> FastAPI:
    app = FastAPI()
    queues: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
    received: list[dict[str, Any]] = []

    @app.post("/_script")
    async def script(body: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
        for stage, responses in body.items():
            queues[stage].extend(responses)
        return {stage: len(q) for stage, q in queues.items()}

    @app.post("/_reset")
    async def reset() -> dict[str, bool]:
        queues.clear()
        received.clear()
        return {"ok": True}

    @app.get("/_requests")
    async def requests() -> list[dict[str, Any]]:
        return received

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> Any:
        body = await request.json()
        system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
        match = _STAGE.search(system or "")
        stage = match.group(1) if match else "complete"
        received.append(
            {
                "stage": stage,
                "body": body,
                "authorization": request.headers.get("authorization"),
                "at": time.time(),
            }
        )
        if api_key is not None and request.headers.get("authorization") != f"Bearer {api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        spec = (
            queues[stage].popleft() if queues[stage] else DEFAULTS.get(stage, DEFAULTS["complete"])
        )
        if spec.get("delay"):
            await asyncio.sleep(float(spec["delay"]))
        if "status" in spec:
            headers = {"retry-after": str(spec["retry_after"])} if "retry_after" in spec else None
            return _error(spec["status"], spec.get("message", "scripted failure"), None, headers)
        if "raw" in spec:
            return PlainTextResponse(spec["raw"], media_type="application/json")
        content = spec.get("content")
        if isinstance(content, dict | list):
            content = json.dumps(content)
        usage = spec.get("usage", {"prompt_tokens": 100, "completion_tokens": 20})
        if body.get("stream"):
            chunks = spec.get("chunks") or [content or ""]
            include_usage = (body.get("stream_options") or {}).get("include_usage", False)
            return StreamingResponse(
                _stream(body["model"], chunks, usage if include_usage else None, received[-1]),
                media_type="text/event-stream",
            )
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if spec.get("tool_calls"):
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": f"call_{i}",
                    "type": "function",
                    "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
                }
                for i, c in enumerate(spec["tool_calls"])
            ]
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if spec.get("tool_calls") else "stop",
                }
            ],
            "usage": {**usage, "total_tokens": sum(usage.values())},
        }

    return app


async def _stream(
    model: str, chunks: list[str], usage: dict[str, int] | None, record: dict[str, Any]
) -> AsyncIterator[bytes]:
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model}
    for i, text in enumerate(chunks):
        delta = {"role": "assistant", "content": text} if i == 0 else {"content": text}
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        if i == 0:
            record["first_chunk_at"] = time.time()
        yield f"data: {json.dumps(chunk)}\n\n".encode()
        await asyncio.sleep(0.02)
    end = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    yield f"data: {json.dumps(end)}\n\n".encode()
    if usage is not None:
        total = {**base, "choices": [], "usage": {**usage, "total_tokens": sum(usage.values())}}
        yield f"data: {json.dumps(total)}\n\n".encode()
    yield b"data: [DONE]\n\n"


def _error(
    status: int, message: str, code: str | None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args()
    uvicorn.run(create_app(args.api_key), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
