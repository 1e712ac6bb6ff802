"""``model.type: torch_mlp``: a tabular MLP trained by the shared PyTorch engine.

Saved as ``torch_model.pt`` (a state_dict, loaded with ``weights_only=True``) plus ``torch_model.json``
(architecture, task, cardinalities, input width, target scaling) and ``loss_curve.png``.
torch is imported only inside methods, so reading and checking a config never loads it.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from trainpipe._exceptions import ConfigError, DataError
from trainpipe._imports import optional_import
from trainpipe.models import _family as fam
from trainpipe.models._params import Rule, check_params
from trainpipe.models._protocol import FitReport, RoundCallback

if TYPE_CHECKING:
    import numpy as np

    from trainpipe.config import TrainingConfig
    from trainpipe.data import TaskInfo

WEIGHTS_FILE = "torch_model.pt"
META_FILE = "torch_model.json"
CURVE_FILE = "loss_curve.png"
ACTIVATION_NAMES = ("relu", "gelu", "silu", "tanh", "leaky_relu", "elu")
DEFAULTS: dict[str, Any] = {"hidden_dims": [256, 128, 64], "dropout": 0.1, "activation": "relu",
                            "batch_norm": False, "weight_decay": None, "keep_top_k": 3}
RULES = {"dropout": Rule(float, 0.0, 1.0), "weight_decay": Rule(float, 0.0), "keep_top_k": Rule(int, 1)}
PREDICT_BATCH = 65_536


def _torch() -> Any:
    return optional_import("torch", "model.type torch_mlp", extra="torch")


def _hidden_dims(value: Any) -> list[int]:
    """A list of positive ints, or a string such as "256,128,64" (handy as a tuning choice)."""
    if isinstance(value, str):
        parts = [p for p in value.replace("-", ",").replace(" ", ",").split(",") if p]
        if not all(p.isdigit() for p in parts):
            raise ConfigError(f"model.params.hidden_dims: expected a list of positive integers such as "
                              f"[256, 128, 64], got {value!r}")
        value = [int(p) for p in parts]
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                                  for v in value):
        raise ConfigError(f"model.params.hidden_dims: expected a list of positive integers such as [256, 128, 64], "
                          f"got {value!r}")
    return list(value)


class TorchMLPAdapter:
    family: ClassVar[str] = "torch"
    preferred_categorical_encoding: ClassVar[str] = "ordinal"

    def __init__(self, task: TaskInfo, model_type: str, params: Mapping[str, Any], training: TrainingConfig) -> None:
        self.check_config(task.task, params)
        self.task = task
        self.training = training
        self.arch: dict[str, Any] = {**DEFAULTS, **params}
        self.arch["hidden_dims"] = _hidden_dims(self.arch["hidden_dims"])
        self.categorical_columns: list[int] = []
        self.checkpoint_dir: Path | None = None
        self.resume = False
        self.net: Any = None
        self.meta: dict[str, Any] = {}

    @classmethod
    def check_config(cls, task_name: str, params: Mapping[str, Any]) -> None:
        """Every problem at once, like the boosters' parameter check, not one per run."""
        problems: list[str] = []

        def collect(check: Callable[[], object]) -> None:
            try:
                check()
            except ConfigError as exc:
                problems.append(str(exc))

        collect(lambda: check_params({k: v for k, v in params.items()
                                      if k not in ("hidden_dims", "activation", "batch_norm")},
                                     DEFAULTS, RULES, "torch_mlp"))
        if "hidden_dims" in params:
            collect(lambda: _hidden_dims(params["hidden_dims"]))
        dropout = params.get("dropout")
        if isinstance(dropout, int | float) and not isinstance(dropout, bool) and dropout >= 1.0:
            problems.append(f"model.params.dropout: expected a number >= 0 and < 1, got {dropout!r}")
        act = params.get("activation", "relu")
        if act not in ACTIVATION_NAMES:
            close = difflib.get_close_matches(str(act), ACTIVATION_NAMES, n=1, cutoff=0.5)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            problems.append(f"model.params.activation: expected one of {', '.join(ACTIVATION_NAMES)}, "
                            f"got {act!r}.{hint}")
        if not isinstance(params.get("batch_norm", False), bool):
            problems.append(f"model.params.batch_norm: expected true or false, got {params['batch_norm']!r}")
        if problems:
            raise ConfigError("\n".join(problems))

    # seams called by the pipeline before fit
    def set_categorical_columns(self, indices: Sequence[int]) -> None:
        """Columns of X holding ordinal codes (0..k-1, -1 for unknown): they get embeddings."""
        self.categorical_columns = sorted(int(i) for i in indices)

    def configure_checkpoints(self, directory: Path, resume: bool) -> None:
        """A folder that survives restarts; resume=True continues from its last checkpoint."""
        self.checkpoint_dir = Path(directory)
        self.resume = resume

    def fit(self, X: Any, y: np.ndarray, X_val: Any | None, y_val: np.ndarray | None,
            on_round: RoundCallback | None = None) -> FitReport:
        import numpy as np

        torch = _torch()
        from trainpipe.models.torch import _mlp
        from trainpipe.models.torch._callbacks import MetricReporter
        from trainpipe.models.torch._data import TensorData, dense_float32
        from trainpipe.models.torch._engine import Engine
        from trainpipe.models.torch._setup import seed_everything

        Xt = torch.from_numpy(dense_float32(X))
        bad = [c for c in self.categorical_columns if c >= Xt.shape[1]]
        if bad:
            raise DataError(f"categorical column indices {bad} are outside the {Xt.shape[1]} feature columns")
        task = self.task.task
        mean, std = 0.0, 1.0
        if task == "regression":
            y64 = np.asarray(y, dtype=np.float64)
            mean, std = float(y64.mean()), float(y64.std()) or 1.0
        spec = _mlp.MLPSpec(
            n_inputs=int(Xt.shape[1]), out_dim=_mlp.out_dim_for(task, len(self.task.classes)),
            hidden_dims=tuple(self.arch["hidden_dims"]), dropout=float(self.arch["dropout"]),
            activation=str(self.arch["activation"]), batch_norm=bool(self.arch["batch_norm"]),
            categorical_columns=tuple(self.categorical_columns),
            cardinalities=_mlp.cardinalities_from(Xt, self.categorical_columns))
        seed_everything(self.training.seed)
        net = _mlp.TabularMLP(spec, _mlp.objective_for(task, std))

        def data(Xm: Any, ym: np.ndarray) -> TensorData:
            Xm = Xm if isinstance(Xm, torch.Tensor) else torch.from_numpy(dense_float32(Xm))
            return TensorData(_mlp.model_inputs(Xm, spec), self._target(ym, mean, std))

        has_val = X_val is not None and y_val is not None and len(y_val) > 0
        reporting = [MetricReporter(on_epoch=on_round)] if on_round is not None else []
        engine = Engine(net, None, self.training, callbacks=reporting, weight_decay=self.arch["weight_decay"],
                        checkpoint_dir=self.checkpoint_dir, resume=self.resume,
                        keep_top_k=int(self.arch["keep_top_k"]))
        result = engine.fit(data(Xt, y), data(X_val, np.asarray(y_val)) if has_val else None)
        self.net = net.to("cpu").eval()
        self.meta = {"format": 1, "task": task, "n_classes": len(self.task.classes), "spec": spec.to_dict(),
                     "target_mean": mean, "target_std": std, "best_epoch": result.best_epoch,
                     "history": result.history}
        effective = {**self.arch, **self.training.model_dump(exclude={"early_stopping_rounds"}),
                     "cardinalities": list(spec.cardinalities), "device": str(engine.device)}
        best = None if result.best_epoch is None else result.best_epoch - 1
        notes = [f"resumed from checkpoint {result.resumed_from}"] if result.resumed_from else []
        notes.extend(result.notes)
        if self.resume and not result.resumed_from:
            notes.append(f"--resume: no checkpoint for these inputs in {self.checkpoint_dir}; trained from scratch "
                         "(a changed config, data or version starts a new checkpoint folder)")
        return FitReport(history=result.history, best_iteration=best, n_iterations=result.n_epochs,
                         params=effective, notes=notes)

    def _target(self, y: np.ndarray, mean: float, std: float) -> Any:
        import numpy as np

        torch = _torch()
        if self.task.task == "multiclass":
            return torch.from_numpy(np.asarray(y, dtype=np.int64))
        values = np.asarray(y, dtype=np.float64)
        if self.task.task == "regression":
            values = (values - mean) / std
        return torch.from_numpy(values.astype(np.float32).reshape(-1, 1))

    def _outputs(self, X: Any) -> np.ndarray:
        torch = _torch()
        from trainpipe.models.torch._data import dense_float32
        from trainpipe.models.torch._mlp import MLPSpec, model_inputs

        spec = MLPSpec.from_dict(self.meta["spec"])
        Xt = torch.from_numpy(dense_float32(X))
        if Xt.shape[1] != spec.n_inputs:
            raise DataError(f"the model expects {spec.n_inputs} feature columns after preprocessing, got "
                            f"{Xt.shape[1]}")
        outs = []
        with torch.inference_mode():
            for start in range(0, Xt.shape[0], PREDICT_BATCH):
                outs.append(self.net(*model_inputs(Xt[start:start + PREDICT_BATCH], spec)).float())
        out = torch.cat(outs) if outs else torch.zeros((0, spec.out_dim))
        result: np.ndarray = out.numpy()
        return result

    def predict(self, X: Any) -> np.ndarray:
        from trainpipe.models.torch._heads import head_predict

        return head_predict(self.task.task, self._outputs(X), self.meta)

    def predict_proba(self, X: Any) -> np.ndarray | None:
        from trainpipe.models.torch._heads import head_proba

        return None if self.task.task == "regression" else head_proba(self.task.task, self._outputs(X))

    def feature_importances(self) -> np.ndarray | None:
        """Norm of the first-layer weights fed by each column (inputs are standardised): cheap, rough."""
        import numpy as np

        return np.asarray(self.net.first_layer_importance(), dtype=np.float64)

    def save(self, directory: Path) -> None:
        torch = _torch()
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.net.state_dict(), directory / WEIGHTS_FILE)
        meta = {**self.meta, "arch": self.arch}
        (directory / META_FILE).write_text(json.dumps(meta, indent=1, default=str))
        if meta.get("history"):
            from trainpipe.models.torch._plots import loss_curve_png

            loss_curve_png(meta["history"], directory / CURVE_FILE, meta.get("best_epoch"))

    def plot_loss_curve(self, path: Path) -> Path:
        """Write ``loss_curve.png`` (train and validation loss per epoch) to ``path``."""
        from trainpipe.models.torch._plots import loss_curve_png

        return loss_curve_png(self.meta.get("history", {}), path, self.meta.get("best_epoch"))

    @classmethod
    def load(cls, directory: Path, task: TaskInfo, model_type: str) -> TorchMLPAdapter:
        torch = _torch()
        from trainpipe.models.torch._mlp import MLPSpec, TabularMLP

        meta = json.loads((Path(directory) / META_FILE).read_text())
        self = cls.__new__(cls)
        self.task, self.meta, self.arch = task, meta, dict(meta.get("arch", {}))
        self.categorical_columns = list(meta["spec"].get("categorical_columns", []))
        self.checkpoint_dir, self.resume, self.training = None, False, None  # type: ignore[assignment]
        net = TabularMLP(MLPSpec.from_dict(meta["spec"]))
        net.load_state_dict(torch.load(Path(directory) / WEIGHTS_FILE, map_location="cpu", weights_only=True))
        self.net = net.eval()
        return self


