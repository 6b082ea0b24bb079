# The Attune image: one image, every service (docs/operations.md "Containers").
# Not built or tested in this repository's CI; `make run-scaled` is the tested scaled setup.
#
#   docker build -t attune .
#   docker run -p 8080:8080 attune                 # embedded: SQLite + in-process bus
#   docker compose up                              # scaled: see docker-compose.yaml

# -- the web UI ---------------------------------------------------------------------------------
FROM python:3.11-slim AS ui
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Builds src/attune/api/ui_dist (the API's OpenAPI types are dumped by Python first).
RUN make web

# -- the runtime image --------------------------------------------------------------------------
FROM python:3.11-slim
# bash runs shell actions; tini reaps the orphans actions leave behind and forwards signals.
RUN apt-get update && apt-get install -y --no-install-recommends bash tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 attune
WORKDIR /app
COPY --from=ui /src /app
RUN pip install --no-cache-dir -c constraints.txt . && rm -rf /app/web/node_modules
USER attune
ENV ATTUNE__DATA_DIR=/var/lib/attune \
    ATTUNE__PACKS_BASE_DIR=/app/packs \
    PYTHONUNBUFFERED=1
VOLUME ["/var/lib/attune"]
EXPOSE 8080 8081
ENTRYPOINT ["tini", "--", "attune"]
CMD ["server"]
