"""Image name -> local Python environment map (how a pod's container image becomes a process env).

Default map (first match wins, fnmatch patterns):
``kubeflow-bridge/trainer:*`` and ``*/trainer:*`` and ``trainer:*`` -> ``<repo>/.venv-trainer``;
``pytorch/pytorch:*`` (Kubeflow Trainer's torch-distributed runtime) -> ``<repo>/.venv-trainer``, no
entrypoint (torch and torchrun live there);
``python:*`` (and ``*/python:*``) -> the runtime's own interpreter; shell images (``busybox``,
``alpine``, ``ubuntu``, ``debian``, ``bash``) -> the host shell. A YAML/JSON file
(``<state>/images.yaml`` or ``KUBEFLOW_BRIDGE_IMAGES``) of ``[{pattern: ..., venv: path}]`` or
``{pattern: venv-path}`` entries is tried before the defaults; ``venv: "@self"`` means the runtime's
interpreter, ``venv: "@host"`` the host's commands as they are; ``preload: [module, ...]`` names the
libraries a warm interpreter of that environment imports once (:mod:`kubeflow_bridge.local.warm`).
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
SELF = "@self"
HOST = "@host"
_SHELL_IMAGES = ("busybox", "alpine", "ubuntu", "debian", "bash")
#: The trainer image: the runtime's own helpers (the Katib suggestion service, the KFP executor, the
#: KServe ``kubeflow-bridge-vae`` format) run in the environment this image maps to.
TRAINER_IMAGE = "kubeflow-bridge/trainer:latest"


class UnknownImage(LookupError):
    """No environment is mapped to the image."""


@dataclass(frozen=True)
class ImageRule:
    pattern: str
    venv: str  # a folder holding bin/python, "@self" or "@host"
    entrypoint: tuple[str, ...] = ()  # the image's ENTRYPOINT
    cmd: tuple[str, ...] = ()  # the image's CMD (replaced by a container's args)
    preload: tuple[str, ...] = ()  # libraries a warm interpreter imports once (kubeflow_bridge.local.warm)

    def argv(self, command: list[str], args: list[str], path: str) -> list[str]:
        """What a container runs, as the kubelet combines command/args with ENTRYPOINT/CMD.

        Without a command or entrypoint, args that do not start with an executable on `path`
        (``["serve.py"]``, ``["-c", "..."]``) run under ``python``: the local runtime is lenient there.
        """
        if command:
            return [*command, *args]
        if self.entrypoint:
            return [*self.entrypoint, *(args or self.cmd)]
        if args and (os.path.isabs(args[0]) or shutil.which(args[0], path=path)):
            return list(args)
        return [*(self.cmd or ("python",)), *args]


#: What the trainer's steps and the workflow's KFP components import (seconds of start-up each, cold).
TRAINER_PRELOAD = (
    "numpy",
    "pandas",
    "pyarrow.parquet",
    "dask.dataframe",
    "torch",
    "boto3",
    "trainer.ingest",
    "trainer.preprocess",
    "trainer.train",
    "trainer.evaluate",
    "kfp.dsl.executor_main",
    "kubeflow_bridge.pipelines.steps",
)

DEFAULT_RULES: tuple[ImageRule, ...] = (
    # docker/trainer.Dockerfile: ENTRYPOINT ["python", "-m", "trainer"], CMD ["--help"]
    *(
        ImageRule(
            p, str(REPO_ROOT / ".venv-trainer"), ("python", "-m", "trainer"), ("--help",), TRAINER_PRELOAD
        )
        for p in ("kubeflow-bridge/trainer:*", "*/trainer:*", "trainer:*")
    ),
    ImageRule("pytorch/pytorch:*", str(REPO_ROOT / ".venv-trainer"), cmd=("python3",), preload=("torch",)),
    ImageRule("python:*", SELF, cmd=("python3",)),
    ImageRule("*/python:*", SELF, cmd=("python3",)),
    *(ImageRule(p, HOST, cmd=("sh",)) for name in _SHELL_IMAGES for p in (f"{name}:*", f"*/{name}:*")),
)


class ImageMap:
    """Resolves images to ``(python_executable, env_overlay)``.

    Args:
        rules: Tried in order before the defaults.
    """

    def __init__(self, rules: list[ImageRule] | None = None) -> None:
        self.rules = list(rules or []) + list(DEFAULT_RULES)

    @classmethod
    def from_file(cls, path: Path | None) -> ImageMap:
        """Load extra rules from a YAML/JSON file if it exists."""
        if path is None or not path.is_file():
            return cls()
        import yaml

        data: Any = yaml.safe_load(path.read_text()) or []
        rules: list[ImageRule] = []
        if isinstance(data, dict):
            data = [{"pattern": k, "venv": v} for k, v in data.items()]
        for entry in data:
            rules.append(
                ImageRule(
                    str(entry["pattern"]),
                    str(entry["venv"]),
                    tuple(str(a) for a in entry.get("entrypoint") or ()),
                    tuple(str(a) for a in entry.get("cmd") or ()),
                    tuple(str(a) for a in entry.get("preload") or ()),
                )
            )
        return cls(rules)

    def rule_for(self, image: str) -> ImageRule:
        """The first rule matching `image`; raises UnknownImage if none does."""
        name = image if ":" in image.rsplit("/", 1)[-1] or "@" in image else image + ":latest"
        for rule in self.rules:
            if fnmatch.fnmatchcase(name, rule.pattern):
                return rule
        patterns = ", ".join(r.pattern for r in self.rules)
        raise UnknownImage(
            f'image "{image}" is not mapped to a local environment (known patterns: {patterns}); '
            "add it to <state>/images.yaml"
        )

    def resolve(self, image: str) -> tuple[str, dict[str, str]]:
        """Raises:
        UnknownImage: no rule matches, or the mapped environment has no ``bin/python``."""
        rule = self.rule_for(image)
        if rule.venv == HOST:
            return shutil.which("python3") or sys.executable, {"PATH": os.environ.get("PATH", os.defpath)}
        if rule.venv == SELF:
            bindir = str(Path(sys.executable).parent)
            return sys.executable, {"PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
        venv = Path(rule.venv)
        python = venv / "bin" / "python"
        if not python.exists():
            raise UnknownImage(
                f'image "{image}" maps to {venv}, which has no bin/python; build it (make setup)'
            )
        return str(python), {
            "PATH": str(venv / "bin") + os.pathsep + os.environ.get("PATH", ""),
            "VIRTUAL_ENV": str(venv),
        }


def trainer_python(images: ImageMap | None = None) -> str:
    """The interpreter of the environment :data:`TRAINER_IMAGE` maps to (this one if it has none)."""
    try:
        return (images or ImageMap()).resolve(TRAINER_IMAGE)[0]
    except UnknownImage:
        return sys.executable