# -- the family declaration (see trainpipe.models._family) -----------------------------------------------------


def _check(task_name: str, params: Mapping[str, Any], model_type: str) -> None:
    TorchMLPAdapter.check_config(task_name, params)


def _epochs(params: Mapping[str, Any], training: TrainingConfig) -> int:
    return int(training.epochs)


def _training_hint(model_type: str, setting: str) -> str | None:
    if setting == "early_stopping_rounds":
        return ("it stops after training.early_stopping_patience epochs without improvement: tune "
                "training.early_stopping_patience instead")
    return None


def _adapter() -> type:
    return TorchMLPAdapter


def _training_settings(every: frozenset[str]) -> frozenset[str]:
    """The whole loop's settings except the boosters' early stopping."""
    return every - {"early_stopping_rounds"}


FAMILY = fam.ModelFamily(
    name="torch", names=("torch_mlp",), adapter=_adapter, extra="torch", libraries=("torch",),
    default_space={
        "training.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "training.batch_size": {"type": "categorical", "choices": [64, 128, 256, 512]},
    },
    round_budget=_epochs, check_config=_check, checkpoints=True, categorical_indices=True,
    preferred_categorical_encoding=TorchMLPAdapter.preferred_categorical_encoding,
    refit_on_train_val=False, gpu=True, training_settings=_training_settings, training_hint=_training_hint,
    owned_params={"keep_top_k": "it says how many checkpoints are kept, not what is learned. Remove it from "
                                "tuning.space; set it in model.params"},
)
