"""Unit tests of the torch engine and the torch_mlp adapter on small generated tensors."""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from trainpipe import ConfigError, TrainingDiverged, TrainingInterrupted  # noqa: E402
from trainpipe.config import TrainingConfig  # noqa: E402
from trainpipe.data import TaskInfo  # noqa: E402
from trainpipe.models._torch_mlp import ACTIVATION_NAMES, TorchMLPAdapter  # noqa: E402
from trainpipe.models.torch import (  # noqa: E402
    DistInfo,
    Engine,
    InMemory,
    MLPSpec,
    ParquetChunks,
    TabularMLP,
    TensorData,
    objective_for,
)
from trainpipe.models.torch import _checkpoint as ckpt  # noqa: E402
from trainpipe.models.torch._distributed import epoch_permutation, shard  # noqa: E402
from trainpipe.models.torch._mlp import ACTIVATIONS  # noqa: E402


def _data(n: int = 600, seed: int = 0, task: str = "binary") -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    X[:, 4] = rng.integers(0, 4, size=n)
    score = X[:, 0] + X[:, 1] - X[:, 2] + (X[:, 4] == 2) * 1.5
    if task == "binary":
        return X, (score > 0.5).astype(np.int64)
    if task == "multiclass":
        return X, np.digitize(score, [-0.5, 1.0]).astype(np.int64)
    return X, (score * 10 + 100).astype(np.float64)


def _training(**kw: Any) -> TrainingConfig:
    base: dict[str, Any] = {"epochs": 4, "batch_size": 32, "learning_rate": 0.01, "seed": 3}
    return TrainingConfig(**{**base, **kw})


def _engine_setup(tmp_path: Path | None = None, **kw: Any) -> tuple[Engine, TensorData, TensorData]:
    X, y = _data()
    Xt = torch.from_numpy(X[:, :4].copy())
    yt = torch.from_numpy(y.astype(np.float32)).reshape(-1, 1)
    torch.manual_seed(0)
    net = TabularMLP(MLPSpec(n_inputs=4, out_dim=1, hidden_dims=(16,), dropout=0.1))
    engine = Engine(net, objective_for("binary"), _training(**kw),
                    checkpoint_dir=tmp_path / "ckpt" if tmp_path else None)
    return engine, TensorData((Xt[:500],), yt[:500]), TensorData((Xt[500:],), yt[500:])


def _adapter(task: str = "binary", params: dict[str, Any] | None = None, **kw: Any) -> TorchMLPAdapter:
    classes = {"binary": (0, 1), "multiclass": (0, 1, 2), "regression": ()}[task]
    return TorchMLPAdapter(TaskInfo(task, classes), "torch_mlp", params or {"hidden_dims": [16, 8]}, _training(**kw))


def _sigterm_at_training_call(net: Any, stop_at: int | None) -> None:
    """SIGTERM this process during the ``stop_at``-th training forward pass of ``net`` (None: never)."""
    calls = {"n": 0}
    original = net.forward

    def forward(*inputs: Any) -> Any:
        calls["n"] += net.training
        if calls["n"] == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(*inputs)

    net.forward = forward


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_adapter_learns_saves_and_loads(task: str, tmp_path: Path) -> None:
    X, y = _data(task=task)
    adapter = _adapter(task, epochs=8)
    adapter.set_categorical_columns([4])
    rounds: list[tuple[int, int, dict[str, float]]] = []
    report = adapter.fit(X[:500], y[:500], X[500:], y[500:], lambda e, t, m: rounds.append((e, t, dict(m))))
    assert [r[0] for r in rounds] == list(range(1, report.n_iterations + 1)) and rounds[0][1] == 8
    assert {"train_loss", "val_loss"} <= set(rounds[0][2]) and set(report.history) == set(rounds[0][2])
    assert report.best_iteration is not None
    best = report.history["val_loss"][report.best_iteration]
    assert best == min(report.history["val_loss"])
    assert report.params["hidden_dims"] == [16, 8] and report.params["cardinalities"] == [5]
    pred = adapter.predict(X[500:])
    if task == "regression":
        assert adapter.predict_proba(X[500:]) is None
        assert np.corrcoef(pred, y[500:])[0, 1] > 0.8
        assert "val_rmse" in report.history
    else:
        proba = adapter.predict_proba(X[500:])
        assert proba is not None and proba.shape == (100, 3 if task == "multiclass" else 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
        assert (pred == y[500:]).mean() > 0.7
    adapter.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"torch_model.pt", "torch_model.json", "loss_curve.png"}
    torch.load(tmp_path / "torch_model.pt", weights_only=True)
    meta = json.loads((tmp_path / "torch_model.json").read_text())
    assert meta["spec"]["cardinalities"] == [5] and meta["spec"]["categorical_columns"] == [4]
    loaded = TorchMLPAdapter.load(tmp_path, adapter.task, "torch_mlp")
    np.testing.assert_array_equal(loaded.predict(X[500:]), pred)
    importances = loaded.feature_importances()
    assert importances is not None and importances.shape == (5,) and (importances > 0).all()


