"""AgentDefinition, an agent as data (`agents/*.yaml`), and `validate_agent()`: pure, no I/O.

The four stages stay the workflow's shape; a definition configures them: the instructions every
stage's prompt starts from, the model (per stage if need be), which tools the context stage may
offer and call (names or glob patterns over the tool registry), the limits, reflection, extra
approvals, and an optional JSON Schema for a structured final answer.

The gateway validates a definition before a run starts (every problem at once, each with a JSON
path) and pins the validated definition in the run's input, so that editing a file never
changes a run in flight. Plain data and pure functions: safe in workflow code.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workflows.execution import EXECUTION_DESCRIPTION, Execution
from workflows.graph_spec import Problem, schema_problem
from workflows.limits import json_problems

# The stages a definition may give a model of their own (the workflow's four stages).
STAGES = ("intent", "context", "execute", "reflect")
# Bounds that hold whatever the settings say: a worker decodes whatever anyone started a run
# with, and the definition travels in every run's input.
MAX_AGENT_BYTES = 64 * 1024
MAX_AGENT_DEPTH = 16
MAX_INSTRUCTIONS_CHARS = 20_000
MAX_TOOL_PATTERNS = 100
# The longest any run may wait for a person (a year and a day; as `workflows.state`).
MAX_INPUT_TIMEOUT_S = 366 * 24 * 3600
DEFAULT_AGENT = "default"
# An agent's name: also a search attribute's value, quoted into list queries as it is.
AGENT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
_GLOB = frozenset("*?[")


class ReflectionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Whether the reflect stage runs at all")
    threshold: float | None = Field(
        default=None, ge=0, le=1, description="Below this score the answer is re-executed"
    )
    max_retries: int | None = Field(
        default=None, ge=0, le=10, description="How often a low-scored answer is re-executed"
    )


class AgentDefinition(BaseModel):
    """One agent. Unset limits take the gateway's settings when a run starts (and the run keeps
    the values it started with)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=AGENT_NAME_PATTERN)
    version: str = Field(default="1", max_length=50)
    description: str = Field(default="", max_length=2000)
    instructions: str = Field(
        default="",
        max_length=MAX_INSTRUCTIONS_CHARS,
        description="The persona and rules every stage's prompt starts from",
    )
    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The model of every stage (unset: the worker's DURABLE_AGENT_MODEL)",
    )
    models: dict[str, str] = Field(
        default_factory=dict,
        description=f"A model per stage, overriding `model`; stages: {', '.join(STAGES)}",
    )
    tools: list[str] | None = Field(
        default=None,
        max_length=MAX_TOOL_PATTERNS,
        description='Tool names or glob patterns ("time.*"); only these are offered and may be '
        "called. Unset: every tool; []: none.",
    )
    small_talk: bool = Field(
        default=True,
        description="Whether the intent stage may answer small talk on its own. false: every "
        "request goes through context, execute and reflect (the model is not offered "
        "simple_chat at all)",
    )
    max_context_rounds: int | None = Field(default=None, ge=0, le=20)
    reflection: ReflectionConfig = Field(default_factory=ReflectionConfig)
    input_timeout_s: float | None = Field(default=None, gt=0, le=MAX_INPUT_TIMEOUT_S)
    approval: dict[str, str] = Field(
        default_factory=dict,
        description='Tool name or pattern -> "always": hold these calls for a person too. The '
        "operator's policies are the floor: an agent may add approvals, never waive one.",
    )
    execution: Execution = Field(
        default="remote", description=EXECUTION_DESCRIPTION + "; for every stage and tool call"
    )
    output_schema: dict[str, Any] | None = Field(
        default=None,
        description="JSON Schema (an object) the final answer must match: the execute stage "
        "answers with JSON, validated and sent back for repair when it does not match",
    )

    def run_overrides(self) -> dict[str, Any]:
        """The run knobs (`workflows.state.RunSettings` fields) this definition sets."""
        values = {
            "max_context_rounds": self.max_context_rounds,
            "input_timeout_s": self.input_timeout_s,
            "reflection_threshold": self.reflection.threshold,
            "max_reflection_retries": self.reflection.max_retries,
        }
        return {name: value for name, value in values.items() if value is not None}

    def model_for(self, stage: str) -> str | None:
        return self.models.get(stage) or self.model

    def allows(self, tool: str) -> bool:
        """Whether a run of this agent may offer and call `tool`."""
        return self.tools is None or any(fnmatchcase(tool, p) for p in self.tools)

    def requires_approval(self, tool: str) -> bool:
        """Whether this agent holds every call of `tool` for a person (on top of its policy)."""
        return any(fnmatchcase(tool, p) for p, v in self.approval.items() if v == "always")


