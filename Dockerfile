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
# requirements, `uv pip install --require-hashes --no-deps` installs exactly those. uv itself
# comes from requirements/bootstrap.txt, pinned by hash, and never stays in the image.
#
# Layers, most shared first, so a rebuild redoes only what changed: (1) the core every variant
# holds (the server and operator extras' locked dependencies), (2) the variant's system
# libraries and (3) its further locked dependencies (nothing for the CPU image), (4) the
# project itself, a wheel of a few hundred KB. A change under service/ redoes only (4); the
# CPU and audio/OCR images share (1). The builder stage only writes small files (requirement
# lists, the wheel): the runtime stage installs them, so no venv is ever copied between stages.
#
# CPU image (gateway, PDF/XLSX workers, operator; the default):
#   docker build -t percolate-reading:cpu .
# It leaves out what the lock would install but the CPU roles never load (PRUNE): PyMuPDF
# 2.0 depends on pymupdf-layout and pymupdf4llm (with onnxruntime, numpy, networkx, psutil),
# which percolate-reading does not use (parse/providers/mupdf.py keeps them unloaded).
# Audio/OCR worker image (faster-whisper with the bundled Whisper base, RapidOCR):
#   docker build -t percolate-reading:audio-ocr \
#     --build-arg EXTRAS=server,operator,audio,audio-model,ocr,ocr-headless \
#     --build-arg PRUNE="pymupdf-layout pymupdf4llm opencv-python" --build-arg WHISPER_MODEL=base .
# (ocr-headless with opencv-python pruned: RapidOCR's cv2 without libGL/Mesa.)
# GPU worker: as audio/OCR with EXTRAS=server,audio,audio-model,ocr,ocr-headless,cuda; the host needs the
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
# builder: what the runtime stage installs, as small files: the locked requirement lists and
# the project's wheel. Its RUN steps are keyed by the files they read, so each is redone only
# when those change.
FROM ${BASE_IMAGE} AS builder
# UV_SYSTEM_CERTS: the system trust store (corporate proxies); UV_LINK_MODE=copy: the cache is
# a separate mount.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_SYSTEM_CERTS=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never
WORKDIR /src
COPY requirements/bootstrap.txt requirements/get-uv.sh requirements/
RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -m venv /opt/uv \
    && /opt/uv/bin/pip install -q --require-hashes --no-deps -r requirements/bootstrap.txt \
    && mkdir -p /out/core /out/image /out/project \
    && cp requirements/bootstrap.txt /out/core/uv-requirements.txt \
    && cp requirements/get-uv.sh /out/core/get-uv.sh
COPY pyproject.toml uv.lock ./
# The core, shared by every variant: CORE_EXTRAS' locked requirements without PyMuPDF 2.0's
# add-ons (pymupdf-layout, pymupdf4llm and what only they need), which percolate-reading never
# loads (parse/providers/mupdf.py).
ARG CORE_EXTRAS=server,operator
ARG CORE_PRUNE="pymupdf-layout pymupdf4llm onnxruntime numpy networkx psutil"
RUN set -eu; \
    extras=""; for e in $(echo "${CORE_EXTRAS}" | tr ',' ' '); do extras="$extras --extra $e"; done; \
    prune=""; for p in ${CORE_PRUNE}; do prune="$prune --prune $p"; done; \
    /opt/uv/bin/uv export --quiet --frozen --no-dev --no-emit-project $extras $prune \
        --no-header --format requirements-txt --output-file /out/core/requirements.core.txt
COPY README.md ./
COPY service ./service
COPY operator ./operator
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv build --wheel --out-dir /out/project .
# The image's own list: CORE_EXTRAS and EXTRAS, each PRUNE package and what only it needs left
# out; kept in the image as /opt/percolate/requirements.lock.txt.
ARG EXTRAS=server,operator
ARG PRUNE="pymupdf-layout pymupdf4llm onnxruntime numpy networkx psutil"
RUN set -eu; \
    extras=""; for e in $(echo "${CORE_EXTRAS},${EXTRAS}" | tr ',' '\n' | sort -u); do extras="$extras --extra $e"; done; \
    prune=""; for p in ${PRUNE}; do prune="$prune --prune $p"; done; \
    /opt/uv/bin/uv export --quiet --frozen --no-dev --no-emit-project $extras $prune \
        --no-header --format requirements-txt --output-file /out/image/requirements.lock.txt

# ---------------------------------------------------------------------------------------
# runtime: the base, a venv at /opt/percolate, a non-root user; nothing to build with
FROM ${BASE_IMAGE} AS runtime
ARG APP_UID=10001
ENV PATH=/opt/percolate/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PERCOLATE_READING_DATA_DIR=/data