def test_unseen_and_unknown_categories_use_the_unknown_row() -> None:
    X, y = _data()
    adapter = _adapter(epochs=1)
    adapter.set_categorical_columns([4])
    adapter.fit(X, y, None, None)
    odd = X[:3].copy()
    odd[:, 4] = [-1.0, 99.0, np.nan]
    out = adapter.predict_proba(odd)
    assert out is not None and np.isfinite(out).all()
    unknown = X[:1].copy()
    unknown[0, 4] = -1
    np.testing.assert_allclose(adapter.predict_proba(odd[:1]), adapter.predict_proba(unknown))


def test_sparse_input_is_densified() -> None:
    import scipy.sparse as sp

    X, y = _data()
    adapter = _adapter(epochs=1)
    adapter.fit(sp.csr_matrix(X), y, sp.csr_matrix(X[:50]), y[:50])
    assert adapter.predict(sp.csr_matrix(X[:7])).shape == (7,)


def test_no_validation_means_no_early_stopping() -> None:
    X, y = _data()
    report = _adapter(epochs=3, early_stopping_patience=1).fit(X, y, None, None)
    assert report.n_iterations == 3 and set(report.history) == {"train_loss"}


def test_early_stopping_keeps_best_weights_and_top_k(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5)).astype(np.float32)
    y = rng.integers(0, 2, size=300)  # noise: validation loss rises as the net memorises
    adapter = _adapter(params={"hidden_dims": [128, 128], "dropout": 0.0, "keep_top_k": 2},
                       epochs=40, learning_rate=0.02, early_stopping_patience=2, scheduler="none")
    adapter.configure_checkpoints(tmp_path, resume=False)
    report = adapter.fit(X[:200], y[:200], X[200:], y[200:])
    assert report.n_iterations is not None and report.n_iterations < 40
    assert report.best_iteration == report.n_iterations - 3
    entries = json.loads((tmp_path / "topk.json").read_text())
    assert len(entries) == 2 and entries[0]["epoch"] == report.best_iteration + 1
    assert sorted(p.name for p in tmp_path.glob("epoch-*.pt")) == sorted(e["file"] for e in entries)
    best = ckpt.load(tmp_path / entries[0]["file"])["model"]
    current = adapter.net.state_dict()
    assert all(torch.equal(best[k], current[k]) for k in best)


def test_top_k_sweeps_epoch_files_a_killed_process_left_unlisted(tmp_path: Path) -> None:
    from trainpipe.models.torch import CheckpointDir

    folder = CheckpointDir(tmp_path, keep_top_k=2, mode="min")
    weights = {"w": torch.zeros(2)}
    folder.offer_epoch(1, 0.5, weights)
    ckpt.atomic_save({"epoch": 2, "metric": 0.4, "model": weights}, tmp_path / "epoch-0002.pt")  # killed here
    ckpt.atomic_save({"epoch": 7, "metric": 0.9, "model": weights}, tmp_path / "epoch-0007.pt")  # and here
    assert folder.offer_epoch(3, 0.45, weights)
    assert sorted(p.name for p in tmp_path.glob("epoch-*.pt")) == ["epoch-0001.pt", "epoch-0003.pt"]
    assert [e["epoch"] for e in folder.topk()] == [3, 1]


