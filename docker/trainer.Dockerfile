# The trainer image: `python -m trainer ingest|preprocess|train|evaluate|serve`.
# Every path runs it: a Katib trial, a PyTorchJob replica, a KFP component, an Airflow pod, a KServe predictor.
# Build from the repository root:  docker build -f docker/trainer.Dockerfile -t kubeflow-bridge/trainer:latest .
#
# The base image brings a CUDA build of torch (Python 3.11, as trainer/requirements.txt was compiled for);
# the pinned CPU wheel (torch==...+cpu) is filtered out of the lock so the base image's CUDA torch stays.
ARG BASE_IMAGE=pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/opt/kubeflow-bridge

WORKDIR /opt/kubeflow-bridge

# Dependencies first (cached until the lock changes).
COPY trainer/requirements.txt trainer/requirements.txt
RUN grep -v '^torch==' trainer/requirements.txt > /tmp/requirements-cuda.txt \
 && pip install --no-cache-dir -r /tmp/requirements-cuda.txt \
 && pip install --no-cache-dir --no-deps hyperts==0.2.2 \
 && rm /tmp/requirements-cuda.txt

# The bridge core (resources, clients, local runtime, pipelines) as a package, the trainer on PYTHONPATH.
COPY pyproject.toml README.md ./
COPY kubeflow_bridge/ kubeflow_bridge/
COPY trainer/ trainer/
RUN pip install --no-cache-dir --no-deps . \
 && python -c "import trainer.__main__, kubeflow_bridge"

# kserve's default ports; `serve --host 0.0.0.0` inside a pod (127.0.0.1 is the local default).
EXPOSE 8080
ENTRYPOINT ["python", "-m", "trainer"]
CMD ["--help"]
