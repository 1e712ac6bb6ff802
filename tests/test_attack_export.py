"""Hostile input against ``trainpipe export airflow``: text from the pipeline file or the command line stays data.

- Python: quotes, triple quotes, backslashes, newlines, ``{{ }}``/``${}`` in the description, the data path,
  ``--set`` values: the DAG file parses and holds them only inside string literals (its code is the same code as
  a plain pipeline's).
- Jinja: Airflow renders an operator's arguments and environment as templates when a task starts, so a value the
  DAG hands to them (``--env``, ``--workdir``, ``--image``, ``--set``, ...) holding ``{{``/``{%``/``{#``, or ending
  in a template-file extension (``.sh``), is refused with exit 2.
- The export's ``--set``/``--profile`` reach every run (open_run's arguments); a secret among them is refused.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_pipeline
from trainpipe._exceptions import ConfigError
from trainpipe.config import load_config
from trainpipe.export import build_plan, render_dag

HOSTILE = 'x""" \'\'\' \\ \\n {{ dag_run.conf }} {% if 1 %}\n__import__("os").system("id") #'
PIPELINE = """\
name: hostile
description: {description}
data: {{source: {source}, target: target}}
model: {{type: sklearn.linear_model.LogisticRegression}}
"""


def _yaml_str(text: str) -> str:
    import json

    return json.dumps(text)  # a JSON string is a YAML double-quoted scalar


def _plan(workdir: Path, description: str = "plain", source: str = "data.csv",
          overrides: list[str] | None = None) -> dict[str, Any]:
    path = write_pipeline(workdir, PIPELINE.format(description=_yaml_str(description), source=_yaml_str(source)))
    loaded = load_config(path, overrides=overrides or [])
    return build_plan(loaded, workdir=workdir, config_path=path)


def _code_shape(text: str) -> list[str]:
    """Everything of a module but its string constants: node types and names, in order."""
    shape = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            continue
        shape.append(type(node).__name__ + ":" + str(getattr(node, "id", getattr(node, "attr", ""))))
    return shape


def _embedded_plan(text: str) -> dict[str, Any]:
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PLAN":
            value: dict[str, Any] = ast.literal_eval(node.value)
            return value
    raise AssertionError("no PLAN in the DAG file")


def test_hostile_text_stays_inside_string_literals_of_the_dag(workdir: Path) -> None:
    plain = render_dag(_plan(workdir), overrides=["model.params.C=2"])
    hostile_source = f"data/{HOSTILE.replace(chr(10), ' ')}.csv"
    plan = _plan(workdir, description=HOSTILE, source=hostile_source,
                 overrides=[f"model.params.solver={HOSTILE}"])
    text = render_dag(plan, overrides=["model.params.C=2"])
    assert _code_shape(text) == _code_shape(plain)  # no new code: the hostile text is only string constants
    embedded = _embedded_plan(text)
    assert embedded["description"] == HOSTILE  # read back exactly
    assert "__import__" not in "".join(ast.unparse(n) for n in ast.parse(text).body
                                       if not (isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "PLAN"))


