"""Poisoned model folders and encoders for the ranking and text families: loading refuses them without running
any code shipped with them (a pickle whose unpickling would create a marker file proves nothing ran).

- two_tower: a pickled object array renamed ``*.npy``, a pickle renamed ``two_tower.json``;
- text_encoder: a saved model whose ``text_encoder/config.json`` or ``tokenizer_config.json`` names custom
  classes (``auto_map``), a pickle renamed ``model.safetensors``; a local ``encoder:`` folder asking for custom
  code is exit 2 when the config is checked (a hub name: tests/test_text_encoder.py).
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trainpipe._exceptions import ConfigError, DataError


class _Boom:
    """Unpickling this creates the marker file (what a malicious pickle would do instead)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path(self.marker).touch, ())


def _pickle_bytes(marker: Path) -> bytes:
    return pickle.dumps(_Boom(str(marker)))


def _spec(model_type: str, task: str, text: tuple[str, ...] = ()) -> dict[str, Any]:
    from trainpipe.features._spec import FeatureSpec
    from trainpipe.tasks import TaskInfo

    info = TaskInfo(task) if task == "ranking" else TaskInfo(task, classes=("neg", "pos"))
    return {"format": 1, "model_type": model_type, "family": model_type, "task": info.to_dict(),
            "features": FeatureSpec(numeric=(), categorical=(), text=text).to_dict()}


def _two_tower_folder(folder: Path) -> Path:
    """A well-formed two_tower model folder (3 users, 4 items), written as the adapter writes it."""
    folder.mkdir(parents=True)
    (folder / "spec.json").write_text(json.dumps(_spec("two_tower", "ranking")))
    meta = {"user_ids": [1, 2, 3], "item_ids": [10, 11, 12, 13], "params": {}, "arch": {}}
    (folder / "two_tower.json").write_text(json.dumps(meta))
    arrays: dict[str, np.ndarray] = {
        "user_embeddings": np.ones((3, 4), np.float32), "item_embeddings": np.ones((4, 4), np.float32),
        "seen_ptr": np.zeros(4, np.int64), "seen_items": np.zeros(0, np.int64),
        "popular": np.arange(4, dtype=np.int64)}
    for name, value in arrays.items():
        np.save(folder / f"{name}.npy", value, allow_pickle=False)
    return folder


def test_a_well_formed_two_tower_folder_loads(tmp_path: Path) -> None:
    from trainpipe.models._trained import TrainedModel
    from trainpipe.models._two_tower import TwoTowerAdapter

    loaded = TrainedModel.load(_two_tower_folder(tmp_path / "m"))
    assert isinstance(loaded.adapter, TwoTowerAdapter) and loaded.adapter.n_items == 4


@pytest.mark.parametrize("target", ["item_embeddings.npy", "two_tower.json"])
def test_a_pickle_in_a_two_tower_folder_is_refused_and_never_run(tmp_path: Path, target: str) -> None:
    from trainpipe.models._trained import TrainedModel

    folder = _two_tower_folder(tmp_path / "m")
    marker = tmp_path / "pwned"
    if target.endswith(".npy"):  # an object array: its items are pickles
        np.save(folder / target, np.array([_Boom(str(marker))], dtype=object), allow_pickle=True)
    else:
        (folder / target).write_bytes(_pickle_bytes(marker))
    with pytest.raises(DataError, match=r"the model in .* cannot be loaded \((ValueError|UnicodeDecodeError)"):
        TrainedModel.load(folder)
    assert not marker.exists()


def _encoder_copy(folder: Path) -> Path:
    """The packaged all-MiniLM-L6-v2 folder, its config and tokenizer files copied, the weights linked."""
    from trainpipe.models._text_encoder import packaged_encoder_dir

    source = packaged_encoder_dir()
    folder.mkdir(parents=True)
    for item in source.iterdir():
        if item.is_file() and item.suffix != ".safetensors":
            shutil.copy(item, folder / item.name)
    (folder / "model.safetensors").symlink_to(source / "model.safetensors")
    return folder


