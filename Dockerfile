# syntax=docker/dockerfile:1
# crm-health-agent: scheduled runs with /healthz, /readyz and /metrics on :9464.
#   docker build -t crm-health-agent .
#   docker run -v health-data:/data -v ./agent.yaml:/etc/health-agent/agent.yaml:ro --env-file .env crm-health-agent

# --- builder: every dependency as a wheel, installed into a virtual environment --------------------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /build
COPY pyproject.toml constraints.txt README.md ./
COPY core ./core
COPY agent ./agent
COPY connectors ./connectors
COPY store ./store
COPY scoring ./scoring
COPY writeback ./writeback
COPY sandbox ./sandbox

RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels --constraint constraints.txt . \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels /wheels/*.whl

# --- runtime: the virtual environment only; no compilers, no pip cache, not root ------------------
FROM python:3.11-slim AS runtime

LABEL org.opencontainers.image.title="crm-health-agent" \
      org.opencontainers.image.description="Explainable B2B customer-health scores, flags and tasks inside Salesforce and HubSpot" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 10001 agent \
 && useradd --system --uid 10001 --gid agent --home-dir /srv/health-agent --shell /usr/sbin/nologin agent \
 && mkdir -p /srv/health-agent /data /etc/health-agent \
 && ln -s /data /srv/health-agent/data \
 && chown -R agent:agent /srv/health-agent /data

COPY --from=builder /opt/venv /opt/venv
COPY --chown=agent:agent config/agent.example.yaml /etc/health-agent/agent.yaml

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HEALTH_AGENT_CONFIG=/etc/health-agent/agent.yaml \
    HEALTH_DATABASE_URL=sqlite:////data/health-agent.db \
    HEALTH_AGENT_LISTEN=0.0.0.0:9464 \
    LOG_FORMAT=json

# ./data (reports) resolves to the /data volume through the symlink.
WORKDIR /srv/health-agent
VOLUME ["/data"]
USER 10001:10001
EXPOSE 9464

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4)"]

ENTRYPOINT ["health-agent"]
CMD ["start"]