# A regular (not --system) account: uid 10001 is above SYS_UID_MAX, which useradd warns about.
RUN groupadd --gid ${APP_UID} percolate \
    && useradd --uid ${APP_UID} --gid percolate --no-log-init --home-dir /home/percolate \
       --create-home --shell /usr/sbin/nologin percolate \
    && mkdir -p /data /models \
    && chown percolate:percolate /data /models \
    && chmod 1777 /tmp

# The install steps below run uv (pinned by hash) from a cache mount, never from the image:
# get-uv.sh prints its path, installing it there first when that uv is not there yet. No
# installer stays in the image. UV_COMPILE_BYTECODE: the roles start faster.
# (1) the core, shared by every variant.
COPY --from=builder /out/core/ /opt/percolate/
RUN --mount=type=cache,target=/root/.cache/pip --mount=type=cache,target=/root/.cache/uv \
    --mount=type=cache,target=/root/.cache/uv-bin \
    set -eu; export UV_CACHE_DIR=/root/.cache/uv UV_SYSTEM_CERTS=1 UV_LINK_MODE=copy \
        UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1; \
    uv=$(sh /opt/percolate/get-uv.sh); \
    python3 -m venv --without-pip /opt/percolate; \
    $uv pip install --python /opt/percolate/bin/python --require-hashes --no-deps \
        -r /opt/percolate/requirements.core.txt; \
    rm -f /tmp/uv-*.lock

# (2) the variant's system libraries. Tesseract with language packs reads the scripts
# RapidOCR cannot (OCR language ru, uk, bg, sr, el, ar, he, ...). Run-time libraries only,
# no compilers; RapidOCR's OpenCV is the headless build (ocr-headless), so no libGL.
ARG EXTRAS=server,operator
RUN case ",${EXTRAS}," in \
      *,ocr,*|*,all,*) apt-get update \
        && apt-get install -y --no-install-recommends \
           tesseract-ocr tesseract-ocr-rus tesseract-ocr-ukr tesseract-ocr-bul tesseract-ocr-srp \
           tesseract-ocr-ell tesseract-ocr-ara tesseract-ocr-heb \
        && rm -rf /var/lib/apt/lists/* ;; \
    esac

# (3) the variant's further locked dependencies (none for the CPU image: its list is the
# core's). Shared libraries shipped in wheels (cuBLAS/cuDNN of the cuda extra) are registered
# with the dynamic loader, found where this venv's site-packages really is.
COPY --from=builder /out/image/requirements.lock.txt /opt/percolate/requirements.lock.txt
RUN --mount=type=cache,target=/root/.cache/pip --mount=type=cache,target=/root/.cache/uv \
    --mount=type=cache,target=/root/.cache/uv-bin \
    set -eu; export UV_CACHE_DIR=/root/.cache/uv UV_SYSTEM_CERTS=1 UV_LINK_MODE=copy \
        UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1; \
    cd /opt/percolate; \
    if ! cmp -s requirements.core.txt requirements.lock.txt; then \
        uv=$(sh get-uv.sh); \
        $uv pip install --python bin/python --require-hashes --no-deps -r requirements.lock.txt; \
        rm -f /tmp/uv-*.lock; \
    fi; \
    bin/python -c "import pathlib, sysconfig; site = pathlib.Path(sysconfig.get_paths()['purelib']); libs = sorted(str(p) for p in site.glob('nvidia/*/lib') if p.is_dir()); conf = pathlib.Path('/etc/ld.so.conf.d/percolate-wheels.conf'); libs and conf.write_text(''.join(d + '\n' for d in libs)); print('wheel libraries:', libs)"; \
    ldconfig

# (4) the project: its wheel, without dependencies (all installed above).
COPY --from=builder /out/project/ /opt/percolate/dist/
RUN --mount=type=cache,target=/root/.cache/pip --mount=type=cache,target=/root/.cache/uv \
    --mount=type=cache,target=/root/.cache/uv-bin \
    set -eu; export UV_CACHE_DIR=/root/.cache/uv UV_SYSTEM_CERTS=1 UV_LINK_MODE=copy \
        UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1; \
    uv=$(sh /opt/percolate/get-uv.sh); \
    $uv pip install --python /opt/percolate/bin/python --no-deps /opt/percolate/dist/*.whl; \
    rm -f /tmp/uv-*.lock; \
    percolate-reading --help > /dev/null

ARG WHISPER_MODEL=/models/whisper-base
# XDG_CACHE_HOME: libraries that cache under ~/.cache (huggingface_hub, via faster-whisper)
# write to the /tmp volume instead, so a read-only root works. Set after the installs, whose
# caches are build cache mounts.
ENV PERCOLATE_READING_WHISPER_MODEL=${WHISPER_MODEL} \
    XDG_CACHE_HOME=/tmp/.cache
LABEL org.opencontainers.image.title="percolate-reading" \
      org.opencontainers.image.description="Multi-tenant document parsing for LLM ingestion" \
      org.opencontainers.image.licenses="Apache-2.0" \
      dev.percolate.extras="${EXTRAS}"

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
