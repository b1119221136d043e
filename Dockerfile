# fal-openai-proxy as a container image. Build from the repository root:
#   docker build -t fal-openai-proxy:0.1.0 .
# Operational details (settings, signals, probes, sizing): deploy/README.md.
#
# The base is pinned to a patch release. To pin the exact bytes too, resolve the digest where a
# registry is reachable (`docker buildx imagetools inspect python:3.11.14-slim-bookworm`) and
# build with --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>.
# (The build machines of this project reach no container registry, so no digest is recorded.)
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- builder: the project's wheel, then a virtualenv with it and its dependencies ----------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# Every dependency ships manylinux wheels (uvloop, httptools, orjson, pydantic-core, and av
# with its FFmpeg libraries), so no compiler is needed here either.
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir /wheels/*.whl \
    && /opt/venv/bin/pip uninstall --yes pip \
    && rm -rf /wheels

# --- runtime: the virtualenv on a clean slim base, nothing else ----------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="fal-openai-proxy" \
      org.opencontainers.image.description="An OpenAI-compatible HTTP API in front of fal.ai's language models" \
      org.opencontainers.image.licenses="MIT"

# A fixed numeric id, so that Kubernetes' runAsNonRoot can check it without a passwd lookup.
RUN groupadd --system --gid 10001 proxy \
    && useradd --system --uid 10001 --gid proxy --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin proxy

COPY --from=builder /opt/venv /opt/venv

# The accounts database (docs/accounts.md): by default a SQLite file on this volume, which
# outlives the container. With replicas, set DATABASE_URL to one Postgres for all of them
# (deploy/compose.yaml, deploy/k8s/overlays/managed-postgres); DATABASE_URL=none turns it off.
RUN mkdir /data && chown 10001:10001 /data
VOLUME ["/data"]

# HOST=0.0.0.0 so that the port can be published. By the secure-by-default rule the server then
# refuses to start with FAL_KEY but without API_KEY (set API_KEY, or ALLOW_UNAUTHENTICATED=1
# behind your own auth); without FAL_KEY it runs in pass-through mode. No secret is baked in:
# FAL_KEY and API_KEY come from the orchestrator at run time.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATABASE_URL=sqlite:////data/fal-openai-proxy.db

# An empty working directory: the server reads `.env` from here, and none is shipped.
WORKDIR /app
USER 10001:10001
EXPOSE 3000

# Liveness only (/healthz); readiness (/readyz, 503 while draining) is the load balancer's.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '3000') + '/healthz', timeout=2)"]

# Exec form: the server is PID 1 and gets SIGTERM itself (uvicorn installs its handler, so the
# kernel's PID-1 rule of ignoring unhandled signals does not apply); it drains for DRAIN_TIMEOUT
# seconds, then exits 0. Give the orchestrator a longer grace period than DRAIN_TIMEOUT.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/venv/bin/fal-openai-proxy"]
CMD []