@dataclass
class AgentCheck:
    definition: AgentDefinition | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_agent(data: Any, tools: Collection[str] | None, path: str = "") -> AgentCheck:
    """Every problem of an agent definition at once, each with a JSON path (under `path`):
    its shape and ranges, unknown stages in `models`, tools or patterns that match nothing,
    approvals of tools the agent may not call, and an `output_schema` that is no JSON Schema.

    `tools` is the registry's names (`<server>.<tool>` is known for a configured MCP server);
    None skips the tool checks (the worker re-reads a pinned definition without the registry).
    """
    raw = data.model_dump(mode="json") if isinstance(data, AgentDefinition) else data
    oversized = json_problems(raw, max_depth=MAX_AGENT_DEPTH, max_bytes=MAX_AGENT_BYTES, path="")
    if oversized:
        return AgentCheck(None, [Problem(_join(path, p), m) for p, m in oversized])
    if not isinstance(raw, dict):
        return AgentCheck(None, [Problem(path or "agent", "an agent definition is an object")])
    problems: list[Problem] = []
    definition: AgentDefinition | None = None
    try:
        definition = AgentDefinition.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            problems.append(Problem(_join(path, _loc(error["loc"])), error["msg"]))
    # The checks below read the raw fields, so that they show together with the shape's.
    models = raw.get("models")
    if isinstance(models, dict):
        for stage in models:
            if stage not in STAGES:
                problems.append(
                    Problem(
                        _join(path, f"models.{stage}"),
                        f"unknown stage {stage!r}; stages: {', '.join(STAGES)}",
                    )
                )
    patterns = raw.get("tools")
    allowed: list[str] | None = None
    if isinstance(patterns, list) and all(isinstance(p, str) for p in patterns):
        allowed = patterns
        if tools is not None:
            for i, pattern in enumerate(patterns):
                problem = _pattern_problem(pattern, tools)
                if problem is not None:
                    problems.append(Problem(_join(path, f"tools[{i}]"), problem))
    approval = raw.get("approval")
    if isinstance(approval, dict):
        for key, value in approval.items():
            where = _join(path, f"approval.{key}")
            if value != "always":
                problems.append(
                    Problem(
                        where,
                        'must be "always": an agent may hold more calls for a person, never '
                        "fewer (the tools file's policy is the floor)",
                    )
                )
            elif isinstance(key, str) and tools is not None:
                problem = _pattern_problem(key, tools)
                if problem is not None:
                    problems.append(Problem(where, problem))
                elif allowed is not None and not _overlaps(key, allowed):
                    problems.append(Problem(where, f"{key!r} is not among the agent's tools"))
    schema = raw.get("output_schema")
    if isinstance(schema, dict):
        problem = schema_problem(schema)
        if problem is None and schema.get("type") != "object":
            problem = 'must describe a JSON object (`"type": "object"`)'
        if problem is not None:
            problems.append(Problem(_join(path, "output_schema"), problem))
    return AgentCheck(definition if not problems else None, problems)


def _pattern_problem(pattern: str, tools: Collection[str]) -> str | None:
    if not pattern.strip():
        return "a tool name or pattern may not be blank"
    if not _GLOB & set(pattern):
        if pattern in tools:
            return None
        return f"unknown tool {pattern!r}; known: {', '.join(tools)}"
    names = [name for name in tools if not name.endswith(".<tool>")]
    if any(fnmatchcase(name, pattern) for name in names):
        return None
    # `server.*`: an MCP server's tools are known only by asking it; the server must exist.
    server, dot, _ = pattern.partition(".")
    if dot and not _GLOB & set(server) and f"{server}.x" in tools:
        return None
    return f"pattern {pattern!r} matches no tool; known: {', '.join(tools)}"


def _overlaps(key: str, patterns: Sequence[str]) -> bool:
    return any(fnmatchcase(key, p) or fnmatchcase(p, key) or p == key for p in patterns)


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix
    return prefix + (path if path.startswith("[") else "." + path)