def test_nan_loss_stops_with_a_clear_message(tmp_path: Path) -> None:
    X, y = _data()
    X[450, 0] = np.inf  # a row that makes its batch's loss NaN in epoch 1
    adapter = _adapter(epochs=2, checkpoint_every=3, gradient_clip_norm=None, scheduler="none")
    adapter.configure_checkpoints(tmp_path, resume=False)
    with pytest.raises(TrainingDiverged, match=r"NaN or infinite at epoch 1, batch \d+") as info:
        adapter.fit(X[:500], y[:500], X[500:], y[500:])
    message = str(info.value)
    assert "training.learning_rate" in message and "set training.gradient_clip_norm" in message
    assert str(tmp_path / "last.pt") in message and info.value.exit_code == 2
    state = ckpt.load(tmp_path / "last.pt")
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_nan_without_checkpoints_says_so() -> None:
    X, y = _data()
    X[:, 0] = np.nan
    with pytest.raises(TrainingDiverged, match=r"optimizer step 1,.*Last good checkpoint: none"):
        _adapter(epochs=1).fit(X, y, None, None)


def test_a_non_finite_validation_loss_is_divergence_not_a_bad_epoch() -> None:
    X, y = _data()
    X[520, 0] = np.inf  # a validation row the model cannot score (training rows are fine)
    with pytest.raises(TrainingDiverged, match=r"validation loss is (nan|inf) after epoch 1 while the training "
                                               r"loss is \d") as info:
        _adapter(epochs=3).fit(X[:500], y[:500], X[500:], y[500:])
    assert "training.learning_rate" in str(info.value) and info.value.exit_code == 2


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_on_cpu_runs_with_bf16(precision: str, caplog: pytest.LogCaptureFixture) -> None:
    engine, train, val = _engine_setup(precision=precision)
    with caplog.at_level(logging.WARNING, logger="trainpipe.torch"):
        result = engine.fit(train, val)
    assert engine.precision.dtype == torch.bfloat16 and not engine.precision.scaler
    assert all(np.isfinite(v) for v in result.history["val_loss"])
    assert result.history["val_loss"][-1] < result.history["val_loss"][0]
    assert ("needs CUDA" in caplog.text) == (precision == "fp16")


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("scheduler", ["cosine", "step", "one_cycle", "plateau", "none"])
def test_optimizers_and_schedules(optimizer: str, scheduler: str, tmp_path: Path) -> None:
    engine, train, val = _engine_setup(tmp_path, optimizer=optimizer, scheduler=scheduler, epochs=2,
                                       grad_accum_steps=2, checkpoint_every=2)
    result = engine.fit(train, val)
    assert len(result.history["train_loss"]) == 2 and np.isfinite(result.history["train_loss"]).all()
    state = ckpt.load(tmp_path / "ckpt" / "last.pt")  # weights_only=True: nothing pickled
    assert state["position"]["epoch"] == 2 and state["position"]["global_step"] == 2 * 8


