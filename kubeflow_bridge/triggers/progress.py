"""What a waiting trigger writes into the task log while it waits (it only reads).

Every ``interval`` seconds the trigger reads its object once and logs one line when the line changed, or
every ``heartbeat`` seconds when nothing did: a steady pace, not one line per watch event. Training jobs
also stream the master's (node 0's) log as it is written: on attach (a first wait or a reattach after a
restart) the last :data:`TAIL_ON_ATTACH` lines, then every new line, at most :data:`MAX_LOG_LINES` in all.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

#: Seconds between progress reads.
PROGRESS_INTERVAL = 10.0
#: Seconds after which an unchanged line is logged again (so a long wait is visibly alive).
HEARTBEAT = 120.0
#: Log lines shown when the trigger attaches to a running job's log.
TAIL_ON_ATTACH = 20
#: Most log lines one trigger streams (the rest are in the pod's log).
MAX_LOG_LINES = 5000
#: Lines kept of a restarted replica's log for the failure report.
LAST_WORDS_LINES = 30
#: The kinds whose master pod's log is streamed.
STREAMED_KINDS = ("PyTorchJob", "TFJob", "XGBoostJob", "JAXJob", "MPIJob", "TrainJob")


def _condition(obj: dict[str, Any]) -> str:
    conditions = [
        c for c in (obj.get("status") or {}).get("conditions") or [] if str(c.get("status")) == "True"
    ]
    return str(conditions[-1].get("type")) if conditions else "Created"


def experiment_line(obj: dict[str, Any]) -> str:
    """Katib: trial counts and the best objective so far."""
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    counts = {
        "running": status.get("trialsRunning", 0),
        "succeeded": status.get("trialsSucceeded", 0),
        "failed": status.get("trialsFailed", 0),
        "early-stopped": status.get("trialsEarlyStopped", 0),
        "metrics-unavailable": status.get("trialMetricsUnavailable", 0),
    }
    shown = ", ".join(f"{n} {what}" for what, n in counts.items() if n or what in ("running", "succeeded"))
    line = f"{_condition(obj)}; trials {status.get('trials', 0)}/{spec.get('maxTrialCount', '?')}: {shown}"
    optimal = status.get("currentOptimalTrial") or {}
    objective = ((spec.get("objective") or {}).get("objectiveMetricName")) or ""
    for metric in ((optimal.get("observation") or {}).get("metrics")) or []:
        if metric.get("name") == objective and metric.get("latest") not in (None, "", "unavailable"):
            params = ", ".join(f"{p['name']}={p['value']}" for p in optimal.get("parameterAssignments") or [])
            line += f"; best {objective}={metric['latest']} ({params})"
    return line


def job_line(obj: dict[str, Any]) -> str:
    """A training job: its condition and each replica type's active/succeeded/failed counts."""
    replicas = (obj.get("status") or {}).get("replicaStatuses") or {}
    parts = [
        f"{rtype}: "
        + ", ".join(
            f"{n} {k}"
            for k, n in sorted((counts or {}).items())
            if k in ("active", "succeeded", "failed") and n
        )
        for rtype, counts in sorted(replicas.items())
    ]
    return "; ".join([_condition(obj), *[p for p in parts if not p.endswith(": ")]])


def trainjob_line(obj: dict[str, Any]) -> str:
    """A TrainJob: its last condition and each replicated job's active/succeeded/failed child jobs."""
    jobs = (obj.get("status") or {}).get("jobsStatus") or []
    parts = [
        f"{entry.get('name')}: "
        + ", ".join(f"{entry[k]} {k}" for k in ("active", "succeeded", "failed") if entry.get(k))
        for entry in jobs
    ]
    return "; ".join([_condition(obj), *[p for p in parts if not p.endswith(": ")]])


def inference_service_line(obj: dict[str, Any]) -> str:
    """KServe: ready state, URL and the traffic split."""
    status = obj.get("status") or {}
    ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    state = f"Ready={ready.get('status', 'Unknown')}" + (
        f" ({ready['reason']})" if ready.get("reason") else ""
    )
    traffic = (status.get("components") or {}).get("predictor", {}).get("traffic") or []
    split = ", ".join(
        f"{t.get('revisionName', '?')} {t.get('percent', 0)}%"
        + (" (latest)" if t.get("latestRevision") else "")
        for t in traffic
    )
    return "; ".join(
        x
        for x in (
            state,
            f"url {status['url']}" if status.get("url") else "",
            f"traffic {split}" if split else "",
        )
        if x
    )


LINES = {
    "Experiment": experiment_line,
    "PyTorchJob": job_line,
    "TFJob": job_line,
    "XGBoostJob": job_line,
    "JAXJob": job_line,
    "MPIJob": job_line,
    "TrainJob": trainjob_line,
    "InferenceService": inference_service_line,
}


def progress_line(kind: str, obj: dict[str, Any]) -> str:
    """One line saying where the object stands (the kind's own summary, else its latest condition)."""
    meta = obj.get("metadata") or {}
    return f"{kind} {meta.get('namespace', '')}/{meta.get('name', '')}: " + LINES.get(kind, _condition)(obj)


