"""Unit tests: gate thresholds, the paired bootstrap, drift profiles and PSI, signature checks, model refs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trainpipe._exceptions import ConfigError, DataError
from trainpipe.config import PipelineConfig, config_from_dict
from trainpipe.data._profile import build_profile, compare_to_profile, psi
from trainpipe.evaluation._gate import GateReport, check_thresholds, compare_to_champion, paired_bootstrap
from trainpipe.registry import check_input
from trainpipe.registry._views import parse_model_ref


def test_thresholds_pass_fail_and_unmeasured_latency() -> None:
    checks = check_thresholds({"roc_auc": ">= 0.8", "f1": "> 0.9", "latency_p95_ms": "<= 20"},
                              {"roc_auc": 0.85, "f1": 0.9})
    by = {c.metric: c for c in checks}
    assert by["roc_auc"].passed and not by["f1"].passed
    assert not by["latency_p95_ms"].passed and "latency was not measured" in by["latency_p95_ms"].note
    report = GateReport(thresholds=checks, passed=False)
    reasons = report.reasons()
    assert any("f1 = 0.9 does not meet '> 0.9'" in r for r in reasons)
    assert "REFUSED" in report.to_markdown()


def _binary_scores(rng: np.random.Generator, y: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray]:
    p1 = np.clip(y * 0.6 + 0.2 + rng.normal(scale=noise, size=len(y)), 0.01, 0.99)
    proba = np.column_stack([1 - p1, p1])
    return (p1 > 0.5).astype(np.int64), proba


def test_paired_bootstrap_detects_a_clearly_better_challenger() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=600)
    good, bad = _binary_scores(rng, y, 0.15), _binary_scores(rng, y, 0.45)
    cmp = compare_to_champion("roc_auc", y, good, bad, 2, version="3", confidence=0.95, min_delta=0.0, n_boot=300)
    assert cmp.passed and cmp.delta > 0 and cmp.ci_low > 0 and cmp.ci_low <= cmp.delta <= cmp.ci_high
    reverse = compare_to_champion("roc_auc", y, bad, good, 2, version="3", confidence=0.95, min_delta=0.0,
                                  n_boot=300)
    assert not reverse.passed and reverse.delta < 0


def test_identical_models_do_not_beat_the_champion_but_pass_non_inferiority() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=300)
    same = _binary_scores(rng, y, 0.3)
    strict = compare_to_champion("roc_auc", y, same, same, 2, version="1", confidence=0.9, min_delta=0.0, n_boot=100)
    assert strict.delta == 0 and strict.ci_low == 0 and not strict.passed
    lenient = compare_to_champion("roc_auc", y, same, same, 2, version="1", confidence=0.9, min_delta=-0.01,
                                  n_boot=100)
    assert lenient.passed


def test_bootstrap_sign_for_lower_is_better_metrics() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=400)
    close, far = y + rng.normal(scale=0.1, size=400), y + rng.normal(scale=1.0, size=400)
    _, _, delta, lo, _, _ = paired_bootstrap("rmse", y, (close, None), (far, None), 0, confidence=0.95, n_boot=200)
    assert delta > 0 and lo > 0  # lower rmse is better, so the challenger's advantage is positive


@pytest.mark.parametrize(("metric", "kind"), [("roc_auc", "binary"), ("rmse", "regression")])
def test_a_large_test_split_uses_the_m_out_of_n_paired_bootstrap(metric: str, kind: str) -> None:
    """Above 20,000 rows: the values and delta are the whole split's, the interval is the bootstrap of a
    20,000-row subsample rescaled to the whole split: close to the full bootstrap's, and said in the report."""
    rng = np.random.default_rng(5)
    n = 40_000
    if kind == "binary":
        y = rng.integers(0, 2, size=n)
        a, b, k = _binary_scores(rng, y, 0.30), _binary_scores(rng, y, 0.32), 2
    else:
        y = rng.normal(size=n) * 3
        a, b, k = (y + rng.normal(size=n), None), (y + 1.03 * rng.normal(size=n), None), 0
    sampled = paired_bootstrap(metric, y, a, b, k, confidence=0.9, n_boot=200, seed=1)
    full = paired_bootstrap(metric, y, a, b, k, confidence=0.9, n_boot=200, seed=1, max_rows=n)
    assert sampled[:3] == pytest.approx(full[:3], rel=1e-12)  # the whole split's values, not the subsample's
    width_s, width_f = sampled[4] - sampled[3], full[4] - full[3]
    assert 0.7 < width_s / width_f < 1.4  # the same spread, up to bootstrap noise
    assert abs((sampled[3] + sampled[4]) / 2 - (full[3] + full[4]) / 2) < 0.5 * width_f
    assert sampled[3] < sampled[2] < sampled[4]
    cmp = compare_to_champion(metric, y, a, b, k, version="2", confidence=0.9, min_delta=0.0, n_boot=50)
    assert "m-out-of-n paired bootstrap" in cmp.note and "40,000 test rows" in cmp.note
    small = compare_to_champion(metric, y[:500], (a[0][:500], None if a[1] is None else a[1][:500]),
                                (b[0][:500], None if b[1] is None else b[1][:500]), k, version="2",
                                confidence=0.9, min_delta=0.0, n_boot=50)
    assert "m-out-of-n" not in small.note


