"""One <Name>Input / <Name>Output pydantic model per activity.

These shapes are recorded in workflow histories: add fields only with defaults and never rename
one, or old runs stop replaying.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from activities.tools.catalog import ToolSpec
from shared import ToolRecord, Usage


class Intent(StrEnum):
    SIMPLE_CHAT = "simple_chat"
    CALCULATION = "calculation"
    QUESTION = "question"
    TASK = "task"


class Sufficiency(StrEnum):
    SUFFICIENT = "SUFFICIENT"
    PARTIAL = "PARTIAL"
    INSUFFICIENT = "INSUFFICIENT"


class IntentInput(BaseModel):
    query: str
    # What the run's agent definition says (empty/None: the defaults of today's pipeline).
    instructions: str = ""
    model: str | None = None
    # False (an agent with `small_talk: false`): simple_chat is not an answer; every request
    # goes through the pipeline.
    small_talk: bool = True


class IntentOutput(BaseModel):
    intent: Intent
    # Set for simple chat, which the intent stage answers on its own.
    answer: str | None = None
    usage: Usage = Field(default_factory=Usage)


class ToolCall(BaseModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ContextInput(BaseModel):
    query: str
    intent: Intent
    contexts: list[str] = Field(default_factory=list)
    user_inputs: list[str] = Field(default_factory=list)
    tool_history: list[ToolRecord] = Field(default_factory=list)
    round: int = 1
    # The run's recorded tool catalog (empty for runs that never listed their tools).
    tools: list[ToolSpec] = Field(default_factory=list)
    # True when `tools` is all the agent may use (its definition names them), even if empty.
    tools_restricted: bool = False
    # What the run's agent definition says (empty/None: the defaults of today's pipeline).
    instructions: str = ""
    model: str | None = None


class ContextOutput(BaseModel):
    sufficiency: Sufficiency
    tool_calls: list[ToolCall] = Field(default_factory=list)
    # What the run asks the user when the context is INSUFFICIENT.
    question: str | None = None
    usage: Usage = Field(default_factory=Usage)


class ToolCallInput(BaseModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolCallOutput(BaseModel):
    name: str
    result: str
    # True when the tool ran but found nothing (e.g. a search without hits).
    empty: bool = False
    attempt: int = 1


class PlanInput(BaseModel):
    query: str
    intent: Intent
    contexts: list[str] = Field(default_factory=list)
    critique: str | None = None
    # What the run's agent definition says (empty/None: the defaults of today's pipeline).
    instructions: str = ""
    model: str | None = None


class PlanOutput(BaseModel):
    steps: list[str]
    usage: Usage = Field(default_factory=Usage)


class StepInput(BaseModel):
    query: str
    intent: Intent
    step: str
    index: int
    total: int
    contexts: list[str] = Field(default_factory=list)
    previous_results: list[str] = Field(default_factory=list)
    critique: str | None = None
    # What the run's agent definition says (empty/None: the defaults of today's pipeline).
    instructions: str = ""
    model: str | None = None
    # The last step answers with JSON matching this schema (the agent's `output_schema`).
    output_schema: dict[str, Any] | None = None


class StepOutput(BaseModel):
    result: str
    usage: Usage = Field(default_factory=Usage)


class ReflectInput(BaseModel):
    query: str
    intent: Intent
    answer: str
    contexts: list[str] = Field(default_factory=list)
    attempt: int = 1
    # What the run's agent definition says (empty/None: the defaults of today's pipeline).
    instructions: str = ""
    model: str | None = None


class ReflectOutput(BaseModel):
    score: float
    critique: str
    usage: Usage = Field(default_factory=Usage)


class CompleteInput(BaseModel):
    """A graph `llm` node: one prompt, rendered by the workflow."""

    prompt: str
    node_id: str = ""


class CompleteOutput(BaseModel):
    text: str
    usage: Usage = Field(default_factory=Usage)
    attempt: int = 1
