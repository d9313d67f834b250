# Every overnight image, from one file: build from the repository root with a --target.
#
#   docker build --target api        -t overnight/ingest:0.1.0 .        # ingest API and watcher
#   docker build --target worker     -t overnight/segmentation:0.1.0 .  # both workers, k8s image Jobs
#   docker build --target qc-web     -t overnight/qc-web:0.1.0 .
#   docker build --target dispatcher -t overnight/dispatcher:0.1.0 .
#   docker build --target worker-gpu -t overnight/segmentation:0.1.0-cuda .  # TensorFlow with CUDA
#   docker build --target notebook   -t overnight/notebook:0.1.0 .      # JupyterLab (optional)
#
# docker-compose.yml builds them for you (`docker-compose build`). Only the worker images hold
# TensorFlow and the shipped models/ (pyproject.toml's `models` extra); api, qc-web and
# dispatcher install overnight without it. What each image adds to the core dependencies:
#   api (ingest, watcher)  `formats-bsd` (nd2, liffile, zarr: the headers that say how many
#                          scenes / timepoints a .nd2, .lif or OME-Zarr holds; no pixels)
#   dispatcher             `dispatch` (the Kubernetes client)
#   qc-web                 `qc` (matplotlib, pillow: plots, pictures; overlays and edits are numpy)
#   worker, worker-gpu     `models` (= `analysis` + TensorFlow, Keras) and `formats-bsd` (nd2,
#                          liffile, zarr: .nd2, .lif, OME-Zarr). Zeiss .czi needs aicspylibczi
#                          (GPL-3.0), which only `--build-arg OVERNIGHT_FORMATS=formats` adds;
#                          such an image is GPL-3.0 as a whole.
# No secret is baked in: every setting comes from the environment at run time. Every image
# runs as the non-root user 10001. The venvs hold no tests folders and, but for the workers'
# (which import TensorFlow on every start), no byte code.
#
# PYTHON_IMAGE: any Debian 12 image with python3 (>= 3.11), venv and pip. Without a registry,
# scripts/base-image.sh makes one locally (see the README, "Building the images offline").
# Stages are in the order the classic builder walks them: the model-free targets come before
# the TensorFlow stages, so building them never installs TensorFlow. Third-party packages
# are installed before the source is copied: a code change rebuilds only the overnight wheel
# and its small install layer in each image.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- requirements: the lists each image installs, from pyproject.toml (extras.py prints them) -
# Only these lists reach the install layers, so an edit elsewhere in pyproject.toml (another
# extra, a tool setting) rebuilds none of them.
FROM ${PYTHON_IMAGE} AS requirements
WORKDIR /src
COPY pyproject.toml scripts/extras.py ./
RUN python extras.py > core.txt \
 && for extra in qc analysis dispatch models gpu formats-bsd formats; do \
      python extras.py --only $extra > $extra.txt; done

# --- deps: a venv with the pinned core dependencies; survives every code change ----------------
FROM ${PYTHON_IMAGE} AS deps
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_COMPILE=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# slim: what a venv needs at run time only (tests folders, byte code, pip's caches go).
RUN printf '%s\n' '#!/bin/sh' \
      'find /opt/venv/lib -depth -type d \( -name tests -o -name __pycache__ \) -prune -exec rm -rf {} +' \
      'rm -rf /root/.cache /tmp/*' > /usr/local/bin/slim && chmod +x /usr/local/bin/slim \
 && python -m venv /opt/venv
COPY requirements.lock ./
COPY --from=requirements /src/core.txt ./
RUN /opt/venv/bin/pip install --constraint requirements.lock --requirement core.txt && slim

# --- wheel: overnight itself (the only layer a code change rebuilds, with the installs below) --
FROM deps AS wheel
COPY pyproject.toml README.md ./
COPY shared/ shared/
COPY services/ services/
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels .

# --- runtime: the base, a non-root user; no compilers, no source tree -------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    OVERNIGHT_LOG_FORMAT=json
RUN groupadd --system --gid 10001 overnight \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
        --shell /usr/sbin/nologin overnight
WORKDIR /tmp

# --- api: the ingest REST API; the watcher runs the same image (`overnight ingest watch`) ----
# It lists a dataset's images: a vendor file or OME-Zarr with several scenes / timepoints is one
# image each, which it learns from the file's header through the readers of `formats-bsd`.
FROM deps AS deps-api
ARG OVERNIGHT_FORMATS=formats-bsd
COPY --from=requirements /src/${OVERNIGHT_FORMATS}.txt ./
RUN /opt/venv/bin/pip install --constraint requirements.lock --requirement ${OVERNIGHT_FORMATS}.txt \
 && slim

FROM runtime AS api
COPY --from=deps-api /opt/venv /opt/venv
COPY --from=wheel /wheels /wheels
RUN pip install --no-deps /wheels/overnight-*.whl && rm -rf /wheels
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["overnight", "ingest", "serve", "--host", "0.0.0.0", "--port", "8000"]

# --- qc-web: the QC web page (plots and pictures: the `qc` extra; no SciPy, scikit-image or
# imagecodecs: its overlays, statistics and edits are numpy) ------------------------------------
FROM deps AS deps-qc
COPY --from=requirements /src/qc.txt ./
RUN /opt/venv/bin/pip install --constraint requirements.lock --requirement qc.txt && slim

