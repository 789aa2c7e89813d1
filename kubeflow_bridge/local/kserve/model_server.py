"""The local stand-in for KServe's sklearn, xgboost and lightgbm serving runtimes.

Kubeflow ships ``kserve-sklearnserver`` (and the xgboost/lightgbm servers) as images; their Python
packages are not on the package index, so the local runtime serves these formats with kserve's own
``ModelServer`` and a ``kserve.Model`` that loads the model the way those servers do: the one file
with the framework's extension in ``--model_dir`` (``model.joblib``/``.pkl``/``.pickle`` for sklearn,
``model.bst``/``.json``/``.ubj`` for xgboost, ``model.bst``/``.txt`` for lightgbm), V1 and V2 REST,
``predict_proba`` when ``PREDICT_PROBA=true``. ``--model_dir`` may be a folder, a file or an
``s3://`` prefix (downloaded with the pod's AWS_* settings). A framework the environment lacks fails
the container at start, as the real runtime's container would.

    python -m kubeflow_bridge.local.kserve.model_server --framework sklearn --model_name NAME \
        --model_dir URI --http_port N
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

EXTENSIONS = {
    "sklearn": (".joblib", ".pkl", ".pickle"),
    "xgboost": (".bst", ".json", ".ubj"),
    "lightgbm": (".bst", ".txt"),
}


def fetch(model_dir: str) -> Path:
    """A local folder or file holding the model (an s3:// prefix is downloaded first)."""
    if not model_dir.startswith("s3://"):
        return Path(model_dir.removeprefix("file://"))
    import boto3

    bucket, _, prefix = model_dir.removeprefix("s3://").partition("/")
    target = Path(tempfile.mkdtemp(prefix="kserve-model-"))
    s3 = boto3.client("s3")
    found = False
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            rel = item["Key"][len(prefix) :].lstrip("/") or Path(item["Key"]).name
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(dest))
            found = True
    if not found:
        raise RuntimeError(f"no objects under {model_dir}")
    return target


def model_file(path: Path, framework: str) -> Path:
    """The one model file, as the KServe servers look for it; a clear error if none or several."""
    if path.is_file():
        return path
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in EXTENSIONS[framework])
    if len(files) != 1:
        raise RuntimeError(
            f"expected exactly one model file with extension {'/'.join(EXTENSIONS[framework])} in {path}, "
            f"found {[f.name for f in files]}"
        )
    return files[0]


def load(framework: str, path: Path) -> Any:
    if framework == "sklearn":
        import joblib

        return joblib.load(path)
    if framework == "xgboost":
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(str(path))
        return booster
    import lightgbm

    return lightgbm.Booster(model_file=str(path))


def make_model(name: str, framework: str, estimator: Any) -> Any:
    import kserve
    import numpy as np
    from kserve.errors import InvalidInput
    from kserve.protocol.infer_type import InferRequest, InferResponse
    from kserve.utils.utils import get_predict_input, get_predict_response

    probabilities = os.environ.get("PREDICT_PROBA", "false").lower() == "true"

    class FrameworkModel(kserve.Model):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(name)
            self.ready = True

        def predict(self, payload: dict[str, Any] | InferRequest, headers: Any = None) -> Any:
            try:
                instances = get_predict_input(payload)
                if framework == "xgboost":
                    import xgboost

                    result = estimator.predict(xgboost.DMatrix(np.asarray(instances)))
                elif probabilities and framework == "sklearn":
                    result = estimator.predict_proba(instances)
                else:
                    result = estimator.predict(instances)
            except Exception as exc:
                raise InvalidInput(f"Failed to predict: {exc}") from exc
            response: dict[str, Any] | InferResponse = get_predict_response(payload, result, self.name)
            return response

    return FrameworkModel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--framework", choices=sorted(EXTENSIONS), required=True)
    parser.add_argument("--model_name", required=True)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--http_port", type=int, default=8080)
    args = parser.parse_args(argv)
    import importlib

    importlib.import_module(args.framework)  # fails first, as the real runtime's container would
    estimator = load(args.framework, model_file(fetch(args.model_dir), args.framework))
    from trainer.serve import import_kserve, start_model_server

    import_kserve()
    print(f"serving {args.framework} model={args.model_name} port={args.http_port}", flush=True)
    start_model_server(
        [make_model(args.model_name, args.framework, estimator)], host="127.0.0.1", port=args.http_port
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
