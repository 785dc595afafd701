# The smartcity image: Node 20 for the worker and the CLI, Java 17 and Python 3.11 with PySpark 3.5
# for the Spark jobs it starts. docker-compose.yml runs the worker, the one-shot `pipeline start`
# and the Spark master and workers from it: executors must run the driver's Python minor version,
# find PySpark's Python at the path the driver names (PYSPARK_PYTHON) and import smartcity_spark,
# which no stock Spark image offers. Build it with `docker compose build`.
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

# Debian 12 ships Python 3.11 and OpenJDK 17, the versions scripts/setup.sh expects next to Node.
FROM ${NODE_IMAGE} AS base
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates curl openjdk-17-jre-headless procps python3 python3-venv tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app

# The pinned tools come from the project's own installer, as on a developer machine; Maven is only
# needed here, to fetch jars.
FROM base AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends maven \
 && rm -rf /var/lib/apt/lists/*
# Only the pinned specs first, so this slow layer is rebuilt when a version changes, not the code.
COPY package.json package-lock.json ./
COPY scripts/ scripts/
COPY spark/jars-pom.xml spark/connect-pom.xml spark/iceberg-pom.xml spark/
# The image needs no Kafka broker jars (Kafka runs in its own container) nor Maven's cache.
RUN bash scripts/setup.sh \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf .tools/kafka .tools/m2
COPY . .
# Prebuilt workflow bundle: the worker starts without webpack. It also proves, at build time, that
# the CLI loads without the pruned dev dependencies.
RUN node --import tsx cli/main.ts worker --build-bundle

FROM base
# The worker's metrics (SMARTCITY_METRICS_PORT) must be reachable from Prometheus's container.
ENV SPARK_HOME=/app/.tools/venv/lib/python3.11/site-packages/pyspark \
    PATH=/app/.tools/venv/bin:$PATH \
    PYTHONPATH=/app/spark \
    SMARTCITY_METRICS_HOST=0.0.0.0
COPY --from=build --chown=node:node /app /app
# Mount points of the compose volumes, owned by the image's user: Docker gives a new named volume
# the owner of the directory it is first mounted on.
RUN ln -s /app/bin/smartcity /usr/local/bin/smartcity \
 && mkdir -p /data /lake/checkpoints \
 && chown -R node:node /data /lake
USER node
ENTRYPOINT ["tini", "--"]
CMD ["smartcity", "worker"]
