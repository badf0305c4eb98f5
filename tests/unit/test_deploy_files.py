"""The Dockerfile and docker-compose.temporal.yml, checked without Docker (none runs here): the
services a deployment needs, pinned images, ports, health checks, and only settings that exist."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

import shared
from config import PROJECT_ROOT, Settings

COMPOSE = PROJECT_ROOT / "docker-compose.temporal.yml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
PINNED = re.compile(r"^[\w./-]+:\d[\w.-]*$")  # name:version, a version starting with a digit


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = yaml.safe_load(COMPOSE.read_text())["services"]
    return loaded


def test_the_services_of_a_deployment(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {
        "postgresql",
        "temporal",
        "temporal-setup",
        "temporal-ui",
        "worker",
        "gateway",
    }
    assert services["temporal"]["image"].startswith("temporalio/auto-setup:")
    assert services["temporal"]["environment"]["DB"] == "postgres12"
    assert services["temporal"]["environment"]["POSTGRES_SEEDS"] == "postgresql"
    assert services["temporal-ui"]["image"].startswith("temporalio/ui:")
    assert services["postgresql"]["image"].startswith("postgres:")
    # Worker and gateway are built from this repository's Dockerfile, one image.
    assert services["worker"]["build"] == services["gateway"]["build"] == "."
    assert services["worker"]["image"] == services["gateway"]["image"]
    assert services["worker"]["command"] == ["python", "worker.py"]
    assert services["gateway"]["command"] == ["python", "-m", "app"]


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert PINNED.match(service["image"]), f"{name}: {service['image']} is not pinned"
        assert not service["image"].endswith(":latest")
    base = re.search(r"^FROM (\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert base is not None and PINNED.match(base.group(1)), base


def test_ports(services: dict[str, dict[str, Any]]) -> None:
    assert services["temporal"]["ports"] == ["7233:7233"]
    assert services["temporal-ui"]["ports"] == ["8233:8080"]
    assert services["gateway"]["ports"] == ["8000:8000"]
    assert services["gateway"]["environment"]["DURABLE_AGENT_GATEWAY_PORT"] == "8000"
    assert services["gateway"]["environment"]["DURABLE_AGENT_GATEWAY_HOST"] == "0.0.0.0"
    assert "ports" not in services["worker"]  # it only dials out


def test_every_setting_named_exists(services: dict[str, dict[str, Any]]) -> None:
    named = {
        variable
        for service in services.values()
        for variable in (service.get("environment") or {})
        if variable.startswith("DURABLE_AGENT_")
    }
    named |= set(re.findall(r"DURABLE_AGENT_\w+", DOCKERFILE.read_text()))
    known = {f"DURABLE_AGENT_{field.upper()}" for field in Settings.model_fields}
    assert named, "no settings found"
    assert named <= known, named - known
    assert services["worker"]["environment"]["DURABLE_AGENT_TEMPORAL_ADDRESS"] == "temporal:7233"


def test_health_checks_and_start_order(services: dict[str, dict[str, Any]]) -> None:
    for name in ("postgresql", "temporal", "temporal-ui", "worker", "gateway"):
        assert services[name]["healthcheck"]["test"], name
    assert "/readyz" in " ".join(services["gateway"]["healthcheck"]["test"])
    assert services["temporal"]["depends_on"]["postgresql"]["condition"] == "service_healthy"
    assert services["temporal-setup"]["depends_on"]["temporal"]["condition"] == "service_healthy"
    for name in ("worker", "gateway"):
        assert services[name]["depends_on"]["temporal-setup"]["condition"] == (
            "service_completed_successfully"
        )


def test_search_attributes_registered(services: dict[str, dict[str, Any]]) -> None:
    script = " ".join(services["temporal-setup"]["command"])
    assert "search-attribute create" in script and "--type Keyword" in script
    for key in shared.SEARCH_ATTRIBUTES:
        assert key.name in script.split("do")[0], key.name


def test_stop_grace_outlasts_the_shutdown_grace() -> None:
    """Docker's SIGKILL must not cut a worker's or gateway's graceful shutdown short."""
    loaded = yaml.safe_load(COMPOSE.read_text())
    for name in ("worker", "gateway"):
        service = loaded["services"][name]
        stop_after = int(service["stop_grace_period"].removesuffix("s"))
        env = service["environment"]
        for variable in ("WORKER_SHUTDOWN_GRACE_S", "GATEWAY_SHUTDOWN_GRACE_S"):
            assert float(env[f"DURABLE_AGENT_{variable}"]) < stop_after