FROM runtime AS qc-web
COPY --from=deps-qc /opt/venv /opt/venv
COPY --from=wheel /wheels /wheels
RUN pip install --no-deps /wheels/overnight-*.whl && rm -rf /wheels
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
CMD ["overnight", "qc-web", "--host", "0.0.0.0", "--port", "8080"]

# --- dispatcher: one Kubernetes Job per image (adds the Kubernetes client) ---------------------
FROM deps AS deps-dispatch
COPY --from=requirements /src/dispatch.txt ./
RUN /opt/venv/bin/pip install --constraint requirements.lock --requirement dispatch.txt && slim

FROM runtime AS dispatcher
COPY --from=deps-dispatch /opt/venv /opt/venv
COPY --from=wheel /wheels /wheels
RUN pip install --no-deps /wheels/overnight-*.whl && rm -rf /wheels
USER 10001:10001
CMD ["overnight", "dispatch", "run"]

# --- analysis: the `analysis` extra (scipy, scikit-image, imagecodecs, matplotlib), installed
# once for the workers and the notebook -----------------------------------------------------------
FROM deps AS deps-analysis
COPY --from=requirements /src/analysis.txt ./
RUN /opt/venv/bin/pip install --constraint requirements.lock --requirement analysis.txt && slim

# --- worker: TensorFlow (CPU) and the shipped models; segmentation, pnp and image Jobs -------
# On top of the analysis venv. Byte code is compiled here: a worker or an image Job imports
# TensorFlow at every start.
FROM deps-analysis AS deps-models
COPY --from=requirements /src/models.txt ./
RUN /opt/venv/bin/pip install --constraint requirements.lock --requirement models.txt && slim \
 && rm -rf /opt/venv/lib/python3*/site-packages/tensorflow/include \
 && (python -m compileall -q -j 0 /opt/venv/lib >/dev/null || true)
# The microscope file readers: `formats-bsd` (no GPL); `formats` adds aicspylibczi (GPL-3.0).
ARG OVERNIGHT_FORMATS=formats-bsd
COPY --from=requirements /src/${OVERNIGHT_FORMATS}.txt ./
RUN /opt/venv/bin/pip install --constraint requirements.lock --requirement ${OVERNIGHT_FORMATS}.txt \
 && slim && (python -m compileall -q -j 0 /opt/venv/lib >/dev/null || true)

FROM runtime AS worker
COPY --from=deps-models /opt/venv /opt/venv
# The shipped models (models/cells, models/pnp, ...); a step's `model` parameter may override.
COPY models/ /opt/overnight/models/
ENV OVERNIGHT_MODELS_DIR=/opt/overnight/models
COPY --from=wheel /wheels /wheels
RUN pip install --no-deps /wheels/overnight-*.whl && rm -rf /wheels
USER 10001:10001
# docker-compose and the Helm chart give the pnp-counter its own command (`worker pnp`).
CMD ["overnight", "worker", "segmentation"]

# --- notebook: JupyterLab with overnight and examples/ (optional: docker-compose --profile notebook)
# After the workers and before worker-gpu: the classic builder walks every stage up to its target,
# so building it reuses the workers' cached stages and never installs TensorFlow's CUDA build.
FROM deps-analysis AS deps-notebook
RUN /opt/venv/bin/pip install --constraint requirements.lock jupyterlab==4.6.6 ipykernel && slim

FROM runtime AS notebook
COPY --from=deps-notebook /opt/venv /opt/venv
COPY --from=wheel /wheels /wheels
RUN pip install --no-deps /wheels/overnight-*.whl && rm -rf /wheels \
 && install -d -o 10001 -g 10001 /home/overnight
COPY --chown=10001:10001 examples/ /home/overnight/examples/
USER 10001:10001
WORKDIR /home/overnight
EXPOSE 8888
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8888/api', timeout=4)"]
# The token comes from the environment (JUPYTER_TOKEN); without one the server does not start.
CMD ["sh", "-c", "test -n \"$JUPYTER_TOKEN\" || { echo 'JUPYTER_TOKEN is empty (docker-compose sets it from OVERNIGHT_API_TOKEN in .env)' >&2; exit 1; }; exec jupyter lab --ip=0.0.0.0 --port=8888 --no-browser --ServerApp.root_dir=/home/overnight"]

# --- worker-gpu: the worker with TensorFlow's CUDA build (for GPU nodes; not built by compose) -
FROM deps-analysis AS deps-gpu
COPY --from=requirements /src/gpu.txt ./
RUN /opt/venv/bin/pip install --constraint requirements.lock --requirement gpu.txt && slim \
 && (python -m compileall -q -j 0 /opt/venv/lib >/dev/null || true)
ARG OVERNIGHT_FORMATS=formats-bsd
COPY --from=requirements /src/${OVERNIGHT_FORMATS}.txt ./
RUN /opt/venv/bin/pip install --constraint requirements.lock --requirement ${OVERNIGHT_FORMATS}.txt \
 && slim && (python -m compileall -q -j 0 /opt/venv/lib >/dev/null || true)

FROM runtime AS worker-gpu
COPY --from=deps-gpu /opt/venv /opt/venv
COPY models/ /opt/overnight/models/
ENV OVERNIGHT_MODELS_DIR=/opt/overnight/models
COPY --from=wheel /wheels /wheels
RUN pip install --no-deps /wheels/overnight-*.whl && rm -rf /wheels
USER 10001:10001
CMD ["overnight", "worker", "segmentation"]
