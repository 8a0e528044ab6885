# syntax=docker/dockerfile:1
#
# genrec image: one image runs every role (migrate, init-model, api, worker);
# docker-compose.yml picks the role with the command. See docs/deployment.md.
#
#   docker build -t genrec .                                   # CPU torch (default)
#   docker build -t genrec:cuda \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .   # CUDA torch
#
# The CUDA wheels of PyTorch carry their own CUDA runtime libraries (the
# nvidia-* wheels), so the same slim base serves GPU hosts: only the host's
# NVIDIA driver is needed, which the NVIDIA container toolkit mounts in when
# compose reserves a GPU (the `gpu` profile). No data set and no model
# artifact is ever baked in: data come from a read-only mount or the download
# cache volume, artifacts live in the store volume.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------
# builder: a self-contained virtual environment in /opt/venv
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# torch first, from the index the build argument names: pyproject pins
# torch==2.13.0, which a local build (2.13.0+cpu / +cu128) satisfies, so the
# project install below keeps it instead of pulling PyPI's default build.
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

WORKDIR /src
# The dependencies in a layer of their own, from pyproject.toml and the versions
# `make lock` recorded (constraints.txt) alone: a source edit rebuilds only the
# layers below it, not this (slow) one, and every build installs the same
# versions the tests ran with. tomllib is the standard library's (Python 3.11+).
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt -c constraints.txt
COPY README.md ./
COPY models_store ./models_store
COPY training ./training
COPY app ./app
# A regular (non-editable) install of the project itself, its dependencies already
# there (pip check proves it): the runtime stage copies only /opt/venv.
RUN pip install --no-deps . && pip check

# ---------------------------------------------------------------------------
# runtime: the venv, a non-root user, nothing else
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
LABEL org.opencontainers.image.title="genrec" \
      org.opencontainers.image.description="Recommendations from deep generative collaborative-filtering models" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.genrec.torch-index-url="${TORCH_INDEX_URL}"

# A fixed uid/gid so volume ownership is stable across rebuilds.
RUN groupadd --system --gid 10001 genrec \
    && useradd --system --uid 10001 --gid genrec --home-dir /var/lib/genrec \
       --shell /usr/sbin/nologin genrec \
    && mkdir -p /var/lib/genrec/store /var/cache/genrec /data \
    && chown -R genrec:genrec /var/lib/genrec /var/cache/genrec

COPY --from=builder /opt/venv /opt/venv

# The paths exist in the image and belong to genrec, so named volumes mounted
# on them start with that ownership. Without compose (a plain `docker run`)
# the service runs embedded: SQLite under the home directory, in-process
# cache; compose points GENREC_DATABASE_URL / GENREC_REDIS_URL at the services.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GENREC_STORE_DIR=/var/lib/genrec/store \
    GENREC_DATABASE_URL=sqlite:////var/lib/genrec/genrec.db \
    GENREC_CACHE_DIR=/var/cache/genrec \
    GENREC_DATA_DIR=/data

USER genrec:genrec
WORKDIR /var/lib/genrec
EXPOSE 8000

# No HEALTHCHECK here: the image also runs migrate, init-model and worker,
# which serve no HTTP. docker-compose.yml checks the api on /readyz.

ENTRYPOINT ["genrec"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
