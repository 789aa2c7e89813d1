"""Pipelines written as the KFP docs show them, compiled with default options (kfp self-install,
default python image), for the local KFP API's fidelity tests (test_kfp_pipeline_set.py).

Each case is a pipeline, its arguments and a check of the finished run (the run JSON and its tasks
by display name). The checks state what KFP on a cluster would report.
"""

# No `from __future__ import annotations` here: kfp reads the components' annotations as types.
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output, PipelineTaskFinalStatus

warnings.filterwarnings("ignore", message="The default base_image", category=FutureWarning)


@dataclass
class Case:
    name: str
    pipeline: Any
    check: Callable[[dict[str, Any], dict[str, dict[str, Any]]], None]
    arguments: dict[str, Any] = field(default_factory=dict)
    state: str = "SUCCEEDED"


def out(tasks: dict[str, dict[str, Any]], name: str, key: str = "Output") -> Any:
    task = tasks[name]
    assert task["state"] in ("SUCCEEDED", "SKIPPED"), task
    return task["output_parameters"][key]


def read(uri: str, member: str = "") -> str:
    from pathlib import Path

    path = Path(uri) / member if member else Path(uri)
    return path.read_text()


# ---- components -----------------------------------------------------------------------------------
@dsl.component
def add(a: int, b: int = 2) -> int:
    return a + b


@dsl.component
def echo_optional(text: str = None, number: int = 7) -> str:  # type: ignore[assignment]  # noqa: RUF013
    return f"{text}|{number}"


@dsl.component
def describe(s: str, i: int, f: float, flag: bool, items: list, mapping: dict) -> str:
    return f"{s}:{i}:{f}:{flag}:{int(sum(items))}:{sorted(mapping.items())}"


@dsl.component
def stats(values: list) -> NamedTuple("Stats", [("total", float), ("count", int)]):  # type: ignore[valid-type]
    from collections import namedtuple

    return namedtuple("Stats", ["total", "count"])(float(sum(values)), len(values))


@dsl.component
def write_data(text: str, data: Output[Dataset]) -> None:
    data.metadata["length"] = len(text)
    with open(data.path, "w") as fh:
        fh.write(text)


@dsl.component
def read_data(data: Input[Dataset]) -> str:
    with open(data.path) as fh:
        return fh.read().upper() + f"/{int(data.metadata['length'])}"


@dsl.component
def write_custom_path(text: str, data: Output[Dataset]) -> None:
    import os
    import tempfile

    data.custom_path = os.path.join(tempfile.mkdtemp(), "custom.txt")  # written here, uploaded from here
    with open(data.custom_path, "w") as fh:
        fh.write(text)
    data.metadata["length"] = len(text)


@dsl.component
def log_metrics(metrics: Output[Metrics], page: Output[HTML]) -> None:
    metrics.log_metric("f1", 0.75)
    with open(page.path, "w") as fh:
        fh.write("<h1>report</h1>")


@dsl.component
def identity(x: str) -> str:
    return x


@dsl.component
def square(x: int) -> int:
    return x * x


@dsl.component
def total(values: list) -> int:
    return int(sum(values))


@dsl.component
def make_list(n: int) -> list:
    return [{"a": i, "b": 10 * i} for i in range(n)]


@dsl.component
def add_pair(a: int, b: int) -> int:
    return a + b


@dsl.component
def fail(message: str) -> None:
    raise ValueError(message)


@dsl.component
def final_status(status: PipelineTaskFinalStatus) -> str:
    return f"{status.state}|{bool(status.pipeline_job_resource_name)}|{(status.error_message or '')[:40]}"


@dsl.component
def fail_until(marker: str, failures: int) -> int:
    import os

    count = 0
    if os.path.exists(marker):
        with open(marker) as fh:
            count = int(fh.read())
    with open(marker, "w") as fh:
        fh.write(str(count + 1))
    if count < failures:
        raise RuntimeError(f"attempt {count + 1} fails on purpose")
    return count + 1


@dsl.component(packages_to_install=["humanize==4.12.1"])
def with_package(n: int) -> str:
    import humanize

    return humanize.intcomma(n)


