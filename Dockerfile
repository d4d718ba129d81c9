# MMR in one container: supervisord runs the three services (and, with BROKER=sim, the simulated gateway).
# Two stages: the venv is built from pyproject.toml (dependencies first, so code changes reuse that layer),
# then copied into a slim runtime image that runs as the non-root user `mmr`.
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
WORKDIR /app
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
# The dependency list of pyproject.toml alone: this layer is rebuilt only when pyproject.toml changes.
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY trader ./trader
# Editable: `./docker.sh -s` copies changed code into /app of the running container and restarts it.
RUN pip install --no-deps -e .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    MMR_HOME=/data \
    MMR_CONFIG_DEFAULTS=/app/config_defaults \
    BIND_ADDRESS=0.0.0.0
RUN groupadd --gid 10001 mmr \
    && useradd --uid 10001 --gid mmr --home-dir /home/mmr --create-home --shell /usr/sbin/nologin mmr \
    && mkdir -p /data \
    && chown mmr:mmr /data
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
COPY config_defaults ./config_defaults
COPY strategies ./strategies
USER 10001:10001

# Config, keys, DuckDB stores, logs and reports (a named volume in docker-compose.yml).
VOLUME ["/data"]
EXPOSE 28001 28002 28003 28005 28006
# `mmr --json status` exits 1 when any service is down: the container is healthy only when all answer.
HEALTHCHECK --interval=30s --timeout=10s --start-period=40s --retries=3 \
    CMD ["mmr", "--json", "status", "--timeout", "5"]
CMD ["mmr", "up", "--foreground"]
