"""A trained model as one directory: preprocessing + estimator, predicting from raw columns.

Layout::

    model/
      spec.json              task, classes, feature columns, model type, versions
      preprocessor.skops     fitted ColumnTransformer (skops, no pickle)
      model.ubj | model.txt | estimator.skops    the estimator in its library's own format
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe.data._task import TaskInfo
from trainpipe.features._spec import FeatureSpec, prepare_columns, prepare_frame
from trainpipe.models import _skops_io
from trainpipe.models._families import family_for

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from trainpipe.features._fast import FastTransform
    from trainpipe.models._protocol import ModelAdapter

SPEC_FILE = "spec.json"
PREPROCESSOR_FILE = "preprocessor.skops"
# transform with the compiled preprocessor where it exists (False: always the ColumnTransformer; for comparisons)
FAST_PATH = True
_NOT_COMPILED = object()


@dataclass
class ModelSpec:
    model_type: str
    family: str
    task: TaskInfo
    features: FeatureSpec
    feature_names: list[str] = field(default_factory=list)
    input_dtypes: dict[str, str] = field(default_factory=dict)
    best_iteration: int | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format": 1, "model_type": self.model_type, "family": self.family, "task": self.task.to_dict(),
                "features": self.features.to_dict(), "feature_names": self.feature_names,
                "input_dtypes": self.input_dtypes, "best_iteration": self.best_iteration,
                "params": {k: v for k, v in self.params.items()
                           if isinstance(v, str | int | float | bool | type(None))}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        return cls(model_type=data["model_type"], family=data["family"], task=TaskInfo.from_dict(data["task"]),
                   features=FeatureSpec.from_dict(data["features"]), feature_names=data.get("feature_names", []),
                   input_dtypes=data.get("input_dtypes", {}), best_iteration=data.get("best_iteration"),
                   params=data.get("params", {}))


class TrainedModel:
    """Preprocessor + estimator; ``predict`` takes the raw columns."""

    def __init__(self, spec: ModelSpec, preprocessor: Any, adapter: ModelAdapter) -> None:
        self.spec = spec
        self.preprocessor = preprocessor
        self.adapter = adapter
        self._fast: Any = _NOT_COMPILED

    @property
    def task(self) -> TaskInfo:
        return self.spec.task

    @property
    def fast_transform(self) -> FastTransform | None:
        """The preprocessor compiled to NumPy (see :mod:`trainpipe.features._fast`); None where it cannot be.
        Compiled on first use; two threads racing here compile the same plan."""
        if self._fast is _NOT_COMPILED:
            from trainpipe.features._fast import compile_transform

            self._fast = compile_transform(self.preprocessor, self.spec.features)
        return self._fast

    def transform(self, raw: pd.DataFrame) -> Any:
        """The preprocessed matrix: through the compiled NumPy path where there is one, which gives the same
        matrix as the fitted ColumnTransformer without its per-call validation and pandas work (a one-row frame
        takes a tenth of the time, a large batch a third of the CPU)."""
        if FAST_PATH:
            fast = self.fast_transform
            if fast is not None:
                return fast.transform(prepare_columns(raw, self.spec.features), len(raw))
        return self.preprocessor.transform(prepare_frame(raw, self.spec.features))

    def predict(self, raw: pd.DataFrame) -> np.ndarray:
        """Labels as in the training data (classification) or values (regression)."""
        return self.task.kind.labels(self.task, self.adapter.predict(self.transform(raw)))

    def predict_proba(self, raw: pd.DataFrame) -> np.ndarray | None:
        return self.adapter.predict_proba(self.transform(raw))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        if self.preprocessor is not None:  # a ranking model has none
            _skops_io.dump(self.preprocessor, directory / PREPROCESSOR_FILE)
        self.adapter.save(directory)
        (directory / SPEC_FILE).write_text(json.dumps(self.spec.to_dict(), indent=2, default=str))

    @classmethod
    def load(cls, directory: Path, unsafe_trust_types: tuple[str, ...] = ()) -> TrainedModel:
        """Read a model directory; a damaged or foreign file is a DataError naming the folder (exit 2).

        The skops files load only when every type in them is on the fixed allow-list of
        :mod:`trainpipe.models._allowlist`; nothing in the folder (``spec.json`` included) widens it.
        ``unsafe_trust_types`` (exact type names, like ``TRAINPIPE_UNSAFE_TRUST_TYPES``) lets a caller load a
        file holding other types it trusts; each can run code.
        """
        from trainpipe._exceptions import ConfigError, DataError, MissingExtraError

        try:
            spec = ModelSpec.from_dict(json.loads((Path(directory) / SPEC_FILE).read_text()))
            try:
                family = family_for(spec.model_type)
            except ConfigError as exc:
                raise DataError(
                    f"{Path(directory) / SPEC_FILE}: the model type it names cannot be loaded ({exc}). The file "
                    "was not written by this trainpipe, or was tampered with; train the model again."
                ) from exc
            # a ranking model has none: its family encodes ids and side features itself
            preprocessor = (_skops_io.load(Path(directory) / PREPROCESSOR_FILE, unsafe_trust_types)
                            if spec.task.kind.uses_preprocessor else None)
            adapter = family.load(Path(directory), spec.task, spec.model_type, tuple(unsafe_trust_types))
        except (ConfigError, DataError, MissingExtraError):
            raise
        except Exception as exc:  # the model libraries raise their own types (XGBoostError, LightGBMError, ...)
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise DataError(
                f"the model in {directory} cannot be loaded ({type(exc).__name__}: {first}); a file there is "
                "damaged or was replaced. Run the train step again (trainpipe run ... --force train)."
            ) from exc
        return cls(spec, preprocessor, adapter)


def save_model_dir(directory: Path, spec: ModelSpec, adapter: ModelAdapter, preprocessor_file: Path) -> None:
    """Write a model directory from an already-saved preprocessor file (copied, not re-serialised)."""
    import shutil

    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(preprocessor_file, directory / PREPROCESSOR_FILE)
    adapter.save(directory)
    (directory / SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=2, default=str))
