"""A weighted ensemble of fitted models of any families: ``tuning.ensemble`` builds it from the study's best trials.

The seam: :class:`EnsembleAdapter` is a :class:`~trainpipe.models.ModelAdapter` holding member adapters (each
fitted on the same preprocessed matrix) and their weights; it averages class probabilities (classification;
the label is the most probable class) or predictions (regression) with those weights. Inside a
:class:`~trainpipe.models.TrainedModel` it shares the one preprocessor, so it predicts from raw columns and
goes through evaluate, the gate and the registry like any model.

Saved as data only::

    model/
      spec.json, preprocessor.skops      as every model directory
      ensemble.json                      {"format": 1, "members": [{"model_type", "folder", "weight"}]}
      members/0/ model.ubj | model.txt | estimator.skops ...   each member in its library's own format

Loading reads ``ensemble.json`` as JSON, accepts only ``members/<digits>`` folders inside the model directory
and model types of installed families (never ``ensemble`` itself), and loads each member through its own
family's loader: the skops allow-list and ``weights_only`` torch loading apply to every member unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from trainpipe._exceptions import ConfigError, DataError, TrainpipeError
from trainpipe.models import _family as fam

if TYPE_CHECKING:
    import numpy as np

    from trainpipe.data import TaskInfo
    from trainpipe.models._protocol import FitReport, ModelAdapter, RoundCallback

ENSEMBLE_FILE = "ensemble.json"
TYPE = "ensemble"
_FOLDER = re.compile(r"members/[0-9]{1,3}")


class EnsembleAdapter:
    """Fitted member adapters and their weights (positive, normalised to sum 1)."""

    family: ClassVar[str] = TYPE

    def __init__(self, task: TaskInfo, members: Sequence[tuple[str, ModelAdapter]], weights: Sequence[float]) -> None:
        if not members or len(members) != len(weights):
            raise TrainpipeError("an ensemble needs at least one member and one weight per member")
        total = float(sum(weights))
        if total <= 0 or any(w < 0 for w in weights):
            raise TrainpipeError(f"ensemble weights must be >= 0 with a positive sum, got {list(weights)}")
        self.task = task
        self.members = list(members)
        self.weights = [float(w) / total for w in weights]

    @property
    def member_types(self) -> list[str]:
        return [t for t, _ in self.members]

    def fit(self, X: Any, y: np.ndarray, X_val: Any | None, y_val: np.ndarray | None,
            on_round: RoundCallback | None = None) -> FitReport:
        raise TrainpipeError("an ensemble is assembled from fitted members (tuning.ensemble); it is not fitted "
                             "as one model")

    def predict_proba(self, X: Any) -> np.ndarray | None:
        import numpy as np

        if not self.task.is_classification:
            return None
        total: np.ndarray | None = None
        for (model_type, member), weight in zip(self.members, self.weights, strict=True):
            proba = member.predict_proba(X)
            if proba is None:
                raise TrainpipeError(f"ensemble member {model_type} gives no class probabilities")
            part = weight * np.asarray(proba, dtype=float)
            total = part if total is None else total + part
        return total

    def predict(self, X: Any) -> np.ndarray:
        import numpy as np

        if self.task.is_classification:
            proba = self.predict_proba(X)
            assert proba is not None
            return np.asarray(proba.argmax(axis=1), dtype=np.int64)
        return np.asarray(sum(w * np.asarray(m.predict(X), dtype=float)
                              for (_, m), w in zip(self.members, self.weights, strict=True)))

    def feature_importances(self) -> np.ndarray | None:
        """The weighted mean of the members' importances (each normalised to sum 1), when every member has them."""
        import numpy as np

        parts = []
        for (_, member), weight in zip(self.members, self.weights, strict=True):
            imp = member.feature_importances()
            if imp is None:
                return None
            imp = np.asarray(imp, dtype=float)
            parts.append(weight * imp / max(float(np.abs(imp).sum()), 1e-12))
        return np.asarray(sum(parts))

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        entries = []
        for i, ((model_type, member), weight) in enumerate(zip(self.members, self.weights, strict=True)):
            folder = f"members/{i}"
            (directory / folder).mkdir(parents=True, exist_ok=True)
            member.save(directory / folder)
            entries.append({"model_type": model_type, "folder": folder, "weight": weight})
        (directory / ENSEMBLE_FILE).write_text(json.dumps({"format": 1, "members": entries}, indent=2))


def _load(directory: Path, task: TaskInfo, model_type: str, unsafe_trust_types: tuple[str, ...]) -> EnsembleAdapter:
    from trainpipe.models import family_for

    path = Path(directory) / ENSEMBLE_FILE
    try:
        data = json.loads(path.read_text())
        entries = data["members"]
        if not isinstance(entries, list) or not entries:
            raise ValueError("no members")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a trainpipe ensemble description ({exc}); train the model again.") from None
    members: list[tuple[str, Any]] = []
    weights: list[float] = []
    for entry in entries:
        folder, member_type = str(entry.get("folder", "")), str(entry.get("model_type", ""))
        if not _FOLDER.fullmatch(folder):
            raise DataError(f"{path}: member folder {folder!r} is not members/<number>; the file was not written "
                            "by trainpipe or was tampered with.")
        if member_type == TYPE:
            raise DataError(f"{path}: an ensemble member cannot itself be an ensemble.")
        try:
            family = family_for(member_type)
        except ConfigError as exc:
            raise DataError(f"{path}: member model type {member_type!r} cannot be loaded ({exc}).") from None
        members.append((member_type, family.load(Path(directory) / folder, task, member_type, unsafe_trust_types)))
        weights.append(float(entry.get("weight", 0.0)))
    return EnsembleAdapter(task, members, weights)


def _check(task_name: str, params: Mapping[str, Any], model_type: str) -> None:
    raise ConfigError("model.type: 'ensemble' is assembled by tuning.ensemble from the study's best trials, not "
                      "trained as one model. Name a model type (or model.type: auto, or tuning.families) and "
                      "add tuning.ensemble: {size: 5}.")


def _adapter() -> type:
    return EnsembleAdapter


def member_requirements(member_types: Sequence[str]) -> list[str]:
    """The served ensemble's pins: those of every member's family, once each."""
    from trainpipe.models import family_for

    pins: list[str] = []
    for member_type in dict.fromkeys(member_types):
        pins += family_for(member_type).pip_requirements()
    return list(dict.fromkeys(pins))


FAMILY = fam.ModelFamily(
    name=TYPE, names=(TYPE,), adapter=_adapter, loader=_load, check_config=_check, refit_on_train_val=False,
    requirements=list,  # a member's own pins come from member_requirements (the registry asks the model)
)
