from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_pipeline
from trainpipe import ConfigError
from trainpipe.config import apply_override, config_from_dict, config_hash, load_config, redact

MINIMAL = """\
name: telco-churn
data:
  source: data/churn.csv
  target: churn
model:
  type: xgboost
"""


def test_smallest_config_gets_every_default(tmp_path: Path) -> None:
    cfg = load_config(write_pipeline(tmp_path, MINIMAL)).config
    assert cfg.task == "auto"
    assert cfg.data.split.method == "stratified"
    assert cfg.data.split.test_size == 0.2
    assert cfg.features.numeric is None
    assert cfg.validation.min_rows is None  # opt-in; by default only "too few rows to split" is refused
    assert cfg.model.params == {}
    assert cfg.evaluation.metrics is None
    assert cfg.tracking.uri is None
    assert cfg.tuning is None


def test_unknown_key_names_path_and_suggests(tmp_path: Path) -> None:
    text = MINIMAL.replace("  target: churn", "  targt: churn")
    with pytest.raises(ConfigError, match=r"data\.targt: unknown key\. Did you mean 'target'\?"):
        load_config(write_pipeline(tmp_path, text))


def test_unknown_top_level_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"modle: unknown key\. Did you mean 'model'\?"):
        load_config(write_pipeline(tmp_path, MINIMAL + "modle: {type: x}\n"))


def test_wrong_type_names_key(tmp_path: Path) -> None:
    text = MINIMAL + "validation:\n  min_rows: lots\n"
    with pytest.raises(ConfigError, match=r"validation\.min_rows: .*integer.*'lots'"):
        load_config(write_pipeline(tmp_path, text))


def test_invalid_yaml_gives_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"invalid YAML at line 4, column 9"):
        load_config(write_pipeline(tmp_path, "name: x\ndata:\n  source: [a, b\n  target: y\n"))


@pytest.mark.parametrize("text", ["", "- just\n- a list\n"])
def test_empty_or_non_mapping_file(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="pipeline.yaml"):
        load_config(write_pipeline(tmp_path, text))


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="pipeline file not found"):
        load_config("does/not/exist.yaml")


def test_set_overrides_parse_yaml_values(tmp_path: Path) -> None:
    loaded = load_config(write_pipeline(tmp_path, MINIMAL),
                         overrides=["model.params.max_depth=8", "evaluation.slices=[a, b]", "data.split.seed=1"])
    assert loaded.config.model.params == {"max_depth": 8}
    assert loaded.config.evaluation.slices == ["a", "b"]
    assert loaded.config.data.split.seed == 1


def test_set_rejects_malformed() -> None:
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_override({}, "model.params.max_depth")
    with pytest.raises(ConfigError, match="data.source is a str, not a section"):
        apply_override({"data": {"source": "x"}}, "data.source.y=1")


def test_set_unknown_path_is_rejected_at_validation(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model\.parms: unknown key\. Did you mean 'params'\?"):
        load_config(write_pipeline(tmp_path, MINIMAL), overrides=["model.parms.max_depth=3"])


def test_profile_overlay_merges_deeply(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path, MINIMAL + "  params: {max_depth: 3, n_estimators: 50}\n")
    write_pipeline(tmp_path, "model:\n  params: {max_depth: 9}\ntracking: {experiment: stg}\n",
                   name="pipeline.staging.yaml")
    cfg = load_config(path, profile="staging").config
    assert cfg.model.params == {"max_depth": 9, "n_estimators": 50}
    assert cfg.tracking.experiment == "stg"
    env_cfg = load_config(path, env={"TRAINPIPE_PROFILE": "staging"}).config
    assert env_cfg == cfg


def test_missing_profile_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"profile 'prod'.*pipeline\.prod\.yaml"):
        load_config(write_pipeline(tmp_path, MINIMAL), profile="prod")


def test_env_interpolation_keeps_types_and_defaults(tmp_path: Path) -> None:
    text = MINIMAL.replace("data/churn.csv", "${DATA_DIR}/churn.csv") + (
        "  params: {max_depth: '${DEPTH}', n_estimators: '${TREES:-40}'}\n")
    cfg = load_config(write_pipeline(tmp_path, text), env={"DATA_DIR": "/data", "DEPTH": "7"}).config
    assert cfg.data.source == "/data/churn.csv"
    assert cfg.model.params == {"max_depth": 7, "n_estimators": 40}