def test_a_short_accumulation_window_at_epoch_end_is_its_own_mean() -> None:
    """96 rows, batches of 32, grad_accum_steps=2: windows of 2 and then 1 micro-batch. Each optimizer step
    uses the mean loss over its own window (the last one is not divided by 2)."""
    X, y = _data(96)
    Xt, yt = torch.from_numpy(X[:, :4].copy()), torch.from_numpy(y.astype(np.float32)).reshape(-1, 1)
    torch.manual_seed(0)
    net = TabularMLP(MLPSpec(n_inputs=4, out_dim=1, hidden_dims=(8,), dropout=0.0))
    start = {k: v.clone() for k, v in net.state_dict().items()}
    training = _training(epochs=1, optimizer="sgd", scheduler="none", gradient_clip_norm=None, learning_rate=0.1,
                         grad_accum_steps=2, early_stopping_rounds=None)
    Engine(net, objective_for("binary"), training).fit(TensorData((Xt,), yt))

    ref = TabularMLP(MLPSpec(n_inputs=4, out_dim=1, hidden_dims=(8,), dropout=0.0))
    ref.load_state_dict(start)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    order = epoch_permutation(96, training.seed, 0)
    for window in ([0, 1], [2]):
        for i in window:
            idx = order[i * 32:(i + 1) * 32]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(ref(Xt[idx]), yt[idx])
            (loss / len(window)).backward()
        opt.step()
        opt.zero_grad()
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(net.state_dict()[key], value, rtol=1e-5, atol=1e-6)


def test_cuda_when_absent_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a machine with a GPU
    with pytest.raises(ConfigError, match="training.device: 'cuda'"):
        _engine_setup(device="cuda")


def test_on_round_exceptions_propagate_and_handlers_are_restored() -> None:
    class Pruned(Exception):
        pass

    before = signal.getsignal(signal.SIGTERM)
    X, y = _data()

    def prune(epoch: int, total: int, metrics: Any) -> None:
        raise Pruned

    with pytest.raises(Pruned):
        _adapter().fit(X[:500], y[:500], X[500:], y[500:], prune)
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_writes_a_checkpoint_and_raises(tmp_path: Path) -> None:
    X, y = _data()
    adapter = _adapter(epochs=3)
    adapter.configure_checkpoints(tmp_path, resume=False)

    def terminate(epoch: int, total: int, metrics: Any) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # delivered to the engine's handler: a flag, not an exit

    with pytest.raises(TrainingInterrupted, match="interrupted by signal SIGTERM; checkpoint written to") as info:
        adapter.fit(X[:500], y[:500], X[500:], y[500:], terminate)
    assert info.value.exit_code == 143
    position = ckpt.load(tmp_path / "last.pt")["position"]
    assert position == {**position, "epoch": 1, "micro": 1, "global_step": 17}


def test_shards_cover_the_epoch_like_distributed_sampler() -> None:
    perm = epoch_permutation(11, seed=5, epoch=2)
    assert torch.equal(perm, epoch_permutation(11, seed=5, epoch=2))
    assert not torch.equal(perm, epoch_permutation(11, seed=5, epoch=3))
    parts = [shard(perm, DistInfo(rank=r, world_size=3)) for r in range(3)]
    assert all(p.numel() == 4 for p in parts)
    assert set(torch.cat(parts).tolist()) == set(range(11))


