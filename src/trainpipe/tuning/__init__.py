"""Hyperparameter tuning with Optuna: search space from YAML, samplers, pruners, budgets, shared storages.

Optuna is imported inside functions only, so importing this package stays cheap.
"""

from trainpipe.tuning._budget import Budget, Meter, Usage, infer_direction, objective_metric, trial_cost
from trainpipe.tuning._objective import Fold, PruningReporter, RoundCounter, TrialFailed, fit_and_score
from trainpipe.tuning._run import STUDY_ENV, settings_for, study_name_for, tune_folds
from trainpipe.tuning._selection import FoldSource, SelectionPlan, auto_plan, choose_best
from trainpipe.tuning._space import check_space, default_space, grid_of, resolve_space, split_params, suggest
from trainpipe.tuning._storage import StorageSpec, open_storage, parse_storage
from trainpipe.tuning._study import StudyRun, StudySettings, make_pruner, make_sampler, open_study, run_study
from trainpipe.tuning._tracking import log_trial, metrics_of, summarize

__all__ = [
    "STUDY_ENV",
    "Budget",
    "Fold",
    "FoldSource",
    "Meter",
    "PruningReporter",
    "RoundCounter",
    "SelectionPlan",
    "StorageSpec",
    "StudyRun",
    "StudySettings",
    "TrialFailed",
    "Usage",
    "auto_plan",
    "check_space",
    "choose_best",
    "default_space",
    "fit_and_score",
    "grid_of",
    "infer_direction",
    "log_trial",
    "make_pruner",
    "make_sampler",
    "metrics_of",
    "objective_metric",
    "open_storage",
    "open_study",
    "parse_storage",
    "resolve_space",
    "run_study",
    "settings_for",
    "split_params",
    "study_name_for",
    "suggest",
    "summarize",
    "trial_cost",
    "tune_folds",
]
