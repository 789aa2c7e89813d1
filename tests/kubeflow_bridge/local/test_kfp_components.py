"""How compiled components map to local processes: the SDK's pip preamble and the image map."""

# No `from __future__ import annotations` here: kfp reads the components' annotations as types.
from pathlib import Path
from typing import Any

import pytest
from kfp import dsl

from kubeflow_bridge.local.images import HOST, SELF, ImageMap, UnknownImage
from kubeflow_bridge.local.kfp.components import LaunchError, PackageEnvs, plan_launch, split_pip_preamble


def _command(component: Any) -> list[str]:
    spec = component.pipeline_spec
    executor = next(iter(spec.deployment_spec.fields["executors"].struct_value.fields.values()))
    container = executor.struct_value.fields["container"].struct_value.fields
    return [v.string_value for v in container["command"].list_value.values]


def test_the_default_preamble_installs_only_what_the_component_asks_for() -> None:
    @dsl.component(
        packages_to_install=["humanize==4.12.1", 'colorama; python_version < "3.0"'],
        pip_index_urls=["https://pypi.example/simple", "https://mirror.example/simple"],
    )
    def comp(x: int) -> int:
        return x

    preamble = split_pip_preamble(_command(comp))
    assert preamble.requirements == ("humanize==4.12.1",)  # kfp's self-install and false markers dropped
    assert preamble.pip_options[:2] == ("--index-url", "https://pypi.example/simple")
    assert (
        "--extra-index-url" in preamble.pip_options
        and "https://mirror.example/simple" in preamble.pip_options
    )
    assert preamble.command[:2] == ["sh", "-ec"] and "kfp.dsl.executor_main" in preamble.command[2]

    @dsl.component
    def plain(x: int) -> int:
        return x

    assert split_pip_preamble(_command(plain)).requirements == ()
    assert split_pip_preamble(["sh", "-c", "echo hi"]).command == ["sh", "-c", "echo hi"]


def _envs(tmp_path: Path) -> PackageEnvs:
    def run(argv: list[str]) -> tuple[int, list[str]]:
        raise AssertionError(f"nothing should be installed: {argv}")

    return PackageEnvs(tmp_path, run, lambda line: None)


def test_images_map_to_the_host_shell_a_python_env_or_a_clear_error(tmp_path: Path) -> None:
    images = ImageMap()
    assert (
        images.rule_for("alpine").venv == HOST
        and images.rule_for("docker.io/library/busybox:1.36").venv == HOST
    )
    assert images.rule_for("python:3.12-slim").venv == SELF
    shell = plan_launch("alpine:3.20", ["sh", "-c", "echo hi"], images, _envs(tmp_path))
    assert shell.argv == ["sh", "-c", "echo hi"] and set(shell.env) <= {"PATH"}
    with pytest.raises(UnknownImage, match=r"images\.yaml"):
        images.rule_for("registry.example.com/team/custom:1.0")
    with pytest.raises(LaunchError, match=r"registry\.example\.com/team/custom:1\.0.*images\.yaml"):
        plan_launch("registry.example.com/team/custom:1.0", ["true"], images, _envs(tmp_path))
    lightweight = ["sh", "-ec", "python3 -m kfp.dsl.executor_main", "src"]
    with pytest.raises(LaunchError, match="host shell, which has no kfp"):
        plan_launch("busybox", lightweight, images, _envs(tmp_path))
    mapped = ImageMap.from_file(None)
    launch = plan_launch("python:3.11", lightweight, mapped, _envs(tmp_path))
    assert launch.argv[2].startswith(mapped.resolve("python:3.11")[0]) and launch.argv[3] == "src"
