"""Extra links to the Kubeflow UIs (one module per service), registered by the provider and the plugin."""

# Import the Task SDK whole before any link module: its first import loads Airflow's plugins, and the
# bridge's plugin imports these link modules; were that to happen while links.base was half-imported
# (an operator imported first, in a worker), the plugin would fail to load in that process.
import airflow.sdk  # noqa: F401
