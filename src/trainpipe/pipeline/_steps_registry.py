"""Steps that read or write the model registry: drift (before training), gate and register (after evaluate).

They never come from the step cache (flag ``always_run``): their result depends on the registry (which version
is in production), not only on their inputs. They reach the registry through ``ctx.registry``, a
:class:`~trainpipe.registry.ModelRegistry` (the MLflow one of the tracking store, or the in-memory fake); the
runner refuses to start them without one (flag ``uses_registry``), so they are never skipped silently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import ConfigError, DataValidationError, GateRefused, TrackingUnavailable
from trainpipe.config import redact, redact_uri
from trainpipe.config._secrets import scrub
from trainpipe.pipeline._artifacts import read_json as _read_json
from trainpipe.pipeline._handoff import read_frame
from trainpipe.pipeline._step import Step, StepContext, refs

if TYPE_CHECKING:
    from trainpipe.models import TrainedModel
    from trainpipe.registry import ModelRegistry

PROFILE_FILE = "data_profile.json"
CARD_FILE = "model_card.md"
PYFUNC_DIR = "registered_model"


def _write_both(ctx: StepContext, name: str, text: str) -> None:
    """Into the step's output and the top of the run directory (kept even when the step fails)."""
    for folder in (ctx.out_dir, ctx.run_dir):
        (folder / name).write_text(text)


def model_name(ctx: StepContext) -> str:
    return ctx.config.registry.model_name or ctx.config.name


def registry(ctx: StepContext) -> ModelRegistry | None:
    """The run's model registry: ``ctx.registry``, else the MLflow registry of the step's tracker (``runs sync``
    builds a context with a tracker only), else None."""
    if ctx.registry is not None:
        return ctx.registry
    from trainpipe.registry._mlflow_registry import MlflowRegistry

    return MlflowRegistry.for_tracker(ctx.tracker)


def _need_registry(ctx: StepContext) -> ModelRegistry:
    reg = registry(ctx)
    if reg is None:
        raise ConfigError(f"step {ctx.step!r} needs the model registry, and this run has none. Run it with an MLflow "
                          "tracking store (trainpipe run, or trainpipe.run()), or pass registry= (e.g. "
                          "trainpipe.registry.InMemoryRegistry()) to PipelineRunner.")
    return reg


def _champion_dir(ctx: StepContext) -> tuple[str, Path] | None:
    """The production version and its downloaded folder (drift's reference), or None."""
    from trainpipe.registry import PRODUCTION

    found = _versions_by_alias(ctx, (PRODUCTION,))
    if not found:
        return None
    return found[PRODUCTION], _download(ctx, found[PRODUCTION])


def _versions_by_alias(ctx: StepContext, aliases: tuple[str, ...]) -> dict[str, str]:
    """``{alias: version}`` of those ``aliases`` that are set (none without a tracking store)."""
    reg = _need_registry(ctx)
    out = {}
    for alias in aliases:
        version = reg.version_by_alias(model_name(ctx), alias)
        if version is not None:
            out[alias] = version
    return out


def _download(ctx: StepContext, version: str) -> Path:
    cache = (ctx.state_dir or ctx.run_dir) / "registry_cache"
    return _need_registry(ctx).download(model_name(ctx), version, cache)


def _pick_champion(ctx: StepContext) -> tuple[str, str, Path, str, str | None] | None:
    """The champion to beat: (alias, version, folder, note, production version). The alias of
    ``gate.champion.against``, else the other one (no production yet: the staging version), else None."""
    from trainpipe.registry import PRODUCTION, STAGING

    against = ctx.config.gate.champion.against
    other = STAGING if against == PRODUCTION else PRODUCTION
    found = _versions_by_alias(ctx, (PRODUCTION, STAGING))
    alias = against if against in found else other if other in found else None
    if alias is None:
        return None
    note = "" if alias == against else (
        f"No {against} version of {model_name(ctx)!r}: compared with the {alias} version {found[alias]} instead "
        f"(gate.champion.against: {against} falls back to {alias}).")
    return alias, found[alias], _download(ctx, found[alias]), note, found.get(PRODUCTION)


