"""The agent catalog: `agents/*.yaml|json`, validated at load, and what a run starts with."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from pathlib import Path
from typing import Any

import yaml

from config import Settings
from workflows.agent_spec import DEFAULT_AGENT, AgentDefinition, validate_agent
from workflows.state import RunSettings

logger = logging.getLogger(__name__)

# What a run without `agent` runs when the catalog has no `default.yaml` (today's pipeline).
BUILTIN_DEFAULT = AgentDefinition(
    name=DEFAULT_AGENT,
    description="The four-stage pipeline with every tool, the settings' limits and model.",
)


def load_agents(folder: Path, tools: Collection[str]) -> dict[str, AgentDefinition]:
    """Valid definitions by name. A file that does not validate is left out, with its problems
    logged (the test suite validates every shipped definition, so this only bites local
    edits); a catalog always has `default`."""
    catalog: dict[str, AgentDefinition] = {}
    for path in sorted(folder.glob("*")) if folder.is_dir() else []:
        if path.suffix not in (".yaml", ".yml", ".json"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
            data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            logger.error("agent file %s cannot be read: %s", path.name, exc)
            continue
        checked = validate_agent(data, tools)
        if not checked.ok or checked.definition is None:
            problems = "; ".join(f"{p.path}: {p.message}" for p in checked.problems)
            logger.error("agent file %s is invalid and left out: %s", path.name, problems)
            continue
        name = checked.definition.name
        if name in catalog:
            logger.error("agent file %s repeats the name %r; left out", path.name, name)
            continue
        catalog[name] = checked.definition
    catalog.setdefault(DEFAULT_AGENT, BUILTIN_DEFAULT)
    return catalog


def agent_run_settings(settings: Settings, agent: AgentDefinition) -> RunSettings:
    """The knobs a run of `agent` starts with: the settings', overridden by the definition's."""
    return settings.run_settings().model_copy(update=agent.run_overrides())
