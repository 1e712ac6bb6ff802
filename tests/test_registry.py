"""Gate and registry on the real MLflow store (embedded SQLite), through the CLI as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import write_pipeline

pytestmark = pytest.mark.slow

BASE = """\
name: cancer
description: Flag biopsies for a second review.
data: {{source: "{source}", target: target}}
model: {{type: {model}, params: {params}}}
evaluation: {{latency: false}}
gate:
  thresholds: {{roc_auc: ">= 0.7"}}
  champion: {{metric: roc_auc, min_delta: {min_delta}, confidence: 0.95}}
registry: {{model_name: cancer, promote: {promote}}}
validation: {{drift: {{max_psi: {max_psi}}}}}
"""


def pipeline(workdir: Path, *, source: str = "sklearn:breast_cancer", model: str = "xgboost",
             params: str = "{n_estimators: 40, max_depth: 3}", min_delta: float = 0.0, promote: str = "staging",
             max_psi: str = "null", name: str = "pipeline.yaml") -> Path:
    return write_pipeline(workdir, BASE.format(source=source, model=model, params=params, min_delta=min_delta,
                                               promote=promote, max_psi=max_psi), name)


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "trainpipe.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=env)


def client(workdir: Path):  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    uri = f"sqlite:///{workdir}/.trainpipe/mlflow.db"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def state(workdir: Path, name: str = "cancer") -> tuple[list[str], dict[str, str]]:
    c = client(workdir)
    versions = sorted(str(v.version) for v in c.search_model_versions(f"name = '{name}'"))
    return versions, {k: str(v) for k, v in c.get_registered_model(name).aliases.items()}


def test_promotion_workflow_gate_refusal_rollback_and_pyfunc(workdir: Path) -> None:
    path = pipeline(workdir)
    first = cli(workdir, "run", str(path))
    assert first.returncode == 0, first.stderr
    assert state(workdir) == (["1"], {"staging": "1"})
    mv = client(workdir).get_model_version("cancer", "1")
    for tag in ("run_id", "data_fingerprint", "config_hash", "git_commit", "gate_verdict", "test_roc_auc"):
        assert mv.tags.get(tag), tag
    assert mv.tags["gate_verdict"] == "passed" and mv.tags["trainpipe.registration"] == "complete"
    assert "# Model card: cancer version 1" in mv.description and "Flag biopsies" in mv.description
    run_dir = next(p for p in (workdir / ".trainpipe" / "runs").iterdir())
    card = (run_dir / "steps" / "register" / "model_card.md").read_text()
    assert "## Gate" in card and "data version (sha256)" in card and "## Lineage and environment" in card
    pyfunc = run_dir / "steps" / "register" / "registered_model"
    assert (pyfunc / "MLmodel").exists() and (pyfunc / "artifacts" / "model_card.md").exists()
    assert not [p for p in pyfunc.rglob("*") if p.suffix in (".pkl", ".pickle", ".joblib")]  # nothing to unpickle

    refused = cli(workdir, "models", "promote", "cancer", "1", "--to", "production")
    assert refused.returncode == 2 and "needs --reason" in refused.stderr
    ok = cli(workdir, "models", "promote", "cancer", "1", "--to", "production", "--reason", "first release")
    assert ok.returncode == 0, ok.stderr
    assert state(workdir)[1] == {"staging": "1", "production": "1"}

    # a worse challenger: refused with exit 4, the registry unchanged
    worse = cli(workdir, "run", str(pipeline(workdir, model="sklearn.dummy.DummyClassifier", params="{}",
                                             name="worse.yaml")))
    assert worse.returncode == 4, worse.stderr
    assert "Traceback" not in worse.stderr
    assert "roc_auc = 0.5 does not meet '>= 0.7'" in worse.stderr
    assert "does not beat the production champion (version 1)" in worse.stderr
    assert state(workdir) == (["1"], {"staging": "1", "production": "1"})
    report = json.loads(_latest_gate_report(workdir))
    assert report["verdict"] == "refused" and report["champion"]["champion_version"] == "1"
    assert report["champion"]["ci_low"] <= report["champion"]["delta"] <= report["champion"]["ci_high"]

    # a challenger that is allowed to be slightly worse goes straight to production
    second = cli(workdir, "run", str(pipeline(workdir, params="{n_estimators: 30, max_depth: 2}", min_delta=-0.5,
                                              promote="production", name="second.yaml")))
    assert second.returncode == 0, second.stderr
    assert state(workdir) == (["1", "2"], {"staging": "1", "production": "2", "previous-production": "1"})

    back = cli(workdir, "models", "rollback", "cancer", "--reason", "v2 misbehaves on Mondays")
    assert back.returncode == 0, back.stderr
    assert state(workdir)[1] == {"staging": "1", "production": "1", "previous-production": "2"}

    hist = cli(workdir, "models", "history", "cancer")
    assert hist.returncode == 0, hist.stderr
    assert "first release" in hist.stdout and "rollback: v2 misbehaves on Mondays" in hist.stdout
    from trainpipe.registry import history

    moves = history(client(workdir), "cancer")
    prod = [(m.from_version, m.to_version) for m in moves if m.alias == "production"]
    assert prod == [(None, "1"), ("1", "2"), ("2", "1")]
    assert all(m.user and m.host for m in moves) and moves[-2].gate_verdict == "passed"

    listed = cli(workdir, "models", "list", "cancer")
    assert listed.returncode == 0 and "@production" in listed.stdout and "@previous-production" in listed.stdout
    shown = cli(workdir, "models", "show", "cancer@production")
    assert shown.returncode == 0 and "Model card: cancer version 1" in shown.stdout

    # the registered model predicts from raw columns in a fresh process
    raw = _raw_frame().head(20)
    raw.to_csv(workdir / "raw.csv", index=False)
    code = textwrap.dedent(f"""
        import mlflow, pandas as pd
        uri = "sqlite:///{workdir}/.trainpipe/mlflow.db"
        mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri)
        model = mlflow.pyfunc.load_model("models:/cancer@production")
        out = model.predict(pd.read_csv("{workdir}/raw.csv"))
        print(out.shape[0], sorted(out.columns))
    """)
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 0, fresh.stderr
    assert "20 ['prediction', 'proba_benign', 'proba_malignant']" in fresh.stdout

    # batch prediction through the CLI, with the input checked against the signature
    pred = cli(workdir, "predict", "models:/cancer@production", "raw.csv", "-o", "out/pred.parquet")
    assert pred.returncode == 0, pred.stderr
    out = pd.read_parquet(workdir / "out" / "pred.parquet")
    assert len(out) == 20 and {"prediction", "proba_malignant"} <= set(out.columns)
    raw.drop(columns=["mean radius"]).to_csv(workdir / "missing.csv", index=False)
    bad = cli(workdir, "predict", "models:/cancer@production", "missing.csv", "-o", "bad.csv")
    assert bad.returncode == 2 and "needs the columns ['mean radius']" in bad.stderr
    assert not (workdir / "bad.csv").exists()
    typo = raw.astype({"mean texture": object})
    typo.loc[3, "mean texture"] = "unknown"
    typo.to_csv(workdir / "typed.csv", index=False)
    bad = cli(workdir, "predict", "models:/cancer@production", "typed.csv", "-o", "bad.csv")
    assert bad.returncode == 2 and "'mean texture' must be numeric" in bad.stderr and "row 3" in bad.stderr
    nomodel = cli(workdir, "predict", "models:/cancer@nope", "raw.csv", "-o", "bad.csv")
    assert nomodel.returncode == 2 and "models:/cancer@nope" in nomodel.stderr

    # the same config again: gate and register run again and the run records *this* registration
    # (their cache entries of the earlier identical run used to be linked in instead: version 2, champion 1)
    again = cli(workdir, "run", str(workdir / "second.yaml"))
    assert again.returncode == 0, again.stderr
    assert state(workdir) == (["1", "2", "3"], {"staging": "1", "production": "3", "previous-production": "1"})
    latest = max((workdir / ".trainpipe" / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    assert json.loads((latest / "steps" / "register" / "registration.json").read_text())["version"] == "3"
    assert json.loads((latest / "gate_report.json").read_text())["champion"]["champion_version"] == "1"
    everything = cli(workdir, "models", "list")  # no NAME: every registered model
    assert everything.returncode == 0, everything.stderr
    assert "cancer" in everything.stdout


def _latest_gate_report(workdir: Path) -> str:
    reports = sorted((workdir / ".trainpipe" / "runs").glob("*/gate_report.json"), key=lambda p: p.stat().st_mtime)
    return reports[-1].read_text()


def _raw_frame() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).data


def test_threshold_refusal_registers_nothing(workdir: Path) -> None:
    path = pipeline(workdir, model="sklearn.dummy.DummyClassifier", params="{}")
    out = cli(workdir, "run", str(path))
    assert out.returncode == 4 and "nothing was registered" in out.stderr
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException):
        client(workdir).get_registered_model("cancer")
    (run_dir,) = (workdir / ".trainpipe" / "runs").iterdir()
    assert (run_dir / "gate_report.md").exists()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"


@pytest.mark.parametrize(("model", "params"), [
    ("xgboost", "{n_estimators: 30, max_depth: 3}"),
    ("lightgbm", "{n_estimators: 30, num_leaves: 7, verbose: -1}"),
    ("sklearn.ensemble.RandomForestClassifier", "{n_estimators: 30, random_state: 0}"),
])
def test_reproduce_gives_identical_metrics(workdir: Path, model: str, params: str) -> None:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.to_csv(workdir / "cancer.csv", index=False)
    path = pipeline(workdir, source="cancer.csv", model=model, params=params, promote="none")
    first = cli(workdir, "run", str(path))
    assert first.returncode == 0, first.stderr
    run_id = next((workdir / ".trainpipe" / "runs").iterdir()).name
    again = cli(workdir, "reproduce", run_id)
    assert again.returncode == 0, again.stderr + again.stdout
    assert f"exactly the metrics of run {run_id}" in again.stdout
    # the saved config edited by hand: refused, exit 2 (it would not be that run any more)
    saved = workdir / ".trainpipe" / "runs" / run_id / "config.yaml"
    original = saved.read_text()
    saved.write_text(original.replace("n_estimators: 30", "n_estimators: 31"))
    assert saved.read_text() != original, "the test config changed nothing"
    edited = cli(workdir, "reproduce", run_id)
    assert edited.returncode == 2 and "the file was edited after the run" in edited.stderr, edited.stderr
    saved.write_text(original)
    # the data changed: refused, exit 2
    frame.iloc[:5].to_csv(workdir / "cancer.csv", mode="a", header=False, index=False)
    refused = cli(workdir, "reproduce", run_id)
    assert refused.returncode == 2 and "the data at cancer.csv has changed" in refused.stderr


def test_drift_against_the_production_profile_fails_with_exit_3(workdir: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.to_csv(workdir / "cancer.csv", index=False)
    path = pipeline(workdir, source="cancer.csv", promote="production", max_psi="0.25")
    assert cli(workdir, "run", str(path)).returncode == 0
    same = cli(workdir, "run", str(path), "--set", "model.params.max_depth=2", "--set", "gate.champion.min_delta=-1")
    assert same.returncode == 0, same.stderr  # same data: no drift
    shifted = frame.copy()
    shifted["mean radius"] = shifted["mean radius"] * 1.6
    shifted.to_csv(workdir / "cancer.csv", index=False)
    drifted = cli(workdir, "run", str(path))
    assert drifted.returncode == 3, drifted.stderr
    assert "mean radius (PSI" in drifted.stderr and "validation.drift.max_psi = 0.25" in drifted.stderr
    report = sorted((workdir / ".trainpipe" / "runs").glob("*/drift_report.json"),
                    key=lambda p: p.stat().st_mtime)[-1]
    data = json.loads(report.read_text())
    assert "mean radius" in data["failures"] and data["reference"] == "cancer version 2 (production)"
    report_only = cli(workdir, "run", str(path), "--set", "validation.drift.max_psi=null",
                      "--set", "gate.champion.min_delta=-1")
    assert report_only.returncode == 0, report_only.stderr
    assert "drift (report only" in report_only.stderr and "'mean radius' has PSI" in report_only.stderr


def test_registration_is_all_or_nothing(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainpipe.registry import client_for, register_version

    c = client_for(f"sqlite:///{workdir}/reg.db")
    run = c.create_run(c.create_experiment("x")).info.run_id
    good = register_version(c, name="m", run_id=run, source=f"runs:/{run}/model", alias="staging", tags={"a": "1"},
                            description="card", reason="test")
    assert str(good.version) == "1"

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("registry went away")

    monkeypatch.setattr(c, "set_registered_model_alias", boom)
    with pytest.raises(RuntimeError, match="registry went away"):
        register_version(c, name="m", run_id=run, source=f"runs:/{run}/model2", alias="staging", tags={},
                         description="card", reason="test")
    assert [str(v.version) for v in c.search_model_versions("name = 'm'")] == ["1"]
    assert {k: str(v) for k, v in c.get_registered_model("m").aliases.items()} == {"staging": "1"}
    # a retried register step (same run, same model folder) gets the same version, not a second one
    monkeypatch.undo()
    again = register_version(c, name="m", run_id=run, source=f"runs:/{run}/model", alias="staging", tags={},
                             description="card", reason="retry")
    assert str(again.version) == "1" and len(c.search_model_versions("name = 'm'")) == 1


WORKER = """
import sys
from trainpipe.registry import client_for, register_version
c = client_for(sys.argv[1])
run = sys.argv[2]
for i in range(3):
    register_version(c, name="shared", run_id=run, source=f"runs:/{run}/model-{sys.argv[3]}-{i}", alias="staging",
                     tags={"worker": sys.argv[3]}, description="card", reason="concurrent")
