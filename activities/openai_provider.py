"""The OpenAI-compatible provider: the official `openai` client against any server that speaks
the chat completions API (OpenAI, Azure, vLLM, Ollama, LM Studio), chosen with
`DURABLE_AGENT_LLM=openai`.

- Structured stages ask for JSON matching the stage's model (`response_format` json_schema) and
  validate it; a malformed answer is sent back with the validation error a bounded number of
  times, then the activity fails for good (`InvalidModelOutput`).
- The context stage uses native tool calling; each tool call the model asks for becomes its own
  activity (the workflow runs them).
- The final plan step streams its tokens to the run's event stream while it is generated; the
  complete text is the activity's result (what history records).
- Temporal owns retries: the client's are off. 401/403/404/400/422 fail for good with a message
  that says what to fix; 429, 5xx, timeouts and connection errors are retried by Temporal.
- The API key lives in this object only; it never enters a workflow, an event or a log line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Any, TypeVar

import openai
from pydantic import BaseModel, Field, StringConstraints, ValidationError, field_validator
from temporalio import activity
from temporalio.contrib.workflow_streams import WorkflowStreamClient
from temporalio.exceptions import ApplicationError

from activities import prompts
from activities.models import (
    CompleteInput,
    CompleteOutput,
    ContextInput,
    ContextOutput,
    Intent,
    IntentInput,
    IntentOutput,
    PlanInput,
    PlanOutput,
    ReflectInput,
    ReflectOutput,
    StepInput,
    StepOutput,
    Sufficiency,
    ToolCall,
)
from activities.output_schema import answer_problems
from activities.tools.catalog import ToolSpec
from activities.tools.registry import ToolRegistry
from shared import EVENTS_TOPIC, StreamEvent, Usage

M = TypeVar("M", bound=BaseModel)

# Tokens are published to the run's stream in batches this often (each batch is one signal).
TOKEN_BATCH = timedelta(milliseconds=100)


class IntentAnswer(BaseModel):
    intent: Intent
    # Never an empty string: the server's grammar then cannot produce one (a simple-chat reply
    # without text would complete a run without an answer).
    answer: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


# The lengths bound what the server's grammar lets a model write: a small model that rambles
# inside a JSON string is cut off by the grammar, not by max_tokens (which breaks the JSON).
class ContextAnswer(BaseModel):
    sufficiency: Sufficiency
    question: Annotated[str, StringConstraints(max_length=200)] | None = None


class PlanAnswer(BaseModel):
    steps: list[Annotated[str, StringConstraints(min_length=1, max_length=60)]] = Field(
        min_length=1, max_length=3
    )


class ReflectAnswer(BaseModel):
    score: float = Field(ge=0.0, le=1.0)
    critique: str = Field(max_length=150)

    @field_validator("score", mode="before")
    @classmethod
    def _as_fraction(cls, value: Any) -> Any:
        # Small models often score out of 10 or 100 whatever the schema says (a grammar
        # does not bound numbers): read such a score on its own scale rather than fail
        # the run's reflection over it.
        if isinstance(value, int | float) and not isinstance(value, bool):
            for scale in (10.0, 100.0):
                if 1.0 < value <= scale:
                    return value / scale
        return value


class OpenAIProvider:
    name = "openai"

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        model: str,
        timeout_s: float,
        json_retries: int,
        prices: dict[str, tuple[float, float]],
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> None:
        self.model = model
        # A bound on every answer's length (a small local model may otherwise ramble on).
        self.limits: dict[str, Any] = {"max_tokens": max_tokens} if max_tokens else {}
        if temperature is not None:  # 0: the same prompt gets the same answer
            self.limits["temperature"] = temperature
        self.json_retries = json_retries
        self.prices = prices
        # max_retries=0: Temporal retries, with backoff, across worker crashes too.
        self.client = openai.AsyncOpenAI(
            api_key=api_key or "not-needed",  # local servers (Ollama, vLLM) accept anything
            base_url=base_url,
            max_retries=0,
            timeout=timeout_s,
        )

    # ---- the stages ----------------------------------------------------------------------

    async def classify(self, req: IntentInput) -> IntentOutput:
        schema = _intent_schema(req.small_talk)
        answer, usage = await self._structured(
            prompts.INTENT, req.query, IntentAnswer, req.instructions, req.model, schema
        )
        if answer.intent is Intent.SIMPLE_CHAT:
            if answer.answer and answer.answer.strip():
                return IntentOutput(intent=answer.intent, answer=answer.answer, usage=usage)
            # Small talk without a reply: the pipeline answers it instead.
            return IntentOutput(intent=Intent.QUESTION, usage=usage)
        return IntentOutput(intent=answer.intent, usage=usage)

    async def assess(self, req: ContextInput, tools: ToolRegistry) -> ContextOutput:
        user = prompts.CONTEXT_USER.format(
            query=req.query,
            contexts=_lines(req.contexts),
            tools=_lines(
                f"{t.name}({json.dumps(t.arguments)}) -> {'ok' if t.ok else 'failed'}: {t.result}"
                for t in req.tool_history
            ),
        )
        messages = self._messages(prompts.CONTEXT, user, ContextAnswer, req.instructions)
        # The run's recorded catalog when it has one (MCP and Python tools included); an agent
        # that names its tools is offered only those (perhaps none).
        if req.tools or req.tools_restricted:
            specs = list(req.tools)
        else:
            specs = [tools.get(name).spec() for name in tools.names()]
        wire_names = {_wire_name(spec.name): spec.name for spec in specs}
        offered: dict[str, Any] = {"tools": [_tool_schema(s) for s in specs]} if specs else {}
        response = await self._call(
            messages=messages,
            response_format=_json_format(ContextAnswer),
            model=req.model,
            **offered,
        )
        usage = self._usage(response)
        message = response.choices[0].message
        if message.tool_calls:
            calls = []
            for call in message.tool_calls:
                try:
                    arguments = json.loads(call.function.arguments or "{}")
                except json.JSONDecodeError:
                    arguments = {"_raw": call.function.arguments}
                name = wire_names.get(call.function.name, call.function.name)
                calls.append(ToolCall(name=name, arguments=arguments))
            sufficiency = Sufficiency.PARTIAL if req.contexts else Sufficiency.INSUFFICIENT
            return ContextOutput(sufficiency=sufficiency, tool_calls=calls, usage=usage)
        answer, more = await self._validated(messages, message.content, ContextAnswer, req.model)
        usage.add(more)
        return ContextOutput(sufficiency=answer.sufficiency, question=answer.question, usage=usage)

    async def plan(self, req: PlanInput) -> PlanOutput:
        user = f"Request: {req.query}\nContext:\n{_lines(req.contexts)}"
        if req.critique:
            user += f"\nA reviewer said of the previous answer: {req.critique}"
        answer, usage = await self._structured(
            prompts.PLAN, user, PlanAnswer, req.instructions, req.model
        )
        return PlanOutput(steps=answer.steps, usage=usage)

    async def run_step(self, req: StepInput) -> StepOutput:
        critique = f"A reviewer said of the previous answer: {req.critique}" if req.critique else ""
        last = req.index == req.total - 1
        system = prompts.STEP.format(critique=critique).strip()
        if last and req.output_schema is not None:
            schema = json.dumps(req.output_schema)
            system += "\n" + prompts.STRUCTURED_ANSWER.format(schema=schema)
        messages = [
            {"role": "system", "content": _with_instructions(req.instructions, system)},
            {
                "role": "user",
                "content": prompts.STEP_USER.format(
                    query=req.query,
                    contexts=_lines(req.contexts),
                    previous=_lines(req.previous_results),
                    number=req.index + 1,
                    total=req.total,
                    step=req.step,
                ),
            },
        ]
        if last and req.output_schema is not None:
            text, usage = await self._structured_answer(
                messages, req.output_schema, f"step-{req.index + 1}", req.model
            )
        elif last:
            text, usage = await self._stream_text(
                messages, node=f"step-{req.index + 1}", model=req.model
            )
        else:
            response = await self._call(messages=messages, model=req.model)
            text, usage = response.choices[0].message.content or "", self._usage(response)
        return StepOutput(result=text, usage=usage)

    async def _structured_answer(
        self, messages: list[dict[str, Any]], schema: dict[str, Any], node: str, model: str | None
    ) -> tuple[str, Usage]:
        """The final answer as JSON matching the agent's `output_schema`: streamed (so its
        tokens reach clients as they come), validated, and sent back for repair a bounded
        number of times, as the stages' own JSON is."""
        response_format = {
            "type": "json_schema",
            "json_schema": {"name": "Answer", "schema": schema},
        }
        text, usage = await self._stream_text(
            messages, node=node, model=model, response_format=response_format
        )
        history = list(messages)
        for attempt in range(self.json_retries + 1):
            text = _strip_fences(text)
            problems = answer_problems(schema, text)
            if not problems:
                return text, usage
            if attempt == self.json_retries:
                break
            history += [
                {"role": "assistant", "content": text},
                {"role": "user", "content": prompts.FIX_JSON.format(error="; ".join(problems))},
            ]
            response = await self._call(
                messages=history, response_format=response_format, model=model
            )
            usage.add(self._usage(response))
            text = response.choices[0].message.content or ""
        raise ApplicationError(
            f"the model's answer did not match the agent's output_schema after "
            f"{self.json_retries + 1} tries: {'; '.join(problems)}",
            type="InvalidModelOutput",
            non_retryable=True,
        )

    async def reflect(self, req: ReflectInput) -> ReflectOutput:
        user = prompts.REFLECT_USER.format(
            query=req.query, contexts=_lines(req.contexts), answer=req.answer
        )
        answer, usage = await self._structured(
            prompts.REFLECT, user, ReflectAnswer, req.instructions, req.model
        )
        return ReflectOutput(score=answer.score, critique=answer.critique, usage=usage)

    async def complete(self, req: CompleteInput) -> CompleteOutput:
        response = await self._call(
            messages=[
                {"role": "system", "content": prompts.COMPLETE},
                {"role": "user", "content": req.prompt},
            ]
        )
        return CompleteOutput(
            text=response.choices[0].message.content or "", usage=self._usage(response)
        )

    # ---- structured answers --------------------------------------------------------------

    def _messages(
        self,
        system: str,
        user: str,
        model: type[BaseModel],
        instructions: str = "",
        schema: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        text = json.dumps(schema or model.model_json_schema())
        return [
            {
                "role": "system",
                "content": _with_instructions(instructions, system.format(schema=text)),
            },
            {"role": "user", "content": user},
        ]

    async def _structured(
        self,
        system: str,
        user: str,
        model: type[M],
        instructions: str = "",
        llm: str | None = None,
        schema: dict[str, Any] | None = None,
    ) -> tuple[M, Usage]:
        """`schema`: a narrower JSON Schema than the model's own to ask for (still validated
        as `model`)."""
        messages = self._messages(system, user, model, instructions, schema)
        response_format = _json_format(model, schema)
        response = await self._call(messages=messages, response_format=response_format, model=llm)
        usage = self._usage(response)
        answer, more = await self._validated(
            messages, response.choices[0].message.content, model, llm, response_format
        )
        usage.add(more)
        return answer, usage

    async def _validated(
        self,
        messages: list[dict[str, Any]],
        content: str | None,
        model: type[M],
        llm: str | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> tuple[M, Usage]:
        """Validate a JSON answer; on failure send the error back, a bounded number of times."""
        usage = Usage()
        history = list(messages)
        for attempt in range(self.json_retries + 1):
            try:
                return model.model_validate_json(_strip_fences(content or "")), usage
            except ValidationError as exc:
                error = "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or 'reply'}: {e['msg']}" for e in exc.errors()
                )
            if attempt == self.json_retries:
                break
            history += [
                {"role": "assistant", "content": content or ""},
                {"role": "user", "content": prompts.FIX_JSON.format(error=error)},
            ]
            response = await self._call(
                messages=history,
                response_format=response_format or _json_format(model),
                model=llm,
            )
            usage.add(self._usage(response))
            content = response.choices[0].message.content
        raise ApplicationError(
            f"the model's answer did not match {model.__name__} after "
            f"{self.json_retries + 1} tries: {error}",
            type="InvalidModelOutput",
            non_retryable=True,
        )

    # ---- calls, streaming, errors, usage -------------------------------------------------

    async def _call(self, model: str | None = None, **kwargs: Any) -> Any:
        model = model or self.model
        try:
            response = await self.client.chat.completions.create(
                model=model, **(self.limits | kwargs)
            )
        except openai.APIError as exc:
            raise _classify(exc, model) from None
        response._durable_agent_model = model  # priced by the model that answered
        return response

    async def _stream_text(
        self,
        messages: list[dict[str, Any]],
        node: str,
        model: str | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> tuple[str, Usage]:
        """Stream the completion; publish tokens to the run's event stream as they come."""
        info = activity.info()
        parts: list[str] = []
        usage = Usage()
        stream_client = WorkflowStreamClient.from_within_activity(batch_interval=TOKEN_BATCH)
        topic = stream_client.topic(EVENTS_TOPIC, type=StreamEvent)
        try:
            async with stream_client:
                create: Any = self.client.chat.completions.create
                extra = {"response_format": response_format} if response_format else {}
                stream = await create(
                    model=model or self.model,
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                    **(self.limits | extra),
                )
                async for chunk in stream:
                    if chunk.usage is not None:
                        usage = self._usage(chunk, model)
                    for choice in chunk.choices:
                        delta = choice.delta.content
                        if delta:
                            parts.append(delta)
                            topic.publish(
                                StreamEvent(
                                    type="token",
                                    at=_now(),
                                    data={"text": delta, "node": node, "attempt": info.attempt},
                                )
                            )
                    activity.heartbeat()
        except openai.APIError as exc:
            raise _classify(exc, model or self.model) from None
        return "".join(parts), usage

    def _usage(self, response: Any, model: str | None = None) -> Usage:
        raw = getattr(response, "usage", None)
        tokens_in = int(getattr(raw, "prompt_tokens", 0) or 0)
        tokens_out = int(getattr(raw, "completion_tokens", 0) or 0)
        model = model or getattr(response, "_durable_agent_model", None) or self.model
        price_in, price_out = self.prices.get(model, (0.0, 0.0))
        cost = (tokens_in * price_in + tokens_out * price_out) / 1_000_000
        return Usage(tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=round(cost, 8), calls=1)


def _classify(exc: openai.APIError, model: str) -> ApplicationError:
    """Permanent errors fail the activity for good with a fix-it message; the rest are retried."""
    status = getattr(exc, "status_code", None)
    fixes = {
        401: "the API key was refused: check DURABLE_AGENT_OPENAI_API_KEY",
        403: "the API key may not use this model or endpoint: check its permissions",
        404: f"model {model!r} or the endpoint was not found: check DURABLE_AGENT_MODEL and "
        "DURABLE_AGENT_OPENAI_BASE_URL",
        400: "the model server rejected the request",
        422: "the model server rejected the request",
    }
    if status in fixes:
        detail = _error_message(exc)
        return ApplicationError(
            f"{fixes[status]} ({status}: {detail})",
            type="LLMConfigurationError",
            non_retryable=True,
        )
    retry_after = None
    response = getattr(exc, "response", None)
    if response is not None:
        header = response.headers.get("retry-after")
        if header and header.replace(".", "", 1).isdigit():
            retry_after = timedelta(seconds=min(float(header), 300))
    what = f"{status}" if status else type(exc).__name__
    return ApplicationError(
        f"the model server is unavailable ({what}: {_error_message(exc)}); retrying",
        type="LLMUnavailable",
        next_retry_delay=retry_after,
    )


def _error_message(exc: openai.APIError) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
    return str(exc.message)[:300]


def _json_format(model: type[BaseModel], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {"name": model.__name__, "schema": schema or model.model_json_schema()},
    }


def _intent_schema(small_talk: bool) -> dict[str, Any]:
    """What the intent stage asks for, narrower than IntentAnswer (which validates it): a server
    that enforces the schema with a grammar (llama.cpp) then cannot produce small talk without a
    reply. Without small talk the model chooses between a question and a task only (a small
    model otherwise calls nearly everything small talk, or a calculation); arithmetic is the
    rule's to recognise (activities/routing.py), before the model is asked."""
    others = [Intent.QUESTION.value, Intent.TASK.value]
    if small_talk:
        others = [Intent.CALCULATION.value, *others]
    pipeline: dict[str, Any] = {
        "type": "object",
        "properties": {"intent": {"enum": others}, "answer": {"type": "null"}},
        "required": ["intent"],
        "additionalProperties": False,
    }
    if not small_talk:
        return pipeline
    reply = {"type": "string", "minLength": 1, "maxLength": 200}
    chat = {
        "type": "object",
        "properties": {"intent": {"const": Intent.SIMPLE_CHAT.value}, "answer": reply},
        "required": ["intent", "answer"],
        "additionalProperties": False,
    }
    return {"type": "object", "anyOf": [chat, pipeline]}


def _wire_name(name: str) -> str:
    # OpenAI function names allow [a-zA-Z0-9_-] only; MCP tools are named `<server>.<tool>`.
    return name.replace(".", "__")


def _tool_schema(spec: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": _wire_name(spec.name),
            "description": spec.description,
            "parameters": spec.parameters or {"type": "object", "properties": {}},
        },
    }


def _with_instructions(instructions: str, system: str) -> str:
    # The agent's instructions come first: every stage's prompt starts from them.
    return f"{instructions.strip()}\n\n{system}" if instructions.strip() else system


def _strip_fences(text: str) -> str:
    # Some local models wrap JSON in ``` fences even when asked not to.
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text


def _lines(items: Sequence[str] | Any) -> str:
    lines = [f"- {item}" for item in items]
    return "\n".join(lines) if lines else "(none)"


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
