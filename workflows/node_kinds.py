"""The node kinds of a graph: one class per kind, holding its config, the expressions it
evaluates, and how it executes (its activity, its wait or its child run).

A kind is a pydantic model in the `Node` discriminated union (tag `type`); to add one, write its
class here and add it to `Node`. Executing goes through a `NodeHost` (the running graph), which
owns Temporal: kinds never import a workflow or read a clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field
from temporalio.workflow import ActivityConfig

from activities.models import CompleteInput, CompleteOutput, ToolCallInput, ToolCallOutput
from shared import Usage
from workflows import timeouts
from workflows.execution import EXECUTION_DESCRIPTION, Execution
from workflows.limits import template_expressions

# What a node's execution hands back: its output value and metadata (both JSON).
Output = tuple[Any, dict[str, Any]]


class NodeFailed(Exception):
    """A node failed for good (after its retries); the message is the node's error."""


class Evaluator(Protocol):
    """Evaluates a node's expressions against the run's variables (CEL, bounded)."""

    def evaluate(self, source: str) -> Any: ...

    def render(self, template: str) -> str: ...


class NodeHost(Protocol):
    """What a node may ask of the running graph."""

    async def activity(
        self, name: str, arg: Any, result_type: type, defaults: ActivityConfig
    ) -> Any: ...

    async def ask(self, question: str, wait: timedelta | None) -> str: ...

    async def approve(self, tool: str, arguments: dict[str, Any]) -> None: ...

    async def agent(self, query: str, agent: str | None = None) -> Output: ...

    def add_usage(self, usage: Usage) -> None: ...


class RetrySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(default=3, ge=1, le=100)
    initial_interval: float = Field(default=1.0, gt=0, le=3600, description="seconds")
    backoff: float = Field(default=2.0, ge=1, le=10)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NodeBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    config: Config
    retry: RetrySpec | None = Field(
        default=None, description="Retries of the node's activity (llm, tool and agent nodes)"
    )
    timeout_s: float | None = Field(
        default=None,
        gt=0,
        le=7 * 24 * 3600,
        description="llm/tool: each attempt's timeout; human_input: how long to wait for an "
        "answer (default: the run's input timeout)",
    )
    execution: Execution | None = Field(
        default=None,
        description="llm/tool: " + EXECUTION_DESCRIPTION + " (default: the graph's `execution`)",
    )

    # Evaluated by the workflow itself, between two Temporal commands (no activity).
    in_workflow: ClassVar[bool] = False
    # Runs an activity or a child run, so `retry` applies.
    retries: ClassVar[bool] = False
    # Runs an activity, so `execution` (remote or local) applies.
    activity_kind: ClassVar[bool] = False
    # Config fields that are templates (text with `{{ expression }}` parts).
    template_fields: ClassVar[tuple[str, ...]] = ()

    @property
    def kind(self) -> str:
        return str(getattr(self, "type"))  # noqa: B009 - each subclass declares its tag

    def templates(self) -> Iterator[tuple[str, str]]:
        """(config field, template) of each template the node renders."""
        for name in self.template_fields:
            yield name, getattr(self.config, name)

    def expressions(self) -> Iterator[tuple[str, str]]:
        """(path under `config`, CEL source) of every expression the node evaluates,
        templates' `{{ }}` parts included."""
        for name, template in self.templates():
            for j, source in enumerate(template_expressions(template)):
                yield f"{name}{{{{{j}}}}}", source

    def prepare(self, ev: Evaluator) -> dict[str, Any]:
        """Evaluate the node's expressions and templates against the current variables."""
        return {name: ev.render(template) for name, template in self.templates()}

    async def execute(self, host: NodeHost, prepared: dict[str, Any]) -> Output:
        raise NotImplementedError


def _expression_map(field: str, values: dict[str, str]) -> Iterator[tuple[str, str]]:
    for name, source in values.items():
        yield f"{field}.{name}", source


class LlmConfig(Config):
    prompt: str = Field(description="A template: text with `{{ expression }}` parts")


class LlmNode(NodeBase):
    """One model completion; output `{text}`."""

    type: Literal["llm"]
    config: LlmConfig
    retries: ClassVar[bool] = True
    activity_kind: ClassVar[bool] = True
    template_fields: ClassVar[tuple[str, ...]] = ("prompt",)

    async def execute(self, host: NodeHost, prepared: dict[str, Any]) -> Output:
        arg = CompleteInput(prompt=prepared["prompt"], node_id=self.id)
        out: CompleteOutput = await host.activity(
            "graph_llm", arg, CompleteOutput, timeouts.LLM_STAGE
        )
        host.add_usage(out.usage)
        return {"text": out.text}, {"usage": out.usage.model_dump()}


