"""`durable-agent run "question"`, `durable-agent attach <run_id>`, `durable-agent ls`,
`durable-agent tools`, `durable-agent agents`; `run --agent NAME` runs a catalog agent.

Talks to the gateway over HTTP only (DURABLE_AGENT_URL, DURABLE_AGENT_API_KEY). `run` starts a
run and follows its events; when the run asks a question, the answer is read from the prompt
(or from piped stdin), and a tool call that needs approval is approved or denied with y/n.
Ctrl-C detaches without touching the run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

import httpx
from httpx_sse import connect_sse

from config import ClientSettings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DETACHED = 0, 1, 2, 130


class ClientError(Exception):
    """The gateway answered with an error (its JSON message is the text)."""


class Gateway:
    def __init__(self, url: str, api_key: str | None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=30)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach the gateway at {self.http.base_url}: {exc}") from None
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:200]
            raise ClientError(f"{response.status_code}: {message}")
        return response.json()


class Printer:
    """Event lines; on a terminal, a transient progress line while an activity runs."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.transient = False

    def line(self, text: str) -> None:
        self._clear()
        self.out.write(text + "\n")
        self.out.flush()

    def progress(self, text: str) -> None:
        if not self.tty:
            self.line(text)
            return
        self._clear()
        self.out.write(f"\r⏳ {text}")
        self.out.flush()
        self.transient = True

    def _clear(self) -> None:
        if self.transient:
            self.out.write("\r\033[K")
            self.transient = False


def follow(gateway: Gateway, run_id: str, out: TextIO, answers: TextIO) -> int:
    """Print the run's events until its result; answer its questions from `answers`."""
    printer = Printer(out)
    last_id: str | None = None
    while True:
        headers = {"Last-Event-ID": last_id} if last_id is not None else {}
        try:
            with connect_sse(
                gateway.http,
                "GET",
                f"/api/v1/runs/{run_id}/events",
                headers=headers,
                timeout=httpx.Timeout(30, read=None),
            ) as source:
                if source.response.status_code >= 400:
                    source.response.read()
                    gateway_error = source.response.json().get("error", {})
                    raise ClientError(
                        f"{source.response.status_code}: {gateway_error.get('message')}"
                    )
                for sse in source.iter_sse():
                    if not sse.data or not sse.id:
                        continue  # an event cut off by a dropped connection (not dispatched)
                    last_id = sse.id
                    event = json.loads(sse.data)
                    done = _show(event, printer)
                    if done is not None:
                        return done
                    if event["type"] == "question":
                        data = event["data"]
                        node_id = data.get("node_id")
                        _answer(gateway, run_id, data["question"], node_id, printer, answers)
                    elif event["type"] == "approval" and event["data"]["status"] == "pending":
                        _decide(gateway, run_id, event["data"], printer, answers)
        except (httpx.TransportError, httpx.RemoteProtocolError):
            printer.progress("connection lost; reconnecting…")
            time.sleep(1)


def _show(event: dict[str, Any], printer: Printer) -> int | None:
    kind, data = event["type"], event["data"]
    if kind == "stage":
        printer.line(f"stage: {data['stage']}")
    elif kind == "node":
        if data["status"] == "executing":
            printer.progress(f"{data['name']} running…")
        elif data["status"] == "failed":
            printer.line(f"✗ {data['name']} failed: {data.get('error')}")
    elif kind == "tool_call":
        mark = "✓" if data.get("ok") else "✗"
        printer.line(f"{mark} tool {data['name']}: {str(data.get('result', ''))[:120]}")
    elif kind == "approval" and data["status"] != "pending":
        mark = "✓" if data["status"] == "approved" else "✗"
        reason = f" ({data['reason']})" if data.get("reason") else ""
        printer.line(f"{mark} {data['approval_id']} {data['tool']}: {data['status']}{reason}")
    elif kind == "status" and data["status"] in ("paused",):
        printer.line("run paused")
    elif kind == "result":
        if data["status"] == "completed":
            printer.line(f"\n{data.get('answer') or ''}")
            return EXIT_OK
        errors = "; ".join(data.get("errors") or [])
        printer.line(f"run {data['status']}{': ' + errors if errors else ''}")
        return EXIT_FAILED
    return None


def _answer(
    gateway: Gateway,
    run_id: str,
    question: str,
    node_id: str | None,
    printer: Printer,
    answers: TextIO,
) -> None:
    state = gateway.call("GET", f"/api/v1/runs/{run_id}")
    if node_id is not None:  # a graph node's question: open while other nodes run, too
        asked = {(q["node_id"], q["question"]) for q in state.get("questions") or []}
        if (node_id, question) not in asked:
            return  # an old question, already answered (we are replaying the stream)
    elif state["status"] != "waiting_for_input" or state.get("question") != question:
        return
    printer.line(f"\n? {question}")
    while True:
        printer.out.write("> ")
        printer.out.flush()
        text = answers.readline()
        if text == "":
            raise ClientError(
                f"no answer on stdin; the run waits. Answer later with: "
                f"durable-agent attach {run_id}"
            )
        if not answers.isatty():
            printer.out.write(text if text.endswith("\n") else text + "\n")  # show piped answers
        if text.strip():
            break
    body = {"text": text.strip()} | ({"node_id": node_id} if node_id else {})
    gateway.call("POST", f"/api/v1/runs/{run_id}/input", json=body)


def _read_line(printer: Printer, answers: TextIO, prompt: str, run_id: str) -> str:
    printer.out.write(prompt)
    printer.out.flush()
    text = answers.readline()
    if text == "":
        raise ClientError(
            f"no answer on stdin; the run waits. Answer later with: durable-agent attach {run_id}"
        )
    if not answers.isatty():
        printer.out.write(text if text.endswith("\n") else text + "\n")  # show piped answers
    return text.strip()


