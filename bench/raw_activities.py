"""The baselines' activities: the same work as durable-agent's `tool` (calculator) and `llm`
(offline model) nodes, called as plain functions."""

from __future__ import annotations

from temporalio import activity

from activities.llm import OfflineProvider
from activities.models import CompleteInput
from activities.tools.calculator import evaluate, format_number

_MODEL = OfflineProvider()


def calc(expression: str) -> str:
    return f"{expression} = {format_number(evaluate(expression))}"


async def say(prompt: str) -> str:
    return (await _MODEL.complete(CompleteInput(prompt=prompt))).text


@activity.defn(name="raw_calc")
async def raw_calc(expression: str) -> str:
    return calc(expression)


@activity.defn(name="raw_llm")
async def raw_llm(prompt: str) -> str:
    return await say(prompt)
