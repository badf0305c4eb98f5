"""The LLM provider protocol and the offline provider (the default; no network).

A provider answers the four stages' questions with the stages' own models. The offline provider
is deterministic so that every path of the pipeline can be reached on purpose:

- small talk ("hi", "hello", "thanks")          -> simple chat, answered at the intent stage;
- an arithmetic expression ("What is 17 * 23?") -> the `calculator` tool;
- terms that match the knowledge folder         -> the `search_docs` tool, answer cites the doc;
- anything the tools find nothing for           -> INSUFFICIENT -> the run asks the user;
- a request for detail ("... in detail")        -> the first answer scores low in reflection
                                                   and is re-executed with the critique;
- a query that names a user tool (a Python function or an MCP tool; activities/offline_tools.py)
                                                -> that tool, arguments taken from the query.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Protocol

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
from activities.offline_tools import pick_tool
from activities.output_schema import skeleton
from activities.tools.calculator import find_expression
from activities.tools.registry import ToolRegistry
from shared import Usage


class LLMProvider(Protocol):
    """What the stage activities need from a language model."""

    name: str

    async def classify(self, req: IntentInput) -> IntentOutput: ...

    async def assess(self, req: ContextInput, tools: ToolRegistry) -> ContextOutput: ...

    async def plan(self, req: PlanInput) -> PlanOutput: ...

    async def run_step(self, req: StepInput) -> StepOutput: ...

    async def reflect(self, req: ReflectInput) -> ReflectOutput: ...

    async def complete(self, req: CompleteInput) -> CompleteOutput: ...


_SMALL_TALK = frozenset(
    """hi hello hey hiya howdy yo thanks thank you thx cheers good morning afternoon evening
    bye goodbye there how are doing ok okay great nice""".split()
)
_DETAIL = re.compile(r"\b(in detail|detailed|thorough(ly)?|in depth)\b", re.IGNORECASE)
_DOC_NAME = re.compile(r"\[([^\]]+\.md)\]")
# A user tool's result starts with its name: "[time.get_current_time] {...}".
_TOOL_SOURCE = re.compile(r"^\[([\w.\-]+)\] ")
DETAILS_HEADER = "Details:"


def count_tokens(*texts: str | None) -> int:
    """A deterministic stand-in for a tokenizer: whitespace-separated words."""
    return sum(len(t.split()) for t in texts if t)


def _usage(prompt: Sequence[str | None], completion: str | None) -> Usage:
    return Usage(tokens_in=count_tokens(*prompt), tokens_out=count_tokens(completion))


def is_small_talk(query: str) -> bool:
    words = re.findall(r"[a-z']+", query.lower())
    return 0 < len(words) <= 6 and all(w in _SMALL_TALK for w in words)


def _chat_reply(query: str) -> str:
    lowered = query.lower()
    if "thank" in lowered or "thx" in lowered or "cheers" in lowered:
        return "You're welcome! Ask me anything else whenever you like."
    if "bye" in lowered:
        return "Goodbye! Your runs stay safe in Temporal until you come back."
    return (
        "Hello! I'm durable-agent. Ask me a question, give me a calculation, "
        "or ask about how durable runs work."
    )


class OfflineProvider:
    """Deterministic rules instead of a model. Documented in the README."""

    name = "offline"

    async def classify(self, req: IntentInput) -> IntentOutput:
        if is_small_talk(req.query):
            answer = _chat_reply(req.query)
            return IntentOutput(
                intent=Intent.SIMPLE_CHAT, answer=answer, usage=_usage([req.query], answer)
            )
        intent = Intent.CALCULATION if find_expression(req.query) else Intent.QUESTION
        return IntentOutput(intent=intent, usage=_usage([req.query], intent.value))

    async def assess(self, req: ContextInput, registry: ToolRegistry) -> ContextOutput:
        # An agent that names its tools may use only those (the run's filtered catalog).
        allowed = {t.name for t in req.tools} if req.tools_restricted else None

        def offers(name: str) -> bool:
            return name in allowed if allowed is not None else name in registry

        called = {(t.name, str(sorted(t.arguments.items()))) for t in req.tool_history}
        calls: list[ToolCall] = []
        expression = find_expression(req.query)
        picked = pick_tool(req.query, req.tools) if req.tools else None
        if req.intent is Intent.CALCULATION and expression and offers("calculator"):
            calls.append(ToolCall(name="calculator", arguments={"expression": expression}))
        elif picked is not None:  # a user tool the query names (activities/offline_tools.py)
            calls.append(picked)
        elif offers("search_docs"):
            calls.append(ToolCall(name="search_docs", arguments={"query": req.query}))
        # What the user told us is searched too: it may name the thing the query did not.
        if offers("search_docs"):
            calls.extend(
                ToolCall(name="search_docs", arguments={"query": text}) for text in req.user_inputs
            )
        new_calls = [c for c in calls if (c.name, str(sorted(c.arguments.items()))) not in called]
        prompt = [req.query, *req.contexts, *req.user_inputs]
        if new_calls:
            return ContextOutput(
                sufficiency=Sufficiency.PARTIAL if req.contexts else Sufficiency.INSUFFICIENT,
                tool_calls=new_calls,
                usage=_usage(prompt, " ".join(c.name for c in new_calls)),
            )
        if req.contexts or req.user_inputs:
            return ContextOutput(
                sufficiency=Sufficiency.SUFFICIENT, usage=_usage(prompt, "SUFFICIENT")
            )
        failures = [t.result for t in req.tool_history if not t.ok]
        if failures:
            question = (
                f"I could not work that out ({failures[-1]}). Could you rephrase the request "
                "or give me the information I should use?"
            )
        else:
            question = (
                f"I found nothing about “{req.query.strip()}” in the documents I can search. "
                "What information should I use to answer? Please give me the facts or "
                "details that are missing."
            )
        return ContextOutput(
            sufficiency=Sufficiency.INSUFFICIENT, question=question, usage=_usage(prompt, question)
        )

    async def plan(self, req: PlanInput) -> PlanOutput:
        if req.intent is Intent.CALCULATION:
            steps = ["Take the result the calculator computed", "Write the answer"]
        else:
            steps = ["Collect the facts that bear on the request", "Write the answer"]
        return PlanOutput(steps=steps, usage=_usage([req.query, *req.contexts], " ".join(steps)))

    async def run_step(self, req: StepInput) -> StepOutput:
        if req.index < req.total - 1:
            result = "\n".join(req.contexts) if req.contexts else "No facts were gathered."
        else:
            result = _compose_answer(req)
            if req.output_schema is not None:
                result = json.dumps(skeleton(req.output_schema, result))
        return StepOutput(result=result, usage=_usage([req.step, req.query, *req.contexts], result))

    async def reflect(self, req: ReflectInput) -> ReflectOutput:
        if _DETAIL.search(req.query) and DETAILS_HEADER not in req.answer:
            score = 0.4
            critique = (
                "The request asks for detail but the answer is a one-line summary; add the "
                "supporting details and name the sources."
            )
        else:
            score = 0.9
            critique = "The answer addresses the request and names its sources."
        return ReflectOutput(
            score=score, critique=critique, usage=_usage([req.query, req.answer], critique)
        )

    async def complete(self, req: CompleteInput) -> CompleteOutput:
        # Echo the prompt with one more sentence: deterministic, and a "revise" prompt that
        # quotes the previous text yields a longer one, so graph loops make progress.
        text = f"{req.prompt.strip()} {ELABORATION}"
        return CompleteOutput(text=text, usage=_usage([req.prompt], text))


ELABORATION = "(offline model: this sentence stands in for what a real model would add.)"


def _compose_answer(req: StepInput) -> str:
    facts = [c for c in req.contexts if not c.startswith("User: ")]
    told = [c.removeprefix("User: ") for c in req.contexts if c.startswith("User: ")]
    if req.intent is Intent.CALCULATION and facts:
        calc = next((f for f in facts if " = " in f), facts[0])
        answer = f"The result is {calc.rsplit(' = ', 1)[-1]} ({calc})."
    elif facts and (source := _TOOL_SOURCE.match(facts[0])) and not source.group(1).endswith(".md"):
        answer = f"According to {source.group(1)}: {' '.join(facts[0][source.end() :].split())}"
        if told:
            answer += f" You added: {'; '.join(told)}."
    elif facts:
        docs = list(dict.fromkeys(_DOC_NAME.findall("\n".join(facts))))
        first = _DOC_NAME.sub("", facts[0].splitlines()[0]).strip()
        summary = first.split(". ")[0].rstrip(".")
        answer = f"According to {', '.join(docs) or 'the documents'}: {summary}."
        if told:
            answer += f" You added: {'; '.join(told)}."
    elif told:
        answer = f"Based on what you told me ({'; '.join(told)}), here is my answer to “{req.query.strip()}”: {told[-1]}"  # noqa: E501
    else:
        answer = "I could not find enough information to answer."
    if req.critique:
        details = "\n".join(f"- {c}" for c in req.contexts) or "- (no further facts)"
        answer += f"\n\n{DETAILS_HEADER}\n{details}"
    return answer