def test_profile_and_psi_see_a_shift_and_ignore_a_resample() -> None:
    rng = np.random.default_rng(3)
    n = 5000
    df = pd.DataFrame({"age": rng.normal(40, 10, n), "plan": rng.choice(["a", "b", "c"], n, p=[.6, .3, .1]),
                       "y": rng.choice(["yes", "no"], n)})
    df.loc[:50, "age"] = np.nan
    profile = build_profile(df, "y", "binary")
    same = compare_to_profile(df.sample(frac=1.0, random_state=1), profile, reference="v1", max_psi=0.25)
    assert same.passed and max(same.features.values()) < 0.01 and same.label_psi is not None
    shifted = df.copy()
    shifted["age"] = shifted["age"] + 15
    shifted["plan"] = rng.choice(["a", "b", "c", "d"], n, p=[.1, .2, .3, .4])
    report = compare_to_profile(shifted.drop(columns=[]), profile, reference="v1", max_psi=0.25)
    assert set(report.failures) == {"age", "plan"}
    assert "validation.drift.max_psi = 0.25" in report.summary() and "age" in report.to_markdown()
    gone = compare_to_profile(df.drop(columns=["plan"]).assign(extra=1), profile, reference="v1", max_psi=None)
    assert gone.missing_columns == ["plan"] and gone.new_columns == ["extra"] and gone.passed


def test_psi_is_zero_for_equal_distributions() -> None:
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert psi([0.9, 0.1], [0.1, 0.9]) > 1.0


SCHEMA = [{"name": "age", "type": "double", "required": True}, {"name": "n", "type": "long", "required": True},
          {"name": "plan", "type": "string", "required": True}]


def test_check_input_names_missing_and_mistyped_columns() -> None:
    ok = check_input(pd.DataFrame({"age": [1, 2], "n": [3, 4], "plan": ["a", None], "id": [9, 9]}), SCHEMA, "f.csv")
    assert ok["age"].dtype == "float64" and ok["n"].dtype == "int64"
    with pytest.raises(DataError, match=r"f\.csv: the model needs the columns \['plan'\]"):
        check_input(pd.DataFrame({"age": [1.0], "n": [1]}), SCHEMA, "f.csv")
    with pytest.raises(DataError, match=r"'age' must be numeric \(double\); 1 row\(s\) are not, e\.g\. \['old'\]"):
        check_input(pd.DataFrame({"age": ["3", "old"], "n": [1, 2], "plan": ["a", "b"]}), SCHEMA, "f.csv")
    with_gap = check_input(pd.DataFrame({"age": [1.0, 2.0], "n": [1, None], "plan": ["a", "b"]}), SCHEMA, "f.csv")
    assert with_gap["n"].dtype == "float64"  # a missing value in an integer column: floats, the model imputes