def test_parquet_chunks_visit_every_row(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    X, y = _data(n=700)
    cols = {f"f{i}": X[:, i] for i in range(4)}
    pq.write_table(pa.table({**cols, "y": y.astype(np.float32)}), tmp_path / "t.parquet", row_group_size=150)

    def make(Xc: np.ndarray, yc: np.ndarray) -> TensorData:
        return TensorData((torch.from_numpy(Xc),), torch.from_numpy(yc.astype(np.float32)).reshape(-1, 1))

    source = ParquetChunks(tmp_path / "t.parquet", list(cols), "y", make)
    assert source.segment_lengths() == [150, 150, 150, 150, 100]
    torch.manual_seed(0)
    net = TabularMLP(MLPSpec(n_inputs=4, out_dim=1, hidden_dims=(16,)))
    seen: list[int] = []
    original = net.forward

    def counting(*inputs: Any) -> Any:
        if net.training:
            seen.append(int(inputs[0].shape[0]))
        return original(*inputs)

    net.forward = counting  # type: ignore[method-assign]
    engine = Engine(net, objective_for("binary"), _training(epochs=3))
    result = engine.fit(source, source)
    assert sum(seen) == 3 * 700
    assert result.history["val_loss"][-1] < result.history["val_loss"][0]


def test_activation_names_match_the_model() -> None:
    assert set(ACTIVATION_NAMES) == set(ACTIVATIONS)


def test_config_check_does_not_import_torch_names() -> None:
    TorchMLPAdapter.check_config("binary", {"hidden_dims": "64,32", "activation": "gelu", "batch_norm": True})
    with pytest.raises(ConfigError, match=r"model\.params\.batch_norm: expected true or false"):
        TorchMLPAdapter.check_config("binary", {"batch_norm": "yes"})
    with pytest.raises(ConfigError, match=r"model\.params\.dropout: expected a number >= 0 and < 1"):
        TorchMLPAdapter.check_config("binary", {"dropout": 1.0})
    with pytest.raises(ConfigError) as every:  # all problems in one message, not one per run
        TorchMLPAdapter.check_config("binary", {"dropout": 1.5, "activation": "rellu", "batch_norm": "yes"})
    assert all(key in str(every.value) for key in ("dropout", "activation", "batch_norm"))


def test_sigterm_during_validation_stops_after_the_epoch_checkpoint(tmp_path: Path) -> None:
    from trainpipe.models.torch import Objective

    engine, train, val = _engine_setup(tmp_path, epochs=3)
    base = objective_for("binary")

    def metric_then_signal(out: Any, y: Any) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)
        return base.metric_sum(out, y)

    engine.module.configure_objective(Objective(base.loss, base.metric_name, metric_then_signal, base.metric_finish))
    with pytest.raises(TrainingInterrupted, match="last.pt"):
        engine.fit(train, val)
    position = ckpt.load(tmp_path / "ckpt" / "last.pt")["position"]
    assert position["epoch"] == 1 and position["micro"] == 0


def test_non_finite_weights_are_never_checkpointed(tmp_path: Path) -> None:
    engine, train, val = _engine_setup(tmp_path, epochs=1, checkpoint_every=3, gradient_clip_norm=None)
    net = engine.model
    calls = {"n": 0}
    original = net.forward

    def poison(*inputs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:  # weights go bad while every loss so far was finite
            with torch.no_grad():
                next(net.parameters()).fill_(float("inf"))
            return torch.zeros_like(original(*inputs)).requires_grad_()
        return original(*inputs)

    net.forward = poison  # type: ignore[method-assign]
    with pytest.raises(TrainingDiverged, match="model weights became NaN or infinite at epoch 1, batch 3 "):
        engine.fit(train, val)
    assert not (tmp_path / "ckpt" / "last.pt").exists()


def test_parquet_chunks_resume_mid_segment_is_bitwise_identical(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    X, y = _data(n=700)
    cols = {f"f{i}": X[:, i] for i in range(4)}
    pq.write_table(pa.table({**cols, "y": y.astype(np.float32)}), tmp_path / "t.parquet", row_group_size=150)

    def make(Xc: np.ndarray, yc: np.ndarray) -> TensorData:
        return TensorData((torch.from_numpy(Xc),), torch.from_numpy(yc.astype(np.float32)).reshape(-1, 1))

    def train(ckpt_dir: Path, resume: bool, stop_at: int | None) -> dict[str, Any]:
        source = ParquetChunks(tmp_path / "t.parquet", list(cols), "y", make)
        torch.manual_seed(0)
        net = TabularMLP(MLPSpec(n_inputs=4, out_dim=1, hidden_dims=(16,), dropout=0.2))
        _sigterm_at_training_call(net, stop_at)
        Engine(net, objective_for("binary"), _training(epochs=2, checkpoint_every=4), checkpoint_dir=ckpt_dir,
               resume=resume).fit(source)
        return net.state_dict()

    reference = train(tmp_path / "ref", False, None)
    with pytest.raises(TrainingInterrupted):
        train(tmp_path / "cut", False, 9)  # 5 row groups of 5 or 4 batches: this is inside a segment
    position = ckpt.load(tmp_path / "cut" / "last.pt")["position"]
    assert position["epoch"] == 0 and position["segment"] > 0 and position["samples_in_segment"] > 0
    resumed = train(tmp_path / "cut", True, None)
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)


def test_unknown_row_is_neutral_when_training_never_saw_an_unknown_code() -> None:
    X, y = _data()
    adapter = _adapter(epochs=1)
    adapter.set_categorical_columns([4])
    adapter.fit(X, y, None, None)
    assert adapter.net is not None
    table = adapter.net.embeddings[0].weight  # type: ignore[index]
    assert torch.count_nonzero(table[0]) == 0  # no gradient ever reached it: still the neutral zero row


def test_damaged_checkpoint_on_resume_is_a_clear_error(tmp_path: Path) -> None:
    from trainpipe import DataError

    X, y = _data()
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "last.pt").write_bytes(b"not a checkpoint")
    adapter = _adapter(epochs=1)
    adapter.configure_checkpoints(folder, resume=True)
    with pytest.raises(DataError, match=r"--resume: the checkpoint .*last\.pt cannot be used .* run without --resume"):
        adapter.fit(X[:500], y[:500], X[500:], y[500:])


