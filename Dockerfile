#
# percolate-reading: one image, three roles (gateway | worker | operator), picked at run
# time by PERCOLATE_READING_GATEWAY_MODE / _WORKER_MODE / _OPERATOR_MODE (see
# `percolate-reading run --help`). Builds with Docker 23+ (BuildKit, no frontend image is
# fetched) and with buildah/podman (pass --format docker, or the HEALTHCHECK is dropped).
#
# Base image, pinned by digest (a build argument, so a mirror or a local copy can be passed):
#   BASE_IMAGE  python:3.11-slim-bookworm (Docker Hub, multi-arch index digest). Refresh with
#               `docker buildx imagetools inspect python:3.11-slim-bookworm` (or
#               `skopeo inspect`) and update the digest here and in bench/results/image.md.
# Any Debian/Ubuntu base with python3 and python3-venv works, including an apt-installed
# Python (PEP 668): everything is installed into a venv at /opt/percolate, never into the
# base interpreter. For CUDA workers, build on the same slim base with the `cuda` extra
# (cuBLAS and cuDNN as NVIDIA's wheels; their library directories are found at build time).
#
# Every dependency comes from uv.lock, hash-checked: `uv export --frozen` writes the locked
# requirements of EXTRAS, `uv pip install --require-hashes --no-deps` installs exactly those.
# uv itself comes from requirements/bootstrap.txt, pinned by hash.
#
# CPU image (gateway, PDF/XLSX workers, operator; the default):
#   docker build -t percolate-reading:cpu .
# It leaves out what the lock would install but the CPU roles never load (PRUNE): PyMuPDF
# 2.0 depends on pymupdf-layout and pymupdf4llm (with onnxruntime, numpy, networkx, psutil),
# which percolate-reading does not use (parse/providers/mupdf.py keeps them unloaded).
# Audio/OCR worker image (faster-whisper with the bundled Whisper base, RapidOCR):
#   docker build -t percolate-reading:audio-ocr \
#     --build-arg EXTRAS=server,operator,audio,audio-model,ocr \
#     --build-arg PRUNE="pymupdf-layout pymupdf4llm" --build-arg WHISPER_MODEL=base .
# GPU worker: as audio/OCR with EXTRAS=server,audio,audio-model,ocr,cuda; the host needs the
# NVIDIA driver and container toolkit; run it with PERCOLATE_READING_DEVICE=cuda.
#
# Models are never downloaded, at build or run time: Whisper comes from the audio-model extra
# (WHISPER_MODEL=base) or from the /models volume (WHISPER_MODEL=/models/whisper-base, a
# CTranslate2 model directory); RapidOCR's models ship in its wheel.
#
# Writable paths: /data (PERCOLATE_READING_DATA_DIR) and /tmp (sandbox scratch, spooled
# uploads) are volumes, so the root filesystem can be read-only (--read-only, Kubernetes
# readOnlyRootFilesystem); /models is meant to be mounted read-only.

ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

# ---------------------------------------------------------------------------------------
# builder: a venv at /opt/percolate holding the locked dependencies and the project
FROM ${BASE_IMAGE} AS builder
ARG EXTRAS=server,operator
ARG PRUNE="pymupdf-layout pymupdf4llm onnxruntime numpy networkx psutil"
# UV_SYSTEM_CERTS: the system trust store (corporate proxies); UV_LINK_MODE=copy: the cache is
# a separate mount.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_SYSTEM_CERTS=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1
WORKDIR /src
COPY requirements/bootstrap.txt requirements/bootstrap.txt
RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -m venv /opt/uv \
    && /opt/uv/bin/pip install -q --require-hashes --no-deps -r requirements/bootstrap.txt
COPY pyproject.toml uv.lock README.md ./
# The locked, hash-pinned requirements of EXTRAS, each PRUNE package and what only it needs
# left out; kept in the image as /opt/percolate/requirements.lock.txt.
RUN set -eu; \
    extras=""; for e in $(echo "${EXTRAS}" | tr ',' ' '); do extras="$extras --extra $e"; done; \
    prune=""; for p in ${PRUNE}; do prune="$prune --prune $p"; done; \
    python3 -m venv --without-pip /opt/percolate; \
    /opt/uv/bin/uv export --frozen --no-dev --no-emit-project $extras $prune \
        --format requirements-txt --output-file /opt/percolate/requirements.lock.txt
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv pip install --python /opt/percolate/bin/python --require-hashes --no-deps \
        -r /opt/percolate/requirements.lock.txt
