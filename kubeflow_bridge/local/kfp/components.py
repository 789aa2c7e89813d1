"""How one KFP component's container becomes a local process (used by the run executor).

Components arrive as the KFP SDK compiles them by default:

* lightweight Python components start with a ``sh -c`` preamble that pip-installs ``kfp`` (and
  ``packages_to_install``) into the image. kfp itself comes from the environment the image maps to;
  other requirements go into a cached overlay environment per requirement set (``<envs>/<key>/``,
  built once, reused by later tasks and runs) that sees the mapped environment's packages through a
  ``.pth`` file, so pip installs only what is missing. torch is pinned to the mapped environment's
  version so a resolver never replaces it;
* container components (``@dsl.container_component``) run their command through the image map:
  Python images in the mapped Python environment (``python`` on PATH), busybox/alpine-like images in
  the host shell; an image no rule maps fails the task naming ``images.yaml``.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubeflow_bridge.local.images import HOST, ImageMap, UnknownImage

_EXECUTOR_MAIN = "kfp.dsl.executor_main"
_SELF_INSTALL = {"kfp", "typing-extensions", "typing_extensions"}
# options of the preamble's `pip install`: (option, takes a value)
_PIP_OPTIONS = {
    "--index-url": True,
    "--extra-index-url": True,
    "--trusted-host": True,
    "--quiet": False,
    "--no-warn-script-location": False,
    "--no-deps": False,
    "--upgrade": False,
}
_PINNED = ("torch",)  # never replaced by a component's requirements (a CPU machine must not pull CUDA torch)


class LaunchError(RuntimeError):
    """The component cannot start here; the message says what to change."""


@dataclass(frozen=True)
class PipPreamble:
    """What a compiled component's ``sh -c`` preamble installs, and the command it then runs."""

    requirements: tuple[str, ...]
    pip_options: tuple[str, ...]
    command: list[str]


def split_pip_preamble(command: list[str]) -> PipPreamble:
    """Separates the SDK's pip-install preamble from the component's own command.

    A command without the preamble comes back unchanged with no requirements.
    """
    if not (
        len(command) >= 3
        and command[0] == "sh"
        and command[1] == "-c"
        and "pip install" in command[2]
        and command[2].rstrip().endswith('"$0" "$@"')
    ):
        return PipPreamble((), (), list(command))
    tokens = shlex.split(command[2])
    requirements: list[str] = []
    options: list[str] = []
    for i, token in enumerate(tokens):
        if token != "install" or i == 0 or tokens[i - 1] != "pip":
            continue
        j = i + 1
        while j < len(tokens) and tokens[j] not in ("&&", "||", ";", "fi"):
            item = tokens[j]
            if item in _PIP_OPTIONS:
                if _PIP_OPTIONS[item] and j + 1 < len(tokens):
                    if item != "--trusted-host" or tokens[j + 1] not in options:
                        options += [item, tokens[j + 1]]
                    j += 1
            elif not item.startswith("-"):
                requirements.append(item)
            j += 1
    return PipPreamble(tuple(_needed(requirements)), tuple(options), list(command[3:]))


def _needed(requirements: list[str]) -> list[str]:
    """Drops kfp's self-install and requirements whose environment marker is false here."""
    from packaging.requirements import InvalidRequirement, Requirement

    kept = []
    for text in requirements:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            kept.append(text)  # a URL or VCS requirement: pip will say what it thinks of it
            continue
        if req.name.lower() in _SELF_INSTALL or (req.marker is not None and not req.marker.evaluate()):
            continue
        kept.append(text)
    return sorted(set(kept))


@dataclass
class PackageEnvs:
    """Overlay environments for ``packages_to_install``, cached by requirement set under `root`."""

    root: Path
    run: Callable[[list[str]], tuple[int, list[str]]]  # streams into the task's log; (exit code, lines)
    say: Callable[[str], None]  # a line in the task's log

    def python_for(
        self, base_python: str, requirements: tuple[str, ...], pip_options: tuple[str, ...]
    ) -> str:
        if not requirements:
            return base_python
        key = hashlib.sha256(json.dumps([base_python, requirements, pip_options]).encode()).hexdigest()[:16]
        env_dir = self.root / key
        python = env_dir / "bin" / "python"
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / f"{key}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build per requirement set, however many tasks ask
            if (env_dir / ".ready").exists():
                self.say(f"using the cached environment {env_dir} for {' '.join(requirements)}")
                return str(python)
            shutil.rmtree(env_dir, ignore_errors=True)
            self._build(base_python, env_dir, requirements, pip_options)
        return str(python)

    def _build(
        self, base: str, env_dir: Path, requirements: tuple[str, ...], options: tuple[str, ...]
    ) -> None:
        self.say(f"installing {' '.join(requirements)} into {env_dir} (cached for later tasks)")
        if self.run([base, "-m", "venv", str(env_dir)])[0] != 0:
            raise LaunchError(f"could not create a Python environment at {env_dir} (python -m venv failed)")
        python = str(env_dir / "bin" / "python")
        purelib, pinned = self._base_packages(base)
        site = subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
        )
        Path(site.decode().strip(), "_kubeflow_bridge_base.pth").write_text(purelib + "\n")
        constraints = env_dir / "constraints.txt"
        constraints.write_text("".join(f"{name}=={version}\n" for name, version in pinned))
        pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-warn-script-location"]
        code, lines = self.run([*pip, "-c", str(constraints), *options, *requirements])
        if code != 0:
            shutil.rmtree(env_dir, ignore_errors=True)
            words = [ln.strip() for ln in lines if ln.strip().startswith("ERROR:")] or [f"exit code {code}"]
            raise LaunchError(
                f"pip could not install {', '.join(requirements)}: {words[-1]} "
                "(fix packages_to_install, or add the package to the image's environment)"
            )
        (env_dir / ".ready").write_text("\n".join(requirements) + "\n")

    def _base_packages(self, base: str) -> tuple[str, list[tuple[str, str]]]:
        script = (
            "import json, sysconfig, importlib.metadata as m\n"
            f"names = {list(_PINNED)!r}\n"
            "pins = []\n"
            "for n in names:\n"
            "    try: pins.append((n, m.version(n).split('+')[0]))\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(json.dumps([sysconfig.get_paths()['purelib'], pins]))"
        )
        purelib, pins = json.loads(subprocess.check_output([base, "-c", script]))
        return purelib, [tuple(p) for p in pins]


