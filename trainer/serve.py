"""``serve``: kserve's ModelServer (V1 and V2 REST) with the VAE anomaly model on 127.0.0.1.

Requests carry rows of raw values, either one value per model feature (as preprocess wrote them) or one
value per channel, in which case the rows are taken as consecutive time steps and the rolling features
are computed over them (the seed's transformer step). Inputs are scaled with the artifact's scaler.

* V1 ``POST /v1/models/<name>:predict`` ``{"instances": [[...], ...]}`` ->
  ``{"predictions": [{"score": s, "anomaly": bool}, ...], "threshold": t}``
* V2 ``POST /v2/models/<name>/infer`` with one FP32/FP64 input of shape ``[N, width]`` -> outputs
  ``score`` (FP32 ``[N]``) and ``anomaly`` (BOOL ``[N]``).

Wrong shapes or non-finite values get HTTP 400 with a message naming the expected width.
"""

from __future__ import annotations

import argparse
import logging
import sys
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("trainer.serve")

BIND_HOST = "127.0.0.1"
MAX_ROWS = 100_000


class ShapeError(ValueError):
    """A request's rows do not have the width the model expects."""


class AnomalyScorer:
    """Artifact -> scores and flags, independent of kserve (used by the kserve Model and benchmarks)."""

    def __init__(self, artifact_uri: str) -> None:
        import torch

        from trainer.model import load_artifact

        self.model, self.artifact = load_artifact(artifact_uri, arg="--model")
        self.scaler: dict[str, Any] = self.artifact["scaler"]
        self.features: list[str] = list(self.scaler["features"])
        self.channels: list[str] = list(self.scaler.get("channels") or [])
        self.window = int(self.scaler.get("window", 12))
        self.threshold: float | None = self.artifact.get("threshold")
        torch.set_num_threads(1)
        # One request is a few rows: most of an eager forward is Python per module. A trace of the
        # model in eval mode runs the same ops (scores equal, tested) in half the time.
        self.forward = torch.jit.trace(
            self.model.eval(), torch.zeros(1, len(self.features)), check_trace=False
        )

    def widths(self) -> str:
        return f"{len(self.features)} (features {self.features[0]}..) or {len(self.channels)} (channels)"

    def features_from_rows(self, rows: Any) -> np.ndarray:
        """Validate rows and return the unscaled feature matrix."""
        import numpy as np

        try:
            x = np.asarray(rows, dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise ShapeError(f"rows must be numbers in equal-length lists of width {self.widths()}") from exc
        if x.ndim == 1 and x.size in (len(self.features), len(self.channels)):
            x = x[None, :]
        if x.ndim != 2 or x.shape[0] == 0:
            raise ShapeError(
                f"expected a 2-D [rows, width] input with width {self.widths()}; got shape {list(x.shape)}"
            )
        if x.shape[0] > MAX_ROWS:
            raise ShapeError(f"at most {MAX_ROWS} rows per request; got {x.shape[0]}")
        if not np.isfinite(x).all():
            raise ShapeError("inputs contain NaN or infinite values; send finite numbers")
        if x.shape[1] == len(self.features):
            return x
        if self.channels and x.shape[1] == len(self.channels):
            import pandas as pd

            df = pd.DataFrame(x)
            rmean = df.rolling(self.window, min_periods=1).mean().to_numpy()
            rstd = df.rolling(self.window, min_periods=1).std().fillna(0.0).to_numpy()
            return np.concatenate([x, rmean, rstd], axis=1)
        raise ShapeError(f"each row must have width {self.widths()}; got width {x.shape[1]}")

    def score(self, rows: Any) -> tuple[np.ndarray, np.ndarray]:
        """(scores float32 [n], anomaly flags bool [n])."""
        import numpy as np
        import torch

        from trainer.model import anomaly_scores, scale

        x = scale(self.features_from_rows(rows), self.scaler)
        scores = anomaly_scores(self.forward, torch.from_numpy(x), self.artifact.get("score")).astype(
            np.float32
        )
        flags = scores >= self.threshold if self.threshold is not None else np.zeros(scores.shape, bool)
        return scores, flags


def make_model(name: str, artifact_uri: str, scorer: AnomalyScorer | None = None) -> Any:
    """A ``kserve.Model`` subclass instance serving ``artifact_uri`` as ``name`` (loaded, ready)."""
    import kserve
    from kserve.errors import InvalidInput
    from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

    class AnomalyVAEModel(kserve.Model):  # type: ignore[misc]
        """Scores rows with the VAE; flags those at or above the artifact's threshold."""

        def __init__(self, model_name: str, uri: str) -> None:
            super().__init__(model_name)
            self.uri = uri
            self.scorer: AnomalyScorer | None = scorer

        def load(self) -> bool:
            if self.scorer is None:
                self.scorer = AnomalyScorer(self.uri)
            self.ready = True
            return self.ready

        async def predict(
            self,
            payload: dict[str, Any] | InferRequest,
            headers: dict[str, str] | None = None,
            response_headers: dict[str, str] | None = None,
        ) -> dict[str, Any] | InferResponse:
            assert self.scorer is not None
            try:
                if isinstance(payload, InferRequest):
                    if len(payload.inputs) != 1:
                        raise ShapeError(f"send exactly one input tensor; got {len(payload.inputs)}")
                    scores, flags = self.scorer.score(payload.inputs[0].as_numpy())
                    outputs = [
                        InferOutput("score", [len(scores)], "FP32", scores.tolist()),
                        InferOutput("anomaly", [len(flags)], "BOOL", flags.tolist()),
                    ]
                    return InferResponse(payload.id or str(uuid.uuid4()), self.name, infer_outputs=outputs)
                if not isinstance(payload, dict) or "instances" not in payload:
                    raise ShapeError('V1 requests need {"instances": [[...], ...]}')
                scores, flags = self.scorer.score(payload["instances"])
            except ShapeError as exc:
                raise InvalidInput(str(exc)) from exc
            return {
                "predictions": [
                    {"score": float(s), "anomaly": bool(f)} for s, f in zip(scores, flags, strict=True)
                ],
                "threshold": self.scorer.threshold,
            }

    model = AnomalyVAEModel(name, artifact_uri)
    model.load()
    return model


def import_kserve() -> Any:
    """kserve, imported without letting it parse our command line (it reads sys.argv on import)."""
    saved_argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        import kserve
    finally:
        sys.argv = saved_argv
    return kserve


#: The routes a predictor serves most (V1 predict, V2 infer): matched first.
INFERENCE_PATHS = ("/v1/models/{model_name}:predict", "/v2/models/{model_name}/infer")


def _inference_first(routes: list[Any]) -> bool:
    """Reorder ``routes`` (and the routers included in it) so the inference routes match first; whether
    it holds one. Only the order changes: each path matches one route as before."""

    def holds(route: Any) -> bool:
        inner = getattr(getattr(route, "original_router", None), "routes", None)  # an included router
        if isinstance(inner, list):
            return _inference_first(inner)
        return getattr(route, "path", "") in INFERENCE_PATHS

    hot = [route for route in routes if holds(route)]
    routes[:] = hot + [route for route in routes if route not in hot]
    return bool(hot)


def start_model_server(models: list[Any], *, host: str, port: int) -> None:
    """Serve `models` with kserve's ModelServer (V1 and V2 REST) on host:port only."""
    kserve = import_kserve()
    import kserve.model_server as ms
    from kserve.protocol.rest.server import RESTServer

    class LoopbackRESTServer(RESTServer):  # type: ignore[misc]
        """kserve binds 0.0.0.0; bind only the configured host. The inference routes go first: each
        request is matched against the routes in order (twice: routing and the timing middleware's
        metric name), and kserve registers ~40, V2's infer late among them."""

        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            self.config.host = host

        def _register_endpoints(self, app: Any) -> None:
            super()._register_endpoints(app)
            _inference_first(app.router.routes)

    ms.RESTServer = LoopbackRESTServer
    kserve.ModelServer(
        http_port=port, enable_grpc=False, workers=1, grace_period=2, enable_latency_logging=False
    ).start(models)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from trainer import io

    io.parse_uri(args.model, arg="--model")
    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port must be in [1, 65535]; got {args.port}")
    # Load (and check) the artifact before the slow kserve import, so a bad one fails fast.
    scorer = AnomalyScorer(args.model)
    import_kserve()
    model = make_model(args.model_name, args.model, scorer)
    log.info("serve: %s on http://%s:%d (V1 and V2)", args.model_name, args.host, args.port)
    print(f"serving model={args.model_name} url=http://{args.host}:{args.port}", flush=True)
    start_model_server([model], host=args.host, port=args.port)
    return {"outputs": {"url": f"http://{args.host}:{args.port}"}}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="artifact URI (train or evaluate output)")
    p.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    p.add_argument("--model-name", default="anomaly-vae", help="model name in the URL paths")
    p.add_argument("--host", default=BIND_HOST, help="bind address (default 127.0.0.1)")