REPORT_ONLY_PSI_NOTE = 0.25  # the usual "significant shift" reading of PSI


def drift(ctx: StepContext) -> None:
    from trainpipe.data import TaskInfo
    from trainpipe.data._profile import build_profile, compare_to_profile

    cfg = ctx.config
    task = TaskInfo.from_dict(_read_json(ctx.artifact("task.json")))
    train = read_frame(ctx.artifact("train.parquet"))
    profile = build_profile(train, cfg.data.target, task.task)
    (ctx.out_dir / PROFILE_FILE).write_text(json.dumps(profile, indent=1, default=str))
    settings = cfg.validation.drift
    if settings.reference == "none":
        ctx.params["drift_reference"] = "none"
        return
    try:
        champion = _champion_dir(ctx)
    except TrackingUnavailable:  # a lost server is exit 2 with where the run's results are, not a data error
        raise
    except Exception as exc:
        from trainpipe._exceptions import DataError

        raise DataError(f"drift: cannot read the production version of {model_name(ctx)!r} to compare with: "
                        f"{scrub(str(exc))[:500]}") from exc
    if champion is None:
        why = f"no production version of {model_name(ctx)!r}"
        ctx.hooks.on_message(f"drift: nothing to compare with ({why}); the training profile is stored with the model")
        ctx.params["drift_reference"] = f"none ({why})"
        return
    from trainpipe.registry._registry import pyfunc_artifact

    version, folder = champion
    ref_file = pyfunc_artifact(folder, "data_profile")
    if ref_file is None:
        ctx.params["drift_reference"] = f"version {version} has no stored profile"
        return
    reference = f"{model_name(ctx)} version {version} (production)"
    report = compare_to_profile(train, _read_json(ref_file), reference=reference, max_psi=settings.max_psi)
    _write_both(ctx, "drift_report.json", json.dumps(report.to_dict(), indent=2))
    _write_both(ctx, "drift_report.md", report.to_markdown())
    ctx.params["drift_reference"] = reference
    worst = report.worst
    if worst is not None:
        ctx.metrics["drift_max_psi"] = float(worst[1])
    if report.label_psi is not None:
        ctx.metrics["drift_label_psi"] = float(report.label_psi)
    ctx.metrics["drift_failed_features"] = float(len(report.failures))
    if not report.passed:
        raise DataValidationError(report.summary(), report)
    if settings.max_psi is None and worst is not None and worst[1] >= REPORT_ONLY_PSI_NOTE:
        ctx.hooks.on_message(f"drift (report only, validation.drift.max_psi is not set): {worst[0]!r} has PSI "
                             f"{worst[1]:.2f} against {reference}, a large shift (PSI >= 0.25 is commonly read as "
                             "significant); see drift_report.md")


def _scores(model: TrainedModel, test: Any, target: str) -> tuple[Any, Any, Any]:
    """Encoded labels, predictions and probabilities of ``model`` on ``test``, as the evaluation scores them."""
    y, prediction = model.task.kind.score(model, test, target)
    return y, prediction.pred, prediction.proba


