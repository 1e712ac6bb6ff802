"""The conformance kit for model families: ``check_family(family)``, which every family passes.

Like scikit-learn's ``parametrize_with_checks`` and Optuna's ``testing/``: a third-party family calls it in its
own test suite, and trainpipe's suite runs it on every built-in family (``tests/test_family_conformance.py``)::

    from knnfam import FAMILY
    from trainpipe.testing import check_family

    def test_knn_family_conforms() -> None:
        check_family(FAMILY)

It checks, on tiny generated tables: fit and predict for each declared task (with a categorical column,
encoded the way the family prefers, and for an ``input_kind: "text"`` family a short review column passed
through raw as the last column); that the same seed gives the same predictions; that ``check_config``
agrees with construction (its accepted params construct, an unknown one is a ConfigError in both); a one-row
validation split; the per-round values its pruning reporter emits (when it declares a round budget);
checkpoint and resume (when it declares them); and a save/load round trip through the MLflow pyfunc model
trainpipe registers (loaded back with plain ``mlflow.pyfunc.load_model``). The last one needs the family
installed through the ``trainpipe.model_families`` entry point: a registered model finds it there.

A failed check raises :class:`FamilyCheckFailed` (an ``AssertionError``) naming the family, the check and
what was wrong. This module imports numpy, pandas, scikit-learn and MLflow when called, never at import.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from trainpipe.models import ModelFamily

__all__ = ["check_family"]

UNKNOWN_PARAM = "no_such_parameter_for_check_family"


class FamilyCheckFailed(AssertionError):
    """A family failed one check of :func:`check_family`."""


_WORDS = (("awful", "broken", "stale", "bland"), ("plain", "decent", "average", "okay"),
          ("great", "delicious", "perfect", "lovely"))


def _frame(task: str, n: int, seed: int, text: bool = False) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.uniform(0, 10, size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    score = 2 * x1 + (colour == "red") * 1.5 + x2 / 5 + rng.normal(scale=0.3, size=n)
    df = pd.DataFrame({"x1": x1, "x2": x2, "colour": colour})
    if text:  # a review whose words follow the score (input_kind "text" families read it raw)
        level = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))
        df["review"] = [f"the {colour[i]} one was {rng.choice(_WORDS[level[i]])} and {rng.choice(_WORDS[level[i]])}"
                        f" number {i}" for i in range(n)]
    if task == "binary":
        df["label"] = np.where(score > np.median(score), "yes", "no")
    elif task == "multiclass":
        df["label"] = np.select([score < np.quantile(score, 1 / 3), score < np.quantile(score, 2 / 3)],
                                ["low", "mid"], "high")
    else:
        df["label"] = score * 10.0
    return df


class _Case:
    """One task's data, preprocessed the way the family prefers, and the config to build the model from."""

    def __init__(self, family: ModelFamily, task: str, model_type: str, params: Mapping[str, Any],
                 training: Mapping[str, Any], n: int) -> None:
        from trainpipe.config import config_from_dict
        from trainpipe.data import infer_task
        from trainpipe.features import build_preprocessor, feature_names, infer_feature_spec, prepare_frame

        encoding = family.preferred_categorical_encoding or "onehot"
        text = family.input_kind == "text"
        self.config = config_from_dict({
            "name": "check-family", "task": task, "data": {"source": "a.csv", "target": "label"},
            "model": {"type": model_type, "params": dict(params)}, "training": dict(training),
            "features": {"categorical_encoding": encoding, **({"text": ["review"]} if text else {})},
        }).config
        df = _frame(task, n, seed=7, text=text)
        n_train, n_val = int(n * 0.6), int(n * 0.2)
        train, val, self.test = df.iloc[:n_train], df.iloc[n_train:n_train + n_val], df.iloc[n_train + n_val:]
        self.task = infer_task(df["label"], task, None, "label")
        self.spec = infer_feature_spec(train, self.config)
        if "colour" not in self.spec.categorical:
            raise FamilyCheckFailed("the generated table's categorical column was not seen as categorical")
        self.pre = build_preprocessor(self.spec, self.config.features, raw_text=text).fit(
            prepare_frame(train, self.spec))
        names = feature_names(self.pre)
        self.categorical = [i for i, c in enumerate(names) if c.startswith("categorical__")] \
            if encoding == "ordinal" else []
        self.X = self.pre.transform(prepare_frame(train, self.spec))
        self.y = self.task.encode(train["label"])
        self.X_val = self.pre.transform(prepare_frame(val, self.spec))
        self.y_val = self.task.encode(val["label"])
        self.raw = self.test.drop(columns=["label"])
        self.X_test = self.pre.transform(prepare_frame(self.test, self.spec))

    def adapter(self, params: Mapping[str, Any] | None = None) -> Any:
        from trainpipe.models import create_adapter

        model = self.config.model if params is None else self.config.model.model_copy(update={"params": params})
        return create_adapter(self.task, model, self.config.training, categorical_indices=self.categorical)