def _add(file: Path, **keys: Any) -> None:
    data = json.loads(file.read_text())
    data.update(keys)
    file.write_text(json.dumps(data))


@pytest.mark.parametrize(("file", "keys"), [
    ("config.json", {"auto_map": {"AutoModel": "evil_model.EvilModel"}}),
    ("config.json", {"trust_remote_code": True}),
    ("tokenizer_config.json", {"auto_map": {"AutoTokenizer": ["evil_tok.EvilTokenizer", None]}}),
])
def test_a_local_encoder_asking_for_custom_code_is_refused_when_the_config_is_checked(
        tmp_path: Path, file: str, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from trainpipe.cli import app
    from trainpipe.models._text_encoder import resolve_encoder

    folder = _encoder_copy(tmp_path / "enc")
    _add(folder / file, **keys)
    (folder / "evil_model.py").write_text(f"open({str(tmp_path / 'pwned')!r}, 'w').close()\n")
    with pytest.raises(ConfigError, match=rf"model.params.encoder: {folder / file} asks for custom model code "
                                          rf"\({next(iter(keys))}: .*no trust_remote_code"):
        resolve_encoder(str(folder))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text("name: t\ndata: {source: nowhere.csv, target: y}\nfeatures: {text: [review]}\n"
                                     f"model: {{type: text_encoder, params: {{encoder: {folder}}}}}\n")
    result = CliRunner().invoke(app, ["validate", "p.yaml"])
    shown = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "asks for custom model code" in shown and "Traceback" not in shown
    assert not (tmp_path / "pwned").exists()


def _text_model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "spec.json").write_text(json.dumps(_spec("text_encoder", "binary", text=("review",))))
    (folder / "text_encoder.json").write_text(json.dumps({"hidden": 384, "n_extra": 0, "out_dim": 2,
                                                          "dropout": 0.0, "mode": "frozen", "params": {}}))
    _encoder_copy(folder / "text_encoder")
    return folder


@pytest.mark.parametrize("poison", ["auto_map", "tokenizer_auto_map", "pickled_weights"])
def test_a_saved_text_encoder_model_with_replaced_files_is_refused_and_runs_nothing(tmp_path: Path,
                                                                                      poison: str) -> None:
    from trainpipe.models._text_encoder import TextEncoderAdapter
    from trainpipe.tasks import TaskInfo

    folder = _text_model(tmp_path / "m")
    enc = folder / "text_encoder"
    marker = tmp_path / "pwned"
    (enc / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    if poison == "auto_map":
        _add(enc / "config.json", auto_map={"AutoModel": "evil.Evil"})
        match = r"text_encoder: .*config.json asks for custom model code \(auto_map"
    elif poison == "tokenizer_auto_map":
        _add(enc / "tokenizer_config.json", auto_map={"AutoTokenizer": ["evil.Evil", None]})
        match = r"text_encoder: .*tokenizer_config.json asks for custom model code \(auto_map"
    else:
        (enc / "model.safetensors").unlink()
        (enc / "model.safetensors").write_bytes(_pickle_bytes(marker))
        match = r"text_encoder: could not load the encoder in .*text_encoder: .*The folder is damaged"
    with pytest.raises(DataError, match=match):
        TextEncoderAdapter.load(folder, TaskInfo("binary", classes=("neg", "pos")), "text_encoder")
    assert not marker.exists()


def test_a_tokenizer_class_transformers_does_not_have_runs_no_code(tmp_path: Path) -> None:
    """transformers 5 ignores an unknown tokenizer_class without auto_map (tokenizer.json is read as data)."""
    from trainpipe.models._text_encoder import TextEncoderAdapter

    enc = _encoder_copy(tmp_path / "enc")
    marker = tmp_path / "pwned"
    (enc / "evil_tok.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    _add(enc / "tokenizer_config.json", tokenizer_class="EvilTokenizer")
    adapter = TextEncoderAdapter.__new__(TextEncoderAdapter)
    adapter._load_encoder(enc)
    assert adapter.tokenizer("a review")["input_ids"][0] == 101  # BERT's [CLS]: the plain tokenizer
    assert not marker.exists()
