"""The ``Task`` base class: what a learning task (binary, multiclass, regression; ranking later) decides.

A task owns, for the rest of trainpipe:

- the label encoding: the labels of a target column -> what the model learns (:meth:`Task.label_info`,
  :meth:`Task.encode`, :meth:`Task.decode`);
- what a model's raw output means: :meth:`Task.predict` gives one :class:`Prediction` (encoded predictions
  and class probabilities), and :meth:`Task.columns` turns it into the ``prediction`` / ``proba_<label>``
  frame of ``predict``. Evaluation, the gate's champion re-score and registry predict all go through these;
- its default metrics, the headline (champion) metric, the tuning metric and each metric's direction;
- the champion comparison: which champions can be compared, and the paired-bootstrap statistic.

Nothing outside :mod:`trainpipe.tasks` branches on a task's name; a new task (ranking) is one subclass
registered with :func:`trainpipe.tasks.register_task`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy as np
    import pandas as pd

    from trainpipe.models import TrainedModel
    from trainpipe.tasks._info import TaskInfo

Pair: TypeAlias = "tuple[np.ndarray, np.ndarray | None]"  # (encoded predictions, class probabilities or None)


@dataclass(frozen=True)
class Prediction:
    """A model's output on some rows, as the metrics read it and as ``predict`` shows it.

    ``pred``: encoded predictions (class codes 0..k-1 as int64, or values as float64); ``proba``: class
    probabilities (rows x classes) or None; ``output``: what the estimator's ``predict`` returned, unchanged
    (the regression values ``predict`` shows; the class codes when there are no probabilities).
    """

    pred: np.ndarray
    proba: np.ndarray | None
    output: np.ndarray

    @property
    def pair(self) -> Pair:
        return self.pred, self.proba


class Task:
    """One learning task. Subclasses set the class attributes and implement the label encoding.

    The methods that raise ``NotImplementedError`` are what every concrete task defines. They are not
    ``abc.abstractmethod``s on purpose: a task can be registered by name (defaults, metric directions) before
    it can encode labels or predict, as the ranking task of a later issue will be, step by step."""

    name: ClassVar[str] = ""
    is_classification: ClassVar[bool] = False
    default_metrics: ClassVar[tuple[str, ...]] = ()  # evaluation.metrics when unset; the first is the headline
    tuning_metric: ClassVar[str] = ""  # tuning.metric when unset
    plots: ClassVar[tuple[str, ...]] = ()  # the evaluation plots that apply (names known to evaluation)
    # whether a model of this task has a fitted preprocessor (preprocessor.skops) in its folder
    uses_preprocessor: ClassVar[bool] = True
    # a module whose STEPS replace the core steps (ingest..evaluate, same names and artifacts) for this task;
    # None: the tabular core steps (trainpipe.pipeline._steps.CORE_STEPS)
    steps_module: ClassVar[str | None] = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    @property
    def stratify(self) -> bool:
        """Whether splits keep the label's proportions (classification) or draw rows at random."""
        return self.is_classification

    # --- label encoding -------------------------------------------------------------------------------------

    def label_info(self, y: pd.Series, positive_label: Any, target: str, notes: list[str]) -> TaskInfo:
        """The encoding learned from the training target ``y`` (classes in encoded order, positive label);
        :class:`~trainpipe.DataError` when this task cannot use the column."""
        raise NotImplementedError

    def encode(self, info: TaskInfo, y: pd.Series) -> np.ndarray:
        """Labels -> what the model learns (class codes 0..k-1, or float values)."""
        raise NotImplementedError

    def decode(self, info: TaskInfo, codes: np.ndarray) -> np.ndarray:
        """Encoded predictions -> labels as in the training data."""
        raise NotImplementedError

    # --- predictions ----------------------------------------------------------------------------------------

    def predict_matrix(self, adapter: Any, X: Any) -> Prediction:
        """The :class:`Prediction` of a fitted model adapter on a preprocessed matrix."""
        raise NotImplementedError

    def predict(self, model: TrainedModel, raw: pd.DataFrame) -> Prediction:
        """The :class:`Prediction` of a trained model on raw columns (one preprocessing pass)."""
        return self.predict_matrix(model.adapter, model.transform(raw))

    def labels(self, info: TaskInfo, output: Any) -> np.ndarray:
        """What ``TrainedModel.predict`` returns for the estimator's ``predict`` output: labels or values."""
        raise NotImplementedError

    def serving_output(self, model: TrainedModel, raw: pd.DataFrame) -> Any:
        """The model's main computation on raw rows (what latency measures): probabilities or values."""
        raise NotImplementedError

    def columns(self, info: TaskInfo, prediction: Prediction, index: Any = None) -> pd.DataFrame:
        """The frame ``predict`` returns: ``prediction`` (label or value), plus ``proba_<label>`` per class when
        there are probabilities. The one place these columns are made."""
        raise NotImplementedError

    def predict_frame(self, model: TrainedModel, raw: pd.DataFrame,
                      params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """``columns(predict(model, raw))`` with the index of ``raw``; ``params``: the serving parameters of
        :meth:`serving_params` (none for the tabular tasks)."""
        return self.columns(model.task, self.predict(model, raw), raw.index)

    def optional_inputs(self, model: TrainedModel) -> dict[str, str]:
        """Input columns the served model also takes, not required (name -> MLflow type); none by default."""
        return {}

    def serving_params(self, model: TrainedModel) -> dict[str, Any]:
        """Parameters ``predict`` takes besides the frame (name -> default), in the model's signature."""
        return {}

    def conformance_case(self, family: Any, task: str, model_type: str, params: Mapping[str, Any],
                         training: Mapping[str, Any], rows: int) -> Any:
        """This task's data for ``trainpipe.testing.check_family`` when it is not a generated table (ranking:
        interactions); None: the kit's table."""
        return None

    def score(self, model: TrainedModel, frame: pd.DataFrame, target: str) -> tuple[np.ndarray, Prediction]:
        """Encoded labels of ``frame[target]`` and the model's prediction on ``frame``: what metrics read."""
        y = self.encode(model.task, frame[target])
        return y, self.predict(model, frame)

    # --- metrics --------------------------------------------------------------------------------------------

    def metric_applies(self, metric: str) -> bool:
        """Whether the registry metric ``metric`` can be computed for this task."""
        from trainpipe.evaluation._metrics import METRICS

        known = METRICS.get(metric)
        return known is not None and self.name in known.tasks

    def applicable_metrics(self) -> list[str]:
        """Every registry metric for this task, the defaults first."""
        from trainpipe.evaluation._metrics import METRICS

        return [*self.default_metrics,
                *(m for m, v in METRICS.items() if self.name in v.tasks and m not in self.default_metrics)]

    def headline_metric(self, requested: Sequence[str] | None = None) -> str:
        """The metric that stands for the model (the champion comparison's, unless set): the first of
        ``evaluation.metrics``, else of the task's defaults."""
        return (list(requested) if requested else list(self.default_metrics))[0]

    def direction(self, metric: str) -> Literal["maximize", "minimize"]:
        """``maximize`` when higher values of ``metric`` are better (the registry's ``greater_is_better``)."""
        from trainpipe.evaluation._metrics import metric_direction

        return metric_direction(metric)

    def metric_hint(self, metric: str) -> str:
        """A sentence for a metric refused for this task when another name likely means what the user wants;
        empty when there is none."""
        return ""

    # --- the champion comparison ----------------------------------------------------------------------------

    def champion_mismatch(self, champion: TaskInfo, challenger: TaskInfo) -> str | None:
        """Why a champion's predictions cannot be compared with the challenger's on the same rows, or None."""
        if champion.task != challenger.task:
            return f"is a {champion.task} model, the challenger a {challenger.task} one"
        if list(map(str, champion.classes)) != list(map(str, challenger.classes)):
            return f"predicts other classes ({champion.classes})"
        return None

    def champion_statistic(self, metric: str, y: np.ndarray, challenger: Pair, champion: Pair, n_classes: int, *,
                           confidence: float, n_boot: int = 1000, seed: int = 0
                           ) -> tuple[float, float, float, float, float, int]:
        """(challenger value, champion value, delta, ci_low, ci_high, resamples used) of ``metric``; delta is
        sign-adjusted (> 0: the challenger is better). Rows are independent here, so the statistic is a
        paired bootstrap over test rows; a task whose rows come in groups (ranking: queries) resamples
        groups instead."""
        from trainpipe.evaluation._gate import paired_bootstrap

        return paired_bootstrap(metric, y, challenger, champion, n_classes, confidence=confidence, n_boot=n_boot,
                                seed=seed)
