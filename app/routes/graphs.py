"""/api/v1/graphs: the catalog of graph definitions, and validation of a definition."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request

from app.auth import Tenant
from app.deps import AppSettings
from app.errors import GraphNotFound, InvalidGraph
from app.routes.runs import ERRORS
from app.schemas import GraphSummary, GraphValidation
from app.yaml_bodies import yaml_body
from workflows.graph_spec import GraphSpec, validate

router = APIRouter(prefix="/api/v1/graphs", tags=["graphs"])

EXAMPLE_SPEC = {
    "name": "hello_graph",
    "entry": "greet",
    "nodes": [
        {"id": "greet", "type": "llm", "config": {"prompt": "Say hello to {{ input.name }}"}}
    ],
    "edges": [],
}


def _catalog(request: Request) -> dict[str, GraphSpec]:
    catalog: dict[str, GraphSpec] = request.app.state.graphs
    return catalog


@router.get("", response_model=list[GraphSummary], responses=ERRORS, summary="List the catalog")
async def list_graphs(request: Request, tenant: Tenant) -> list[GraphSummary]:
    return [GraphSummary.from_spec(spec) for spec in _catalog(request).values()]


@router.get(
    "/{name}", response_model=GraphSpec, responses=ERRORS, summary="A graph definition by name"
)
async def get_graph(
    name: Annotated[str, Path(max_length=100)], request: Request, tenant: Tenant
) -> GraphSpec:
    try:
        return _catalog(request)[name]
    except KeyError:
        raise GraphNotFound(name, sorted(_catalog(request))) from None


@router.post(
    "/validate",
    response_model=GraphValidation,
    responses=ERRORS,
    summary="Validate a graph definition (all problems at once; nothing runs)",
    openapi_extra=yaml_body(),
)
async def validate_graph(
    request: Request,
    tenant: Tenant,
    settings: AppSettings,
    spec: Annotated[Any, Body(examples=[EXAMPLE_SPEC])],
) -> GraphValidation:
    checked = validate(
        spec, request.app.state.tool_names, settings.limits(), agents=request.app.state.agents
    )
    if not checked.ok:
        raise InvalidGraph(checked.problems)
    return GraphValidation(valid=True, problems=[])
