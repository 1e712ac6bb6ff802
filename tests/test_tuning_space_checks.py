"""tuning.space keys the model ignores, or trainpipe sets itself, are exit 2 before any data is read (issue 19.5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import write_pipeline
from trainpipe._exceptions import ConfigError
from trainpipe.config import PipelineConfig
from trainpipe.config._loader import validate_config
from trainpipe.tuning import check_space, default_space, resolve_space
from trainpipe.tuning._space_checks import space_notes, training_settings_used

CHOICES = {"type": "categorical", "choices": [64, 256]}
INTS = {"type": "int", "low": 2, "high": 20}


def cfg(model: str = "xgboost", space: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None, task: str = "binary") -> PipelineConfig:
    tuning: dict[str, Any] = {"n_trials": 2}
    if space is not None:
        tuning["space"] = space
    raw = {"name": "t", "task": task, "data": {"source": "x.csv", "target": "y"},
           "model": {"type": model, "params": params or {}}, "training": training or {}, "tuning": tuning}
    return validate_config(raw, source="test.yaml")


def _validate_cli(workdir: Path, model: str, space: str) -> tuple[int, str]:
    """``trainpipe validate`` in-process on a pipeline whose data file does not exist: a config check that
    runs before any data is read answers first."""
    from trainpipe.cli import app

    write_pipeline(workdir, f"name: t\ntask: binary\ndata: {{source: missing.csv, target: label}}\n"
                            f"model: {{type: {model}}}\ntuning: {{n_trials: 2, space: {space}}}\n")
    result = CliRunner().invoke(app, ["validate", "pipeline.yaml"], env={"COLUMNS": "400", "NO_COLOR": "1"})
    return result.exit_code, " ".join(result.output.split())


# -- through the CLI: exit 2, naming the key, before the data is read ----------------------------------------


@pytest.mark.parametrize(("space", "message"), [
    ("{batch_size: {type: categorical, choices: [64, 256]}}",
     "tuning.space.batch_size: xgboost does not use training.batch_size, so every trial would train the same "
     "model; it fits the whole matrix with its own tree-growing algorithm"),
    ("{training.batch_size: {type: categorical, choices: [64, 256]}}",
     "tuning.space.training.batch_size: xgboost does not use training.batch_size"),
    ("{epochs: {type: int, low: 5, high: 50}}",
     "tuning.space.epochs: xgboost does not use training.epochs, so every trial would train the same model; it "
     "trains boosting rounds, set by model.params.n_estimators: tune n_estimators instead. Remove epochs from "
     "tuning.space. The training settings xgboost uses: training.early_stopping_rounds."),
    ("{objective: {type: categorical, choices: ['binary:logistic', 'binary:hinge']}}",
     "tuning.space.objective: trainpipe sets the objective from the task"),
    ("{}", "tuning.space: empty search space: remove `space:` to use the model's default space, or list "
           "parameters"),
])
def test_cli_validate_refuses_what_xgboost_ignores(workdir: Path, space: str, message: str) -> None:
    code, text = _validate_cli(workdir, "xgboost", space)
    assert code == 2, text
    assert message in text
    assert "missing.csv" not in text  # refused before the data was looked for
    assert "Traceback" not in text


def test_cli_validate_accepts_a_normal_space_up_to_the_data(workdir: Path) -> None:
    code, text = _validate_cli(workdir, "xgboost", "{max_depth: {type: int, low: 2, high: 6}, learning_rate: "
                                                   "{type: float, low: 0.01, high: 0.3, log: true}}")
    assert code == 2 and "missing.csv" in text  # the config passed; only the missing data file stopped it
    assert "tuning.space" not in text


# -- the check itself -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "space", "message"), [
    ("xgboost", {"eval_metric": {"type": "categorical", "choices": ["auc", "logloss"]}},
     r"tuning\.space\.eval_metric: trainpipe sets it from tuning\.metric"),
    ("xgboost", {"random_state": INTS}, r"tuning\.space\.random_state: trainpipe sets it from training\.seed"),
    ("xgboost", {"n_jobs": INTS}, r"tuning\.space\.n_jobs: it sets the number of threads, which changes speed"),
    ("xgboost", {"early_stopping_rounds": INTS},
     r"tuning\.space\.early_stopping_rounds: trainpipe sets it from training\.early_stopping_rounds\. Remove it "
     r"from tuning\.space; tune training\.early_stopping_rounds instead"),
    ("xgboost", {"training.learning_rate": {"type": "float", "low": 0.01, "high": 0.3}},
     r"tuning\.space\.training\.learning_rate: xgboost does not use training\.learning_rate.*tune learning_rate "
     r"\(no training\. prefix\)"),
    ("xgboost", {"training.seed": INTS}, r"tuning\.space\.training\.seed: trainpipe seeds every trial from "
                                         r"training\.seed; a tuned seed picks the luckiest random draw"),
    ("lightgbm", {"metric": {"type": "categorical", "choices": ["auc", "binary_logloss"]}},
     r"tuning\.space\.metric: trainpipe sets it from tuning\.metric"),
    ("lightgbm", {"verbose": {"type": "categorical", "choices": [-1, 1]}},
     r"tuning\.space\.verbose: it changes only the library's logging"),
    ("lightgbm", {"objective": {"type": "categorical", "choices": ["binary", "cross_entropy"]}},
     r"tuning\.space\.objective: trainpipe sets the objective from the task.*LightGBM replaces"),
    ("torch_mlp", {"training.early_stopping_rounds": INTS},
     r"tuning\.space\.training\.early_stopping_rounds: torch_mlp does not use training\.early_stopping_rounds.*"
     r"tune training\.early_stopping_patience instead"),
    ("torch_mlp", {"training.device": {"type": "categorical", "choices": ["cpu", "cuda"]}},
     r"tuning\.space\.training\.device: it moves the same training to other hardware"),
    ("torch_mlp", {"batch_size": CHOICES},
     r"tuning\.space\.batch_size: batch_size is a training setting, not a torch_mlp parameter.*"
     r"Write training\.batch_size\."),
    ("torch_mlp", {"keep_top_k": INTS}, r"tuning\.space\.keep_top_k: it says how many checkpoints are kept"),
    ("sklearn.linear_model.LogisticRegression", {"training.epochs": INTS},
     r"tuning\.space\.training\.epochs: sklearn\.linear_model\.LogisticRegression does not use training\.epochs.*"
     r"tune its own parameter max_iter \(no training\. prefix\) instead"),
    ("sklearn.ensemble.RandomForestClassifier", {"random_state": INTS},
     r"tuning\.space\.random_state: trainpipe sets it from training\.seed"),
])
def test_check_space_refuses_keys_the_model_ignores_or_trainpipe_sets(model: str, space: dict[str, Any],
                                                                       message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_space(cfg(model, space))


def test_every_refused_key_is_named_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        check_space(cfg("xgboost", {"max_depth": INTS, "training.batch_size": CHOICES, "training.epochs": INTS,
                                    "objective": {"type": "categorical", "choices": ["binary:logistic"]}}))
    lines = str(info.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["tuning.space.training.batch_size",
                                                      "tuning.space.training.epochs", "tuning.space.objective"]


@pytest.mark.parametrize(("model", "space"), [
    ("torch_mlp", {"training.batch_size": CHOICES, "training.epochs": INTS,
                   "training.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
                   "dropout": {"type": "float", "low": 0.0, "high": 0.5}}),
    ("xgboost", {"max_depth": INTS, "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
                 "training.early_stopping_rounds": INTS, "n_estimators": {"type": "int", "low": 20, "high": 200}}),
    ("lightgbm", {"num_leaves": INTS, "training.early_stopping_rounds": INTS}),
    ("sklearn.ensemble.RandomForestClassifier", {"max_depth": INTS, "n_estimators": INTS}),
])
def test_check_space_accepts_what_the_model_uses(model: str, space: dict[str, Any]) -> None:
    assert set(check_space(cfg(model, space))) == set(space)


def test_the_training_settings_each_family_uses() -> None:
    assert training_settings_used("xgboost") == {"early_stopping_rounds", "seed"}
    assert training_settings_used("sklearn.linear_model.Ridge") == {"seed"}
    torch = training_settings_used("torch_mlp")
    assert {"batch_size", "epochs", "learning_rate", "early_stopping_patience"} <= torch
    assert "early_stopping_rounds" not in torch


def test_no_space_means_the_default_space_and_survives_a_dump_and_reload() -> None:
    config = cfg("xgboost")
    assert config.tuning is not None and config.tuning.space is None
    assert resolve_space(config) == default_space("xgboost")
    # the resolved config written into a run (reproduce, trainpipe step) loads back as "no space", not {}
    again = validate_config(config.model_dump(mode="json"), source="config.yaml")
    assert set(check_space(again)) == set(default_space("xgboost"))


def test_a_tuned_key_also_fixed_in_the_config_gets_a_note() -> None:
    config = cfg("xgboost", {"max_depth": INTS, "training.early_stopping_rounds": INTS, "subsample":
                             {"type": "float", "low": 0.5, "high": 1.0}},
                 params={"max_depth": 4, "n_estimators": 30}, training={"early_stopping_rounds": 10})
    notes = space_notes(config, check_space(config))
    assert notes == [
        "model.params.max_depth (4) is also tuned by tuning.space.max_depth: each trial uses its own value and "
        "train uses the best one found, so the fixed value is not used while tuning is on.",
        "training.early_stopping_rounds (10) is also tuned by tuning.space.training.early_stopping_rounds: each "
        "trial uses its own value and train uses the best one found, so the fixed value is not used while "
        "tuning is on.",
    ]
    assert space_notes(cfg("xgboost", {"max_depth": INTS}), {"max_depth": INTS}) == []  # defaults are not "fixed"


# -- a tiny real study still works ----------------------------------------------------------------------


def test_tiny_real_tuning_run_on_breast_cancer(workdir: Path) -> None:
    from trainpipe._hooks import Hooks
    from trainpipe.config import load_config
    from trainpipe.pipeline import PipelineRunner, steps_for

    loaded = load_config(write_pipeline(workdir, """\
