# The CDS Hooks service as a container image. Build: docker build -t cds-breast-cancer-followup .
# It runs as an unprivileged user (uid 10001) and requires client JWTs: mount a trusted-clients
# file and point CDS_TRUSTED_CLIENTS_FILE at it, and set CDS_PATIENT_HASH_KEY to a secret
# (`cds secrets generate`); it refuses to start with the public default. The operator's pages
# are off (CDS_PAGES=false) unless set; see docs/deployment.md.

# --- build: a virtualenv holding the dependencies and the package ----------------------------
FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src

# Dependencies first, pinned with their hashes (requirements.lock, written by `make lock`):
# a change to the source reuses this layer, and every build installs the same versions.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock

COPY pyproject.toml README.md ./
COPY cds/ cds/
RUN pip install --no-cache-dir --no-deps .

# --- run: the virtualenv, the knowledge and the card content ---------------------------------
FROM python:3.11-slim-bookworm

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CDS_KNOWLEDGE_DIR=/app/knowledge \
    CDS_CARDS_DIR=/app/cards \
    CDS_DATA_DIR=/app/var \
    CDS_REQUIRE_JWT=true \
    CDS_REQUIRE_REVIEWED_RULES=true \
    CDS_PAGES=false \
    CDS_PORT=8080

RUN groupadd --system --gid 10001 cds \
 && useradd --system --uid 10001 --gid cds --home-dir /app --no-create-home --shell /usr/sbin/nologin cds
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY knowledge/ knowledge/
COPY cards/ cards/
RUN mkdir -p /app/var && chown cds:cds /app/var

USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CDS_PORT', '8080'), timeout=4).status == 200 else 1)"]
CMD ["cds", "serve", "--host", "0.0.0.0"]
