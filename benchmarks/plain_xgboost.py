"""The "by hand" reference for ``overhead.py``: the same split, preprocessing, fit and MLflow logging
that ``trainpipe run`` does for an XGBoost binary classifier, written as a plain script.

Usage: python plain_xgboost.py DATA.parquet TARGET TRACKING_DB [key=value ...]
(key=value pairs override the XGBoost parameters below, e.g. max_depth=5).

It mirrors trainpipe's defaults so both sides do the same modelling work:
seeded stratified split into train/val/test (test 0.2, val 0.1 of all rows, seed 42 / 43), a
ColumnTransformer (numeric: median impute + standard scale; categorical: constant impute + one-hot with
at most 50 categories), ``XGBClassifier`` with early stopping on the validation split, test metrics, and
one MLflow run (SQLite store) with the params, the metrics, the per-round validation curve and the model.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

PARAMS = {"n_estimators": 300, "max_depth": 6, "learning_rate": 0.1, "tree_method": "hist",
          "random_state": 42}
EARLY_STOPPING_ROUNDS = 30
TEST_SIZE, VAL_SIZE, SEED = 0.2, 0.1, 42


def _value(text: str) -> int | float | str:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def main(argv: list[str]) -> None:
    t0 = time.perf_counter()
    data, target, db = Path(argv[0]), argv[1], Path(argv[2])
    params = dict(PARAMS)
    for item in argv[3:]:
        key, _, value = item.partition("=")
        params[key] = _value(value)

    import mlflow
    import numpy as np
    import pandas as pd
    import xgboost as xgb
    from mlflow.entities import Metric
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.metrics import accuracy_score, average_precision_score, f1_score, log_loss, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    t_import = time.perf_counter()
    df = pd.read_parquet(data)
    y_all = df[target].to_numpy().astype(np.int64)
    X_all = df.drop(columns=[target])
    numeric = [c for c in X_all.columns if pd.api.types.is_numeric_dtype(X_all[c])]
    categorical = [c for c in X_all.columns if c not in numeric]
    X_all[categorical] = X_all[categorical].astype(object)

    # same positions as trainpipe: integer sizes, seed for test, seed + 1 for validation
    n = len(df)
    n_test, n_val = round(n * TEST_SIZE), round(n * VAL_SIZE)
    positions = np.arange(n)
    rest, test = train_test_split(positions, test_size=n_test, random_state=SEED, stratify=y_all)
    train, val = train_test_split(rest, test_size=n_val, random_state=SEED + 1, stratify=y_all[rest])
    train, val, test = np.sort(train), np.sort(val), np.sort(test)

    pre = ColumnTransformer([
        ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
         numeric),
        ("categorical", Pipeline([
            ("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
            ("encode", OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=50,
                                     sparse_output=False, dtype=np.float32))]), categorical),
    ])
    X_train = pre.fit_transform(X_all.iloc[train])
    X_val, X_test = pre.transform(X_all.iloc[val]), pre.transform(X_all.iloc[test])
    t_prep = time.perf_counter()

    model = xgb.XGBClassifier(**params, early_stopping_rounds=EARLY_STOPPING_ROUNDS)
    model.fit(X_train, y_all[train], eval_set=[(X_val, y_all[val])], verbose=False)
    t_fit = time.perf_counter()

    y_test = y_all[test]
    proba = model.predict_proba(X_test)
    pred = proba.argmax(axis=1)
    metrics = {
        "test_roc_auc": roc_auc_score(y_test, proba[:, 1]),
        "test_pr_auc": average_precision_score(y_test, proba[:, 1]),
        "test_log_loss": log_loss(y_test, proba, labels=[0, 1]),
        "test_accuracy": accuracy_score(y_test, pred),
        "test_f1": f1_score(y_test, pred, average="macro"),
        "best_iteration": float(model.best_iteration),
    }
    curve = model.evals_result()["validation_0"]["logloss"]
    t_eval = time.perf_counter()

    mlflow.set_tracking_uri(f"sqlite:///{db.resolve()}")
    client = mlflow.MlflowClient()
    found = client.get_experiment_by_name("plain-xgboost")
    experiment_id = found.experiment_id if found else client.create_experiment(
        "plain-xgboost", artifact_location=(db.parent / "artifacts").resolve().as_uri())
    with mlflow.start_run(experiment_id=experiment_id, run_name="plain") as run, \
            tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params({**params, "early_stopping_rounds": EARLY_STOPPING_ROUNDS,
                           "n_train": len(train), "n_val": len(val), "n_test": len(test)})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        now = int(time.time() * 1000)
        client.log_batch(run.info.run_id,
                         metrics=[Metric("val_logloss", float(v), now, i) for i, v in enumerate(curve)])
        model_file = Path(tmp) / "model.ubj"
        model.save_model(str(model_file))
        mlflow.log_artifact(str(model_file), "model")
    t_log = time.perf_counter()

    seconds = {"import": t_import - t0, "read_split_preprocess": t_prep - t_import, "fit": t_fit - t_prep,
               "evaluate": t_eval - t_fit, "mlflow": t_log - t_eval}
    print(json.dumps({"rows": n, "n_features": int(X_train.shape[1]),
                      **{k: round(float(v), 5) for k, v in metrics.items()},
                      "seconds": {k: round(v, 3) for k, v in seconds.items()}}))


if __name__ == "__main__":
    main(sys.argv[1:])
