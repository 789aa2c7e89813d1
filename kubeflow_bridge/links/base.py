"""Operator extra links to the Kubeflow UIs, built from the connection's dashboard URL.

The task pushes each link's full URL to XCom under the link's ``xcom_key`` (Airflow 3's API server
reads it from there) and keeps it on the operator; ``get_link`` (which the task runner calls when the
task ends, to push the value once more) returns the kept value, so a task that failed before it created
anything reads no XCom that does not exist (Airflow would log "XCom not found").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from airflow.sdk.bases.operatorlink import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.definitions.context import Context
    from airflow.sdk.types import TaskInstanceKey


#: The operator attribute holding the URLs this try persisted (``{xcom key: url}``).
KEPT_LINKS = "_kubeflow_links"


def start_links(operator: object) -> None:
    """Mark a try as started: until it persists a link, the operator has none (no XCom read)."""
    if getattr(operator, KEPT_LINKS, None) is None:
        setattr(operator, KEPT_LINKS, {})


class KubeflowLink(BaseOperatorLink):
    """A link to one Kubeflow object; subclasses set ``name`` and ``url_template``.

    ``url_template`` fields: ``{dashboard}`` (no trailing slash), ``{namespace}``, ``{name}`` (object
    name or KFP run id). A connection extra ``<key>_url_template`` overrides the template.
    """

    name: ClassVar[str] = "Kubeflow"  # type: ignore[misc]
    key: ClassVar[str] = "kubeflow"
    url_template: ClassVar[str] = "{dashboard}"

    @classmethod
    def format_url(
        cls, dashboard: str | None, *, namespace: str, name: str, template: str | None = None
    ) -> str | None:
        """The link's URL, or None when no dashboard URL is configured."""
        if not dashboard:
            return None
        return (template or cls.url_template).format(
            dashboard=dashboard.rstrip("/"), namespace=quote(namespace, safe=""), name=quote(name, safe="")
        )

    @classmethod
    def persist(
        cls,
        context: Context,
        dashboard: str | None,
        *,
        namespace: str,
        name: str,
        template: str | None = None,
    ) -> str | None:
        """Push the URL to XCom under this link's key (no-op without a dashboard URL)."""
        url = cls.format_url(dashboard, namespace=namespace, name=name, template=template)
        if url:
            context["ti"].xcom_push(key=cls.xcom_key_for(), value=url)
        task = context.get("task")
        if task is not None:
            kept = getattr(task, KEPT_LINKS, None)
            if kept is None:
                kept = {}
                setattr(task, KEPT_LINKS, kept)
            kept[cls.xcom_key_for()] = url or ""
        return url

    @classmethod
    def xcom_key_for(cls) -> str:
        return f"_link_{cls.__name__}"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        kept = getattr(operator, KEPT_LINKS, None)
        if kept is not None:  # this try ran: what it persisted, or "" when it created nothing
            return str(kept.get(self.xcom_key, ""))
        from airflow.sdk.execution_time.xcom import XCom

        value: Any = XCom.get_value(ti_key=ti_key, key=self.xcom_key)
        return str(value) if value else ""
