"""Regression: the target is a number, predicted as is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from trainpipe._exceptions import DataError
from trainpipe.tasks._base import Prediction, Task

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from trainpipe.models import TrainedModel
    from trainpipe.tasks._info import TaskInfo


class RegressionTask(Task):
    name: ClassVar[str] = "regression"
    default_metrics: ClassVar[tuple[str, ...]] = ("rmse", "mae", "r2")
    tuning_metric: ClassVar[str] = "rmse"
    plots: ClassVar[tuple[str, ...]] = ("predicted_vs_actual",)

    def label_info(self, y: pd.Series, positive_label: Any, target: str, notes: list[str]) -> TaskInfo:
        import pandas as pd

        from trainpipe.tasks._info import TaskInfo

        values = y.dropna()
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            raise DataError(
                f"target {target!r} is not numeric (dtype {y.dtype}), so task 'regression' cannot use it. "
                "Set task: binary or multiclass, or choose a numeric target."
            )
        if values.nunique() < 2:
            raise DataError(
                f"target {target!r} has a single value ({values.iloc[0]!r}) in every row: there is nothing to "
                "learn, and the test metrics would be meaningless (r2 = 1 for a constant). Check the filter that "
                "produced the file, or the target column name."
            )
        return TaskInfo(self.name, notes=tuple(notes))

    def encode(self, info: TaskInfo, y: pd.Series) -> np.ndarray:
        import numpy as np

        return y.to_numpy(dtype=np.float64)

    def decode(self, info: TaskInfo, codes: np.ndarray) -> np.ndarray:
        return codes

    def predict_matrix(self, adapter: Any, X: Any) -> Prediction:
        import numpy as np

        output = adapter.predict(X)
        return Prediction(np.asarray(output, dtype=np.float64), None, output)

    def labels(self, info: TaskInfo, output: Any) -> np.ndarray:
        return output

    def serving_output(self, model: TrainedModel, raw: pd.DataFrame) -> Any:
        return model.predict(raw)

    def columns(self, info: TaskInfo, prediction: Prediction, index: Any = None) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({"prediction": prediction.output}, index=index)