def test_model_refs() -> None:
    assert parse_model_ref("churn@production") == ("churn", "production", None)
    assert parse_model_ref("churn/3") == ("churn", None, "3")
    assert parse_model_ref("churn") == ("churn", None, None)
    with pytest.raises(ConfigError, match="NAME/VERSION"):
        parse_model_ref("churn/latest")


def test_fast_binary_auc_equals_sklearn() -> None:
    from sklearn.metrics import roc_auc_score

    from trainpipe.evaluation._gate import _binary_auc

    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, size=500)
    score = np.round(rng.random(500), 2)  # many ties
    assert _binary_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)


def test_psi_sees_shifts_in_flags_constants_and_small_counts() -> None:
    rng = np.random.default_rng(4)
    n = 2000
    train = pd.DataFrame({"senior": (rng.random(n) < 0.1).astype(int), "const": 5, "kids": rng.integers(0, 3, n),
                          "y": rng.choice(["a", "b"], n)})
    profile = build_profile(train, "y", "binary")
    assert profile["features"]["senior"]["kind"] == "discrete"
    now = pd.DataFrame({"senior": (rng.random(n) < 0.9).astype(float), "const": 1000,
                        "kids": np.where(rng.random(n) < 0.5, 2, 1), "y": rng.choice(["a", "b"], n)})
    report = compare_to_profile(now, profile, reference="v1", max_psi=0.25)
    assert {"senior", "const", "kids"} <= set(report.failures)
    same = compare_to_profile(train.astype({"senior": float}), profile, reference="v1", max_psi=0.25)
    assert same.passed  # 1 and 1.0 are the same level


def test_profile_stores_no_raw_category_values() -> None:
    import json

    df = pd.DataFrame({"email": [f"user{i}@example.com" for i in range(200)], "plan": ["gold", "basic"] * 100,
                       "y": ["a", "b"] * 100})
    profile = build_profile(df, "y", "binary")
    text = json.dumps(profile)
    assert "example.com" not in text and "gold" not in text
    assert compare_to_profile(df, profile, reference="v1", max_psi=0.1).passed  # hashed levels still compare
    old_format = {**profile, "format": 1, "features": {"plan": {"kind": "categorical",
                                                                "shares": {"gold": 0.5, "basic": 0.5}}}}
    assert compare_to_profile(df, old_format, reference="v0", max_psi=0.1).passed  # raw-value profiles still read


def test_discrete_levels_stay_numbers_so_profiles_of_registered_models_still_compare() -> None:
    """Profiles stored with models registered earlier name discrete levels by number ("1", "0.5"); a new
    profile must name them the same way, or identical data would show drift against the champion."""
    df = pd.DataFrame({"tenure": [1, 2, 2, 3] * 50, "share": [0.5, 1.0] * 100, "plan": ["gold", "basic"] * 100,
                       "y": ["a", "b"] * 100})
    profile = build_profile(df, "y", "binary")
    assert set(profile["features"]["tenure"]["shares"]) == {"1", "2", "3"}
    assert set(profile["features"]["share"]["shares"]) == {"0.5", "1"}
    registered_earlier = {**profile, "features": {
        **profile["features"], "tenure": {"kind": "discrete", "shares": {"1": 0.25, "2": 0.5, "3": 0.25}}}}
    report = compare_to_profile(df, registered_earlier, reference="v1", max_psi=0.01)
    assert report.passed, report.failures


# -- the metrics the gate needs are computed; metrics that fit no task are refused before training -------


