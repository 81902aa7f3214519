# The Torah Study service: the web app built with Node.js, served by the
# Python package. Build with `docker build -t torah-study .`; add
# `--build-arg LOCAL_LLM=1` to compile the local answer model runtime
# (llama-cpp-python, about ten minutes on two cores). docs/deploy.md has the
# compose set-up with PostgreSQL.

# The web app, built by the same script as scripts/bootstrap.sh runs.
FROM node:20-slim AS web
WORKDIR /src
COPY scripts/build-web.sh scripts/build-web.sh
COPY web/ web/
RUN scripts/build-web.sh

FROM python:3.11-slim AS service
ARG LOCAL_LLM=0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# hunspell-he: the Hebrew dictionary of the PostgreSQL text search, which
# the retrieval store and `torah-study db setup-search` copy into a server
# whose share folder this container can write (the compose database image,
# deploy/postgres, installs its own copy). A C and C++ toolchain is
# installed only to compile llama-cpp-python.
RUN set -eux; \
    apt-get update; \
    packages="hunspell-he"; \
    if [ "$LOCAL_LLM" = "1" ]; then packages="$packages build-essential cmake"; fi; \
    apt-get install -y --no-install-recommends $packages; \
    rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY src/ src/
# The same install command as scripts/bootstrap.sh, without the test tools.
# The install is editable, so the service finds the web app in /app/web/out
# (web/out of the checkout it is installed from) and the migrations in src/.
RUN set -eux; \
    python -m pip install --quiet --upgrade pip; \
    if [ "$LOCAL_LLM" = "1" ]; then \
        export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"; \
        python -m pip install --quiet -e ".[local-llm]"; \
    else \
        python -m pip install --quiet -e "."; \
    fi
COPY --from=web /src/web/out/ /app/web/out/

RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/torah torah \
    && mkdir -p /data \
    && chown torah:torah /data

ENV TORAH_STUDY_DATA_DIR=/data \
    TORAH_STUDY_WEB_DIR=/app/web/out \
    TORAH_STUDY_HOST=0.0.0.0 \
    TORAH_STUDY_PORT=8000
VOLUME ["/data"]
USER torah
EXPOSE 8000

# The first start loads the embedding model and, with LOCAL_LLM=1, the
# answer model, so the start period is long.
HEALTHCHECK --interval=30s --timeout=10s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TORAH_STUDY_PORT', '8000') + '/health', timeout=8)"]

CMD ["torah-study", "serve"]
