"""The Dockerfiles, checked by reading (no Docker engine here): COPY sources exist, pinned locks installed."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = ("docker/trainer.Dockerfile", "docker/airflow.Dockerfile")
PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9.+!_-]+(\s*;.*)?$")


def instructions(path: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    text = (ROOT / path).read_text()
    joined = re.sub(
        r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    )
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def copy_sources(path: str) -> list[str]:
    sources = []
    for word, rest in instructions(path):
        if word in ("COPY", "ADD"):
            parts = [p for p in shlex.split(rest) if not p.startswith("--")]
            assert len(parts) >= 2, f"{path}: malformed {word} {rest}"
            sources.extend(parts[:-1])
    return sources


def pinned_lines(path: Path) -> list[str]:
    return [
        ln.strip()
        for ln in path.read_text().splitlines()
        if ln.strip() and not ln.strip().startswith(("#", "--"))
    ]


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_every_copy_source_exists(dockerfile: str) -> None:
    sources = copy_sources(dockerfile)
    assert sources
    for src in sources:
        assert (ROOT / src.rstrip("/")).exists(), f"{dockerfile} copies {src}, which is not in the repository"
    assert not any(w == "COPY" and "--from" in r for w, r in instructions(dockerfile))


@pytest.mark.parametrize(
    ("dockerfile", "lock"),
    [
        ("docker/trainer.Dockerfile", "trainer/requirements.txt"),
        ("docker/airflow.Dockerfile", "requirements.txt"),
    ],
)
def test_installs_the_pinned_lock(dockerfile: str, lock: str) -> None:
    runs = " ".join(r for w, r in instructions(dockerfile) if w == "RUN")
    assert lock in " ".join(copy_sources(dockerfile))
    assert re.search(r"pip install [^&]*-r \S*requirements", runs)
    assert ".in" not in " ".join(re.findall(r"-r (\S+)", runs))
    lines = pinned_lines(ROOT / lock)
    assert len(lines) > 50
    unpinned = [ln for ln in lines if not PIN.match(ln)]
    assert not unpinned, f"{lock} has unpinned lines: {unpinned[:5]}"


def test_trainer_image_keeps_the_cuda_torch_and_runs_the_trainer() -> None:
    ins = instructions("docker/trainer.Dockerfile")
    base = next(r for w, r in ins if w == "ARG" and r.startswith("BASE_IMAGE="))
    assert "cuda" in base and "pytorch" in base
    runs = " ".join(r for w, r in ins if w == "RUN")
    pattern = re.search(r"grep -v '(\^torch==)'", runs)
    assert pattern, "the CPU torch pin must be filtered out of the lock"
    lines = pinned_lines(ROOT / "trainer/requirements.txt")
    kept = [ln for ln in lines if not re.match(pattern.group(1), ln)]
    # Exactly the torch pin is dropped; everything else (kfp, kserve, dask, ...) stays pinned.
    assert [ln for ln in lines if ln not in kept] == [next(ln for ln in lines if ln.startswith("torch=="))]
    assert any(ln.startswith("kserve==") for ln in kept) and any(ln.startswith("kfp==") for ln in kept)
    assert "hyperts==0.2.2" in runs and "--no-deps hyperts" in runs
    assert ("ENTRYPOINT", '["python", "-m", "trainer"]') in ins


def test_airflow_image_matches_the_pinned_airflow_and_ships_dags_and_plugins() -> None:
    ins = instructions("docker/airflow.Dockerfile")
    base = next(r for w, r in ins if w == "FROM")
    version = re.match(r"apache/airflow:(\d+\.\d+\.\d+)-python3\.11$", base)
    assert version, base
    assert f"apache-airflow=={version.group(1)}" in pinned_lines(ROOT / "requirements.txt")
    sources = copy_sources("docker/airflow.Dockerfile")
    assert {"dags/", "plugins/", "kubeflow_bridge/"} <= set(sources)
    runs = " ".join(r for w, r in ins if w == "RUN")
    assert "[airflow]" in runs
