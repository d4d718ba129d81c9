# MMR in one container: supervisor runs the simulated gateway and the three services.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MMR_HOME=/data \
    BIND_ADDRESS=0.0.0.0

WORKDIR /app
COPY pyproject.toml README.md ./
COPY trader ./trader
COPY config_defaults ./config_defaults
COPY strategies ./strategies
RUN pip install --no-cache-dir -e .

VOLUME ["/data"]
EXPOSE 28001 28002 28003 28005 28006
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["sh", "-c", "mmr --json status | grep -q '\"all_up\":true'"]
CMD ["mmr", "up", "--foreground"]