def _fail(family: ModelFamily, check: str, what: str) -> FamilyCheckFailed:
    return FamilyCheckFailed(f"check_family({family.name!r}): {check}: {what}")


def check_family(family: ModelFamily, *, model_types: Mapping[str, str] | None = None,
                 params: Mapping[str, Any] | None = None, training: Mapping[str, Any] | None = None,
                 rows: int = 150, pyfunc: bool = True) -> list[str]:
    """Run every check on ``family``; return the names of the checks that ran (all passed).

    ``model_types``: the ``model.type`` to check per task (default: the family's first name; a family that
    answers only to class paths, like scikit-learn's, must give them); ``params`` and ``training``: small
    settings that keep the fits quick; ``pyfunc=False`` skips the registered-model round trip (for a family
    not installed through the entry point yet).
    """
    import numpy as np

    done: list[str] = []
    for task in family.tasks:
        model_type = (model_types or {}).get(task) or (family.names[0] if family.names else None)
        if model_type is None:
            raise _fail(family, "model types", f"it answers to no fixed name; pass model_types={{{task!r}: ...}}")
        from trainpipe.models import family_for

        try:
            found = family_for(model_type)
        except ConfigError as exc:
            raise _fail(family, "registry", f"model.type {model_type!r} does not resolve ({exc}); install the "
                                            "family through the trainpipe.model_families entry point") from exc
        if found.name != family.name:
            raise _fail(family, "registry", f"model.type {model_type!r} resolves to the family {found.name!r}")
        case = _case_for(family, task, model_type, params or {}, training or {}, rows)
        _check_config_agrees(family, case, task, model_type)
        first = _fit_predict(family, case, task)
        done.append(f"{task}: fit and predict (categorical column, {len(case.categorical)} ordinal)")
        second = _fit_predict(family, case, task, report_rounds=False)
        if not np.array_equal(np.asarray(first[0]), np.asarray(second[0])) or not _same(first[1], second[1]):
            raise _fail(family, f"{task}: determinism", "two fits with the same seed predicted differently")
        done.append(f"{task}: same seed, same predictions")
        _one_row_validation(family, case, task)
        done.append(f"{task}: one-row validation split")
        if family.round_budget is not None:
            done.append(f"{task}: pruning reporter")
        if family.checkpoints:
            _checkpoint_and_resume(family, case, task, first)
            done.append(f"{task}: checkpoint and resume")
        if pyfunc:
            _pyfunc_round_trip(family, case, task, model_type, first[2])
            done.append(f"{task}: registered pyfunc round trip")
        done.append(f"{task}: check_config agrees with construction")
    return done


def _case_for(family: ModelFamily, task: str, model_type: str, params: Mapping[str, Any],
              training: Mapping[str, Any], rows: int) -> Any:
    """The task's own case (``Task.conformance_case``: ranking's interactions), else a generated table."""
    from trainpipe.tasks import registered_tasks, task_for

    own = task_for(task).conformance_case(family, task, model_type, params, training, rows) \
        if task in registered_tasks() else None
    if own is not None:
        return own
    if family.input_kind not in ("matrix", "text"):
        raise _fail(family, "input kind", f"the kit checks families that take the preprocessed matrix (with raw "
                                          f"text columns for 'text'); {family.input_kind!r} is not covered yet")
    return _Case(family, task, model_type, params, training, rows)


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    import numpy as np

    if a is None or b is None:
        return a is None and b is None
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def _check_config_agrees(family: ModelFamily, case: _Case, task: str, model_type: str) -> None:
    if family.check_config is None:
        raise _fail(family, "check_config", "it declares none, so a typo in model.params would fail only at fit")
    accepted = dict(case.config.model.params)
    try:
        family.check(task, accepted, model_type)
        family.check("auto", accepted, model_type)
    except ConfigError as exc:
        raise _fail(family, f"{task}: check_config", f"it refuses the params {accepted} ({exc})") from exc
    try:
        case.adapter(accepted)
    except ConfigError as exc:
        raise _fail(family, f"{task}: check_config", f"check_config accepts {accepted}, construction refuses "
                                                     f"them ({exc})") from exc
    refused = {**accepted, UNKNOWN_PARAM: 1}
    for where, call in (("check_config", lambda: family.check(task, refused, model_type)),
                        ("construction", lambda: case.adapter(refused))):
        try:
            call()
        except ConfigError as exc:
            if UNKNOWN_PARAM not in str(exc):
                raise _fail(family, f"{task}: check_config", f"{where} refused an unknown parameter without "
                                                             f"naming it: {exc}") from exc
            continue
        raise _fail(family, f"{task}: check_config", f"{where} accepted the unknown parameter {UNKNOWN_PARAM!r}")


