"""A tiny compiled pipeline for the KFP client's end-to-end test (loaded by path; needs the kfp SDK)."""

# No `from __future__ import annotations`: kfp reads the components' annotations as types.
from pathlib import Path

from kfp import compiler, dsl

IMAGE = "kubeflow-bridge/trainer:latest"


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def add(a: int, b: int) -> int:
    return a + b


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def nap(seconds: float) -> None:
    import time

    time.sleep(seconds)


@dsl.pipeline(name="clients-e2e")
def pipeline(a: int = 1, b: int = 2, nap_seconds: float = 0.0) -> None:
    add(a=a, b=b).set_display_name("sum")
    nap(seconds=nap_seconds)


def compile_to(path: Path) -> Path:
    compiler.Compiler().compile(pipeline, str(path))
    return path
