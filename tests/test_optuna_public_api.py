"""Tuning talks to Optuna through its public API only (issue 11.9), and three errors are the exceptions they
mean, with their documented exit codes (issue 11.10)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import make_frame, write_pipeline
from trainpipe._exceptions import ConfigError, StoreError, TuningFailed
from trainpipe.tracking import InMemoryTracker

SRC = Path(__file__).resolve().parents[1] / "src" / "trainpipe"

# Optuna's private members that trainpipe once reached for (Study._storage, FrozenTrial._trial_id,
# Study._thread_local, ...): each version of Optuna may change them.
OPTUNA_PRIVATE = {"_storage", "_trial_id", "_thread_local", "_study_id", "_backend", "_pop_waiting_trial_id",
                  "_get_trials", "_cached_frozen_trial", "_is_heartbeat_enabled", "_get_stale_trial_ids"}


def _dotted(node: ast.AST) -> str:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def private_optuna_uses(path: Path, root: Path = SRC.parent) -> list[str]:
    """``path:line: what`` (path relative to ``root``) for each use of an Optuna private member or module."""
    found: list[tuple[int, str]] = []
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        what = ""
        if isinstance(node, ast.Attribute):
            dotted = _dotted(node)
            if node.attr in OPTUNA_PRIVATE:
                what = f".{node.attr}"
            elif dotted.startswith("optuna.") and any(p.startswith("_") for p in dotted.split(".")[1:]):
                what = dotted
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr"):
            args = node.args
            if len(args) >= 2 and isinstance(args[1], ast.Constant) and args[1].value in OPTUNA_PRIVATE:
                what = f"{node.func.id}(..., {args[1].value!r})"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("optuna"):
            if any(p.startswith("_") for p in (node.module or "").split(".")):
                what = f"from {node.module} import ..."
            elif any(a.name.startswith("_") for a in node.names):
                what = f"from {node.module} import {', '.join(a.name for a in node.names)}"
        elif isinstance(node, ast.Import):
            what = ", ".join(a.name for a in node.names
                             if a.name.startswith("optuna") and any(p.startswith("_") for p in a.name.split(".")))
        if what:
            line = int(getattr(node, "lineno", 0))
            found.append((line, f"{path.relative_to(root)}:{line}: {what}"))
    return [hit for _, hit in sorted(found)]


def test_the_scanner_finds_what_the_old_study_module_did(tmp_path: Path) -> None:
    old = tmp_path / "trainpipe" / "old.py"
    old.parent.mkdir()
    old.write_text(
        "from optuna.storages._heartbeat import is_heartbeat_enabled\n"
        "def f(study, frozen):\n"
        "    storage = study._storage\n"
        "    backend = getattr(storage, '_backend', storage)\n"
        "    study._thread_local.cached_all_trials = None\n"
        "    return storage.get_trial(frozen._trial_id), optuna.storages._heartbeat\n"
    )
    found = private_optuna_uses(old, root=tmp_path)
    assert [f.split(": ", 1)[0] for f in found].count("trainpipe/old.py:6") == 2
    joined = "\n".join(found)
    for expected in ("old.py:1: from optuna.storages._heartbeat", "old.py:3: ._storage", "old.py:4: getattr(..., "
                     "'_backend')", "old.py:5: ._thread_local", "._trial_id", "optuna.storages._heartbeat"):
        assert expected in joined


def test_trainpipe_uses_no_private_optuna_member() -> None:
    found = [hit for path in sorted(SRC.rglob("*.py")) for hit in private_optuna_uses(path)]
    assert not found, "Optuna private API used (use the public Study/BaseStorage methods):\n" + "\n".join(found)


# -- exceptions for what they mean, through the CLI (in process) ---------------------------------------------


class ReadOnlyArtifacts(InMemoryTracker):
    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        raise PermissionError(13, "Permission denied", "/store/mlartifacts/x")


def _cli(workdir: Path, monkeypatch: pytest.MonkeyPatch, tracker: InMemoryTracker, *args: str) -> tuple[int, str]:
    import trainpipe.cli as cli

    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setattr(cli, "_tracker", lambda loaded, steps=(): tracker)
    result = CliRunner().invoke(cli.app, list(args))
    return result.exit_code, " ".join(result.output.split())


def test_records_the_store_refuses_are_a_store_error_exit_2(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainpipe.config import load_config
    from trainpipe.pipeline import PipelineRunner

    make_frame(300).to_csv(workdir / "d.csv", index=False)
    path = write_pipeline(workdir, "name: ro\ndata: {source: d.csv, target: label}\n"
                                   "model: {type: sklearn.linear_model.LogisticRegression}\n"
                                   "evaluation: {latency: false, plots: false}\n")
    with pytest.raises(StoreError, match=r"could not be written to the MLflow store") as caught:  # was ConfigError
        PipelineRunner(load_config(path), workdir=workdir, tracker=ReadOnlyArtifacts()).run()
    assert not isinstance(caught.value, ConfigError)
    code, out = _cli(workdir, monkeypatch, ReadOnlyArtifacts(), "run", "pipeline.yaml")
    assert code == 2, out
    assert "the run finished, but its records could not be written to the MLflow store" in out
    assert "PermissionError" in out and "Check that the store and its artifact folder are writable" in out
    assert "Traceback" not in out
    assert StoreError.exit_code == 2 and not issubclass(StoreError, ConfigError)


def test_tune_without_a_tuning_section_is_a_config_error(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainpipe.config import load_config
    from trainpipe.pipeline import PipelineRunner, steps_for

    make_frame(200).to_csv(workdir / "d.csv", index=False)
    base = "name: nt\ndata: {source: d.csv, target: label}\nmodel: {type: sklearn.linear_model.LogisticRegression}\n"
    code, out = _cli(workdir, monkeypatch, InMemoryTracker(), "tune", str(write_pipeline(workdir, base)))
    assert code == 2, out
    assert "there is no tuning section, so there is nothing to tune" in out and "Traceback" not in out
    # the tune step itself, reached from Python with a config that has none: a ConfigError (was DataError)
    with_tuning = load_config(write_pipeline(workdir, base + "tuning: {n_trials: 2}\n", "t.yaml")).config
    steps = steps_for(with_tuning)
    steps = steps[: [s.name for s in steps].index("tune") + 1]
    runner = PipelineRunner(load_config(workdir / "pipeline.yaml"), workdir=workdir, steps=steps,
                            tracker=InMemoryTracker())
    with pytest.raises(ConfigError, match=r"trainpipe tune needs a tuning: section.*Add one, e\.g\. tuning:"):
        runner.run()


def test_no_completed_trial_exits_2_with_the_first_errors(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_frame(120).to_csv(workdir / "d.csv", index=False)
    # more neighbours than training rows: every trial (the defaults' too) fails when it scores
    write_pipeline(workdir, "name: none\ndata: {source: d.csv, target: label}\n"
                            "model: {type: sklearn.neighbors.KNeighborsClassifier, params: {n_neighbors: 500}}\n"
                            "tuning: {n_trials: 3, selection: holdout, pruner: none,\n"
                            "         space: {n_neighbors: {type: int, low: 600, high: 700}}}\n")
    code, out = _cli(workdir, monkeypatch, InMemoryTracker(), "tune", "pipeline.yaml")
    assert code == 2, out
    assert "tuning: no trial of study 'none' completed (3 failed, 0 pruned)" in out
    assert "First errors: trial 0: ValueError:" in out and "n_neighbors" in out
    assert "Fix tuning.space or model.params" in out
    assert "Traceback" not in out
    assert TuningFailed.exit_code == 2