def _fit_predict(family: ModelFamily, case: _Case, task: str,
                 report_rounds: bool = True) -> tuple[np.ndarray, np.ndarray | None, Any]:
    import numpy as np

    adapter = case.adapter()
    calls: list[tuple[int, int, dict[str, float]]] = []
    adapter.fit(case.X, case.y, case.X_val, case.y_val, lambda i, t, m: calls.append((i, t, dict(m))))
    pred = np.asarray(adapter.predict(case.X_test))
    proba = adapter.predict_proba(case.X_test)
    own_check = getattr(case, "check_output", None)  # a task's own output rules (ranking: top items per user)
    problem = own_check(pred, proba) if own_check is not None else None
    if problem is not None:
        raise _fail(family, f"{task}: {problem.split(':')[0]}", problem)
    if len(pred) != len(case.X_test):
        raise _fail(family, f"{task}: predict", f"{len(pred)} predictions for {len(case.X_test)} rows")
    if own_check is not None:
        pass  # checked above
    elif task == "regression":
        if proba is not None:
            raise _fail(family, f"{task}: predict_proba", "a regressor returned probabilities (expected None)")
        if not np.all(np.isfinite(pred.astype(float))):
            raise _fail(family, f"{task}: predict", "non-finite predictions")
    else:
        n_classes = len(case.task.classes)
        if not set(np.unique(pred).tolist()) <= set(range(n_classes)):
            raise _fail(family, f"{task}: predict", f"expected class codes 0..{n_classes - 1}, got "
                                                    f"{sorted(set(pred.tolist()))[:5]}")
        if proba is not None:
            proba = np.asarray(proba)
            if proba.shape != (len(pred), n_classes) or not np.allclose(proba.sum(axis=1), 1.0, atol=1e-5):
                raise _fail(family, f"{task}: predict_proba", f"expected ({len(pred)}, {n_classes}) rows summing "
                                                              f"to 1, got shape {proba.shape}")
    if report_rounds and family.round_budget is not None:
        _check_rounds(family, case, task, calls)
    return pred, proba, adapter


def _check_rounds(family: ModelFamily, case: _Case, task: str, calls: list[tuple[int, int, dict[str, float]]]
                  ) -> None:
    from trainpipe.tuning._objective import pick_round_metric

    budget = family.rounds(case.config.model.params, case.config.training)
    where = f"{task}: pruning reporter"
    if not calls:
        raise _fail(family, where, f"it declares a round budget ({budget}) but its adapter never called on_round")
    iterations = [c[0] for c in calls]
    if iterations != sorted(iterations) or iterations[0] < 1:
        raise _fail(family, where, f"on_round iterations must count up from 1, got {iterations[:10]}")
    if budget is not None and (max(iterations) > budget or any(c[1] != budget for c in calls)):
        raise _fail(family, where, f"it declares {budget} rounds, on_round reported iterations up to "
                                   f"{max(iterations)} of totals {sorted({c[1] for c in calls})}")
    values = [c[2] for c in calls if c[2]]
    if not values:
        raise _fail(family, where, "on_round never carried a validation metric for the pruner")
    for metrics in values:
        picked = pick_round_metric(metrics)
        if picked is None or not math.isfinite(float(metrics[picked[0]])):
            raise _fail(family, where, f"no finite validation value in {metrics}")