def test_gate_metrics_are_evaluated_even_when_evaluation_metrics_leaves_them_out() -> None:
    from trainpipe.evaluation._metrics import gate_metric_names, metrics_for

    gate = gate_metric_names({"roc_auc": ">= 0.9", "balanced_accuracy": ">= 0.9", "latency_p95_ms": "<= 5"},
                             "recall_macro")
    assert gate == ["roc_auc", "balanced_accuracy", "recall_macro"]
    assert metrics_for("multiclass", ["accuracy"], gate) == ["accuracy", "roc_auc", "balanced_accuracy",
                                                             "recall_macro"]
    assert metrics_for("binary", None, ["recall", "f1"]) == ["roc_auc", "pr_auc", "log_loss", "accuracy", "f1",
                                                           "recall"]
    assert metrics_for("regression", None, ["rmse"]) == ["rmse", "mae", "r2"]


def test_evaluation_metrics_of_another_task_say_which_and_what_to_use() -> None:
    from trainpipe.evaluation._metrics import metrics_for

    with pytest.raises(ConfigError, match=r"evaluation\.metrics: 'rmse', 'r2' do not apply to a multiclass task "
                                          r"\(only to regression\)\. Use multiclass metrics "
                                          r"\(roc_auc, .*recall_weighted\), or remove evaluation\.metrics"):
        metrics_for("multiclass", ["accuracy", "rmse", "r2"])


def test_threshold_without_a_value_explains_why() -> None:
    thresholds = {"roc_auc": ">= 0.8", "accuracy": ">= 0.5", "latency_p59_ms": "<= 5"}
    by = {c.metric: c for c in check_thresholds(thresholds, {}, computed=["roc_auc", "accuracy"])}
    assert "no class probabilities" in by["roc_auc"].note
    assert by["accuracy"].note == "undefined on this test split"
    assert "unknown latency key" in by["latency_p59_ms"].note
    by = {c.metric: c for c in check_thresholds({"rmse": "<= 1"}, {}, computed=["accuracy"])}
    assert by["rmse"].note == "not computed: it does not apply to this task"
    assert "not computed for this model/task" not in check_thresholds({"recall": ">= 0.5"}, {})[0].note


def test_latency_keys_known_to_the_gate_are_the_ones_measured() -> None:
    from trainpipe.evaluation import measure_latency
    from trainpipe.evaluation._gate import LATENCY_KEYS

    measured = measure_latency(lambda frame: np.zeros(len(frame)), pd.DataFrame({"a": range(5)}), n_single=3)
    assert set(measured) == set(LATENCY_KEYS)


def _config(**sections: object) -> PipelineConfig:

    base: dict[str, object] = {"name": "x", "data": {"source": "a.csv", "target": "species"},
                               "model": {"type": "xgboost", "params": {"n_estimators": 5}}}
    return config_from_dict({**base, **sections}).config


