"""The pipeline file as frozen pydantic models.

Section and key names follow ``pipeline.reference.yaml``; only ``name``, ``data.source``,
``data.target`` and ``model.type`` are required. Unknown keys are rejected (``extra="forbid"``).
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trainpipe.config._orchestration import OrchestrationConfig

Task = Literal["auto", "binary", "multiclass", "regression", "ranking"]
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
# An MLflow experiment or registered-model name: it becomes a folder (the experiment's artifacts), a part of
# a models:/NAME@alias URI and a quoted value in MLflow search filters. No path parts, no quotes.
_MLFLOW_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9 _.\-]{0,98}[A-Za-z0-9_.\-])?$")


def _mlflow_name(value: str | None, what: str) -> str | None:
    if value is None or _MLFLOW_NAME_RE.match(value):
        return value
    why = ""
    if len(value) > 100:
        why = f"it has {len(value)} characters. "
    elif what == "experiment" and ("/" in value or "\\" in value or value.startswith(".")):
        why = ("a path part ('/', '\\', a leading '.') would take the experiment's artifacts out of the project's "
               ".trainpipe folder. ")
    elif what != "experiment" and ("/" in value or ":" in value):
        why = "MLflow refuses '/' and ':' in a registered model name (models:/NAME@alias splits on them). "
    raise ValueError(
        f"{why}{what.capitalize()} names start with a letter or digit and use only letters, digits, spaces, '_', "
        f"'-' or '.' (at most 100 characters; no '/', quotes or other punctuation), got {value!r}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


SEED = Field(42, ge=0, le=2**32 - 1)  # what numpy and scikit-learn take as a seed


class SplitConfig(_Section):
    method: Literal["random", "stratified", "time", "group"] = "stratified"
    # task: ranking only: per-user holdout (None: temporal_per_user with data.timestamp, else per_user_random)
    type: Literal["temporal_per_user", "leave_last_out", "per_user_random"] | None = None
    test_size: float = Field(0.2, gt=0.0, lt=1.0)
    val_size: float = Field(0.1, ge=0.0, lt=1.0)
    time_column: str | None = None
    group_column: str | None = None
    seed: int = SEED

    @model_validator(mode="after")
    def _check(self) -> SplitConfig:
        if self.test_size + self.val_size >= 0.9:
            raise ValueError(
                f"test_size + val_size must leave at least 10% for training, "
                f"got {self.test_size} + {self.val_size} = {self.test_size + self.val_size:g}. "
                "Lower data.split.test_size or data.split.val_size"
            )
        if self.method == "time" and not self.time_column:
            raise ValueError("method 'time' needs data.split.time_column: set it to the column that orders "
                             "the rows in time (the latest rows go to test)")
        if self.method == "group" and not self.group_column:
            raise ValueError("method 'group' needs data.split.group_column: set it to the column whose "
                             "values must not span two splits (a customer or patient id)")
        return self


Scalar = str | int | float | bool


class DataConfig(_Section):
    source: str = Field(min_length=1)
    target: str = ""  # required by every task but ranking (checked in PipelineConfig)
    positive_label: Scalar | None = None
    drop_columns: list[str] = Field(default_factory=list)
    na_values: list[str] = Field(default_factory=list)  # cell texts read as missing (CSV reader's na_values)
    encoding: str = Field("utf-8", min_length=1)  # text encoding of a CSV/TSV source, e.g. latin-1
    # a given test set (same columns), used as is instead of carving one out of data.source
    test_source: str | None = Field(None, min_length=1)
    deduplicate: bool = False  # drop rows equal on the target and every feature column before the split
    split: SplitConfig = Field(default_factory=SplitConfig)
    # task: ranking: one row per user-item interaction
    user: str | None = None  # the user id column
    item: str | None = None  # the item id column
    label: str | None = None  # explicit feedback (e.g. a rating); None: every row is a positive interaction
    implicit_threshold: float | None = None  # with label: rows with label >= this are positives
    timestamp: str | None = None  # when the interaction happened: temporal splits
    min_user_interactions: int = Field(5, ge=1)  # users with fewer positives: a note; they are never held out


class TextOptions(_Section):
    """The TF-IDF step of each ``features.text`` column (families that read raw text ignore it)."""

    analyzer: Literal["word+char", "word", "char"] = "word+char"  # word 1-2-grams and/or char 3-5-grams
    max_features: int | None = Field(20000, ge=1)  # per analyzer, most frequent terms kept (None: all)
    min_df: int = Field(2, ge=1)  # a term must occur in at least this many training texts
    sublinear_tf: bool = True


class FeaturesConfig(_Section):
    numeric: list[str] | None = None
    categorical: list[str] | None = None
    text: list[str] = Field(default_factory=list)
    text_options: TextOptions = Field(default_factory=TextOptions)
    numeric_impute: Literal["median", "mean", "most_frequent", "zero"] = "median"
    scale: Literal["standard", "none"] = "standard"
    categorical_encoding: Literal["onehot", "ordinal"] = "onehot"
    max_categories: int = Field(50, ge=2)
    user: list[str] = Field(default_factory=list)  # ranking: user side features (constant per user)
    item: list[str] = Field(default_factory=list)  # ranking: item side features ("A|B" strings are tag lists)


class ColumnCheck(_Section):
    dtype: Literal["int", "float", "numeric", "str", "bool", "datetime"] | None = None
    min: float | None = None
    max: float | None = None
    allowed: list[Scalar] | None = None
    nullable: bool = True
    required: bool = True
    unique: bool = False

    @model_validator(mode="after")
    def _check(self) -> ColumnCheck:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is greater than max ({self.max:g}); swap them")
        if self.allowed is not None and not self.allowed:
            raise ValueError("allowed must list at least one value, or be left out")
        return self


class DriftConfig(_Section):
    reference: Literal["production", "none"] = "production"
    max_psi: float | None = Field(None, gt=0.0)


class ValidationConfig(_Section):
    """Checks that refuse data (exit 3). The thresholds are opt-in (``None`` = off): by default only what is
    wrong is refused (too few rows to split, missing or single-class labels, ...); what is merely unusual
    (duplicate rows, sparse columns, a rare class) is a note in the validation report."""

    min_rows: int | None = Field(None, ge=1)  # None: enough rows for data.split to cut train/val/test
    max_missing_fraction: float | None = Field(None, ge=0.0, le=1.0)
    max_duplicate_fraction: float | None = Field(None, ge=0.0, le=1.0)
    min_class_fraction: float | None = Field(None, ge=0.0, lt=0.5)
    columns: dict[str, ColumnCheck] = Field(default_factory=dict)
    drift: DriftConfig = Field(default_factory=DriftConfig)


class ModelConfig(_Section):
    type: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("params")
    @classmethod
    def _finite(cls, params: dict[str, Any]) -> dict[str, Any]:
        """A NaN or infinite hyperparameter (``--set model.params.learning_rate=.nan``) trains garbage."""
        def bad(value: Any) -> bool:
            if isinstance(value, float):
                return not math.isfinite(value)
            if isinstance(value, dict):
                return any(bad(v) for v in value.values())
            if isinstance(value, list | tuple):
                return any(bad(v) for v in value)
            return False

        wrong = [k for k, v in params.items() if bad(v)]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: expected finite numbers, got NaN or infinity")
        return params


class TrainingConfig(_Section):
    seed: int = SEED
    early_stopping_rounds: int | None = Field(50, ge=1)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(512, ge=1)
    learning_rate: float = Field(0.001, gt=0.0)
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    scheduler: Literal["cosine", "step", "one_cycle", "plateau", "none"] = "cosine"
    early_stopping_patience: int = Field(3, ge=1)
    gradient_clip_norm: float | None = Field(1.0, gt=0.0)
    grad_accum_steps: int = Field(1, ge=1)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    checkpoint_every: int = Field(200, ge=1)


class SearchParam(_Section):
    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None
    when: dict[str, Scalar] | None = None  # sampled only when every named parameter took the given value

    @model_validator(mode="after")
    def _check(self) -> SearchParam:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("type 'categorical' needs a non-empty 'choices' list")
            if self.low is not None or self.high is not None or self.log or self.step is not None:
                raise ValueError("type 'categorical' takes 'choices' only, not low/high/log/step")
            return self
        if self.choices is not None:
            raise ValueError(f"type {self.type!r} takes low/high, not 'choices' (use type: categorical)")
        if self.low is None or self.high is None:
            raise ValueError(f"type {self.type!r} needs both 'low' and 'high'")
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) is greater than high ({self.high:g}); swap them")
        if self.type == "int" and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ValueError(f"type 'int' needs integer bounds, got low={self.low:g}, high={self.high:g}")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0, got low={self.low:g}")
        if self.step is not None and (self.step <= 0 or self.log):
            raise ValueError("step must be > 0 and cannot be combined with log: true")
        return self


class EnsembleConfig(_Section):
    """``tuning.ensemble``: Caruana's greedy selection, with replacement, on the trials' out-of-fold predictions."""

    size: int = Field(5, ge=2, le=50)  # selection rounds (a member picked twice weighs twice)
    method: Literal["greedy"] = "greedy"
    candidates: int = Field(10, ge=2, le=100)  # the best trials the members are picked from


class TuningConfig(_Section):
    n_trials: int = Field(30, ge=1)
    timeout: float | None = Field(None, gt=0)
    max_cost: float | None = Field(None, gt=0)
    metric: str | None = None
    direction: Literal["auto", "maximize", "minimize"] = "auto"
    sampler: Literal["tpe", "random", "grid", "cmaes"] = "tpe"
    pruner: Literal["auto", "median", "hyperband", "none"] = "auto"  # auto: hyperband for boosters and torch
    # how trials are scored: auto (CV or repeated holdout by data size and timeout), cv, repeated_holdout, holdout
    selection: Literal["auto", "cv", "repeated_holdout", "holdout"] = "auto"
    cv_folds: int | None = Field(None, ge=1)  # k of cv (default 5), repeats of repeated_holdout (default 3)
    # cv: the k-fold cut repeated with other shuffles (default 1; auto repeats 3 x on small tables with a budget)
    cv_repeats: int | None = Field(None, ge=1, le=20)
    storage: str | None = None
    space: dict[str, SearchParam] | None = None  # None: the model's default space; {} is refused (tuning)
    # several model families in one study (model.type: auto = the default list for the task); None: model.type
    families: list[str] | None = None
    # a weighted ensemble of the top trials instead of the best one; None: on with model.type auto (unless TF-IDF
    # settings are tuned), off otherwise; true: on with the defaults; false: off
    ensemble: EnsembleConfig | bool | None = None
    # the chosen trial's final model: refit on train + validation (scaled rounds), or the average of k fold
    # models of train + validation, each early-stopped on its held-out fold (benchmarks/tuning_quality.py)
    final_model: Literal["refit", "fold_average"] = "refit"

    @model_validator(mode="after")
    def _conditions(self) -> TuningConfig:
        if self.cv_folds is not None and self.selection == "holdout":
            raise ValueError("cv_folds: selection 'holdout' scores on the validation split, so cv_folds has no "
                             "use; remove it, or set selection: cv")
        if self.cv_repeats is not None and self.selection in ("holdout", "repeated_holdout"):
            raise ValueError(f"cv_repeats: repeats the k-fold cross-validation, but selection is "
                             f"'{self.selection}'; set selection: cv (or auto), or remove cv_repeats"
                             + (" (the repeats of repeated_holdout are cv_folds)"
                                if self.selection == "repeated_holdout" else ""))
        if self.cv_folds == 1 and self.selection != "repeated_holdout":
            raise ValueError("cv_folds: cross-validation needs at least 2 folds, got 1 (a single 80/20 split is "
                             "selection: repeated_holdout with cv_folds: 1)")
        if self.families is not None:
            if not self.families:
                raise ValueError("families: an empty list; list the model types to search, e.g. [lightgbm, "
                                 "xgboost], or remove it to tune model.type alone")
            twice = sorted({f for f in self.families if self.families.count(f) > 1})
            if twice:
                raise ValueError(f"families: {twice} listed more than once; list each model type once")
        space = self.space or {}
        for name, param in space.items():
            for other, value in (param.when or {}).items():
                choices = space[other].choices if other in space else None
                if other == name or choices is None:
                    raise ValueError(f"space.{name}.when: {other!r} must be another categorical parameter "
                                     f"of tuning.space")
                if value not in choices:
                    raise ValueError(f"space.{name}.when: {value!r} is not one of {other}'s choices {choices}")
        return self


class EvaluationConfig(_Section):
    metrics: list[str] | None = None
    slices: list[str] = Field(default_factory=list)
    k: list[int] | None = Field(None, min_length=1)  # ranking: cut-offs of recall@k, ndcg@k, ... (None: [10])
    latency: bool = True
    plots: bool = True


class ChampionConfig(_Section):
    metric: str | None = None
    min_delta: float = 0.0
    confidence: float = Field(0.95, gt=0.0, lt=1.0)
    # the alias holding the champion to beat; when it is unset, the other alias's version is compared instead
    against: Literal["production", "staging"] = "production"


class SliceGateConfig(_Section):
    """The fairness gate on one column's slices (levels in the test split): a floor per metric that every
    slice of at least ``min_rows`` rows must reach, and a ceiling on the gap between the best and worst one."""

    min: dict[str, float] = Field(default_factory=dict)
    max_gap: dict[str, float] = Field(default_factory=dict)
    min_rows: int = Field(30, ge=1)  # smaller slices are reported, not gated

    @model_validator(mode="after")
    def _check(self) -> SliceGateConfig:
        if not self.min and not self.max_gap:
            raise ValueError("give a floor (min: {roc_auc: 0.8}) or a gap ceiling (max_gap: {roc_auc: 0.05}), "
                             "or remove the column from gate.slices")
        bad = [f"max_gap.{k}: expected a number >= 0, got {v}" for k, v in self.max_gap.items() if v < 0]
        if bad:
            raise ValueError("; ".join(bad))
        return self


class GateConfig(_Section):
    thresholds: dict[str, str] = Field(default_factory=dict)
    champion: ChampionConfig = Field(default_factory=ChampionConfig)
    slices: dict[str, SliceGateConfig] = Field(default_factory=dict)

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [f"threshold for {metric!r} must look like '>= 0.8' or '<= 20', got {rule!r}"
               for metric, rule in value.items()
               if not re.fullmatch(r"\s*(>=|<=|>|<|==)\s*-?\d+(\.\d+)?([eE]-?\d+)?\s*", str(rule))]
        if bad:
            raise ValueError("; ".join(bad) + ". Write each rule as a quoted string: roc_auc: \">= 0.8\"")
        return value


class RegistryConfig(_Section):
    model_name: str | None = None
    promote: Literal["staging", "production", "none"] = "staging"

    @field_validator("model_name")
    @classmethod
    def _model_name(cls, value: str | None) -> str | None:
        return _mlflow_name(value, "registered model")


class TrackingConfig(_Section):
    uri: str | None = None
    experiment: str | None = None

    @field_validator("experiment")
    @classmethod
    def _experiment(cls, value: str | None) -> str | None:
        return _mlflow_name(value, "experiment")


class CostConfig(_Section):
    cpu_hour: float = Field(0.05, ge=0.0)
    gpu_hour: float = Field(2.50, ge=0.0)


class TriggerConfig(_Section):
    on_new_data: str | None = None


def _check_ranking_keys(cfg: PipelineConfig) -> None:
    """``task: ranking`` needs ``data.user``/``data.item`` and has no target; the ranking keys fit no other task."""
    data = cfg.data
    if cfg.task == "ranking":
        missing = [f"data.{k}" for k in ("user", "item") if not getattr(data, k)]
        if missing:
            raise ValueError(f"{' and '.join(missing)}: task 'ranking' reads one row per user-item interaction and "
                             "needs data.user (the user id column) and data.item (the item id column); set "
                             f"{' and '.join(missing)}")
        if data.target:
            raise ValueError(f"data.target ({data.target!r}): a ranking task has no target column; remove it, and "
                             "set data.label (with data.implicit_threshold) when a column rates the interactions")
        if data.test_source:
            raise ValueError("data.test_source: a ranking task holds out each user's latest interactions (data.split) "
                             "and ranks them against that user's history; a separate test file is not supported "
                             "here. Remove data.test_source")
        if data.implicit_threshold is not None and data.label is None:
            raise ValueError("data.implicit_threshold: set data.label to the column it applies to (e.g. rating), "
                             "or remove the threshold")
        if cfg.validation.min_class_fraction is not None:
            raise ValueError("validation.min_class_fraction: a ranking task has no target and no classes, so this "
                             "check cannot apply to interactions; remove it (validation.min_rows, "
                             "max_missing_fraction, max_duplicate_fraction and columns do apply)")
        if data.split.type in ("temporal_per_user", "leave_last_out") and not data.timestamp:
            raise ValueError(f"data.split.type {data.split.type!r} orders each user's interactions in time and "
                             "needs data.timestamp; set it, or use data.split.type: per_user_random")
        small = [k for k in cfg.evaluation.k or [] if k < 1]
        if small:
            raise ValueError(f"evaluation.k: cut-offs must be >= 1, got {small}")
        ids = {data.user, data.item}
        for key in ("user", "item"):
            both = [c for c in getattr(cfg.features, key) if c in ids]
            if both:
                raise ValueError(f"features.{key} lists the id column(s) {both}; ids get their own embeddings, "
                                 f"remove them from features.{key}")
        return
    if not data.target:
        raise ValueError("data.target: required: the column to predict (every task but ranking has one)")
    ranking = [key for key, value in (("data.user", data.user), ("data.item", data.item),
                                      ("data.label", data.label), ("data.implicit_threshold",
                                                                   data.implicit_threshold),
                                      ("data.timestamp", data.timestamp), ("data.split.type", data.split.type),
                                      ("features.user", cfg.features.user), ("features.item", cfg.features.item),
                                      ("evaluation.k", cfg.evaluation.k)) if value]
    if ranking:
        raise ValueError(f"{', '.join(ranking)}: apply to task 'ranking' only; set task: ranking, or remove them")


class PipelineConfig(_Section):
    name: str
    description: str = ""
    task: Task = "auto"
    data: DataConfig
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    model: ModelConfig
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    tuning: TuningConfig | None = None
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    cost: CostConfig = Field(default_factory=CostConfig)
    schedule: str | None = None
    trigger: TriggerConfig = Field(default_factory=TriggerConfig)
    orchestration: OrchestrationConfig = Field(default_factory=OrchestrationConfig)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(
                "must start with a letter or digit and use only letters, digits, '_', '-' or '.' "
                f"(at most 100 characters), got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> PipelineConfig:
        target = self.data.target
        if target in self.data.drop_columns:
            raise ValueError(f"data.drop_columns lists the target column {target!r}; remove it from there")
        for key in ("numeric", "categorical", "text"):
            cols = getattr(self.features, key) or []
            if target in cols:
                raise ValueError(f"features.{key} lists the target column {target!r}; the target cannot be "
                                 f"a feature, remove it from features.{key}")
        kinds = {key: getattr(self.features, key) or [] for key in ("numeric", "categorical", "text")}
        for key, cols in kinds.items():
            dropped = [c for c in cols if c in self.data.drop_columns]
            if dropped:
                raise ValueError(f"data.drop_columns and features.{key} both list {dropped}; a dropped column "
                                 f"cannot be a feature, remove it from one of the two")
        names = list(kinds)
        for i, first in enumerate(names):
            for second in names[i + 1:]:
                both = [c for c in kinds[first] if c in kinds[second]]
                if both:
                    raise ValueError(f"features.{first} and features.{second} both list {both}; a column has "
                                     f"one kind, keep it in one of the two lists")
        _check_ranking_keys(self)
        if self.data.positive_label is not None and self.task in ("multiclass", "regression"):
            raise ValueError(f"data.positive_label ({self.data.positive_label!r}) applies to binary targets "
                             f"only, but task is {self.task}; remove data.positive_label, or set task: binary")
        if self.model.type == "auto" and self.tuning is None:
            raise ValueError("model.type: 'auto' picks the model family with a tuning study, and this config has "
                             "no tuning: section. Add one (e.g. tuning: {timeout: 300}), or name a model type")
        if self.model.type == "auto" and self.model.params:
            raise ValueError(f"model.params {sorted(self.model.params)}: with model.type 'auto' there is no one "
                             "model the params apply to. Remove them, or name the model type they belong to "
                             "and list the families in tuning.families")
        return self
