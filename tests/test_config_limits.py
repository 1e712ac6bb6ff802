"""Hostile and clumsy pipeline files: alias bombs, deep nesting, huge files, repeated keys, names that would
escape the project folder or break MLflow, ``--set`` values that are not YAML, unquoted ``${VAR}``
(issue 18 findings 4 and 6, issue 19 item 6)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import make_frame, write_pipeline
from trainpipe import ConfigError
from trainpipe.cli import app
from trainpipe.config import apply_override, load_config

MINIMAL = """\
name: churn
data:
  source: data.csv
  target: label
model:
  type: sklearn.linear_model.LogisticRegression
"""


def alias_bomb(levels: int = 9) -> str:
    """The classic "billion laughs": ~300 bytes that expand to 9**levels values."""
    names = "abcdefghijklmnop"
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        refs = ", ".join([f"*{names[i - 1]}"] * 9)
        lines.append(f"{names[i]}: &{names[i]} [{refs}]")
    return MINIMAL + "\n".join(lines) + "\n"


def validate_cli(cwd: Path, *args: str) -> tuple[int, str]:
    """``trainpipe validate`` in-process, from ``cwd``; returns the exit code and everything printed."""
    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, ["validate", *args])
    finally:
        os.chdir(old)
    return result.exit_code, result.output


def assert_exit_2(cwd: Path, *patterns: str, args: tuple[str, ...] = ("pipeline.yaml",)) -> str:
    import re

    code, output = validate_cli(cwd, *args)
    assert code == 2, output
    assert "Traceback" not in output, output
    assert output.count("error:") == 1, output
    flat = " ".join(output.split())  # rich wraps long lines
    for pattern in patterns:
        assert re.search(pattern, flat), f"{pattern!r} not in:\n{output}"
    assert not (cwd / ".trainpipe" / "runs").exists(), "a config error must not start a run"
    return flat


# -- 18.4: parse-time limits --------------------------------------------------------------------------


def test_alias_bomb_is_refused_at_parse_time(tmp_path: Path) -> None:
    text = alias_bomb()
    assert len(text.encode()) < 600
    with pytest.raises(ConfigError, match=r"pipeline\.yaml: YAML aliases expand to more than 100,000 values.*"
                                          r"alias bomb"):
        load_config(write_pipeline(tmp_path, text))


def test_alias_bomb_through_the_cli_is_exit_2(tmp_path: Path) -> None:
    write_pipeline(tmp_path, alias_bomb())
    assert_exit_2(tmp_path, r"pipeline\.yaml", r"alias", r"limit is 100,000")


def test_alias_bomb_in_a_real_process_is_exit_2_without_traceback(tmp_path: Path) -> None:
    write_pipeline(tmp_path, alias_bomb())
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "COLUMNS": "400", "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-m", "trainpipe.cli", "validate", "pipeline.yaml"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "alias" in proc.stderr


def test_small_aliases_and_merge_keys_still_work(tmp_path: Path) -> None:
    # an anchor reused a few times, and a merge key overridden in place, are ordinary YAML
    text = MINIMAL + (
        "  params:\n    <<: &p {C: 0.5, max_iter: 50}\n    C: 2.0\n"
        "evaluation: {slices: &cols [a, b], metrics: [accuracy]}\n"
        "features: {categorical: *cols}\n"
    )
    cfg = load_config(write_pipeline(tmp_path, text)).config
    assert cfg.model.params == {"C": 2.0, "max_iter": 50}
    assert cfg.features.categorical == ["a", "b"]


def test_too_many_aliases_is_refused(tmp_path: Path) -> None:
    refs = ", ".join(["*x"] * 501)
    text = MINIMAL + f"evaluation:\n  slices: [&x a]\n  metrics: [{refs}]\n"
    with pytest.raises(ConfigError, match=r"more than 500 YAML aliases \(\*x at line \d+ is one too many\)"):
        load_config(write_pipeline(tmp_path, text))


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    text = MINIMAL + "  params: &p {inner: *p}\n"
    with pytest.raises(ConfigError, match=r"anchor at line 7 contains an alias to itself"):
        load_config(write_pipeline(tmp_path, text))


@pytest.mark.parametrize("opening", ["[", "{a: "])
def test_20000_deep_nesting_is_exit_2(tmp_path: Path, opening: str) -> None:
    closing = "]" if opening == "[" else "}"
    write_pipeline(tmp_path, MINIMAL + "description: " + opening * 20_000 + closing * 20_000 + "\n")
    assert_exit_2(tmp_path, r"pipeline\.yaml: nesting deeper than 64 levels at line 7", r"limit is 64")


def test_deep_nesting_through_aliases_is_refused(tmp_path: Path) -> None:
    deep = "[" * 40 + "1" + "]" * 40
    text = MINIMAL + f"x: &a {deep}\ny: &b [{'[' * 30}*a{']' * 30}]\n"
    with pytest.raises(ConfigError, match=r"nesting deeper than 64 levels once YAML aliases are expanded"):
        load_config(write_pipeline(tmp_path, text))


def test_a_20_mb_file_is_exit_2(tmp_path: Path) -> None:
    filler = "# " + "x" * 98 + "\n"
    (tmp_path / "pipeline.yaml").write_text(MINIMAL + filler * 200_000)
    assert (tmp_path / "pipeline.yaml").stat().st_size > 20_000_000
    assert_exit_2(tmp_path, r"pipeline\.yaml: the pipeline file is larger than 1,048,576 bytes",
                  r"settings, not data")


def test_a_large_profile_overlay_is_refused_too(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path, MINIMAL)
    write_pipeline(tmp_path, alias_bomb(), name="pipeline.big.yaml")
    with pytest.raises(ConfigError, match=r"pipeline\.big\.yaml: YAML aliases expand"):
        load_config(path, profile="big")


def test_duplicate_section_names_the_key_and_both_lines(tmp_path: Path) -> None:
    write_pipeline(tmp_path, MINIMAL + "model:\n  type: xgboost\n")
    assert_exit_2(tmp_path, r"pipeline\.yaml: duplicate key 'model' at line 5 and line 7",
                  r"Merge the two 'model' entries")


def test_duplicate_nested_key_and_in_a_profile(tmp_path: Path) -> None:
    text = MINIMAL + "  params:\n    C: 1.0\n    max_iter: 10\n    C: 3.0\n"
    with pytest.raises(ConfigError, match=r"duplicate key 'C' at line 8 and line 10"):
        load_config(write_pipeline(tmp_path, text))
    path = write_pipeline(tmp_path, MINIMAL)
    write_pipeline(tmp_path, "tracking: {experiment: a}\ntracking: {experiment: b}\n", name="pipeline.dup.yaml")
    with pytest.raises(ConfigError, match=r"pipeline\.dup\.yaml: duplicate key 'tracking' at line 1 and line 2"):
        load_config(path, profile="dup")


def test_env_value_that_is_an_alias_bomb_stays_a_string(tmp_path: Path) -> None:
    bomb = alias_bomb().split("\n", 6)[-1].replace("\n", ", ")
    text = MINIMAL + "description: '${DESC}'\n"
    cfg = load_config(write_pipeline(tmp_path, text), env={"DESC": "{" + bomb + "}"}).config
    assert isinstance(cfg.description, str) and cfg.description.startswith("{a: &a")


# -- 18.6: names that escape or break late ---------------------------------------------------------------


@pytest.mark.parametrize(("section", "value", "pattern"), [
    ("tracking: {experiment: /abs/path}", "/abs/path", r"tracking\.experiment: a path part .* out of the "
                                                       r"project's \.trainpipe folder"),
    ("tracking: {experiment: ../../x}", "../../x", r"tracking\.experiment: a path part"),
    ("tracking: {experiment: .hidden}", ".hidden", r"tracking\.experiment: a path part"),
    (f"tracking: {{experiment: {'e' * 300}}}", "e" * 300, r"tracking\.experiment: it has 300 characters"),
    ("registry: {model_name: \"churn's model\"}", "churn's model",
     r"registry\.model_name: Registered model names start with a letter or digit and use only letters, digits, "
     r"spaces"),
    ("registry: {model_name: a/b}", "a/b", r"registry\.model_name: MLflow refuses '/' and ':'"),
    ("registry: {model_name: 'a:b'}", "a:b", r"registry\.model_name: MLflow refuses '/' and ':'"),
])
def test_names_that_escape_or_break_mlflow_are_exit_2_at_load(tmp_path: Path, section: str, value: str,
                                                              pattern: str) -> None:
    write_pipeline(tmp_path, MINIMAL + section + "\n")
    flat = assert_exit_2(tmp_path, pattern, r"at most 100 characters")
    assert repr(value)[:60] in flat


def test_ordinary_names_with_spaces_and_dots_are_fine(tmp_path: Path) -> None:
    text = MINIMAL + "tracking: {experiment: Churn models 2024.1}\nregistry: {model_name: churn-model_v2}\n"
    cfg = load_config(write_pipeline(tmp_path, text)).config
    assert cfg.tracking.experiment == "Churn models 2024.1"
    assert cfg.registry.model_name == "churn-model_v2"


@pytest.mark.parametrize("name", ["../x", "a/b", "n" * 101, ".x", "x y"])
def test_pipeline_name_which_names_the_study_and_the_default_model_is_checked(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match=r"name: must start with a letter or digit"):
        load_config(write_pipeline(tmp_path, MINIMAL), overrides=[f"name={name}"])


def test_a_bad_name_from_set_is_named_with_its_origin(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tracking\.experiment: a path part.*\(from --set "
                                          r"tracking\.experiment=/tmp/elsewhere\)"):
        load_config(write_pipeline(tmp_path, MINIMAL), overrides=["tracking.experiment=/tmp/elsewhere"])


# -- 19.6: --set values and unquoted ${VAR} -----------------------------------------------------------------


def test_set_threshold_rule_that_is_not_yaml_becomes_the_string(tmp_path: Path) -> None:
    cfg = load_config(write_pipeline(tmp_path, MINIMAL), overrides=["gate.thresholds.roc_auc=>= 0.8"]).config
    assert cfg.gate.thresholds == {"roc_auc": ">= 0.8"}


def test_set_threshold_rule_through_the_cli_validates(tmp_path: Path) -> None:
    make_frame().to_csv(tmp_path / "data.csv", index=False)
    write_pipeline(tmp_path, MINIMAL)
    code, output = validate_cli(tmp_path, "pipeline.yaml", "--set", "gate.thresholds.roc_auc=>= 0.8")
    assert code == 0, output
    assert "config OK (churn)" in output


def test_bad_set_threshold_through_the_cli(tmp_path: Path) -> None:
    # the value reaches the config: a bad rule is still named by the schema, not by a PyYAML scanner dump
    write_pipeline(tmp_path, MINIMAL)
    flat = assert_exit_2(tmp_path, r"gate\.thresholds: threshold for 'roc_auc' must look like",
                         args=("pipeline.yaml", "--set", "gate.thresholds.roc_auc=>= 0.8 please"))
    assert "scanner" not in flat and "could not find expected" not in flat


def test_set_string_keys_keep_the_text(tmp_path: Path) -> None:
    loaded = load_config(write_pipeline(tmp_path, MINIMAL),
                         overrides=["data.target=2024", "name=007", "tracking.experiment=1.5",
                                    "model.params.C=0.5", "data.positive_label=1", "tracking.uri=null"])
    cfg = loaded.config
    assert cfg.data.target == "2024"
    assert cfg.name == "007"
    assert cfg.tracking.experiment == "1.5"
    assert cfg.model.params == {"C": 0.5}  # not string-typed: YAML as before
    assert cfg.data.positive_label == 1  # str | int | float | bool: YAML decides
    assert cfg.tracking.uri is None  # null still clears an optional string


def test_set_value_that_is_not_yaml_on_a_list_key_is_named_by_the_schema() -> None:
    raw: dict[str, object] = {}
    apply_override(raw, "evaluation.slices=[a, b")
    assert raw == {"evaluation": {"slices": "[a, b"}}


def test_unquoted_env_reference_in_flow_mapping_says_to_quote_it(tmp_path: Path) -> None:
    text = MINIMAL + "  params: {alpha: ${RIDGE_ALPHA}}\n"
    with pytest.raises(ConfigError, match=r"invalid YAML at line 7.*The unquoted \$\{RIDGE_ALPHA\} on line 7 is "
                                          r"the likely cause.*Quote it: \"\$\{RIDGE_ALPHA\}\""):
        load_config(write_pipeline(tmp_path, text), env={"RIDGE_ALPHA": "0.3"})
    quoted = MINIMAL + '  params: {alpha: "${RIDGE_ALPHA}"}\n'
    cfg = load_config(write_pipeline(tmp_path, quoted), env={"RIDGE_ALPHA": "0.3"}).config
    assert cfg.model.params == {"alpha": 0.3}


def test_quoted_env_reference_elsewhere_gives_no_quote_hint(tmp_path: Path) -> None:
    text = MINIMAL + "  params: {alpha: '${RIDGE_ALPHA}', [}\n"
    with pytest.raises(ConfigError, match=r"invalid YAML") as info:
        load_config(write_pipeline(tmp_path, text))
    assert "Quote it" not in str(info.value)


def test_a_pipeline_file_that_is_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    """Reading a named pipe blocks until a writer comes, forever in a scheduler; a device never ends."""
    fifo = tmp_path / "pipeline.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match=r"not a regular file \(a pipe, socket or device\)"):
        load_config(fifo)