def test_the_exports_set_and_profile_are_applied_by_every_run(workdir: Path) -> None:
    (workdir / "pipeline.yaml").write_text("")
    (workdir / "pipeline.fast.yaml").write_text("model: {params: {max_iter: 50}}\n")
    plan = _plan(workdir)
    text = render_dag(plan, profile="fast", overrides=["model.params.C=2", "description=it's \"quoted\""])
    assert _embedded_plan(text)["open_args"] == ["--profile", "fast", "--set", "model.params.C=2",
                                                  "--set", "description=it's \"quoted\""]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"env": {"A": "x{{ conn.db.password }}"}}, r"--env A: 'x\{\{ conn.db.password \}\}' holds '\{\{'; Airflow "
                                                r"renders"),
    ({"env": {"A": "{% for x in y %}"}}, r"--env A: .* holds '\{%'"),
    ({"env": {"A": "{# gone #}"}}, r"--env A: .* holds '\{#'"),
    ({"env": {"B\"; import os": "1"}}, r"--env 'B\"; import os': expected an environment variable name"),
    ({"env": {"TRAINPIPE_OVERRIDES": "{}"}}, r"--env TRAINPIPE_OVERRIDES: the DAG sets this variable itself"),
    ({"env": {"TRAINPIPE_ARG_0": "run"}}, r"--env TRAINPIPE_ARG_0: the DAG sets this variable itself"),
    ({"env": {"SETUP": "/opt/init.sh"}}, r"--env SETUP: '/opt/init.sh' ends with 'sh'; Airflow reads a task value "
                                         r"ending in .sh, .bash, .env as the name of a template file"),
    ({"mode": "docker", "image": "registry/{{ var.value.x }}:1"}, r"--image: expected a container image reference"),
    ({"mode": "docker", "image": "img:1\" ; rm -rf /"}, r"--image: expected a container image reference such as "),
    ({"mode": "kubernetes", "image": "img:1", "namespace": "{{ conn.k.host }}"}, r"--namespace: .* holds"),
    ({"mode": "kubernetes", "image": "img:1", "volume_claim": "{{x}}"}, r"--volume-claim: .* holds"),
    ({"trainpipe": "/opt/{{ 7*7 }}/trainpipe"}, r"the trainpipe command: .* holds"),
    ({"overrides": ["description={{ conn.db.password }}"]}, r"--set description: .* holds '\{\{'"),
    ({"profile": "{{x}}"}, r"--profile: .* holds"),
    ({"overrides": ["tracking.uri=postgresql://u:hunter2@db/mlflow"]},
     r"--set tracking.uri=\.\.\.: a secret .* Write \$\{NAME\} in the pipeline file"),
    ({"overrides": ["model.params.api_key=abc"]}, r"--set model.params.api_key=\.\.\.: a secret"),
])
def test_values_airflow_would_render_as_templates_are_refused(workdir: Path, kwargs: dict[str, Any],
                                                               match: str) -> None:
    plan = _plan(workdir)
    with pytest.raises(ConfigError, match=match):
        render_dag(plan, **kwargs)