class ToolConfig(Config):
    tool: str = Field(description="A registered tool's name")
    args: dict[str, str] = Field(
        default_factory=dict, description="Argument name -> CEL expression"
    )


class ToolNode(NodeBase):
    """One tool call (the same activity as the agent's); output `{result, empty}`."""

    type: Literal["tool"]
    config: ToolConfig
    retries: ClassVar[bool] = True
    activity_kind: ClassVar[bool] = True

    def expressions(self) -> Iterator[tuple[str, str]]:
        return _expression_map("args", self.config.args)

    def prepare(self, ev: Evaluator) -> dict[str, Any]:
        return {"args": {k: ev.evaluate(v) for k, v in self.config.args.items()}}

    async def execute(self, host: NodeHost, prepared: dict[str, Any]) -> Output:
        tool = self.config.tool
        await host.approve(tool, prepared["args"])  # a tool that needs a person's approval
        arg = ToolCallInput(name=tool, arguments=prepared["args"])
        out: ToolCallOutput = await host.activity(
            "run_tool", arg, ToolCallOutput, timeouts.TOOL_CALL
        )
        return {"result": out.result, "empty": out.empty}, {"tool": tool}


class ConditionConfig(Config):
    expression: str = Field(description="CEL; its value is the node's output")


class ConditionNode(NodeBase):
    """Evaluates one expression; output its value (edges then branch on it)."""

    type: Literal["condition"]
    config: ConditionConfig
    in_workflow: ClassVar[bool] = True

    def expressions(self) -> Iterator[tuple[str, str]]:
        yield "expression", self.config.expression

    def prepare(self, ev: Evaluator) -> dict[str, Any]:
        return {"value": ev.evaluate(self.config.expression)}

    async def execute(self, host: NodeHost, prepared: dict[str, Any]) -> Output:
        return prepared["value"], {}


class TransformConfig(Config):
    set: dict[str, str] = Field(
        min_length=1, description="Name -> CEL expression, merged into `vars`"
    )


class TransformNode(NodeBase):
    """Sets variables: each `set` entry is evaluated and merged into `vars`; output the map."""

    type: Literal["transform"]
    config: TransformConfig
    in_workflow: ClassVar[bool] = True

    def expressions(self) -> Iterator[tuple[str, str]]:
        return _expression_map("set", self.config.set)

    def prepare(self, ev: Evaluator) -> dict[str, Any]:
        return {"set": {k: ev.evaluate(v) for k, v in sorted(self.config.set.items())}}

    async def execute(self, host: NodeHost, prepared: dict[str, Any]) -> Output:
        return prepared["set"], {}  # merged into `vars` once its size is checked


class HumanInputConfig(Config):
    question: str = Field(description="A template; the question a person answers")


class HumanInputNode(NodeBase):
    """Waits for a person's answer (by node id); output `{text}`. Without an answer in time
    the node fails (and so the run, unless a failure edge handles it)."""

    type: Literal["human_input"]
    config: HumanInputConfig
    template_fields: ClassVar[tuple[str, ...]] = ("question",)

    async def execute(self, host: NodeHost, prepared: dict[str, Any]) -> Output:
        timeout = timedelta(seconds=self.timeout_s) if self.timeout_s else None
        return {"text": await host.ask(prepared["question"], timeout)}, {}


class AgentConfig(Config):
    query: str = Field(description="A template; what the agent run is asked")
    agent: str | None = Field(
        default=None,
        max_length=100,
        description="The catalog agent the child run is (unset: the `default` agent)",
    )


class AgentNode(NodeBase):
    """Runs the agent pipeline as a child run; output `{answer, status}`. A question the child
    asks is answered through this run's input (with this node's id) or the child's own id."""

    type: Literal["agent"]
    config: AgentConfig
    retries: ClassVar[bool] = True
    template_fields: ClassVar[tuple[str, ...]] = ("query",)

    async def execute(self, host: NodeHost, prepared: dict[str, Any]) -> Output:
        return await host.agent(prepared["query"], self.config.agent)


Node = Annotated[
    LlmNode | ToolNode | ConditionNode | TransformNode | HumanInputNode | AgentNode,
    Field(discriminator="type"),
]
NODE_KINDS: dict[str, type[NodeBase]] = {
    kind.model_fields["type"].annotation.__args__[0]: kind  # type: ignore[union-attr]
    for kind in (LlmNode, ToolNode, ConditionNode, TransformNode, HumanInputNode, AgentNode)
}
