"""Pins the public names of each package; a change here is a change of the API."""

from __future__ import annotations

import importlib

import pytest

EXPECTED = {
    "trainpipe": {"ConfigError", "DataError", "DataValidationError", "GateRefused", "Hooks", "MissingExtraError",
                  "RecordingHooks", "StorageFull", "StoreError", "TrackingUnavailable", "TrainingDiverged",
                  "TrainingInterrupted", "TrainpipeError", "TuningFailed", "__version__",
                  "HookList", "RunResult", "load_config", "run"},
    "trainpipe.config": {"PROFILE_ENV", "ColumnCheck", "CostConfig", "DataConfig", "EvaluationConfig",
                         "FeaturesConfig", "GateConfig", "LoadedConfig", "ModelConfig", "OrchestrationConfig",
                         "PipelineConfig",
                         "RegistryConfig", "SplitConfig", "TrackingConfig", "TrainingConfig", "TuningConfig",
                         "ValidationConfig", "apply_override", "config_from_dict", "config_hash", "deep_merge",
                         "is_secret_name", "load_config", "redact", "redact_uri"},
    "trainpipe.data": {"CheckResult", "DataSource", "TaskInfo", "ValidationReport", "fingerprint_file",
                       "fingerprint_frame", "fingerprint_source", "infer_task", "read_source", "resolve_source",
                       "split_indices", "validate_frame"},
    "trainpipe.features": {"FeatureSpec", "build_preprocessor", "feature_names", "infer_feature_spec",
                           "prepare_frame"},
    "trainpipe.models": {"BUILTIN_TYPES", "FitReport", "ModelAdapter", "ModelFamily", "ModelSpec", "TaskRequirement",
                         "TrainedModel", "adapter_class", "check_model_config", "configure_checkpoints",
                         "create_adapter", "families", "family_for", "family_of", "register_family"},
    "trainpipe.testing": {"check_family"},
    "trainpipe.models.torch": {"CheckpointDir", "DataSource", "DistInfo", "Engine", "EngineResult", "InMemory",
                               "MLPSpec", "Objective", "ParquetChunks", "TabularMLP", "TensorData",
                               "dist_info_from_env", "loss_curve_png", "objective_for", "seed_everything",
                               "Batch", "Callback", "EarlyStopping", "LoopState", "MetricReporter",
                               "SupervisedModule", "TrainpipeModule"},
    "trainpipe.tasks": {"BinaryTask", "ClassificationTask", "MulticlassTask", "Prediction", "RankingTask",
                        "RegressionTask", "Task",
                        "TaskInfo", "register_task", "registered_tasks", "task_for"},
    "trainpipe.evaluation": {"DEFAULTS", "METRICS", "EvaluationResult", "Metric", "check_metric_names",
                             "compute_metrics", "evaluate_model", "measure_latency", "metrics_for"},
    "trainpipe.tracking": {"InMemoryTracker", "MemoryRun", "MlflowTracker", "Tracker", "default_tracking_uri",
                           "git_state", "library_versions", "lineage_tags", "resolve_tracking_uri"},
    "trainpipe.tuning": {"Budget", "Fold", "Meter", "PruningReporter", "RoundCounter", "STUDY_ENV", "StorageSpec",
                         "StudyRun", "StudySettings", "TrialFailed", "Usage", "check_space", "default_space",
                         "fit_and_score", "grid_of", "infer_direction", "log_trial", "make_pruner", "make_sampler",
                         "metrics_of", "objective_metric", "open_storage", "open_study", "parse_storage",
                         "resolve_space", "run_study", "settings_for", "split_params", "study_name_for", "suggest",
                         "summarize", "trial_cost", "tune_folds", "FoldSource", "SelectionPlan", "auto_plan",
                         "choose_best"},
    "trainpipe.registry": {"PREVIOUS", "PRODUCTION", "STAGING", "AliasMove", "CardInputs", "check_input",
                           "client_for", "download_version", "history", "move_alias", "predict_frame", "promote",
                           "register_version", "render_card", "rollback", "version_by_alias",
                           "InMemoryRegistry", "MlflowRegistry", "ModelRegistry", "VersionInfo"},
    "trainpipe.report": {"REPORT_FILE", "RunRecord", "champion_sentence", "find_run_dir", "load_run", "render_run",
                         "write_run_report", "write_run_report_safely"},
    "trainpipe.pipeline": {"CORE_STEPS", "PipelineResult", "PipelineRunner", "Step", "StepCache", "StepContext",
                           "StepRecord", "explain_change", "load_run_config", "preflight", "state_dir",
                           "step_names", "steps_for", "StepGraph"},
    "trainpipe.export": {"MODES", "ClosedRun", "OpenedRun", "build_plan", "check_orchestration", "check_schedule",
                         "close_run", "dag_file_name", "dag_id_of", "engine_python", "open_run", "overrides_from_env",
                         "render_dag", "run_dir_name", "trigger_of", "write_dag"},
}


@pytest.mark.parametrize("module", sorted(EXPECTED))
def test_exported_members(module: str) -> None:
    mod = importlib.import_module(module)
    assert set(mod.__all__) == EXPECTED[module]
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name} is in __all__ but missing"


def test_exceptions_map_to_documented_exit_codes() -> None:
    import trainpipe as tp

    assert tp.ConfigError.exit_code == 2 and tp.DataError.exit_code == 2
    assert tp.DataValidationError.exit_code == 3 and tp.GateRefused.exit_code == 4
    assert tp.StoreError.exit_code == 2 and tp.TuningFailed.exit_code == 2
    assert tp.TrackingUnavailable.exit_code == 2 and tp.StorageFull.exit_code == 2
    assert tp.TrainingInterrupted(15, "x").exit_code == 143 and tp.TrainingInterrupted(2, "x").exit_code == 130
    assert all(issubclass(e, tp.TrainpipeError) for e in (tp.ConfigError, tp.DataError, tp.MissingExtraError,
                                                          tp.DataValidationError, tp.GateRefused))


def test_run_and_load_config_are_the_library_api() -> None:
    import inspect

    import trainpipe as tp
    from trainpipe.config import load_config

    assert tp.load_config is load_config
    params = inspect.signature(tp.run).parameters
    assert list(params)[:3] == ["path_or_config", "overrides", "profile"]
    assert params["trigger"].default == "manual" and params["trigger"].kind is inspect.Parameter.KEYWORD_ONLY


def test_overrides_as_a_mapping_or_a_list() -> None:
    from trainpipe._api import override_list

    assert override_list({"model.params.max_depth": 4, "data.target": "y", "evaluation.slices": ["a"],
                          "evaluation.plots": False}) == [
        "model.params.max_depth=4", "data.target=y", 'evaluation.slices=["a"]', "evaluation.plots=false"]
    assert override_list(["a.b=1"]) == ["a.b=1"] and override_list(None) == []
    import trainpipe as tp

    with pytest.raises(tp.ConfigError, match=r"overrides: expected a mapping or a list of KEY=VALUE strings"):
        override_list("a.b=1")


def test_the_registry_implementations_follow_the_protocol() -> None:
    from trainpipe.registry import InMemoryRegistry, MlflowRegistry, ModelRegistry

    assert isinstance(InMemoryRegistry(), ModelRegistry)
    assert isinstance(MlflowRegistry(object(), "sqlite:///x.db"), ModelRegistry)