def _one_row_validation(family: ModelFamily, case: _Case, task: str) -> None:
    import numpy as np

    adapter = case.adapter()
    one = getattr(case, "one_row_validation", None)
    X1, y1 = one() if one is not None else (case.X_val[:1], case.y_val[:1])
    try:
        adapter.fit(case.X, case.y, X1, y1, None)
    except Exception as exc:
        raise _fail(family, f"{task}: one-row validation split", f"fit failed ({type(exc).__name__}: {exc})") from exc
    if len(np.asarray(adapter.predict(case.X_test))) != len(case.X_test):
        raise _fail(family, f"{task}: one-row validation split", "predict returned the wrong number of rows")


def _checkpoint_and_resume(family: ModelFamily, case: _Case, task: str,
                           first: tuple[np.ndarray, np.ndarray | None, Any]) -> None:
    import numpy as np

    from trainpipe.models import configure_checkpoints

    where = f"{task}: checkpoint and resume"
    model_type = case.config.model.type
    with tempfile.TemporaryDirectory(prefix="trainpipe-check-ckpt-") as folder:
        writer = case.adapter()
        if not configure_checkpoints(model_type, writer, Path(folder), False):
            raise _fail(family, where, "it declares checkpoints but configure_checkpoints did nothing")
        writer.fit(case.X, case.y, case.X_val, case.y_val, None)
        if not any(Path(folder).rglob("*")):
            raise _fail(family, where, f"no checkpoint was written in {folder}")
        resumed = case.adapter()
        configure_checkpoints(model_type, resumed, Path(folder), True)
        report = resumed.fit(case.X, case.y, case.X_val, case.y_val, None)
        if not any("resumed" in note for note in report.notes):
            raise _fail(family, where, f"resume=True did not resume (notes: {report.notes})")
        if not np.array_equal(np.asarray(resumed.predict(case.X_test)), np.asarray(first[0])):
            raise _fail(family, where, "the resumed model predicts differently from the uninterrupted one")


def _pyfunc_round_trip(family: ModelFamily, case: Any, task: str, model_type: str, adapter: Any) -> None:
    import mlflow.pyfunc
    import numpy as np

    from trainpipe.models import ModelSpec, TrainedModel
    from trainpipe.registry._package import save_pyfunc
    from trainpipe.registry._predict import predict_frame

    where = f"{task}: registered pyfunc round trip"
    if hasattr(case, "trained_model"):  # a task's own model folder (ranking: no preprocessor)
        model = case.trained_model(family, model_type, adapter)
    else:
        dtypes = {c: str(case.test[c].dtype) for c in case.spec.columns}
        model = TrainedModel(ModelSpec(model_type, family.name, case.task, case.spec, input_dtypes=dtypes),
                             case.pre, adapter)
    expected = predict_frame(model, case.raw)
    with tempfile.TemporaryDirectory(prefix="trainpipe-check-pyfunc-") as folder:
        if hasattr(case, "save_model"):
            case.save_model(model, Path(folder) / "model")
        else:
            model.save(Path(folder) / "model")
        save_pyfunc(model, Path(folder) / "model", Path(folder) / "pyfunc", example_rows=case.raw.head(5),
                    extra_artifacts={})
        _forget_deleted_bundles()
        try:
            loaded = mlflow.pyfunc.load_model(str(Path(folder) / "pyfunc"))
            got = loaded.predict(case.raw)
        except Exception as exc:
            raise _fail(family, where, f"plain mlflow.pyfunc could not load or run it ({type(exc).__name__}: "
                                       f"{exc}); is the family installed through the trainpipe.model_families "
                                       "entry point?") from exc
    # the folder is deleted now: no module of this process may keep importing from it (a model loaded later
    # with the same bundled code would look for its lazily imported modules there)
    _forget_deleted_bundles()
    if list(got.columns) != list(expected.columns):
        raise _fail(family, where, f"columns {list(got.columns)}, expected {list(expected.columns)}")
    for column in expected.columns:
        a, b = expected[column].to_numpy(), got[column].to_numpy()
        same = np.allclose(a.astype(float), b.astype(float), rtol=1e-6) if a.dtype.kind in "fiu" \
            else bool((a.astype(str) == b.astype(str)).all())
        if not same:
            raise _fail(family, where, f"column {column!r} differs after the round trip")


def _forget_deleted_bundles() -> None:
    """Drop bundled inference modules (``trainpipe_inference_<hash>``) whose files were deleted with an earlier
    check's temporary folder: the next model with the same code would otherwise import its not-yet-loaded
    submodules from that deleted folder."""
    import sys

    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if name.startswith("trainpipe_inference_") and file and not Path(file).exists():
            del sys.modules[name]
