"""The MLflow pyfunc wrapper, logged as "models from code": MLflow runs this file at load time instead of
unpickling a wrapper object. The model itself is a trainpipe model directory (spec.json, the skops
preprocessor, the estimator in its library's own format) shipped as the ``model_dir`` artifact.

trainpipe does not need to be installed where the model is loaded: the inference modules it was saved with
travel in the model's ``code/`` folder as a package of their own (``trainpipe_inference_<hash>``, named in
the model config under ``trainpipe_code``; see :func:`trainpipe.registry._package.write_inference_code`),
which MLflow puts on ``sys.path``. This file imports only MLflow and pandas at module level.

``predict`` takes the raw columns and returns a frame: ``prediction`` (the label, or the value for
regression) and, for classifiers, one ``proba_<label>`` column per class.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

CODE_CONFIG_KEY = "trainpipe_code"


class TrainpipeModel(PythonModel):
    def load_context(self, context: Any) -> None:
        package = str((context.model_config or {}).get(CODE_CONFIG_KEY, "trainpipe"))
        if not re.fullmatch(r"trainpipe(_inference_[0-9a-f]{12})?", package):  # MLmodel names no other module
            raise ValueError(f"MLmodel model_config {CODE_CONFIG_KEY}: expected trainpipe's bundled inference "
                             f"package (trainpipe_inference_<12 hex digits>), got {package[:80]!r}")
        trained = importlib.import_module(f"{package}.models._trained")
        self._predict_frame = importlib.import_module(f"{package}.registry._predict").predict_frame
        self.model = trained.TrainedModel.load(Path(context.artifacts["model_dir"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        out: pd.DataFrame = self._predict_frame(self.model, model_input, params)
        return out


mlflow.models.set_model(TrainpipeModel())