def test_a_workdir_with_jinja_is_exit_2_and_nothing_is_written(workdir: Path) -> None:
    path = write_pipeline(workdir, PIPELINE.format(description='"d"', source='"sklearn:breast_cancer"'))
    done = subprocess.run([sys.executable, "-m", "trainpipe.cli", "export", "airflow", str(path), "-o", "dags",
                           "--workdir", str(workdir / "w{{ 7*7 }}")], cwd=workdir, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    assert done.returncode == 2, done.stderr
    assert "--workdir (the project folder)" in done.stderr and "holds '{{'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (workdir / "dags").exists()


def test_kubeflow_export_never_overwrites_a_python_file_it_did_not_write(workdir: Path) -> None:
    from trainpipe.export._kubeflow import check_output, render_pipeline

    (workdir / "train.py").write_text("print('my own code')\n")
    with pytest.raises(ConfigError, match=r"-o .*train.yaml: .*train.py exists and was not written by trainpipe "
                                          r"export kubeflow; it would be overwritten"):
        check_output(workdir / "train.yaml")
    assert (workdir / "train.py").read_text() == "print('my own code')\n"
    with pytest.raises(ConfigError, match=r"-o .*train.py: expected the pipeline spec's file name ending in .yaml"):
        check_output(workdir / "train.py")
    ours = render_pipeline(_plan(workdir), config_text="name: x\n", image="trainpipe:1")
    (workdir / "pipe.py").write_text(ours)  # a file an earlier export wrote is replaced
    assert check_output(workdir / "pipe.yaml") == workdir / "pipe.py"


def test_hostile_text_stays_inside_string_literals_of_the_kubeflow_source(workdir: Path) -> None:
    from trainpipe.export._kubeflow import render_pipeline

    plain = render_pipeline(_plan(workdir), config_text="name: x\n", image="trainpipe:1")
    hostile = render_pipeline(_plan(workdir, description=HOSTILE, source=HOSTILE.replace("\n", " ")),
                              config_text=f"description: {HOSTILE!r}\n", image=f"img{HOSTILE}")
    assert _code_shape(hostile) == _code_shape(plain)
    assert _embedded_plan(hostile)["description"] == HOSTILE


@pytest.mark.parametrize(("overrides", "match"), [
    (["tracking.uri=postgresql://u:hunter2@db/mlflow"], r"^tracking.uri: a secret written in the pipeline file or "
                                                        r"given with --set; the exported pipeline embeds the config"),
    (["model.params.api_token=abc123"], r"^model.params.api_token: a secret"),
])
def test_kubeflow_export_refuses_a_secret_in_clear_text(workdir: Path, overrides: list[str], match: str) -> None:
    from trainpipe.export._kubeflow import compile_pipeline

    path = write_pipeline(workdir, PIPELINE.format(description='"d"', source='"sklearn:breast_cancer"'))
    with pytest.raises(ConfigError, match=match):
        compile_pipeline(load_config(path, overrides=overrides), workdir / "kfp.yaml", image="trainpipe:1")
    assert not list(workdir.glob("kfp*"))


def test_a_secret_from_the_environment_stays_a_placeholder_in_the_kubeflow_config(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainpipe.config._secrets import env_placeholders
    from trainpipe.export._kubeflow import clear_secrets

    monkeypatch.setenv("MY_DB_PASSWORD", "pw-123456")
    path = write_pipeline(workdir, PIPELINE.format(description='"d"', source='"sklearn:breast_cancer"'))
    loaded = load_config(path, overrides=["tracking.uri=postgresql://u:${MY_DB_PASSWORD}@db/mlflow"])
    dump = env_placeholders(loaded.config.model_dump(mode="json"), loaded.secret_values)
    assert dump["tracking"]["uri"] == "postgresql://u:${MY_DB_PASSWORD}@db/mlflow"
    assert clear_secrets(dump) == []


@pytest.mark.slow
def test_real_airflow_open_run_applies_the_exports_set_and_a_quoted_env_value(workdir: Path) -> None:
    """`airflow tasks test DAG open_run` in Airflow's own venv (made by `make test`): the run's config holds the
    export's --set (it was dropped before); a DAG with a quoted, backslashed --env value loads and runs."""
    airflow = Path(__file__).resolve().parents[1] / ".venv-airflow" / "bin" / "airflow"
    if not airflow.is_file():
        pytest.fail(f"{airflow} is missing: create Airflow's virtual environment with `make .venv-airflow/.installed`")
    path = write_pipeline(workdir, "name: bc\ndata: {source: \"sklearn:breast_cancer\", target: target}\n"
                                   "model: {type: sklearn.linear_model.LogisticRegression}\n")
    env = {**os.environ, "AIRFLOW_HOME": str(workdir / "airflow-home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(workdir / "dags"), "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("PYTHONPATH", None)
    trainpipe = Path(sys.executable).with_name("trainpipe")
    exported = subprocess.run([str(trainpipe), "export", "airflow", str(path), "-o", "dags", "--set",
                               "model.params.C=0.25", "--env", "TRAINPIPE_NOTE=it's \"quoted\" \\ $HOME"],
                              cwd=workdir, capture_output=True, text=True, timeout=120, env=env)
    assert exported.returncode == 0, exported.stderr
    for args in (["db", "migrate"], ["tasks", "test", "trainpipe_bc", "open_run"]):
        done = subprocess.run([str(airflow), *args], cwd=workdir, capture_output=True, text=True, timeout=300,
                              env=env)
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    import yaml

    (run,) = (workdir / ".trainpipe" / "runs").iterdir()
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["params"]["C"] == 0.25


def test_an_output_that_is_a_file_is_exit_2_naming_it(workdir: Path) -> None:
    from trainpipe.export import write_dag

    (workdir / "afile").write_text("x")
    with pytest.raises(ConfigError, match=r"-o .*afile: cannot write the DAG file there \(File exists\); -o names "
                                          r"the DAG folder"):
        write_dag("x = 1\n", workdir / "afile", "p")
    assert (workdir / "afile").read_text() == "x"
