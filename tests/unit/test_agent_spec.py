"""Agent definitions: every problem at once with JSON paths; the shipped catalog is valid."""

from __future__ import annotations

from app.agent_catalog import load_agents
from config import PROJECT_ROOT
from workflows.agent_spec import AgentDefinition, validate_agent

TOOLS = ["append_note", "calculator", "search_docs", "time.<tool>"]


class Names(list[str]):
    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (list.__contains__(self, name) or name.startswith("time."))


def test_every_problem_at_once_with_paths() -> None:
    checked = validate_agent(
        {
            "name": "bad name",
            "tools": ["nope", "calc*", "time.*", "zz*"],
            "models": {"plan": "m", "intent": "small"},
            "max_context_rounds": 99,
            "approval": {"calculator": "never", "append_note": "always"},
            "output_schema": {"type": "array"},
        },
        Names(TOOLS),
        path="body.agent",
    )
    paths = {p.path for p in checked.problems}
    assert not checked.ok and checked.definition is None
    assert paths == {
        "body.agent.name",
        "body.agent.max_context_rounds",
        "body.agent.models.plan",
        "body.agent.tools[0]",
        "body.agent.tools[3]",
        "body.agent.approval.calculator",
        "body.agent.approval.append_note",
        "body.agent.output_schema",
    }


def test_patterns_filter_and_approvals_add() -> None:
    agent = AgentDefinition(name="a", tools=["calc*", "time.*"], approval={"calculator": "always"})
    assert agent.allows("calculator") and agent.allows("time.get_current_time")
    assert not agent.allows("search_docs")
    assert agent.requires_approval("calculator") and not agent.requires_approval("time.x")
    assert AgentDefinition(name="all").allows("anything")
    assert not AgentDefinition(name="none", tools=[]).allows("calculator")


def test_the_shipped_catalog_is_valid() -> None:
    catalog = load_agents(PROJECT_ROOT / "agents", Names(TOOLS))
    assert {"default", "support", "research", "extractor", "triage"} <= set(catalog)
    assert catalog["extractor"].output_schema is not None
    assert catalog["support"].requires_approval("calculator")
