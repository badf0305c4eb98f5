"""The graph catalog: `graphs/*.yaml|json` shipped with the project, validated at load."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from pathlib import Path
from typing import Any

import yaml

from workflows.graph_spec import GraphSpec, validate

logger = logging.getLogger(__name__)


def load_catalog(
    folder: Path, tools: Collection[str], agents: Collection[str] | None = None
) -> dict[str, GraphSpec]:
    """Valid graphs by name. A file that does not validate is left out, with its problems logged
    (the test suite validates every shipped graph, so this only bites local edits)."""
    catalog: dict[str, GraphSpec] = {}
    for path in sorted(folder.glob("*")):
        if path.suffix not in (".yaml", ".yml", ".json"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
            data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            logger.error("graph file %s cannot be read: %s", path.name, exc)
            continue
        checked = validate(data, tools, agents=agents)
        if not checked.ok or checked.spec is None:
            problems = "; ".join(f"{p.path}: {p.message}" for p in checked.problems)
            logger.error("graph file %s is invalid and left out: %s", path.name, problems)
            continue
        if checked.spec.name in catalog:
            logger.error(
                "graph file %s repeats the name %r; left out", path.name, checked.spec.name
            )
            continue
        catalog[checked.spec.name] = checked.spec
    return catalog