@pytest.mark.parametrize(
    ("sections", "pattern"),
    [
        pytest.param({"task": "multiclass", "evaluation": {"metrics": ["rmse", "r2"]}},
                     r"evaluation\.metrics: 'rmse' and 'r2' do not fit a multiclass task; they need a regression "
                     r"task\. Use multiclass metrics \(roc_auc.*\), or remove evaluation\.metrics",
                     id="metrics-explicit-task"),
        pytest.param({"task": "multiclass", "gate": {"thresholds": {"rmse": "<= 0.1"}}},
                     r"gate\.thresholds\.rmse: 'rmse' does not fit a multiclass task.*Remove that threshold, or put "
                     r"it on a multiclass metric", id="gate-explicit-task"),
        pytest.param({"gate": {"thresholds": {"rmse": "<= 0.001", "recall": ">= 0.999"}}},
                     r"gate\.thresholds\.recall: 'recall' needs a binary task, but "
                     r"gate\.thresholds\.rmse: 'rmse' needs a regression task; no task fits both", id="gate-mixed"),
        pytest.param({"evaluation": {"metrics": ["accuracy"]}, "gate": {"thresholds": {"r2": ">= 0.5"}}},
                     r"gate\.thresholds\.r2: 'r2' needs a regression task, but evaluation\.metrics: 'accuracy'",
                     id="gate-vs-metrics"),
        pytest.param({"model": {"type": "sklearn.linear_model.LogisticRegression"},
                      "evaluation": {"metrics": ["rmse"]}},
                     r"evaluation\.metrics: 'rmse' needs a regression task, but model\.type: "
                     r"sklearn\.linear_model\.LogisticRegression \(a classifier\)", id="classifier-vs-metric"),
        pytest.param({"task": "binary", "model": {"type": "xgboost", "params": {"objective": "reg:squarederror"}}},
                     r"model\.params\.objective: 'reg:squarederror' \(a regression objective\) does not fit a "
                     r"binary task", id="objective"),
        pytest.param({"data": {"source": "a.csv", "target": "y", "positive_label": "yes"},
                      "evaluation": {"metrics": ["mae"]}},
                     r"evaluation\.metrics: 'mae' needs a regression task, but data\.positive_label: 'yes' needs a "
                     r"binary task", id="positive-label-vs-metric"),
        pytest.param({"evaluation": {"latency": False}, "gate": {"thresholds": {"latency_p95_ms": "<= 20"}}},
                     r"gate\.thresholds\.latency_p95_ms: latency is not measured because evaluation\.latency is "
                     r"false", id="latency-off"),
        pytest.param({"gate": {"thresholds": {"latency_p59_ms": "<= 20"}}},
                     r"gate\.thresholds\.latency_p59_ms: unknown latency measure\. Did you mean 'latency_p95_ms'\?",
                     id="latency-typo"),
    ],
)
def test_preflight_refuses_what_no_task_can_compute(sections: dict[str, object], pattern: str) -> None:
    from trainpipe.pipeline import preflight

    with pytest.raises(ConfigError, match=pattern):
        preflight(_config(**sections))


def test_preflight_accepts_gate_metrics_missing_from_evaluation_metrics() -> None:
    from trainpipe.pipeline import preflight

    preflight(_config(evaluation={"metrics": ["accuracy"]},
                      gate={"thresholds": {"roc_auc": ">= 0.9", "balanced_accuracy": ">= 0.9"}}))


@pytest.mark.parametrize(
    ("sections", "task", "fits", "pattern"),
    [
        pytest.param({"evaluation": {"metrics": ["rmse", "r2"]}}, "multiclass", "regression",
                     r"evaluation\.metrics: 'rmse' and 'r2' do not fit a multiclass task \(inferred from target "
                     r"'species'\)", id="metrics"),
        pytest.param({"model": {"type": "sklearn.linear_model.LinearRegression"}}, "multiclass", "regression",
                     r"model\.type: sklearn\.linear_model\.LinearRegression \(a regressor\) does not fit a "
                     r"multiclass task \(inferred from target 'species'\).*Pick a classifier", id="regressor"),
        pytest.param({"model": {"type": "sklearn.linear_model.LogisticRegression"}}, "regression", "binary",
                     r"model\.type: .*LogisticRegression \(a classifier\) does not fit a regression task.*Pick a "
                     r"regressor", id="classifier"),
        pytest.param({"gate": {"thresholds": {"recall": ">= 0.9"}}}, "regression", "binary",
                     r"gate\.thresholds\.recall: 'recall' does not fit a regression task", id="gate"),
        pytest.param({"data": {"source": "a.csv", "target": "species", "positive_label": "Adelie"}}, "multiclass",
                     "binary", r"data\.positive_label: 'Adelie' does not fit a multiclass task \(inferred from "
                     r"target 'species'\); it needs a binary task\. Remove data\.positive_label", id="positive-label"),
    ],
)
def test_inferred_task_is_checked_against_the_config(sections: dict[str, object], task: str, fits: str,
                                                     pattern: str) -> None:
    from trainpipe.pipeline import preflight
    from trainpipe.pipeline._preflight import check_task_fit

    config = _config(**sections)
    preflight(config)  # nothing to say before the task is known
    with pytest.raises(ConfigError, match=pattern):
        check_task_fit(config, task)
    check_task_fit(config, fits)
