# Livermore: one image for every service (`docker run IMAGE <command>`, e.g. `ingestor --exchange
# binance`). Built by deploy/compose/docker-compose.yml; see docs/running.md.

# ---- build: install the project and its dependencies into a virtual environment -------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/livermore
WORKDIR /src
# Dependencies first (from pyproject alone), so code edits do not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p libs/livermore_common services \
 && touch libs/livermore_common/__init__.py services/__init__.py \
 && /opt/livermore/bin/pip install . \
 && /opt/livermore/bin/pip uninstall -y livermore
COPY libs ./libs
COPY services ./services
RUN /opt/livermore/bin/pip install --no-deps .

# ---- runtime: the virtual environment and the migrations, run as an unprivileged user --------
FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin livermore
COPY --from=build /opt/livermore /opt/livermore
COPY schema /app/schema
ENV PATH=/opt/livermore/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LIVERMORE_MIGRATIONS_DIR=/app/schema/atlas/migrations \
    LIVERMORE_LOG_FORMAT=json
WORKDIR /app
USER livermore
EXPOSE 8080
ENTRYPOINT ["livermore"]
CMD ["--help"]
