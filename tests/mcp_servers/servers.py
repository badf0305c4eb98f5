"""The real MCP servers the tests use, and tools files that configure them.

`mcp-server-time` comes from PyPI (a dev dependency), the npm servers from
`tests/mcp_servers/package.json` (`make mcp-servers`). Nothing here is written by us.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

import pytest

from devstack.processes import free_port, port_open, start, stop, wait_until

HERE = Path(__file__).resolve().parent
NPM_BIN = HERE / "node_modules" / ".bin"
EVERYTHING = NPM_BIN / "mcp-server-everything"
FILESYSTEM = NPM_BIN / "mcp-server-filesystem"
TIME = Path(sys.executable).parent / "mcp-server-time"


def require_installed() -> None:
    missing = [str(p) for p in (EVERYTHING, FILESYSTEM, TIME) if not p.exists()]
    if missing:
        raise RuntimeError(
            f"MCP servers not installed ({', '.join(missing)}): run make mcp-servers"
        )


def tools_yaml(
    folder: Path, *, http_url: str | None = None, extra: str = "", files_dir: Path | None = None
) -> Path:
    """A tools file with the time server and server-everything over stdio, the filesystem
    server on `files_dir`, and server-everything over streamable HTTP when `http_url` is set."""
    require_installed()
    text = f"""
mcp_servers:
  - name: time
    command: [{TIME}]
  - name: everything
    command: [{EVERYTHING}, stdio]
"""
    if files_dir is not None:
        text += f"""
  - name: fs
    command: [{FILESYSTEM}, {files_dir}]
"""
    if http_url is not None:
        text += f"""
  - name: web
    url: "{http_url}"
    headers: {{X-Test-Token: "${{MCP_TEST_TOKEN}}"}}
"""
    path = folder / "tools.yaml"
    path.write_text(text + extra, encoding="utf-8")
    return path


@dataclass
class HttpServer:
    url: str
    proc: Popen[bytes]


@pytest.fixture(scope="session")
def everything_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """server-everything over streamable HTTP, as its own process."""
    require_installed()
    port = free_port()
    log = tmp_path_factory.mktemp("mcp-http") / "server.log"
    proc = start([str(EVERYTHING), "streamableHttp"], env={"PORT": str(port)}, log=log, cwd=HERE)
    wait_until(lambda: port_open("127.0.0.1", port), timeout=30, what="MCP server", proc=proc)
    yield HttpServer(f"http://127.0.0.1:{port}/mcp", proc)
    stop(proc)


def children_running(name: str, parent: int | None = None) -> list[int]:
    """Pids of processes whose command line holds `name` (children of `parent` if given)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if name in cmdline and (parent is None or ppid == parent):
            pids.append(int(entry.name))
    return pids


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