def kfp_run_line(run: dict[str, Any]) -> str:
    """A KFP run: its state and each task's (cached and skipped tasks show as KFP reports them)."""
    details = (run.get("run_details") or {}).get("task_details") or []
    tasks = ", ".join(
        f"{t.get('display_name') or t.get('task_id')} {t.get('state', '?')}"
        for t in details
        if isinstance(t, dict) and not str(t.get("display_name") or "").startswith(("root", "executor"))
    )
    return f"KFP run {run.get('run_id', '')}: {run.get('state', '?')}" + (
        f"; tasks: {tasks}" if tasks else ""
    )


class RunProgress:
    """Logs a KFP run's line whenever it changes (the wait's ``on_poll``)."""

    def __init__(self, log: Any) -> None:
        self.log = log
        self._last = ""

    def __call__(self, run: dict[str, Any]) -> None:
        line = kfp_run_line(run)
        if line != self._last:
            self.log.info("%s", line)
            self._last = line


class ProgressReporter:
    """Logs progress while a trigger waits; cancel its task when the wait ends.

    Args:
        client: The trigger's async object client.
        kind: The resource kind (a client ``ResourceKind``).
        name: The object's name.
        namespace: Its namespace.
        log: The trigger's logger (its lines reach the task log).
        interval: Seconds between reads.
    """

    def __init__(
        self, client: Any, kind: Any, name: str, namespace: str, log: Any, interval: float = PROGRESS_INTERVAL
    ) -> None:
        self.client, self.kind, self.name, self.namespace, self.log = client, kind, name, namespace, log
        self.interval = interval
        self._last_line = ""
        self._last_logged = 0.0
        self._streamed = 0
        self._followers: dict[str, asyncio.Future[None]] = {}
        self._attached: dict[str, int] = {}
        self._last_words: dict[str, str] = {}

    @property
    def streamed(self) -> int:
        """Log lines streamed so far."""
        return self._streamed

    @property
    def last_words(self) -> dict[str, str]:
        """{pod: tail of its log, the previous container's included} read when a container restarted:
        the crash a failure report needs, even after the operator deletes the pods (v1.9 does so on
        reaching backoffLimit)."""
        return dict(self._last_words)

    async def run(self) -> None:
        """Report every ``interval`` seconds until cancelled (see :meth:`finish`)."""
        while True:
            with contextlib.suppress(Exception):  # progress is a courtesy: never end the wait for it
                await self.report()
            await asyncio.sleep(self.interval)

    async def finish(self, task: asyncio.Future[None], drain: float = 3.0) -> None:
        """The wait ended: stop reporting, log the final state, let log streams drain (a finished
        container's stream ends by itself), then stop them."""
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        with contextlib.suppress(Exception):
            await self.report(final=True)
        followers = list(self._followers.values())
        if followers:
            await asyncio.wait(followers, timeout=drain)
        for follower in followers:
            follower.cancel()
            with contextlib.suppress(BaseException):
                await follower

    async def report(self, *, final: bool = False) -> None:
        # The wait's shared watch already holds the object: a thousand waits read it without a request.
        obj = None if final else self.client.watched(self.kind, self.name, namespace=self.namespace)
        if obj is None:
            obj = await self.client.get(self.kind, self.name, namespace=self.namespace)
        if obj is None:
            return
        line = progress_line(self.kind.kind, obj)
        now = time.monotonic()
        if line != self._last_line or now - self._last_logged >= HEARTBEAT:
            self.log.info("%s", line)
            self._last_line, self._last_logged = line, now
        spec = obj.get("spec") or {}
        suspended = spec.get("suspend") or (spec.get("runPolicy") or {}).get("suspend")
        if self.kind.kind in STREAMED_KINDS and not final and not suspended:  # a suspended job has no pods
            await self._follow_master()

    async def _follow_master(self) -> None:
        for pod in await self.client.job_pods(self.kind, self.name, namespace=self.namespace, role="master"):
            pod_name = pod["metadata"]["name"]
            status = pod.get("status") or {}
            if (
                status.get("phase") not in ("Running", "Succeeded", "Failed")
                or self._streamed >= MAX_LOG_LINES
            ):
                continue
            restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or [])
            # One stream per container: a restarted container starts a new log (shown from its tail).
            if self._attached.get(pod_name) != restarts:
                self._attached[pod_name] = restarts
                if restarts:
                    await self._keep_last_words()
                old = self._followers.get(pod_name)
                if old is not None:
                    old.cancel()
                self._followers[pod_name] = asyncio.ensure_future(self._stream(pod))

    async def _keep_last_words(self) -> None:
        with contextlib.suppress(Exception):  # a courtesy for the failure report
            logs = await self.client.job_logs(
                self.kind, self.name, namespace=self.namespace, role="master", tail_lines=LAST_WORDS_LINES
            )
            self._last_words.update({pod: text for pod, text in logs.items() if text.strip()})

    async def _stream(self, pod: dict[str, Any]) -> None:
        pod_name = pod["metadata"]["name"]
        try:
            async for line in self.client.follow_log(self.kind, pod, tail_lines=TAIL_ON_ATTACH):
                self._streamed += 1
                if self._streamed > MAX_LOG_LINES:
                    self.log.info(
                        "[%s] ... (%d lines shown; the rest is in the pod's log)", pod_name, MAX_LOG_LINES
                    )
                    return
                self.log.info("[%s] %s", pod_name, line)
        except Exception as err:
            self.log.debug("log stream of %s ended: %s", pod_name, err)