@dataclass
class Launch:
    """The argv and environment overlay that run one component here."""

    argv: list[str]
    env: dict[str, str]


def plan_launch(image: str, command: list[str], images: ImageMap, envs: PackageEnvs) -> Launch:
    """Maps a compiled component (image + resolved command) to a local process.

    Raises:
        LaunchError: the image maps to nothing here, or its packages cannot be installed.
    """
    preamble = split_pip_preamble(command)
    lightweight = any(_EXECUTOR_MAIN in part for part in preamble.command)
    try:
        host = images.rule_for(image).venv == HOST
        python, overlay = images.resolve(image)
    except UnknownImage as exc:
        raise LaunchError(f"{exc} (as a pattern with venv: a folder holding bin/python, or @host)") from exc
    if host:
        if lightweight:
            raise LaunchError(
                f'image "{image}" maps to the host shell, which has no kfp: a Python component needs an image '
                "mapped to a Python environment (images.yaml)"
            )
        return Launch(list(preamble.command), overlay)
    if lightweight:
        python = envs.python_for(python, preamble.requirements, preamble.pip_options)
        _note_python_version(image, python, envs.say)
        return Launch(_with_python(preamble.command, python), overlay)
    if preamble.requirements:
        python = envs.python_for(python, preamble.requirements, preamble.pip_options)
        overlay = {**overlay, "PATH": str(Path(python).parent) + os.pathsep + overlay.get("PATH", "")}
    return Launch(list(preamble.command), overlay)


# The shell program the KFP SDK wraps every lightweight component in (after the pip preamble).
_LAUNCHER = re.compile(
    r'program_path=\$\(mktemp -d\)\s+printf "%s" "\$0" > "\$program_path/ephemeral_component\.py"\s+'
    r"(?P<runtime>_KFP_RUNTIME=true\s+)?(?P<python>\S+) -m kfp\.dsl\.executor_main\s+"
    r'--component_module_path\s+"\$program_path/ephemeral_component\.py"\s+"\$@"\s*'
)


def without_shell(command: list[str]) -> tuple[list[str], dict[str, str]] | None:
    """The Python command line (and env) the SDK's ``sh -ec`` launcher of a lightweight component runs.

    The launcher writes the component's source to a new temporary folder and runs
    ``python3 -m kfp.dsl.executor_main`` on it; this does the same without the shell, so the component
    can be forked from a warm interpreter. None for any other command.
    """
    if len(command) < 4 or command[0] != "sh" or command[1] not in ("-c", "-ec", "-e"):
        return None
    match = _LAUNCHER.fullmatch(command[2])
    if match is None:
        return None
    import tempfile

    module = Path(tempfile.mkdtemp()) / "ephemeral_component.py"
    module.write_text(command[3], encoding="utf-8")
    argv = [match["python"], "-m", "kfp.dsl.executor_main", "--component_module_path", str(module)]
    return [*argv, *command[4:]], ({"_KFP_RUNTIME": "true"} if match["runtime"] else {})


def _with_python(command: list[str], python: str) -> list[str]:
    """``python3`` -> the environment's interpreter, everywhere but in the component's source."""
    out: list[str] = []
    source_at = None
    for i, part in enumerate(command):
        if source_at is None and '"$program_path/ephemeral_component.py"' in part and '"$@"' in part:
            source_at = i + 1
        out.append(part if i == source_at else re.sub(r"\bpython3\b", python, part))
    return out


@functools.cache
def _python_version(python: str) -> tuple[str, ...]:
    """(major, minor) of an interpreter, asked once per interpreter; () if it cannot say."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        found = subprocess.check_output([python, "-c", "import sys; print(*sys.version_info[:2])"], text=True)
        return tuple(found.split())
    return ()


def _note_python_version(image: str, python: str, say: Callable[[str], None]) -> None:
    match = re.match(r"(?:.*/)?python:(\d+)\.(\d+)", image)
    found = _python_version(python) if match is not None else ()
    if match is not None and found and found != match.groups():
        say(f"note: image {image} runs on Python {'.'.join(found)} of its mapped environment here")


def error_line(message: str) -> str:
    """The line the executor recognises as the task's error."""
    return f"LaunchError: {message}"


__all__ = [
    "Launch",
    "LaunchError",
    "PackageEnvs",
    "PipPreamble",
    "error_line",
    "plan_launch",
    "split_pip_preamble",
]
