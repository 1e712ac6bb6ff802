"""The "by hand" reference for ``overhead.py``: the same split, preprocessing, fit and MLflow logging
that ``trainpipe run`` does for an XGBoost binary classifier, written as a plain script.

Usage: python plain_xgboost.py DATA.parquet TARGET TRACKING_DB [--same-outputs] [key=value ...]
(key=value pairs override the XGBoost parameters below, e.g. max_depth=5).

With ``--same-outputs`` the script also produces, by hand, the outputs that ``trainpipe run`` produces by
default on top of the metrics: the confusion-matrix, ROC, PR and feature-importance PNGs (matplotlib),
single-row latency p50/p95 over 100 raw test rows (through the sklearn ``Pipeline`` of preprocessor and
model, as a serving process would call it), and the model logged with ``mlflow.sklearn.log_model`` (signature,
input example, pinned pip requirements) and registered as a new version. It does not validate the data or
compute a drift profile, which trainpipe also does.

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
from typing import Any

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
    same_outputs = "--same-outputs" in argv[3:]
    params = dict(PARAMS)
    for item in (a for a in argv[3:] if a != "--same-outputs"):
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
    if same_outputs:
        plots = Path(tempfile.mkdtemp())
        draw_plots(plots, y_test, pred, proba, model.feature_importances_, list(pre.get_feature_names_out()))
        serving = Pipeline([("pre", pre), ("model", model)])
        raw_test = X_all.iloc[test]
        metrics.update(single_row_latency(serving, raw_test))
    t_outputs = time.perf_counter()

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
        if same_outputs:
            import mlflow.sklearn
            import sklearn
            from mlflow.models import infer_signature

            mlflow.log_artifacts(str(plots), "plots")
            example = raw_test.head(5)
            mlflow.sklearn.log_model(
                serving, name="serving_model", signature=infer_signature(example, serving.predict_proba(example)),
                input_example=example, registered_model_name="plain-xgboost",
                # MLflow 3 saves sklearn models with skops and asks which non-sklearn types to trust
                skops_trusted_types=["numpy.dtype", "xgboost.core.Booster", "xgboost.sklearn.XGBClassifier"],
                pip_requirements=[f"mlflow=={mlflow.__version__}", f"scikit-learn=={sklearn.__version__}",
                                  f"xgboost=={xgb.__version__}", f"pandas=={pd.__version__}"])
    t_log = time.perf_counter()

    seconds = {"import": t_import - t0, "read_split_preprocess": t_prep - t_import, "fit": t_fit - t_prep,
               "evaluate": t_eval - t_fit, "plots_latency": t_outputs - t_eval, "mlflow": t_log - t_outputs}
    print(json.dumps({"rows": n, "n_features": int(X_train.shape[1]),
                      **{k: round(float(v), 5) for k, v in metrics.items()},
                      "seconds": {k: round(v, 3) for k, v in seconds.items()}}))


def draw_plots(folder: Path, y: Any, pred: Any, proba: Any, importances: Any, names: list[str]) -> None:
    """The four PNGs trainpipe draws for a binary classifier, the usual pyplot way."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import auc, average_precision_score, confusion_matrix, precision_recall_curve, roc_curve

    cm = confusion_matrix(y, pred)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center")
    ax.set(xlabel="predicted", ylabel="actual", title="Confusion matrix (test)")
    fig.tight_layout()
    fig.savefig(folder / "confusion_matrix.png", dpi=100)
    plt.close(fig)
    fpr, tpr, _ = roc_curve(y, proba[:, 1])
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"AUC {auc(fpr, tpr):.3f}")
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test)")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(folder / "roc_curve.png", dpi=100)
    plt.close(fig)
    prec, rec, _ = precision_recall_curve(y, proba[:, 1])
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(rec, prec, label=f"AP {average_precision_score(y, proba[:, 1]):.3f}")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (test)")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(folder / "pr_curve.png", dpi=100)
    plt.close(fig)
    order = np.argsort(importances)[::-1][:20][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(order) + 1.5))
    ax.barh([names[i][:40] for i in order], np.asarray(importances)[order])
    ax.set_title("Feature importance (top 20)")
    fig.tight_layout()
    fig.savefig(folder / "feature_importance.png", dpi=100)
    plt.close(fig)


def single_row_latency(serving: Any, raw: Any, rows: int = 100) -> dict[str, float]:
    """p50/p95 milliseconds of ``predict_proba`` on one raw row, over ``rows`` random test rows."""
    import numpy as np

    idx = np.random.default_rng(0).choice(len(raw), size=min(rows, len(raw)), replace=False)
    serving.predict_proba(raw.iloc[idx[:1]])  # warm-up
    times = []
    for i in idx:
        start = time.perf_counter()
        serving.predict_proba(raw.iloc[[int(i)]])
        times.append((time.perf_counter() - start) * 1000.0)
    return {"latency_p50_ms": float(np.percentile(times, 50)), "latency_p95_ms": float(np.percentile(times, 95))}


if __name__ == "__main__":
    main(sys.argv[1:])
