"""`@copilotkit/aimock` (npm, `tests/aimock/package.json`, installed by `make aimock`): a
maintained mock of the OpenAI chat completions protocol that we did not write, as a real process.

Tests script it with aimock's own fixtures (`content`, `toolCalls`, `usage`, `error` + `status` +
`retryAfter`, `chaos: {malformedRate, disconnectRate, latencyMs}`), posted to its control API.
`AiMock.script(intent=[...], step=[...])` matches them to the pipeline's stages by the
`[stage: <name>]` tag that starts each stage's system prompt, and to the order of that stage's
requests (`sequenceIndex`): the n-th request of a stage gets the n-th fixture, later ones the
stage's default (`DEFAULTS`). Its journal is what the tests assert on.

What stays with our own double (tests/fake_openai.py): the moment the first streamed chunk left
the server, which `bench.ttft` measures against (aimock's journal records when a request came,
not when its chunks went), and chunks of exactly the sizes a test names (aimock cuts a text into
chunks of one size).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.processes import free_port, port_open, start, stop, wait_until

HERE = Path(__file__).resolve().parent
CLI = HERE / "node_modules" / "@copilotkit" / "aimock" / "dist" / "cli.js"
# The key aimock accepts (AIMOCK_API_KEYS); any other is refused with a 401.
AIMOCK_KEY = "sk-test-do-not-leak-7f3a9c"

DEFAULTS: dict[str, dict[str, Any]] = {
    "intent": {"content": {"intent": "question", "answer": None}},
    "context": {"content": {"sufficiency": "SUFFICIENT", "question": None}},
    "plan": {"content": {"steps": ["Write the answer"]}},
    "step": {"content": "The answer."},
    "reflect": {"content": {"score": 0.9, "critique": "Good."}},
    "complete": {"content": "Completed."},
}
_STAGE = re.compile(r"\[stage: (\w+)\]")


def _fixture(stage: str, response: dict[str, Any], index: int | None) -> dict[str, Any]:
    """One aimock fixture; a `content` object is sent as its JSON text, and the fixture-level
    fields (`chaos`, `chunkSize`, `latency`, `disconnectAfterMs`) move out of the response."""
    response = dict(response)
    if "error" not in response:  # every answer counts 100 tokens in, 20 out unless it says
        response.setdefault("usage", {"prompt_tokens": 100, "completion_tokens": 20})
    if isinstance(response.get("content"), dict | list):
        response["content"] = json.dumps(response["content"])
    fixture: dict[str, Any] = {"match": {"systemMessage": f"[stage: {stage}]"}}
    if index is not None:
        fixture["match"]["sequenceIndex"] = index
    for key in ("chaos", "chunkSize", "latency", "disconnectAfterMs", "truncateAfterChunks"):
        if key in response:
            fixture[key] = response.pop(key)
    fixture["response"] = response
    return fixture


@dataclass
class AiMock:
    base_url: str

    def _post(self, path: str, body: Any = None) -> Any:
        response = httpx.post(
            f"{self.base_url}{path}",
            json=body,
            headers={"authorization": f"Bearer {AIMOCK_KEY}"},
            timeout=10,
        )
        if response.status_code != 200:
            raise AssertionError(f"aimock refused {path}: {response.text}")
        return response.json()

    def script(self, **stages: list[dict[str, Any]]) -> None:
        """Replace every fixture: each stage's responses in order, then the defaults."""
        self._post("/__aimock/reset")
        fixtures = [
            _fixture(stage, response, index)
            for stage, responses in stages.items()
            for index, response in enumerate(responses)
        ]
        fixtures += [_fixture(stage, response, None) for stage, response in DEFAULTS.items()]
        self._post("/__aimock/fixtures", {"fixtures": fixtures})

    def requests(self, stage: str | None = None) -> list[dict[str, Any]]:
        """The chat completions requests aimock answered, oldest first: stage, body, status."""
        journal = httpx.get(
            f"{self.base_url}/__aimock/journal",
            params={"path": "/v1/chat/completions", "limit": 1000},
            headers={"authorization": f"Bearer {AIMOCK_KEY}"},
            timeout=10,
        ).json()
        found = []
        for entry in journal:
            body = entry["body"]
            system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
            match = _STAGE.search(system or "")
            name = match.group(1) if match else "complete"
            if stage is None or name == stage:
                found.append({"stage": name, "body": body, "status": entry["response"]["status"]})
        return found


@pytest.fixture(scope="session")
def aimock_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AiMock]:
    if not CLI.exists():
        raise RuntimeError(f"aimock is not installed ({CLI}): run make aimock")
    folder = tmp_path_factory.mktemp("aimock")
    (folder / "fixtures").mkdir()
    (folder / "fixtures" / "none.json").write_text('{"fixtures": []}')
    port = free_port()
    proc = start(
        [
            "node",
            str(CLI),
            "--port",
            str(port),
            "--fixtures",
            str(folder / "fixtures"),
            "--chunk-size",
            "4",
            "--log-level",
            "warn",
        ],
        env={"AIMOCK_API_KEYS": AIMOCK_KEY},
        log=folder / "aimock.log",
    )
    wait_until(lambda: port_open("127.0.0.1", port), timeout=30, what="aimock", proc=proc)
    yield AiMock(f"http://127.0.0.1:{port}")
    stop(proc)


@pytest.fixture
def aimock(aimock_server: AiMock) -> AiMock:
    aimock_server.script()
    return aimock_server
