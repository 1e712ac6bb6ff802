"""The MLflow pyfunc wrapper, logged as "models from code": MLflow runs this file at load time instead of
unpickling a wrapper object. The model itself is a trainpipe model directory (spec.json, the skops
preprocessor, the estimator in its library's own format) shipped as the ``model_dir`` artifact.

``predict`` takes the raw columns and returns a frame: ``prediction`` (the label, or the value for
regression) and, for classifiers, one ``proba_<label>`` column per class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class TrainpipeModel(PythonModel):
    def load_context(self, context: Any) -> None:
        from trainpipe.models import TrainedModel

        self.model = TrainedModel.load(Path(context.artifacts["model_dir"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from trainpipe.registry._predict import predict_frame

        return predict_frame(self.model, model_input)


mlflow.models.set_model(TrainpipeModel())