def test_resume_without_a_checkpoint_says_it_trained_from_scratch(tmp_path: Path) -> None:
    X, y = _data()
    adapter = _adapter(epochs=1)
    adapter.configure_checkpoints(tmp_path / "none-yet", resume=True)
    report = adapter.fit(X[:500], y[:500], X[500:], y[500:])
    assert any("no checkpoint for these inputs" in n for n in report.notes)


def test_each_ddp_rank_draws_its_own_dropout_seed_from_its_position() -> None:
    from trainpipe.models.torch._setup import rank_step_seed

    seeds = {rank_step_seed(42, rank, epoch, seg, step)
             for rank in range(4) for epoch in range(3) for seg in range(2) for step in range(50)}
    assert len(seeds) == 4 * 3 * 2 * 50  # every rank and position its own stream
    assert all(0 <= s < 2**63 for s in seeds)
    assert rank_step_seed(42, 1, 2, 0, 7) == rank_step_seed(42, 1, 2, 0, 7)  # a resumed run draws the same
    assert rank_step_seed(42, 0, 0, 0, 0) != rank_step_seed(43, 0, 0, 0, 0)


def _batch_norm_setup(n_rows: int, **kw: Any) -> tuple[Engine, TensorData, list[int]]:
    """An engine on a BatchNorm MLP that records the rows of every training forward pass."""
    X, y = _data(n_rows)
    Xt, yt = torch.from_numpy(X[:, :4].copy()), torch.from_numpy(y.astype(np.float32)).reshape(-1, 1)
    torch.manual_seed(0)
    net = TabularMLP(MLPSpec(n_inputs=4, out_dim=1, hidden_dims=(8,), batch_norm=True))
    seen: list[int] = []
    original = net.forward

    def counting(*inputs: Any) -> Any:
        if net.training:
            seen.append(int(inputs[0].shape[0]))
        return original(*inputs)

    net.forward = counting  # type: ignore[method-assign]
    engine = Engine(net, objective_for("binary"), _training(**kw))
    return engine, TensorData((Xt,), yt), seen


@pytest.mark.parametrize(("rows", "batch", "expected"), [
    (23, 22, [23]),  # mtcars' training split with batch_size 22: the tail of 1 row joins the only batch
    (65, 32, [32, 33]),
    (64, 32, [32, 32]),  # no 1-row tail: unchanged
])
def test_batch_norm_folds_a_one_row_tail_into_the_previous_batch(rows: int, batch: int, expected: list[int]) -> None:
    engine, train, seen = _batch_norm_setup(rows, epochs=2, batch_size=batch)
    result = engine.fit(train, train)
    assert seen == expected * 2
    assert len(result.history["train_loss"]) == 2 and np.isfinite(result.history["train_loss"]).all()