@dsl.component(packages_to_install=["kubeflow-bridge-no-such-package==9.9.9"])
def missing_package() -> str:
    return "never"


@dsl.component
def read_env() -> str:
    import os

    return os.environ.get("GREETING", "unset")


@dsl.component
def placeholders(job_name: str, job_id: str, task_name: str) -> str:
    return f"{bool(job_name)}|{len(job_id)}|{task_name}"


@dsl.component
def join_artifacts(items: Input[list[Dataset]]) -> str:  # type: ignore[valid-type]
    return ",".join(sorted(open(d.path).read() for d in items))


@dsl.component
def train_model(model: Output[Model]) -> None:
    with open(model.path, "w") as fh:
        fh.write("weights")


@dsl.container_component
def shell_echo(msg: str, said: dsl.OutputPath(str)):  # type: ignore[valid-type,no-untyped-def]
    return dsl.ContainerSpec(
        image="alpine:3.20",
        command=["sh", "-c", 'mkdir -p "$(dirname "$1")" && printf "shell:%s" "$0" > "$1"'],
        args=[msg, said],
    )


@dsl.container_component
def python_image(n: int, result: dsl.OutputPath(str)):  # type: ignore[valid-type,no-untyped-def]
    return dsl.ContainerSpec(
        image="python:3.11",
        command=["python3", "-c"],
        args=[
            "import os, sys; os.makedirs(os.path.dirname(sys.argv[2]), exist_ok=True); "
            "open(sys.argv[2], 'w').write(str(int(sys.argv[1]) ** 3))",
            n,
            result,
        ],
    )


@dsl.container_component
def unmapped_image():  # type: ignore[no-untyped-def]
    return dsl.ContainerSpec(image="registry.example.com/team/custom:1.0", command=["true"])


# ---- pipelines ------------------------------------------------------------------------------------
@dsl.pipeline
def hello(a: int = 1) -> int:
    return add(a=a).output


@dsl.pipeline
def optional_inputs(text: str = None, number: int = 3):  # type: ignore[assignment,no-untyped-def]  # noqa: RUF013
    echo_optional(text=text, number=number).set_display_name("given")
    echo_optional().set_display_name("defaults")


@dsl.pipeline
def parameter_types(
    s: str = "x",
    i: int = 2,
    f: float = 0.5,
    flag: bool = True,
    items: list = [1, 2],  # noqa: B006
    mapping: dict = {"k": "v"},  # noqa: B006
):  # type: ignore[no-untyped-def]
    describe(s=s, i=i, f=f, flag=flag, items=items, mapping=mapping)


@dsl.pipeline
def named_outputs():  # type: ignore[no-untyped-def]
    result = stats(values=[1, 2, 3.5])
    add(a=result.outputs["count"], b=10).set_display_name("use-count")


@dsl.pipeline
def artifacts(text: str = "hello"):  # type: ignore[no-untyped-def]
    written = write_data(text=text)
    read_data(data=written.outputs["data"])


@dsl.pipeline
def custom_path(text: str = "elsewhere"):  # type: ignore[no-untyped-def]
    read_data(data=write_custom_path(text=text).outputs["data"])


@dsl.pipeline
def metrics_and_html():  # type: ignore[no-untyped-def]
    log_metrics()


@dsl.pipeline
def conditions(n: int = 5):  # type: ignore[no-untyped-def]
    with dsl.If(n > 3):
        identity(x="big").set_display_name("big")
    with dsl.Elif(n > 1):
        identity(x="medium").set_display_name("medium")
    with dsl.Else():
        identity(x="small").set_display_name("small")


@dsl.pipeline
def one_of(n: int = 1) -> str:
    with dsl.If(n == 1):
        one = identity(x="one").set_display_name("one")
    with dsl.Else():
        other = identity(x="other").set_display_name("other")
    return identity(x=dsl.OneOf(one.output, other.output)).set_display_name("chosen").output


@dsl.pipeline
def parallel_for_collected() -> int:
    with dsl.ParallelFor([1, 2, 3], parallelism=2) as x:
        sq = square(x=x)
    return total(values=dsl.Collected(sq.output)).output