"""


def test_two_processes_registering_the_same_name_at_once(workdir: Path) -> None:
    from trainpipe.registry import client_for

    uri = f"sqlite:///{workdir}/reg.db"
    c = client_for(uri)
    run = c.create_run(c.create_experiment("x")).info.run_id
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, uri, run, str(i)], stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    versions = c.search_model_versions("name = 'shared'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3, 4, 5, 6]
    assert all(v.tags["trainpipe.registration"] == "complete" for v in versions)
    assert sorted(v.tags["worker"] for v in versions) == ["0", "0", "0", "1", "1", "1"]
    staging = str(c.get_registered_model("shared").aliases["staging"])
    assert staging in {str(v.version) for v in versions}


def test_failed_production_registration_restores_the_aliases(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainpipe import GateRefused
    from trainpipe.registry import _registry as reg
    from trainpipe.registry import client_for, register_version

    c = client_for(f"sqlite:///{workdir}/reg.db")
    run = c.create_run(c.create_experiment("x")).info.run_id
    kw = {"name": "m", "run_id": run, "source": f"runs:/{run}/model", "tags": {}, "description": "card",
          "reason": "test"}
    register_version(c, alias="production", expected_production=None, **kw)  # type: ignore[arg-type]
    kw["source"] = f"runs:/{run}/model-2"
    real_move = reg.move_alias
    calls = []

    def second_move_fails(client, name, alias, version, **k):  # type: ignore[no-untyped-def]
        calls.append((alias, version))
        if len(calls) == 2:  # previous-production moved, production about to move
            raise RuntimeError("network down")
        return real_move(client, name, alias, version, **k)

    monkeypatch.setattr(reg, "move_alias", second_move_fails)
    with pytest.raises(RuntimeError, match="network down"):
        register_version(c, alias="production", expected_production="1", **kw)  # type: ignore[arg-type]
    monkeypatch.setattr(reg, "move_alias", real_move)
    assert [str(v.version) for v in c.search_model_versions("name = 'm'")] == ["1"]
    assert {k: str(v) for k, v in c.get_registered_model("m").aliases.items()} == {"production": "1"}
    # production moved after the gate compared against version 1: refused, nothing created
    register_version(c, alias="staging", **{**kw, "source": f"runs:/{run}/model-3"})  # type: ignore[arg-type]
    c.set_registered_model_alias("m", "production", "3")
    with pytest.raises(GateRefused, match="production is now version 3, but the gate compared this model with "
                                          "version 1"):
        register_version(c, alias="production", expected_production="1", **kw)  # type: ignore[arg-type]
    assert sorted(str(v.version) for v in c.search_model_versions("name = 'm'")) == ["1", "3"]


def test_registry_errors_are_not_mistaken_for_a_missing_alias() -> None:
    from mlflow.exceptions import MlflowException

    from trainpipe.registry import version_by_alias

    class Down:
        def get_model_version_by_alias(self, name: str, alias: str) -> None:
            raise MlflowException("API request to /api/2.0/mlflow/registered-models/alias failed: 503",
                                  error_code="TEMPORARILY_UNAVAILABLE")

    with pytest.raises(MlflowException, match="503"):
        version_by_alias(Down(), "m", "production")  # type: ignore[arg-type]


def test_a_champion_that_cannot_be_compared_refuses_the_challenger(workdir: Path) -> None:
    path = pipeline(workdir, promote="production")
    assert cli(workdir, "run", str(path)).returncode == 0
    narrower = write_pipeline(workdir, path.read_text().replace(
        "target: target}", "target: target, drop_columns: [mean radius]}").replace(
        "min_delta: 0.0", "min_delta: -1"), "narrower.yaml")
    out = cli(workdir, "run", str(narrower))
    assert out.returncode == 4, out.stderr
    assert "could not score this run's test split" in out.stderr and "mean radius" in out.stderr
    assert state(workdir) == (["1"], {"production": "1"})
