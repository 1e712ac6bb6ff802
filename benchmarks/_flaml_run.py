"""Run inside ``.venv-flaml`` by ``benchmarks/automl.py``: FLAML's ``AutoML.fit(time_budget=...)`` on the
training rows it is given (parquet), predictions for the test rows written back as parquet.

Usage (automl.py builds the call)::

    .venv-flaml/bin/python benchmarks/_flaml_run.py TRAIN.parquet TEST.parquet TARGET TASK METRIC BUDGET OUT.parquet

TASK: binary | multiclass | regression. Output columns: ``proba_<label>`` per class (classification) or
``prediction`` (regression); the fit's wall seconds and FLAML's best estimator go to OUT.json.
"""

from __future__ import annotations

import json
import sys
import time

import pandas as pd


def main() -> None:
    train_path, test_path, target, task, metric, budget, out = sys.argv[1:8]
    train = pd.read_parquet(train_path)
    test = pd.read_parquet(test_path)
    X, y = train.drop(columns=[target]), train[target]
    X_test = test.drop(columns=[target])
    for frame in (X, X_test):  # FLAML's learners take pandas categories for text columns
        for col in frame.columns:
            if not pd.api.types.is_numeric_dtype(frame[col]) and not pd.api.types.is_bool_dtype(frame[col]):
                frame[col] = frame[col].astype("category")
    from flaml import AutoML

    automl = AutoML()
    flaml_metric = {"roc_auc": "roc_auc", "log_loss": "log_loss", "rmse": "rmse"}[metric]
    started = time.perf_counter()
    automl.fit(X, y if task == "regression" else y.astype(str), task="regression" if task == "regression"
               else "classification", time_budget=float(budget), metric=flaml_metric, seed=0, n_jobs=1,
               verbose=0)
    fit_seconds = time.perf_counter() - started
    if task == "regression":
        result = pd.DataFrame({"prediction": automl.predict(X_test)})
    else:
        proba = automl.predict_proba(X_test)
        result = pd.DataFrame(proba, columns=[f"proba_{c}" for c in automl.classes_])
    result.to_parquet(out)
    with open(out + ".json", "w") as fh:
        json.dump({"fit_seconds": fit_seconds, "best_estimator": automl.best_estimator,
                   "best_loss": automl.best_loss}, fh)


if __name__ == "__main__":
    main()