def gate(ctx: StepContext) -> None:
    from trainpipe.evaluation._gate import GateReport, check_thresholds, compare_to_champion, comparison_line
    from trainpipe.models import TrainedModel
    from trainpipe.pipeline._preflight import check_task_fit

    cfg = ctx.config
    evaluated = _read_json(ctx.artifact("metrics.json"))
    values = {**{k: v for k, v in evaluated["metrics"].items() if v is not None}, **evaluated.get("latency", {})}
    model = TrainedModel.load(ctx.artifact("model"))
    check_task_fit(cfg, model.task.task)  # a gate edited after a cached validate step: exit 2, not a refusal
    report = GateReport(thresholds=check_thresholds(cfg.gate.thresholds, values, computed=evaluated["metrics"]))
    task = model.task.kind
    metric = cfg.gate.champion.metric or task.headline_metric(cfg.evaluation.metrics)
    if not task.metric_applies(metric):
        raise ConfigError(f"gate.champion.metric: {metric!r} does not apply to this {task.name} task; "
                          f"use one of {list(task.default_metrics)}.")
    if cfg.gate.slices:
        _gate_slices(ctx, model, report)
    try:
        champion = _pick_champion(ctx)
    except TrackingUnavailable:  # no verdict without the registry: exit 2 (runs sync), neither pass nor refuse
        raise
    except Exception as exc:  # a registry we cannot read must not pass silently: say so, and refuse
        raise GateRefused(f"gate: cannot read the {cfg.gate.champion.against} champion of {model_name(ctx)!r}: "
                          f"{scrub(str(exc))[:500]}") from exc
    if champion is None:
        report.champion_note = f"No production or staging version of {model_name(ctx)!r} yet: nothing to beat."
    else:
        alias, version, folder, fallback, production = champion
        test = read_frame(ctx.artifact("test.parquet"))
        from trainpipe.registry._registry import pyfunc_artifact

        ctx.params.update({"gate_champion_alias": alias, "gate_champion_version": version})
        if production is not None:  # what register checks production against (a concurrent promotion)
            ctx.params["gate_production_version"] = production
        try:
            old_dir = pyfunc_artifact(folder, "model_dir")
            if old_dir is None:
                raise FileNotFoundError(f"no model_dir artifact in {folder}")
            old = TrainedModel.load(old_dir)
            theirs = _scores(old, test, cfg.data.target)
        except Exception as exc:  # e.g. today's data lacks a column the champion needs
            report.champion_note = (f"The {alias} version {version} could not score this run's test split "
                                    f"({type(exc).__name__}: {scrub(str(exc))[:300]}).")
        else:
            y, pred, proba = _scores(model, test, cfg.data.target)
            mismatch = task.champion_mismatch(old.task, model.task)
            if mismatch is not None:
                report.champion_note = f"The {alias} version {version} {mismatch}."
            else:
                try:
                    report.champion = compare_to_champion(
                        metric, y, (pred, proba), (theirs[1], theirs[2]), len(model.task.classes), version=version,
                        confidence=cfg.gate.champion.confidence, min_delta=cfg.gate.champion.min_delta,
                        seed=cfg.data.split.seed, alias=alias, note=fallback, task=task)
                except ValueError as exc:  # e.g. one class only in the test split
                    report.champion_note = f"{metric} could not be compared on this test split: {exc}."
        if report.champion is None:  # a champion exists but was not beaten: refuse rather than replace it blindly
            report.champion_note += (f" A {alias} version exists, so the challenger must be compared with it: "
                                     f"refused. Fix the data or the champion, or move the {alias} alias "
                                     f"(trainpipe models promote {model_name(ctx)} VERSION --to {alias}).")
            report.champion_unresolved = True
    report.passed = (all(c.passed for c in report.thresholds) and not report.champion_unresolved
                     and (report.champion is None or report.champion.passed)
                     and all(c.passed for c in report.slices))
    _write_both(ctx, "gate_report.json", json.dumps(report.to_dict(), indent=2))
    _write_both(ctx, "gate_report.md", report.to_markdown())
    ctx.params["gate_verdict"] = report.verdict
    ctx.hooks.on_message(comparison_line(report, model_name(ctx)))
    if report.champion is not None:
        ctx.metrics.update({"gate_delta": report.champion.delta, "gate_ci_low": report.champion.ci_low,
                            "gate_ci_high": report.champion.ci_high})
    if not report.passed:
        raise GateRefused("gate refused the model; nothing was registered:\n  - " + "\n  - ".join(report.reasons())
                          + f"\nReport: {ctx.run_dir / 'gate_report.md'}")


