"""The ``kubeflow`` connection and the hook that hands out the bridge's clients.

A ``kubeflow`` connection says where Kubeflow Pipelines answers (host), how to authenticate to it,
which cncf ``kubernetes`` connection reaches the Kubernetes API that Katib, the training operator and
KServe live behind, and the central dashboard URL used for operator links. Nothing heavy is imported
at module level: DAG files import operators, and operators import this module, at parse time.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from kubeflow_bridge.hooks.connection_fields import (
    AUTH_MODES,
    DEFAULT_NAMESPACE,
    DEFAULT_SA_TOKEN_PATH,
    UI_FIELD_BEHAVIOUR,
)

if TYPE_CHECKING:
    from kubeflow_bridge.clients.kfp import AsyncKfpClient, KfpAuth, KfpClient
    from kubeflow_bridge.clients.kube import AsyncKubeflowObjectClient, KubeflowObjectClient


class KubeflowConnectionError(ValueError):
    """A ``kubeflow`` connection is missing or says something the hook cannot use."""


@dataclass(frozen=True)
class KubeflowConnectionSettings:
    """What a ``kubeflow`` connection says, parsed and checked.

    Args:
        conn_id: The connection id it came from.
        kfp_endpoint: KFP API base URL, or None when the connection only reaches Kubernetes.
        dashboard_url: Central dashboard base URL for links, or None.
        namespace: Profile namespace for objects and runs.
        auth_mode: One of :data:`AUTH_MODES`.
        token: Bearer token (auth mode ``token``).
        token_path: ServiceAccount token file (auth mode ``sa_token_file``).
        username: Dex username (auth mode ``dex``).
        password: Dex password (auth mode ``dex``).
        kubernetes_conn_id: The cncf ``kubernetes`` connection id for the Kubernetes API.
        verify_tls: Whether to verify the KFP endpoint's certificate.
        gpus_available: False when the cluster has no GPUs (the local runtime); None when unknown.
    """

    conn_id: str
    kfp_endpoint: str | None
    dashboard_url: str | None
    namespace: str
    auth_mode: str
    token: str | None
    token_path: str | None
    username: str | None
    password: str | None
    kubernetes_conn_id: str | None
    verify_tls: bool
    gpus_available: bool | None = None

    def __repr__(self) -> str:  # never print secrets, even by accident
        return (
            f"KubeflowConnectionSettings(conn_id={self.conn_id!r}, kfp_endpoint={self.kfp_endpoint!r}, "
            f"namespace={self.namespace!r}, auth_mode={self.auth_mode!r}, "
            f"kubernetes_conn_id={self.kubernetes_conn_id!r}, secrets=***)"
        )


def _extra(extras: dict[str, Any], name: str) -> Any:
    """Read an extra by its short name or the legacy ``extra__kubeflow__`` prefixed name."""
    value = extras.get(name)
    if value in (None, ""):
        value = extras.get(f"extra__kubeflow__{name}")
    return None if value == "" else value


def _as_bool(value: Any, field: str, conn_id: str) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise KubeflowConnectionError(f"connection {conn_id!r}: {field} must be true or false, not {value!r}")


def parse_connection(
    conn_id: str,
    *,
    host: str | None,
    login: str | None,
    password: str | None,
    extras: dict[str, Any],
    schema: str | None = None,
    port: int | None = None,
) -> KubeflowConnectionSettings:
    """Check a connection's fields and return its settings (pure; the hook feeds it the Connection).

    Raises:
        KubeflowConnectionError: For an unknown auth mode or credentials missing for the chosen one.
    """
    endpoint = (host or "").strip() or str(_extra(extras, "kfp_endpoint") or "").strip() or None
    if endpoint and "://" not in endpoint:
        endpoint = f"{schema or 'http'}://{endpoint}"
    if endpoint and port and endpoint.count(":") < 2:
        endpoint = f"{endpoint}:{port}"
    auth_mode = str(_extra(extras, "auth_mode") or "none").strip().lower()
    if auth_mode not in AUTH_MODES:
        raise KubeflowConnectionError(
            f"connection {conn_id!r}: auth_mode {auth_mode!r} is not one of {', '.join(AUTH_MODES)}; "
            "set the extra field auth_mode to one of them"
        )
    token = _extra(extras, "token") or (password if auth_mode == "token" else None)
    token_path = _extra(extras, "token_path")
    if auth_mode == "token" and not token:
        raise KubeflowConnectionError(
            f"connection {conn_id!r}: auth_mode 'token' needs the bearer token in the Password field"
        )
    if auth_mode == "sa_token_file":
        token_path = token_path or DEFAULT_SA_TOKEN_PATH
    if auth_mode == "dex" and not (login and password):
        raise KubeflowConnectionError(
            f"connection {conn_id!r}: auth_mode 'dex' needs Login (username) and Password"
        )
    namespace = str(_extra(extras, "namespace") or DEFAULT_NAMESPACE)
    dashboard = _extra(extras, "dashboard_url")
    return KubeflowConnectionSettings(
        conn_id=conn_id,
        kfp_endpoint=endpoint.rstrip("/") if endpoint else None,
        dashboard_url=str(dashboard).rstrip("/") if dashboard else None,
        namespace=namespace,
        auth_mode=auth_mode,
        token=str(token) if token else None,
        token_path=str(token_path) if token_path else None,
        username=login or None,
        password=password if auth_mode == "dex" else None,
        kubernetes_conn_id=_extra(extras, "kubernetes_conn_id"),
        verify_tls=_as_bool(_extra(extras, "verify_tls"), "verify_tls", conn_id),
        gpus_available=(
            None
            if _extra(extras, "gpus_available") is None
            else _as_bool(_extra(extras, "gpus_available"), "gpus_available", conn_id)
        ),
    )


def _mask(*secrets: str | None) -> None:
    from airflow.sdk.log import mask_secret

    for secret in secrets:
        if secret:
            mask_secret(secret)


class _SharedAsyncClient:
    """One async object client shared by the waiters of one event loop (see ``async_object_client``)."""

    def __init__(self) -> None:
        import asyncio

        self.lock = asyncio.Lock()
        self.users = 0
        self.client: AsyncKubeflowObjectClient | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    async def open(self, kubernetes_conn_id: str) -> AsyncKubeflowObjectClient:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook

        from kubeflow_bridge.clients.kube import AsyncKubeflowObjectClient

        self._stack = contextlib.AsyncExitStack()
        hook = AsyncKubernetesHook(conn_id=kubernetes_conn_id)
        api_client = await self._stack.enter_async_context(hook.get_conn())
        path = await hook._get_field("kube_config_path") or hook.config_file
        context = hook.cluster_context or await hook._get_field("cluster_context")

        async def reload() -> None:
            # A rotated token (e.g. a refreshed kubeconfig) is re-read in place after a 401.
            if path:
                from kubernetes_asyncio import config

                await config.load_kube_config(
                    config_file=path, context=context, client_configuration=api_client.configuration
                )

        return AsyncKubeflowObjectClient(api_client, credentials_reloader=reload)

    async def close(self) -> None:
        self.client = None
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()


_SHARED_ASYNC_CLIENTS: dict[tuple[int, str], _SharedAsyncClient] = {}


class KubeflowHook(BaseHook):
    """Clients for Kubeflow Pipelines and the Kubernetes API, from one ``kubeflow`` connection.

    Args:
        kubeflow_conn_id: The ``kubeflow`` connection id.
        kubernetes_conn_id: Overrides the connection's cncf ``kubernetes`` connection id.
        namespace: Overrides the connection's namespace.
    """

    conn_name_attr = "kubeflow_conn_id"
    default_conn_name = "kubeflow_default"
    conn_type = "kubeflow"
    hook_name = "Kubeflow"

    def __init__(
        self,
        kubeflow_conn_id: str = default_conn_name,
        *,
        kubernetes_conn_id: str | None = None,
        namespace: str | None = None,
    ) -> None:
        super().__init__()
        self.kubeflow_conn_id = kubeflow_conn_id
        self._kubernetes_conn_id = kubernetes_conn_id
        self._namespace = namespace
        self._settings: KubeflowConnectionSettings | None = None
        self._kfp_client: KfpClient | None = None
        self._object_client: KubeflowObjectClient | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Form behaviour for the UI (also declared in provider info)."""
        return {
            "hidden_fields": UI_FIELD_BEHAVIOUR["hidden-fields"],
            "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
            "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
        }

    @property
    def settings(self) -> KubeflowConnectionSettings:
        """The parsed connection (read once per hook); secrets are registered for masking."""
        if self._settings is None:
            from airflow.sdk.exceptions import AirflowNotFoundException

            try:
                conn = self.get_connection(self.kubeflow_conn_id)
            except AirflowNotFoundException as err:
                raise KubeflowConnectionError(
                    f"connection {self.kubeflow_conn_id!r} is not defined: create a 'kubeflow' connection "
                    f"(e.g. AIRFLOW_CONN_{self.kubeflow_conn_id.upper()}) or pass kubeflow_conn_id"
                ) from err
            settings = parse_connection(
                self.kubeflow_conn_id,
                host=conn.host,
                login=conn.login,
                password=conn.password,
                extras=conn.extra_dejson,
                schema=conn.schema,
                port=conn.port,
            )
            _mask(settings.token, settings.password, conn.password)
            self._settings = settings
        return self._settings

    @property
    def namespace(self) -> str:
        """Namespace for objects and runs: the override, else the connection's."""
        return self._namespace or self.settings.namespace

    @property
    def kubernetes_conn_id(self) -> str:
        """The cncf ``kubernetes`` connection id used for the Kubernetes API."""
        return self._kubernetes_conn_id or self.settings.kubernetes_conn_id or "kubernetes_default"

    @property
    def dashboard_url(self) -> str | None:
        """The central dashboard URL for links, or None."""
        return self.settings.dashboard_url

    def kfp_auth(self) -> KfpAuth:
        """The KFP auth settings for the clients."""
        from kubeflow_bridge.clients.kfp import KfpAuth

        s = self.settings
        return KfpAuth(
            mode=s.auth_mode,  # type: ignore[arg-type]
            token=s.token,
            token_path=s.token_path,
            username=s.username,
            password=s.password,
        )

    def _require_kfp_endpoint(self) -> str:
        endpoint = self.settings.kfp_endpoint
        if not endpoint:
            raise KubeflowConnectionError(
                f"connection {self.kubeflow_conn_id!r} has no KFP endpoint: set its Host to the KFP API URL"
            )
        return endpoint

    def get_kfp_client(self) -> KfpClient:
        """A KFP REST client (cached on the hook)."""
        if self._kfp_client is None:
            endpoint = self._require_kfp_endpoint()
            from kubeflow_bridge.clients.kfp import KfpClient

            self._kfp_client = KfpClient(
                endpoint,
                auth=self.kfp_auth(),
                verify=self.settings.verify_tls,
                namespace=self.namespace,
            )
        return self._kfp_client

    def get_async_kfp_client(self) -> AsyncKfpClient:
        """A new async KFP REST client (one per event loop; the caller closes it if it can)."""
        endpoint = self._require_kfp_endpoint()
        from kubeflow_bridge.clients.kfp import AsyncKfpClient

        return AsyncKfpClient(
            endpoint,
            auth=self.kfp_auth(),
            verify=self.settings.verify_tls,
            namespace=self.namespace,
        )

    def get_object_client(self) -> KubeflowObjectClient:
        """A Kubernetes custom-object client on the cncf hook's API client (cached on the hook)."""
        if self._object_client is None:
            from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

            from kubeflow_bridge.clients.kube import KubeflowObjectClient

            hook = KubernetesHook(conn_id=self.kubernetes_conn_id)
            api_client = hook.api_client
            path = hook._get_field("kube_config_path") or hook.config_file
            context = hook.cluster_context or hook._get_field("cluster_context")

            def reload() -> None:
                # A rotated token (e.g. a refreshed kubeconfig) is re-read in place after a 401.
                if path:
                    from kubernetes import config

                    config.load_kube_config(
                        config_file=path, context=context, client_configuration=api_client.configuration
                    )

            self._object_client = KubeflowObjectClient(api_client, credentials_reloader=reload)
        return self._object_client

    @contextlib.asynccontextmanager
    async def async_object_client(self) -> AsyncIterator[AsyncKubeflowObjectClient]:
        """An async custom-object client on the cncf async hook's API client.

        Every waiter in one event loop (a triggerer runs one) using the same ``kubernetes`` connection
        shares one client, so 1,000 deferred tasks hold one connection pool and one shared watch per
        (kind, namespace) rather than 1,000 API clients; it is closed when its last user exits.
        """
        import asyncio

        key = (id(asyncio.get_running_loop()), self.kubernetes_conn_id)
        entry = _SHARED_ASYNC_CLIENTS.setdefault(key, _SharedAsyncClient())
        async with entry.lock:
            if entry.client is None:
                entry.client = await entry.open(self.kubernetes_conn_id)
            entry.users += 1
        try:
            yield entry.client
        finally:
            async with entry.lock:
                entry.users -= 1
                if entry.users == 0:
                    if _SHARED_ASYNC_CLIENTS.get(key) is entry:
                        del _SHARED_ASYNC_CLIENTS[key]
                    await entry.close()

    def test_connection(self) -> tuple[bool, str]:
        """Check the KFP endpoint answers (used by the UI's Test button)."""
        try:
            self.get_kfp_client().healthz()
        except Exception as err:
            return False, f"KFP endpoint did not answer: {err}"
        return True, "KFP endpoint answered"


def resolve_kind(name: str) -> Any:
    """The client's ``ResourceKind`` for a kind or plural name (``"PyTorchJob"``, ``"pytorchjobs"``)."""
    from kubeflow_bridge.clients.kube import kind_named

    return kind_named(name)