def test_env_interpolation_missing_variable(tmp_path: Path) -> None:
    text = MINIMAL.replace("data/churn.csv", "${DATA_DIR}/churn.csv")
    with pytest.raises(ConfigError, match=r"data\.source: environment variable DATA_DIR is not set"):
        load_config(write_pipeline(tmp_path, text), env={})


def test_cross_field_checks() -> None:
    base = {"name": "x", "data": {"source": "a.csv", "target": "y"}, "model": {"type": "xgboost"}}
    with pytest.raises(ConfigError, match="time_column"):
        config_from_dict({**base, "data": {**base["data"], "split": {"method": "time"}}})
    with pytest.raises(ConfigError, match="drop_columns lists the target"):
        config_from_dict({**base, "data": {**base["data"], "drop_columns": ["y"]}})
    with pytest.raises(ConfigError, match=r"gate\.thresholds.*'>= 0\.8'"):
        config_from_dict({**base, "gate": {"thresholds": {"roc_auc": "at least 0.8"}}})
    with pytest.raises(ConfigError, match=r"name: must start with"):
        config_from_dict({**base, "name": "bad name!"})


def test_config_hash_is_stable_and_sensitive() -> None:
    base = {"name": "x", "data": {"source": "a.csv", "target": "y"}, "model": {"type": "xgboost"}}
    a = config_from_dict(base).config
    b = config_from_dict(dict(base)).config
    c = config_from_dict({**base, "model": {"type": "xgboost", "params": {"max_depth": 3}}}).config
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(c)


def test_redact_masks_secret_names_and_uri_passwords() -> None:
    data = {"tracking": {"uri": "postgresql://bob:hunter2@db:5432/ml"}, "API_KEY": "abc",
            "nested": {"db_password": "x", "token_ttl": 5, "other": "keep"}}
    out = redact(data)
    assert out["tracking"]["uri"] == "postgresql://bob:***@db:5432/ml"
    assert out["API_KEY"] == "***"
    assert out["nested"] == {"db_password": "***", "token_ttl": "***", "other": "keep"}


def test_values_of_secret_env_vars_are_masked_wherever_they_end_up(tmp_path: Path) -> None:
    text = MINIMAL + "tracking: {uri: 'https://${MLFLOW_TOKEN}@mlflow.example/?api_key=${OTHER}'}\n"
    loaded = load_config(write_pipeline(tmp_path, text), env={"MLFLOW_TOKEN": "s3cr3t-value", "OTHER": "x1"})
    assert loaded.config.tracking.uri == "https://s3cr3t-value@mlflow.example/?api_key=x1"
    shown = redact(loaded.config.model_dump(mode="json"), secrets=loaded.secret_values)
    assert shown["tracking"]["uri"] == "https://***@mlflow.example/?api_key=***"


# -- messages: the value said once, the key named, a fix suggested --------------------------------------

_BASE = {"name": "x", "data": {"source": "a.csv", "target": "y"}, "model": {"type": "xgboost"}}


@pytest.mark.parametrize(
    ("update", "pattern"),
    [
        pytest.param({"data": {**_BASE["data"], "split": {"test_size": 0.6, "val_size": 0.5}}},
                     r"data\.split: test_size \+ val_size must leave at least 10% .*got 0\.6 \+ 0\.5 = 1\.1\. "
                     r"Lower data\.split\.test_size", id="split-sizes"),
        pytest.param({"data": {**_BASE["data"], "split": {"method": "time"}}},
                     r"data\.split: method 'time' needs data\.split\.time_column: set it to", id="split-time"),
        pytest.param({"gate": {"thresholds": {"roc_auc": "greater than 0.8"}}},
                     r"gate\.thresholds: threshold for 'roc_auc' must look like .*got 'greater than 0\.8'",
                     id="threshold"),
        pytest.param({"features": {"numeric": ["y"]}},
                     r"features\.numeric lists the target column 'y'; .*remove it from features\.numeric",
                     id="feature-is-target"),
        pytest.param({"tuning": {"space": {"max_depth": {"type": "int", "low": 9, "high": 3}}}},
                     r"tuning\.space\.max_depth: low \(9\) is greater than high \(3\); swap them", id="low-high"),
        pytest.param({"features": {"numeric": ["carat"], "categorical": ["cut", "carat"]}},
                     r"features\.numeric and features\.categorical both list \['carat'\]; a column has one kind",
                     id="two-kinds"),
        pytest.param({"data": {**_BASE["data"], "drop_columns": ["id"]}, "features": {"numeric": ["id", "a"]}},
                     r"data\.drop_columns and features\.numeric both list \['id'\]; a dropped column cannot be a "
                     r"feature", id="dropped-feature"),
        pytest.param({"validation": {"columns": {"age": {"min": 5, "max": 1}}}},
                     r"validation\.columns\.age: min \(5\) is greater than max \(1\)", id="min-max"),
    ],
)
def test_cross_field_errors_do_not_end_with_the_section_type(update: dict[str, object], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern) as info:
        config_from_dict({**_BASE, **update})
    assert "(got dict)" not in str(info.value) and "(got list)" not in str(info.value)