@dsl.pipeline
def dynamic_fan_out(n: int = 3) -> int:
    pairs = make_list(n=n)
    with dsl.ParallelFor(pairs.output) as item:
        summed = add_pair(a=item.a, b=item.b)
    return total(values=dsl.Collected(summed.output)).output


@dsl.pipeline
def nested_loops() -> int:
    with dsl.ParallelFor([1, 2]) as outer, dsl.ParallelFor([10, 20]) as inner:
        add_pair(a=outer, b=inner)
    return add(a=0, b=0).output


@dsl.pipeline
def inner_pipeline(x: int) -> int:
    return square(x=add(a=x, b=1).output).output


@dsl.pipeline
def sub_pipelines(x: int = 2) -> int:
    first = inner_pipeline(x=x)
    return add(a=first.output, b=100).set_display_name("after-inner").output


@dsl.pipeline
def exit_handler_on_failure():  # type: ignore[no-untyped-def]
    cleanup = final_status().set_display_name("cleanup")
    with dsl.ExitHandler(cleanup):
        fail(message="the body fails")


@dsl.pipeline
def exit_handler_on_success():  # type: ignore[no-untyped-def]
    cleanup = final_status().set_display_name("cleanup")
    with dsl.ExitHandler(cleanup):
        identity(x="fine")


@dsl.pipeline
def retries(marker: str):  # type: ignore[no-untyped-def]
    fail_until(marker=marker, failures=2).set_retry(num_retries=2, backoff_duration="0s").set_caching_options(
        False
    )


@dsl.pipeline
def packages(n: int = 1234567):  # type: ignore[no-untyped-def]
    with_package(n=n)


@dsl.pipeline
def package_not_found():  # type: ignore[no-untyped-def]
    missing_package()


@dsl.pipeline
def container_components(msg: str = "hi") -> str:
    said = shell_echo(msg=msg)
    cubed = python_image(n=3)
    return identity(x=said.outputs["said"]).after(cubed).output


@dsl.pipeline
def image_not_mapped():  # type: ignore[no-untyped-def]
    unmapped_image()


@dsl.pipeline
def env_variables():  # type: ignore[no-untyped-def]
    read_env().set_env_variable("GREETING", "hello from the spec")


@dsl.pipeline
def pipeline_placeholders():  # type: ignore[no-untyped-def]
    placeholders(
        job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        job_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        task_name=dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
    )


@dsl.pipeline
def collected_artifacts() -> str:
    with dsl.ParallelFor(["a", "b"]) as text:
        written = write_data(text=text)
    return join_artifacts(items=dsl.Collected(written.outputs["data"])).output


@dsl.pipeline
def failing(message: str = "bad input row 7"):  # type: ignore[no-untyped-def]
    first = add(a=1)
    fail(message=message).after(first)


@dsl.pipeline
def importer_artifact(uri: str):  # type: ignore[no-untyped-def]
    imported = dsl.importer(artifact_uri=uri, artifact_class=Dataset, metadata={"length": 3})
    read_data(data=imported.output)


@dsl.pipeline
def ordering():  # type: ignore[no-untyped-def]
    model = train_model()
    identity(x="after training").after(model).set_display_name("deploy-step")