def _gate_slices(ctx: StepContext, model: TrainedModel, report: Any) -> None:
    """The fairness gate (``gate.slices``) on the test split: its checks and slice table go into ``report``."""
    from trainpipe.evaluation._gate import check_slices

    cfg = ctx.config
    test = read_frame(ctx.artifact("test.parquet"))
    missing = [c for c in cfg.gate.slices if c not in test.columns or c == cfg.data.target]
    if missing:
        raise ConfigError(f"gate.slices: {', '.join(map(repr, missing))} is not a feature column of the test split "
                          f"(columns: {', '.join(c for c in test.columns if c != cfg.data.target)}). Name a column of "
                          "the data (the target cannot be sliced on), or remove it from gate.slices.")
    y, pred, proba = _scores(model, test, cfg.data.target)
    report.slices, report.slice_table = check_slices(cfg.gate.slices, test, y, pred, proba, model.task.kind.name,
                                                     model.task.n_classes)
    from trainpipe.tracking._names import metric_key

    for c in report.slices:
        if c.value is not None:
            ctx.metrics[metric_key(c.column, f"{c.kind}.{c.metric}", prefix="gate.slice.")] = float(c.value)


def _lineage(reg: ModelRegistry, run_id: str) -> dict[str, str]:
    tags = reg.run_tags(run_id)
    keep = ("config_hash", "git.commit", "git.dirty", "trainpipe.version", "python", "host", "user", "trigger",
            "trainpipe.profile")
    out = {k: tags[k] for k in keep if k in tags}
    out.update({k: v for k, v in tags.items() if k.startswith("lib.")})
    out["run_id"] = run_id
    return out


def _gated_against(ctx: StepContext) -> str | None:
    """The production version when the gate step ran (None: there was none); the gate may have compared
    with the staging version (``gate.champion.against``), but register checks production against this."""
    stored = ctx.artifact("gate_report.json").parent / "_step_result.json"  # the gate step's recorded params
    if not stored.exists():
        return None
    return _read_json(stored).get("params", {}).get("gate_production_version")


def register(ctx: StepContext) -> None:
    """Register now; with the tracking server lost (before or during it), record the registration the gate
    allowed in the run's journal: ``trainpipe runs sync RUN_ID`` registers it when the server is back."""
    if getattr(ctx.tracker, "offline", None) is None:
        try:
            _register_now(ctx)
            return
        except TrackingUnavailable:
            pass
    name = model_name(ctx)
    (ctx.out_dir / "registration.json").write_text(json.dumps(
        {"registered": False, "pending": True, "model_name": name,
         "reason": "tracking server unreachable; `trainpipe runs sync` registers it"}))
    ctx.tracker.record_intent("register", parent=ctx.parent_run_id, child=ctx.run_id)  # type: ignore[union-attr]
    ctx.hooks.on_message(f"register: tracking server unreachable: registering {name} waits in the run's journal "
                         "for `trainpipe runs sync`")


