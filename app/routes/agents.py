"""/api/v1/agents: the catalog of agent definitions, and validation of a definition."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request

from app.auth import Tenant
from app.errors import AgentNotFound, InvalidAgent
from app.routes.runs import ERRORS
from app.schemas import AgentSummary, GraphValidation
from app.yaml_bodies import yaml_body
from workflows.agent_spec import AgentDefinition, validate_agent

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])

EXAMPLE_AGENT = {
    "name": "my_support",
    "description": "Answers from the documentation",
    "instructions": "You are a friendly support agent. Be brief.",
    "tools": ["search_docs", "calculator"],
    "max_context_rounds": 2,
    "reflection": {"enabled": True, "threshold": 0.6},
}


def _catalog(request: Request) -> dict[str, AgentDefinition]:
    catalog: dict[str, AgentDefinition] = request.app.state.agents
    return catalog


@router.get("", response_model=list[AgentSummary], responses=ERRORS, summary="List the agents")
async def list_agents(request: Request, tenant: Tenant) -> list[AgentSummary]:
    return [AgentSummary.from_definition(agent) for agent in _catalog(request).values()]


@router.get(
    "/{name}",
    response_model=AgentDefinition,
    responses=ERRORS,
    summary="An agent definition by name",
)
async def get_agent(
    name: Annotated[str, Path(max_length=100)], request: Request, tenant: Tenant
) -> AgentDefinition:
    try:
        return _catalog(request)[name]
    except KeyError:
        raise AgentNotFound(name, sorted(_catalog(request))) from None


@router.post(
    "/validate",
    response_model=GraphValidation,
    responses=ERRORS,
    summary="Validate an agent definition (all problems at once; nothing runs)",
    openapi_extra=yaml_body(),
)
async def validate_definition(
    request: Request,
    tenant: Tenant,
    agent: Annotated[Any, Body(examples=[EXAMPLE_AGENT])],
) -> GraphValidation:
    checked = validate_agent(agent, request.app.state.tool_names)
    if not checked.ok:
        raise InvalidAgent(checked.problems)
    return GraphValidation(valid=True, problems=[])