# ---- checks ---------------------------------------------------------------------------------------
def _expect(name: str, key: str, value: Any) -> Callable[[dict[str, Any], dict[str, dict[str, Any]]], None]:
    def check(run: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> None:
        assert out(tasks, name, key) == value, tasks[name]

    return check


def _check_optional(run: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> None:
    assert out(tasks, "given") == "None|3"  # the pipeline's optional input was left empty
    assert out(tasks, "defaults") == "None|7"


def _check_artifacts(run: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> None:
    assert out(tasks, "read-data") == "HELLO/5"
    assert read(tasks["write-data"]["output_artifacts"]["data"]) == "hello"


def _check_metrics(run: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> None:
    arts = tasks["log-metrics"]["output_artifacts"]
    assert read(arts["page"]) == "<h1>report</h1>"
    assert set(arts) == {"metrics", "page"}


def _check_conditions(run: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> None:
    assert out(tasks, "big") == "big"
    assert tasks["medium"]["state"] == "SKIPPED" and tasks["small"]["state"] == "SKIPPED"


def _check_nested(run: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> None:
    sums = sorted(
        t["output_parameters"]["Output"]
        for t in run["run_details"]["task_details"]
        if t.get("display_name") == "add-pair"
    )
    assert sums == [11, 12, 21, 22]


def _check_exit_failure(run: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> None:
    assert tasks["fail"]["state"] == "FAILED"
    state, has_job, _ = out(tasks, "cleanup").split("|")
    assert (state, has_job) == ("FAILED", "True")  # the exit task saw the body's final status


def _check_exit_success(run: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> None:
    assert out(tasks, "cleanup").startswith("SUCCEEDED|True")


def _check_packages_missing(run: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> None:
    message = tasks["missing-package"]["error"]["message"]
    assert "kubeflow-bridge-no-such-package" in message and "pip" in message, message


def _check_unmapped(run: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> None:
    message = tasks["unmapped-image"]["error"]["message"]
    assert "registry.example.com/team/custom:1.0" in message and "images.yaml" in message, message


def _check_container(run: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> None:
    assert out(tasks, "shell-echo", "said") == "shell:hi"
    assert out(tasks, "python-image", "result") == "27"
    assert out(tasks, "identity") == "shell:hi"


def _check_placeholders(run: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> None:
    has_name, id_length, task_name = out(tasks, "placeholders").split("|")
    assert has_name == "True" and int(id_length) > 0 and task_name == "placeholders"


def _check_failing(run: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> None:
    assert "bad input row 7" in run["error"]["message"]
    assert tasks["add"]["state"] in ("SUCCEEDED", "SKIPPED")  # add(a=1) may come from the cache


def _check_ordering(run: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> None:
    assert tasks["train-model"]["end_time"] <= tasks["deploy-step"]["start_time"]
    assert read(tasks["train-model"]["output_artifacts"]["model"]) == "weights"


CASES: list[Case] = [
    Case("hello", hello, _expect("add", "Output", 3)),
    Case("optional-inputs", optional_inputs, _check_optional),
    Case("parameter-types", parameter_types, _expect("describe", "Output", "x:2:0.5:True:3:[('k', 'v')]")),
    Case("named-outputs", named_outputs, _expect("use-count", "Output", 13)),
    Case("artifacts", artifacts, _check_artifacts),
    Case("metrics-and-html", metrics_and_html, _check_metrics),
    Case("custom-path", custom_path, _expect("read-data", "Output", "ELSEWHERE/9")),
    Case("conditions", conditions, _check_conditions),
    Case("one-of", one_of, _expect("chosen", "Output", "one")),
    Case("parallel-for-collected", parallel_for_collected, _expect("total", "Output", 14)),
    Case("dynamic-fan-out", dynamic_fan_out, _expect("total", "Output", 33)),
    Case("nested-loops", nested_loops, _check_nested),
    Case("sub-pipelines", sub_pipelines, _expect("after-inner", "Output", 109)),
    Case("exit-handler-on-failure", exit_handler_on_failure, _check_exit_failure, state="FAILED"),
    Case("exit-handler-on-success", exit_handler_on_success, _check_exit_success),
    Case("retries", retries, _expect("fail-until", "Output", 3)),  # marker argument added by the test
    Case("packages", packages, _expect("with-package", "Output", "1,234,567")),
    Case("package-not-found", package_not_found, _check_packages_missing, state="FAILED"),
    Case("container-components", container_components, _check_container),
    Case("image-not-mapped", image_not_mapped, _check_unmapped, state="FAILED"),
    Case("env-variables", env_variables, _expect("read-env", "Output", "hello from the spec")),
    Case("pipeline-placeholders", pipeline_placeholders, _check_placeholders),
    Case("collected-artifacts", collected_artifacts, _expect("join-artifacts", "Output", "a,b")),
    Case("failing", failing, _check_failing, state="FAILED"),
    Case("importer", importer_artifact, _expect("read-data", "Output", "ABC/3")),  # uri added by the test
    Case("ordering", ordering, _check_ordering),
]
