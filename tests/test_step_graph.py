"""The declared step graph: validation, slicing (what `run`, `tune`, `step`, reproduce and the rank policy
run), `trainpipe graph`, the runner's ignorance of step names, hooks with many listeners, and drift, gate and
register really running against the in-memory registry."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import make_frame, write_pipeline
from trainpipe import ConfigError, HookList, Hooks, RecordingHooks
from trainpipe.config import load_config
from trainpipe.pipeline import PipelineRunner, Step, StepContext, StepGraph
from trainpipe.pipeline._step import refs
from trainpipe.registry import InMemoryRegistry, ModelRegistry
from trainpipe.tracking import InMemoryTracker

SMALL = """\
name: small
data: {source: d.csv, target: label}
model: {type: sklearn.linear_model.LogisticRegression}
evaluation: {latency: false, plots: false}
"""
TUNED = SMALL + "tuning: {n_trials: 2, metric: roc_auc}\n"
CORE = ["ingest", "validate", "split", "drift", "preprocess", "train", "evaluate", "gate", "register"]


def _config(tmp_path: Path, text: str = SMALL):  # type: ignore[no-untyped-def]
    make_frame(200).to_csv(tmp_path / "d.csv", index=False)
    return load_config(write_pipeline(tmp_path, text))


def _noop(ctx: StepContext) -> None:
    pass


# -- the graph ---------------------------------------------------------------------------------------


def test_graph_for_config_orders_steps_and_adds_tune_only_when_configured(tmp_path: Path) -> None:
    plain = StepGraph.for_config(_config(tmp_path).config)
    assert plain.names == CORE
    assert "best_params.json" not in plain.step("train").inputs
    tuned = StepGraph.for_config(_config(tmp_path, TUNED).config)
    assert tuned.names == [*CORE[:5], "tune", *CORE[5:]]
    assert tuned.step("train").inputs["best_params.json"] == "tune.best_params.json"
    assert tuned.step("train").inputs["X_train"] == "preprocess.X_train"
    assert tuned.step("tune").single_process  # a study cannot run inside torchrun


def test_a_missing_input_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"step 'b' reads 'a\.y' \(its input 'y'\), but step 'a' declares no "
                                          r"output 'y' \(its outputs: x\)"):
        StepGraph([Step("a", _noop, outputs=("x",)), Step("b", _noop, refs("a.y"))], "p")
    with pytest.raises(ConfigError, match=r"step 'b' reads 'nowhere\.x' .*no step 'nowhere' is in the graph"):
        StepGraph([Step("a", _noop, outputs=("x",)), Step("b", _noop, refs("nowhere.x"))], "p")
    with pytest.raises(ConfigError, match=r"in a cycle"):
        StepGraph([Step("a", _noop, refs("b.x"), outputs=("x",)), Step("b", _noop, refs("a.x"), outputs=("x",))])
    with pytest.raises(ConfigError, match=r"two steps are named 'a'"):
        StepGraph([Step("a", _noop), Step("a", _noop)])


def test_declared_order_is_kept_and_producers_come_first() -> None:
    g = StepGraph([Step("late", _noop, refs("early.x")), Step("early", _noop, outputs=("x",)), Step("c", _noop)])
    assert g.names == ["early", "late", "c"]


def test_slicing_what_the_cli_reproduce_and_rank_policy_run(tmp_path: Path) -> None:
    from trainpipe.pipeline._reproduce import reproduce_graph

    loaded = _config(tmp_path, TUNED)
    g = StepGraph.for_config(loaded.config)
    assert g.until("tune").names == ["ingest", "validate", "split", "drift", "preprocess", "tune"]  # trainpipe tune
    assert g.only(["train"]).names == ["train"]  # trainpipe step train
    assert g.from_("gate").names == ["gate", "register"]
    assert g.upstream_of("evaluate").names == ["ingest", "validate", "split", "preprocess", "tune", "train",
                                               "evaluate"]
    assert reproduce_graph(loaded.config).names == ["ingest", "validate", "split", "preprocess", "tune", "train",
                                                    "evaluate"]  # nothing reads or writes the registry
    assert g.without(lambda s: s.rank0_only).names == ["ingest", "validate", "split", "preprocess", "tune", "train"]
    with pytest.raises(ConfigError, match=r"unknown step 'trian'; steps are ingest, validate"):
        g.only(["trian"])


def test_a_torchrun_worker_runs_until_train_untracked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = _config(tmp_path)
    monkeypatch.setenv("RANK", "1")
    runner = PipelineRunner(loaded, workdir=tmp_path, tracker=InMemoryTracker())
    assert [s.name for s in runner.steps] == ["ingest", "validate", "split", "preprocess", "train"]
    assert runner.tracker is None and runner.registry is None


def test_no_registry_is_a_config_error_at_construction(tmp_path: Path) -> None:
    loaded = _config(tmp_path)
    with pytest.raises(ConfigError, match=r"steps drift, gate, register read or write the model registry, and this "
                                          r"runner has none"):
        PipelineRunner(loaded, workdir=tmp_path)
    graph = StepGraph.for_config(loaded.config).without(lambda s: s.uses_registry)
    assert PipelineRunner(loaded, workdir=tmp_path, steps=graph).registry is None  # a slice without them: fine


def test_the_runner_holds_no_step_name() -> None:
    import trainpipe.pipeline as pipeline

    names = {s.name for s in StepGraph.for_config(_tuned_config().config).steps}
    assert {"validate", "evaluate", "train", "tune", "split"} <= names
    root = Path(pipeline.__file__).parent
    for module in ("_runner.py", "_run_logs.py"):
        tree = ast.parse((root / module).read_text())
        found = sorted({n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in names})
        assert not found, f"{module} names steps {found}: use a step flag or declaration instead"


def _tuned_config():  # type: ignore[no-untyped-def]
    from trainpipe.config import config_from_dict

    return config_from_dict({"name": "t", "data": {"source": "d.csv", "target": "y"},
                             "model": {"type": "xgboost"}, "tuning": {"n_trials": 2}})


# -- trainpipe graph ---------------------------------------------------------------------------------


def test_cli_graph_text_mermaid_and_json(workdir: Path) -> None:
    from trainpipe.cli import app

    _config(workdir, TUNED)
    runner = CliRunner()
    as_json = runner.invoke(app, ["graph", "pipeline.yaml", "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data == StepGraph.for_config(load_config(workdir / "pipeline.yaml").config).to_dict()
    assert [s["name"] for s in data["steps"]] == [*CORE[:5], "tune", *CORE[5:]]
    train = next(s for s in data["steps"] if s["name"] == "train")
    assert train["inputs"]["best_params.json"] == "tune.best_params.json" and "model" in train["outputs"]
    assert train["flags"] == {"wants_gpu": True}
    register = next(s for s in data["steps"] if s["name"] == "register")
    assert {"always_run", "uses_registry", "rank0_only", "uninterruptible"} <= set(register["flags"])

    mermaid = runner.invoke(app, ["graph", "pipeline.yaml", "--format", "mermaid"])
    assert mermaid.exit_code == 0 and mermaid.output.startswith("flowchart TD")
    drawn = set(re.findall(r"^\s+(\w+) -->\|[^|]*\| (\w+)$", mermaid.output, flags=re.M))
    assert drawn == {(e["from"], e["to"]) for e in data["edges"]}
    assert ("tune", "train") in drawn and ("gate", "register") in drawn

    text = runner.invoke(app, ["graph", "pipeline.yaml"])
    assert text.exit_code == 0
    assert "train  [wants_gpu]" in text.output and "  <- tune.best_params.json" in text.output
    assert "  -> registration.json" in text.output

    bad = runner.invoke(app, ["graph", "pipeline.yaml", "--format", "dot"])
    assert bad.exit_code == 2 and "--format: expected one of text, mermaid, json, got 'dot'" in bad.output


# -- hooks -------------------------------------------------------------------------------------------


class Broken(Hooks):
    def on_step_end(self, step: str, status: str, reason: str, seconds: float) -> None:
        raise RuntimeError("listener bug")


def test_hooklist_fans_out_and_reports_a_failing_listener_once() -> None:
    first, second = RecordingHooks(), RecordingHooks()
    hooks = HookList([first, Broken(), second])
    for step in ("a", "b"):
        hooks.on_step_start(step)
        hooks.on_step_end(step, "ran", "", 0.1)
    hooks.on_step_error("b", ValueError("x"))
    hooks.on_pipeline_end("p", "failed", 1.0)
    for rec in (first, second):
        assert rec.names("step_end") == ["a", "b"]
        assert ("step_error", ("b", "ValueError")) in rec.events and ("pipeline_end", ("p", "failed")) in rec.events
        notes = [t for t in rec.names("message") if "listener bug" in str(t)]
        assert notes == ["hooks: Broken.on_step_end raised RuntimeError: listener bug (ignored; the run goes on)"]
    assert len(hooks.errors) == 2  # both calls failed, reported once


def test_a_pipeline_runs_with_many_listeners_and_reports_step_errors(tmp_path: Path) -> None:
    loaded = _config(tmp_path)

    def boom(ctx: StepContext) -> None:
        raise ValueError("step failed")

    steps = [Step("ok", _noop), Step("boom", boom, refs("ok.*"))]
    rec = RecordingHooks()
    runner = PipelineRunner(loaded, workdir=tmp_path, steps=steps, hooks=[rec, Broken()])
    with pytest.raises(ValueError, match="step failed"):
        runner.run()
    kinds = [k for k, _ in rec.events if k != "message"]
    assert kinds == ["pipeline_start", "step_start", "step_end", "step_start", "step_error", "step_end",
                     "pipeline_end"]
    assert ("pipeline_end", ("small", "failed")) in rec.events


def test_a_report_step_runs_after_a_failure(tmp_path: Path) -> None:
    loaded = _config(tmp_path)
    seen: list[str] = []

    def boom(ctx: StepContext) -> None:
        raise ValueError("step failed")

    def report(ctx: StepContext) -> None:
        seen.append(ctx.step)

    steps = [Step("ok", _noop), Step("boom", boom, refs("ok.*")), Step("later", _noop, refs("boom.*")),
             Step("report", report, refs("ok.*"), runs_after_failure=True)]
    with pytest.raises(ValueError, match="step failed"):
        PipelineRunner(loaded, workdir=tmp_path, steps=steps).run()
    assert seen == ["report"]


# -- the in-memory registry: drift, gate and register really run ---------------------------------------


def test_in_memory_registry_registers_and_gates_against_it(tmp_path: Path) -> None:
    make_frame(300).to_csv(tmp_path / "d.csv", index=False)
    path = write_pipeline(tmp_path, SMALL + "registry: {promote: production}\n"
                                            "gate: {champion: {min_delta: -1.0}}\n")
    tracker = InMemoryTracker()  # one tracker: run ids are unique across the two runs
    registry = InMemoryRegistry(tracker)
    assert isinstance(registry, ModelRegistry)
    first = PipelineRunner(load_config(path), workdir=tmp_path, tracker=tracker, registry=registry).run()
    assert first.status == "finished"
    assert [v.version for v in registry.search_versions("small")] == ["1"]
    assert registry.version_by_alias("small", "production") == "1"
    reg1 = json.loads((first.run_dir / "steps" / "register" / "registration.json").read_text())
    assert reg1["registered"] is True and reg1["version"] == "1"
    gate1 = json.loads((first.run_dir / "steps" / "gate" / "gate_report.json").read_text())
    assert gate1["champion"] is None  # nothing to beat yet

    second = PipelineRunner(load_config(path), workdir=tmp_path, tracker=tracker, registry=registry).run()
    steps_dir = second.run_dir / "steps"
    gate_params = json.loads((steps_dir / "gate" / "_step_result.json").read_text())["params"]
    assert gate_params["gate_champion_version"] == "1" and gate_params["gate_champion_alias"] == "production"
    gate2 = json.loads((steps_dir / "gate" / "gate_report.json").read_text())
    assert gate2["champion"]["champion_version"] == "1" and gate2["champion"]["passed"] is True
    drift_params = json.loads((steps_dir / "drift" / "_step_result.json").read_text())["params"]
    assert drift_params["drift_reference"] == "small version 1 (production)"
    assert (second.run_dir / "drift_report.json").is_file()
    assert registry.version_by_alias("small", "production") == "2"
    assert registry.version_by_alias("small", "previous-production") == "1"
    assert [(m.alias, m.from_version, m.to_version) for m in registry.history("small")] == [
        ("production", None, "1"), ("previous-production", None, "1"), ("production", "1", "2")]
    v2 = registry.search_versions("small")[1]
    assert v2.run_id == second.run_id and v2.tags["gate_verdict"] == gate2["verdict"]
    assert "version 2" in registry.description("small", "2")  # the model card, with its version
    assert v2.tags["config_hash"] == tracker.runs[second.run_id].tags["config_hash"]  # lineage from the tracker