def _register_now(ctx: StepContext) -> None:
    from trainpipe.models import TrainedModel
    from trainpipe.registry import CardInputs, render_card
    from trainpipe.registry._package import save_pyfunc

    cfg = ctx.config
    reg = _need_registry(ctx)
    name = model_name(ctx)
    run_id = ctx.parent_run_id or ctx.run_dir.name  # no tracker (a registry alone): the local run id
    model_dir = ctx.artifact("model")
    model = TrainedModel.load(model_dir)
    ingest = _read_json(ctx.artifact("ingest.json"))
    split = _read_json(ctx.artifact("split.json"))
    metrics = _read_json(ctx.artifact("metrics.json"))
    gate_report = _read_json(ctx.artifact("gate_report.json"))
    drift_file = ctx.artifact("drift_report.json")
    lineage = _lineage(reg, run_id)
    secrets = ctx.loaded.secret_values
    card = CardInputs(
        name=name, description=redact(cfg.description, secrets=secrets), model_type=model.spec.model_type,
        task=model.task.to_dict(),
        data={"source": redact_uri(redact(cfg.data.source, secrets=secrets)), "fingerprint": ingest["fingerprint"],
              "rows": ingest["rows"], "split": split.get("sizes")},
        profile=ctx.loaded.profile or "", metrics=metrics, gate=gate_report,
        params=redact(dict(model.spec.params), secrets=secrets),
        lineage=lineage, features={"columns": list(model.spec.features.columns)},
        drift=_read_json(drift_file) if drift_file.exists() else None)
    (ctx.out_dir / CARD_FILE).write_text(render_card(card))
    test = read_frame(ctx.artifact("test.parquet"))
    schema = save_pyfunc(model, model_dir, ctx.out_dir / PYFUNC_DIR, example_rows=test,
                         extra_artifacts={"model_card": ctx.out_dir / CARD_FILE,
                                          "data_profile": ctx.artifact(PROFILE_FILE)},
                         checks=cfg.validation.columns, label=cfg.data.target)  # applied by `predict`
    from trainpipe.pipeline._cache import fingerprint_of, manifest_of

    key = fingerprint_of(manifest_of(model_dir.parent))  # the train output's fingerprint: here and from `runs sync`
    source, model_id = reg.log_model(run_id, ctx.out_dir / PYFUNC_DIR, name=name, key=key,
                                     model_type=model.spec.model_type, tags={"trainpipe.pipeline": cfg.name})
    alias = None if cfg.registry.promote == "none" else cfg.registry.promote
    # MLflow refuses '@' in tag keys (ranking's ndcg@10): test_ndcg_at_10
    quality = {f"test_{k}".replace("@", "_at_"): f"{v:.6g}" for k, v in metrics["metrics"].items() if v is not None}
    tags = {"run_id": run_id, "data_fingerprint": ingest["fingerprint"],
            "config_hash": lineage.get("config_hash", ""), "git_commit": lineage.get("git.commit", ""),
            "gate_verdict": gate_report["verdict"], "model_type": model.spec.model_type, "task": model.task.task,
            "trainpipe_version": lineage.get("trainpipe.version", ""), **quality}
    mv = reg.create_version(name=name, run_id=run_id, source=source, model_id=model_id, alias=alias, tags=tags,
                            description=render_card(CardInputs(**{**card.__dict__, "version": None})),
                            reason=f"pipeline run {run_id} (gate {gate_report['verdict']})",
                            expected_production=_gated_against(ctx))
    version = mv.version
    final_card = render_card(CardInputs(**{**card.__dict__, "version": version}))
    (ctx.out_dir / CARD_FILE).write_text(final_card)
    reg.set_description(name, version, final_card[:4900])
    info = {"registered": True, "model_name": name, "version": version, "alias": alias,
            "uri": f"models:/{name}/{version}", "source": mv.source, "signature": schema}
    (ctx.out_dir / "registration.json").write_text(json.dumps(info, indent=2))
    ctx.params.update({"registered_model": name, "registered_version": version, "registered_alias": alias or ""})
    ctx.metrics["registered_version"] = float(version)
    ctx.hooks.on_message(f"registered {name} version {version}" + (f" as @{alias}" if alias else ""))


_SK = ("scikit-learn", "pandas", "numpy")
DRIFT_STEP = Step("drift", drift, refs("split.train.parquet", "validate.task.json"),
                  ("data.target", "validation.drift", "registry.model_name"),
                  ("pandas",), description="profile the training data; PSI against the production model's profile",
                  run_files=(), outputs=(PROFILE_FILE, "drift_report.json", "drift_report.md"),
                  always_run=True, uses_registry=True, rank0_only=True, artifact_dir="data")
GATE_STEP = Step("gate", gate, refs("train.model", "evaluate.metrics.json", "split.test.parquet"),
                 ("gate", "registry.model_name", "data.target"),
                 (*_SK, "mlflow"),
                 description="thresholds; beat the champion (@production, else @staging; paired bootstrap)",
                 outputs=("gate_report.json", "gate_report.md"), always_run=True, uses_registry=True,
                 rank0_only=True, slice_tables=(("gate_report.json", "slice_table"),))
REGISTER_STEP = Step("register", register,
                     refs("train.model", "evaluate.metrics.json", "gate.gate_report.json", f"drift.{PROFILE_FILE}",
                          "drift.drift_report.json", "split.test.parquet", "split.split.json", "ingest.ingest.json"),
                     ("registry", "description", "name"), (*_SK, "mlflow"),
                     description="log the pyfunc model, register a version, set the alias, attach the card",
                     outputs=("registration.json", CARD_FILE, PYFUNC_DIR), always_run=True, uses_registry=True,
                     rank0_only=True, uninterruptible=True, artifact_dir="registry")