COPY service ./service
COPY operator ./operator
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv pip install --python /opt/percolate/bin/python --no-deps . \
    && /opt/percolate/bin/python -m percolate_reading --help > /dev/null

# ---------------------------------------------------------------------------------------
# runtime: the base, the venv, a non-root user; nothing to build with
FROM ${BASE_IMAGE} AS runtime
ARG EXTRAS=server,operator
ARG WHISPER_MODEL=/models/whisper-base
ARG APP_UID=10001
LABEL org.opencontainers.image.title="percolate-reading" \
      org.opencontainers.image.description="Multi-tenant document parsing for LLM ingestion" \
      org.opencontainers.image.licenses="Apache-2.0" \
      dev.percolate.extras="${EXTRAS}"
# XDG_CACHE_HOME: libraries that cache under ~/.cache (huggingface_hub, via faster-whisper)
# write to the /tmp volume instead, so a read-only root works.
ENV PATH=/opt/percolate/bin:${PATH} \
    XDG_CACHE_HOME=/tmp/.cache \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PERCOLATE_READING_DATA_DIR=/data \
    PERCOLATE_READING_WHISPER_MODEL=${WHISPER_MODEL}

# OpenCV (pulled in by RapidOCR) loads libGL and GLib at import time; only the OCR image
# needs them. Tesseract with language packs reads the scripts RapidOCR cannot (OCR language
# ru, uk, bg, sr, el, ar, he, ...). Run-time libraries only, no compilers.
RUN case ",${EXTRAS}," in \
      *,ocr,*|*,all,*) apt-get update \
        && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
           tesseract-ocr tesseract-ocr-rus tesseract-ocr-ukr tesseract-ocr-bul tesseract-ocr-srp \
           tesseract-ocr-ell tesseract-ocr-ara tesseract-ocr-heb \
        && rm -rf /var/lib/apt/lists/* ;; \
    esac

# A regular (not --system) account: uid 10001 is above SYS_UID_MAX, which useradd warns about.
RUN groupadd --gid ${APP_UID} percolate \
    && useradd --uid ${APP_UID} --gid percolate --no-log-init --home-dir /home/percolate \
       --create-home --shell /usr/sbin/nologin percolate \
    && mkdir -p /data /models \
    && chown percolate:percolate /data /models \
    && chmod 1777 /tmp

COPY --from=builder /opt/percolate /opt/percolate

# Shared libraries shipped in wheels (cuBLAS/cuDNN of the cuda extra) are registered with the
# dynamic loader, found where this venv's site-packages really is; nothing when absent.
RUN python -c "import pathlib, sysconfig; site = pathlib.Path(sysconfig.get_paths()['purelib']); libs = sorted(str(p) for p in site.glob('nvidia/*/lib') if p.is_dir()); conf = pathlib.Path('/etc/ld.so.conf.d/percolate-wheels.conf'); libs and conf.write_text(''.join(d + '\n' for d in libs)); print('wheel libraries:', libs)" \
    && ldconfig

USER ${APP_UID}:${APP_UID}
WORKDIR /home/percolate
VOLUME ["/data", "/tmp", "/models"]
# 8001: gateway HTTP; 9090: worker /metrics, /health, /ready; 8080: operator liveness.
EXPOSE 8001 9090 8080
# Probes the running role's health endpoint on the address it binds: the gateway's /health,
# the worker's on its metrics port, the operator's kopf liveness endpoint. Kept by Docker
# and by buildah/podman with --format docker (the OCI format has no HEALTHCHECK);
# Kubernetes ignores it and uses the manifests' probes. The timeout allows for Python's
# start-up on a busy node (the probe itself answers in milliseconds).
HEALTHCHECK --interval=15s --timeout=20s --start-period=30s --retries=3 \
    CMD ["percolate-reading", "run", "--healthcheck"]
ENTRYPOINT ["percolate-reading", "run"]