def test_without_batch_norm_a_one_row_tail_is_its_own_batch() -> None:
    engine, train, _ = _engine_setup(epochs=1, batch_size=499)  # 500 training rows
    seen: list[int] = []
    original = engine.model.forward

    def counting(*inputs: Any) -> Any:
        seen.append(int(inputs[0].shape[0]))
        return original(*inputs)

    engine.model.forward = counting  # type: ignore[method-assign]
    engine.fit(train)
    assert seen == [499, 1]


def test_batch_norm_with_one_training_row_per_process_is_a_clear_error() -> None:
    from trainpipe import DataError

    engine, train, _ = _batch_norm_setup(1, epochs=1)
    with pytest.raises(DataError, match=r"BatchNorm layers, which need at least 2 training rows per batch, but "
                                        r"there is only 1 training row\..*batch_norm: false"):
        engine.fit(train)
    engine, train, _ = _batch_norm_setup(2, epochs=1)
    engine.dist = DistInfo(rank=0, world_size=2)  # the plan of either rank of a 2-process run: 1 row each
    with pytest.raises(DataError, match=r"only 1 training row per process \(2 processes\).*fewer processes"):
        engine._plan(InMemory(train))
    engine, train, _ = _batch_norm_setup(50, epochs=1, batch_size=1)
    with pytest.raises(ConfigError, match=r"training\.batch_size: the model has BatchNorm layers"):
        engine.fit(train)


def test_batch_norm_skips_a_one_row_parquet_segment(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    X, y = _data(n=151)
    cols = {f"f{i}": X[:, i] for i in range(4)}
    pq.write_table(pa.table({**cols, "y": y.astype(np.float32)}), tmp_path / "t.parquet", row_group_size=75)

    def make(Xc: np.ndarray, yc: np.ndarray) -> TensorData:
        return TensorData((torch.from_numpy(Xc),), torch.from_numpy(yc.astype(np.float32)).reshape(-1, 1))

    source = ParquetChunks(tmp_path / "t.parquet", list(cols), "y", make)
    assert source.segment_lengths() == [75, 75, 1]
    engine, _, seen = _batch_norm_setup(10, epochs=2, batch_size=32)
    with caplog.at_level(logging.WARNING, logger="trainpipe.torch"):
        result = engine.fit(source)
    assert sorted(seen) == sorted([32, 32, 11] * 4)  # the 1-row segment is skipped
    assert "1 data segment(s) of a single row skipped" in caplog.text
    assert np.isfinite(result.history["train_loss"]).all()


def test_batch_norm_fold_resumes_bitwise(tmp_path: Path) -> None:
    def train(ckpt_dir: Path, resume: bool, stop_at: int | None) -> dict[str, Any]:
        engine, data, _ = _batch_norm_setup(97, epochs=2, batch_size=16, checkpoint_every=2,
                                            grad_accum_steps=2)  # batches of 16 x 5 and 17
        net = engine.model
        _sigterm_at_training_call(net, stop_at)
        engine.checkpoints = ckpt.CheckpointDir(ckpt_dir)
        engine.resume = resume
        engine.fit(data, data)
        return net.state_dict()

    reference = train(tmp_path / "ref", False, None)
    with pytest.raises(TrainingInterrupted):
        train(tmp_path / "cut", False, 9)  # epoch 2, before its folded last batch
    position = ckpt.load(tmp_path / "cut" / "last.pt")["position"]
    assert position["epoch"] == 1 and position["micro"] > 0
    resumed = train(tmp_path / "cut", True, None)
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)


