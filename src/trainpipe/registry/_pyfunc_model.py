"""The MLflow pyfunc wrapper, logged as "models from code": MLflow runs this file at load time instead of
unpickling a wrapper object. The model itself is a trainpipe model directory (spec.json, the skops
preprocessor, the estimator in its library's own format) shipped as the ``model_dir`` artifact.

``predict`` takes the raw columns and returns a frame: ``prediction`` (the label, or the value for
regression) and, for classifiers, one ``proba_<label>`` column per class.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel

# predict has no type hints on purpose (MLflow 3 would turn them into its own input conversion); the
# signature logged with the model is what validates the input.
warnings.filterwarnings("ignore", message=r".*Add type hints to the `predict` method")


class TrainpipeModel(PythonModel):
    def load_context(self, context: Any) -> None:
        from trainpipe.models import TrainedModel

        self.model = TrainedModel.load(Path(context.artifacts["model_dir"]))

    # No annotations on purpose: MLflow 3 turns type hints on predict into its own input validation.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        from trainpipe.registry._predict import predict_frame

        return predict_frame(self.model, model_input)


mlflow.models.set_model(TrainpipeModel())