def test_a_message_that_quotes_the_value_does_not_repeat_it() -> None:
    with pytest.raises(ConfigError, match=r"name: must start with") as info:
        config_from_dict({**_BASE, "name": "my pipe/../x:y"})
    assert str(info.value).count("'my pipe/../x:y'") == 1


def test_plain_type_errors_still_say_what_they_got() -> None:
    with pytest.raises(ConfigError, match=r"training\.epochs: .*greater than or equal to 1 \(got 0\)\."):
        config_from_dict({**_BASE, "training": {"epochs": 0}})


def test_every_bad_threshold_is_reported_at_once() -> None:
    with pytest.raises(ConfigError, match=r"'roc_auc'.*'at least 0\.8'.*'f1'.*'big'.*quoted string"):
        config_from_dict({**_BASE, "gate": {"thresholds": {"roc_auc": "at least 0.8", "f1": "big",
                                                           "rmse": "<= 3"}}})


@pytest.mark.parametrize(
    ("update", "pattern"),
    [
        pytest.param({"validation": {"columns": {"year": {"minimum": 0}}}},
                     r"validation\.columns\.year\.minimum: unknown key\. Did you mean 'min'\?", id="columns"),
        pytest.param({"validation": {"columns": {"year": {"alowed": [1]}}}},
                     r"validation\.columns\.year\.alowed: unknown key\. Did you mean 'allowed'\?", id="allowed"),
        pytest.param({"tuning": {"space": {"lr": {"type": "float", "low": 0.1, "hgh": 1}}}},
                     r"tuning\.space\.lr\.hgh: unknown key\. Did you mean 'high'\?", id="space"),
    ],
)
def test_unknown_key_inside_a_named_entry_suggests(update: dict[str, object], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        config_from_dict({**_BASE, **update})


def test_choice_typo_suggests_the_close_choice() -> None:
    with pytest.raises(ConfigError, match=r"validation\.columns\.year\.dtype: .*\(got 'integer'\)\. "
                                          r"Did you mean 'int'\?"):
        config_from_dict({**_BASE, "validation": {"columns": {"year": {"dtype": "integer"}}}})


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_positive_label_with_a_task_that_has_no_positive_class(task: str) -> None:
    data = {**_BASE["data"], "positive_label": "Adelie"}
    with pytest.raises(ConfigError, match=rf"data\.positive_label \('Adelie'\) applies to binary targets only, "
                                          rf"but task is {task}; remove data\.positive_label"):
        config_from_dict({**_BASE, "task": task, "data": data})
    assert config_from_dict({**_BASE, "task": "binary", "data": data}).config.data.positive_label == "Adelie"


@pytest.mark.parametrize(("section", "value", "message"), [
    ({"model": {"type": "xgboost", "params": {"learning_rate": float("nan")}}}, None,
     r"model\.params: learning_rate: expected finite numbers"),
    ({"training": {"learning_rate": float("inf")}}, None, r"training\.learning_rate: Input should be a finite number"),
    ({"training": {"seed": -1}}, None, r"training\.seed: Input should be greater than or equal to 0"),
    ({"data": {"source": "a.csv", "target": "y", "split": {"seed": 2**40}}}, None, r"data\.split\.seed"),
])
def test_non_finite_numbers_and_seeds_numpy_cannot_take_are_refused(section: dict, value: None,
                                                                    message: str) -> None:
    base = {"name": "p", "data": {"source": "a.csv", "target": "y"}, "model": {"type": "xgboost"}}
    with pytest.raises(ConfigError, match=message):
        config_from_dict({**base, **section})