@pytest.mark.parametrize("damage", ["garbage{", "", '{"epoch": 1}', '[{"epoch": 1, "metric": 0.5, "file": "../x.pt"}]'])
def test_a_damaged_top_k_list_is_rebuilt_from_the_epoch_files_on_resume(tmp_path: Path, damage: str) -> None:
    X, y = _data()
    adapter = _adapter(epochs=2, params={"hidden_dims": [8], "keep_top_k": 3})
    adapter.configure_checkpoints(tmp_path, resume=False)
    adapter.fit(X[:500], y[:500], X[500:], y[500:])
    listed = json.loads((tmp_path / "topk.json").read_text())
    assert sorted(e["epoch"] for e in listed) == [1, 2]
    (tmp_path / "topk.json").write_text(damage)
    (tmp_path / "epoch-0002.pt").write_bytes(b"damaged too")  # unreadable: left out, then swept as an orphan
    resumed = _adapter(epochs=3, params={"hidden_dims": [8], "keep_top_k": 3})
    resumed.configure_checkpoints(tmp_path, resume=True)
    report = resumed.fit(X[:500], y[:500], X[500:], y[500:])
    assert report.n_iterations == 3
    assert any(n.startswith(f"{tmp_path / 'topk.json'} was damaged (") and "rebuilt it from the epoch checkpoint "
               "files present (epochs kept: 1)" in n for n in report.notes), report.notes
    entries = json.loads((tmp_path / "topk.json").read_text())
    assert sorted(e["epoch"] for e in entries) == [1, 3]
    assert sorted(p.name for p in tmp_path.glob("epoch-*.pt")) == ["epoch-0001.pt", "epoch-0003.pt"]


def test_a_good_top_k_list_gives_no_note_and_a_missing_one_is_rebuilt_quietly(tmp_path: Path) -> None:
    from trainpipe.models.torch import CheckpointDir

    folder = CheckpointDir(tmp_path, keep_top_k=2, mode="min")
    weights = {"w": torch.zeros(2)}
    folder.offer_epoch(1, 0.5, weights)
    folder.offer_epoch(2, 0.4, weights)
    assert folder.repair_topk() is None
    (tmp_path / "topk.json").unlink()  # e.g. killed between the first epoch file and its list
    assert folder.repair_topk() is None and [e["epoch"] for e in folder.topk()] == [2, 1]
    (tmp_path / "topk.json").write_text("[1, 2]")
    assert "TypeError" in (folder.repair_topk() or "")
    assert [e["epoch"] for e in json.loads((tmp_path / "topk.json").read_text())] == [2, 1]


@pytest.mark.parametrize(("first", "second", "code"), [
    (signal.SIGINT, signal.SIGINT, 130),  # a double Ctrl-C
    (signal.SIGTERM, signal.SIGINT, 143),
    (signal.SIGINT, signal.SIGTERM, 143),  # a preemption after a Ctrl-C is still a preemption
])
def test_a_second_signal_while_the_interrupt_checkpoint_is_written_changes_nothing(
        tmp_path: Path, first: int, second: int, code: int) -> None:
    engine, train, val = _engine_setup(tmp_path, epochs=2)
    assert engine.checkpoints is not None
    calls = {"forward": 0, "saves": 0}
    original_forward, original_save = engine.model.forward, engine.checkpoints.save_last

    def forward(*inputs: Any) -> Any:
        calls["forward"] += engine.model.training
        if calls["forward"] == 3:
            os.kill(os.getpid(), first)
        return original_forward(*inputs)

    def save_last(state: dict[str, Any]) -> Path:
        calls["saves"] += 1
        os.kill(os.getpid(), second)  # handled at the next bytecode: in the middle of writing the checkpoint
        return original_save(state)

    engine.model.forward = forward  # type: ignore[method-assign]
    engine.checkpoints.save_last = save_last  # type: ignore[method-assign]
    with pytest.raises(TrainingInterrupted) as info:
        engine.fit(train, val)
    name = signal.Signals(signal.SIGTERM if code == 143 else signal.SIGINT).name
    assert str(info.value) == (f"interrupted by signal {name}; checkpoint written to {tmp_path / 'ckpt' / 'last.pt'}"
                               "; resume with --resume")
    assert info.value.exit_code == code and calls["saves"] == 1
    assert ckpt.load(tmp_path / "ckpt" / "last.pt")["position"]["global_step"] == 3