name: bc
data: {source: "sklearn:breast_cancer", target: target}
model: {type: xgboost, params: {n_estimators: 15, max_depth: 3}}
tuning:
  n_trials: 2
  pruner: none
  space:
    max_depth: {type: int, low: 2, high: 4}
    learning_rate: {type: float, low: 0.05, high: 0.3, log: true}
"""))
    steps = steps_for(loaded.config)
    steps = steps[: [s.name for s in steps].index("tune") + 1]
    messages: list[str] = []

    class Recorder(Hooks):
        def on_message(self, text: str) -> None:
            messages.append(text)

    from trainpipe.registry import InMemoryRegistry

    result = PipelineRunner(loaded, workdir=workdir, steps=steps, hooks=Recorder(),
                            registry=InMemoryRegistry()).run()
    out = result.run_dir / "steps" / "tune"
    summary = json.loads((out / "study_summary.json").read_text())
    assert summary["n_complete"] == 2
    best = json.loads((out / "best_params.json").read_text())
    assert 2 <= best["model_params"]["max_depth"] <= 4 and 0.05 <= best["model_params"]["learning_rate"] <= 0.3
    note = "model.params.max_depth (3) is also tuned by tuning.space.max_depth"
    assert any(note in n for n in summary["notes"])
    assert any(note in m for m in messages)