def _decide(
    gateway: Gateway, run_id: str, data: dict[str, Any], printer: Printer, answers: TextIO
) -> None:
    state = gateway.call("GET", f"/api/v1/runs/{run_id}")
    pending = {a["id"] for a in state.get("approvals", []) if a["status"] == "pending"}
    if data["approval_id"] not in pending:
        return  # decided already (we are replaying the stream)
    arguments = json.dumps(data.get("arguments") or {}, ensure_ascii=False)
    printer.line(f"\n? {data['tool']} wants to run with {arguments[:500]}")
    while True:
        choice = _read_line(printer, answers, "approve? [y/n] ", run_id).lower()
        if choice in ("y", "yes", "n", "no"):
            break
    body: dict[str, Any] = {"approve": choice.startswith("y")}
    if not body["approve"]:
        body["reason"] = _read_line(printer, answers, "reason (optional): ", run_id)
    gateway.call("POST", f"/api/v1/runs/{run_id}/approvals/{data['approval_id']}", json=body)


def cmd_run(gateway: Gateway, args: argparse.Namespace) -> int:
    body = {"query": args.query}
    if args.agent:
        body["agent"] = args.agent
    created = gateway.call("POST", "/api/v1/runs", json=body)
    run_id = created["run_id"]
    sys.stderr.write(f"run {run_id}\n")
    return _attached(gateway, run_id)


def cmd_attach(gateway: Gateway, args: argparse.Namespace) -> int:
    return _attached(gateway, args.run_id)


def _attached(gateway: Gateway, run_id: str) -> int:
    try:
        return follow(gateway, run_id, sys.stdout, sys.stdin)
    except KeyboardInterrupt:
        sys.stderr.write(
            f"\ndetached; the run goes on. Re-attach with: durable-agent attach {run_id}\n"
        )
        return EXIT_DETACHED


def cmd_ls(gateway: Gateway, args: argparse.Namespace) -> int:
    params = {"page_size": args.limit}
    if args.status:
        params["status"] = args.status
    listing = gateway.call("GET", "/api/v1/runs", params=params)
    sys.stdout.write(f"{'RUN ID':40} {'STATUS':18} {'STAGE':8} CREATED\n")
    for run in listing["runs"]:
        sys.stdout.write(
            f"{run['run_id']:40} {run['status']:18} {run.get('stage') or '-':8} "
            f"{run['created_at']}\n"
        )
    return EXIT_OK


def cmd_tools(gateway: Gateway, args: argparse.Namespace) -> int:
    listing = gateway.call("GET", "/api/v1/tools")
    if args.json:
        sys.stdout.write(json.dumps(listing, indent=2) + "\n")
        return EXIT_OK
    sys.stdout.write(f"{'TOOL':36} {'SOURCE':16} {'APPROVAL':8} DESCRIPTION\n")
    for tool in listing["tools"]:
        description = " ".join(tool["description"].split())[:70]
        sys.stdout.write(
            f"{tool['name']:36} {tool['source']:16} {tool['approval']:8} {description}\n"
        )
    for server, reason in listing.get("unavailable", {}).items():
        sys.stdout.write(f"(MCP server {server} unavailable: {reason})\n")
    return EXIT_OK


def cmd_agents(gateway: Gateway, args: argparse.Namespace) -> int:
    listing = gateway.call("GET", "/api/v1/agents")
    if args.json:
        sys.stdout.write(json.dumps(listing, indent=2) + "\n")
        return EXIT_OK
    sys.stdout.write(f"{'AGENT':20} {'MODEL':20} {'TOOLS':30} DESCRIPTION\n")
    for agent in listing:
        tools = "(all)" if agent["tools"] is None else ", ".join(agent["tools"]) or "(none)"
        description = " ".join(agent["description"].split())[:60]
        model = agent["model"] or "(default)"
        sys.stdout.write(f"{agent['name']:20} {model:20} {tools[:30]:30} {description}\n")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    settings = ClientSettings()
    parser = argparse.ArgumentParser(prog="durable-agent", description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=settings.url, help="gateway URL (DURABLE_AGENT_URL)")
    parser.add_argument("--api-key", default=settings.api_key, help="(DURABLE_AGENT_API_KEY)")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start a run and follow it")
    run.add_argument("query")
    run.add_argument("--agent", help="the catalog agent to run (default: `default`)")
    run.set_defaults(func=cmd_run)
    attach = sub.add_parser("attach", help="follow a run (answer its question if it asks one)")
    attach.add_argument("run_id")
    attach.set_defaults(func=cmd_attach)
    ls = sub.add_parser("ls", help="list runs, newest first")
    ls.add_argument("--status", help="only runs with this status")
    ls.add_argument("--limit", type=int, default=20)
    ls.set_defaults(func=cmd_ls)
    tools = sub.add_parser("tools", help="list every tool runs may call")
    tools.add_argument("--json", action="store_true", help="the gateway's JSON answer")
    tools.set_defaults(func=cmd_tools)
    agents = sub.add_parser("agents", help="list the agent catalog")
    agents.add_argument("--json", action="store_true", help="the gateway's JSON answer")
    agents.set_defaults(func=cmd_agents)
    args = parser.parse_args(argv)
    gateway = Gateway(args.url, args.api_key)
    try:
        code: int = args.func(gateway, args)
        return code
    except ClientError as exc:
        sys.stderr.write(f"durable-agent: {exc}\n")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
