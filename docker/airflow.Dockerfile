# The Airflow image: the official Airflow 3 image plus the pinned control-plane lock, the kubeflow_bridge
# provider ([airflow] extra), the DAGs and the plugin.
# Build from the repository root:  docker build -f docker/airflow.Dockerfile -t kubeflow-bridge/airflow:latest .
FROM apache/airflow:3.3.2-python3.11

ENV AIRFLOW__CORE__LOAD_EXAMPLES=False \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The official image installs Python packages as the airflow user.
USER airflow
COPY --chown=airflow:root requirements.txt /opt/kubeflow-bridge/requirements.txt
RUN pip install --no-cache-dir -r /opt/kubeflow-bridge/requirements.txt

COPY --chown=airflow:root pyproject.toml README.md /opt/kubeflow-bridge/
COPY --chown=airflow:root kubeflow_bridge/ /opt/kubeflow-bridge/kubeflow_bridge/
RUN pip install --no-cache-dir "/opt/kubeflow-bridge[airflow]" \
 && python -c "import kubeflow_bridge.get_provider_info"

COPY --chown=airflow:root dags/ /opt/airflow/dags/
COPY --chown=airflow:root plugins/ /opt/airflow/plugins/
# The how-to the plugin serves at /kubeflow-bridge/docs (the provider's documentation URL).
COPY --chown=airflow:root docs/ /opt/airflow/docs/
