"""The torch engine's model hooks (``training_step`` & co.) and its Lightning-style callbacks."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import Tensor, nn  # noqa: E402

from trainpipe import TrainingInterrupted  # noqa: E402
from trainpipe.config import TrainingConfig  # noqa: E402
from trainpipe.models.torch import (  # noqa: E402
    Callback,
    EarlyStopping,
    Engine,
    EngineResult,
    MetricReporter,
    MLPSpec,
    TabularMLP,
    TensorData,
    TrainpipeModule,
    objective_for,
)
from trainpipe.models.torch import _checkpoint as ckpt  # noqa: E402


def _training(**kw: Any) -> TrainingConfig:
    base: dict[str, Any] = {"epochs": 4, "batch_size": 32, "learning_rate": 0.01, "seed": 3, "scheduler": "none"}
    return TrainingConfig(**{**base, **kw})


class TwoTower(TrainpipeModule):
    """Queries and items embedded by two towers; the loss is a softmax over every item of the batch
    (in-batch negatives): row i's positive is item i, the other rows' items are its negatives."""

    validation_keys = ("loss", "hits", "count")

    def __init__(self, dim: int = 8, width: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        self.query = nn.Sequential(nn.Linear(dim, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, 8))
        self.item = nn.Sequential(nn.Linear(dim, width), nn.ReLU(), nn.Linear(width, 8))
        self.calls = 0  # training steps so far
        self.stop_at: int | None = None  # send SIGTERM during this training step

    def scores(self, queries: Tensor, items: Tensor) -> Tensor:
        q = nn.functional.normalize(self.query(queries), dim=1)
        d = nn.functional.normalize(self.item(items), dim=1)
        return q @ d.T / 0.1

    def training_step(self, batch: Any) -> Tensor:
        (queries, items), _ = batch
        self.calls += 1
        if self.calls == self.stop_at:
            os.kill(os.getpid(), signal.SIGTERM)
        logits = self.scores(queries, items)
        return nn.functional.cross_entropy(logits, torch.arange(logits.shape[0], device=logits.device))

    def validation_step(self, batch: Any) -> Mapping[str, Tensor]:
        (queries, items), _ = batch
        logits = self.scores(queries, items).float()
        labels = torch.arange(logits.shape[0], device=logits.device)
        n = float(logits.shape[0])
        return {"loss": nn.functional.cross_entropy(logits, labels, reduction="sum"),
                "hits": (logits.argmax(dim=1) == labels).sum(), "count": torch.tensor(n)}

    def validation_epoch_end(self, totals: Mapping[str, float]) -> dict[str, float]:
        n = max(totals["count"], 1.0)
        return {"val_loss": totals["loss"] / n, "val_top1": totals["hits"] / n}


def _pairs(n: int, seed: int = 0) -> TensorData:
    """Query/item feature pairs that share a latent vector; the target is not used by the module."""
    fixed = torch.Generator().manual_seed(1234)  # the same towers' targets for every split
    mix_q, mix_d = torch.randn(4, 8, generator=fixed), torch.randn(4, 8, generator=fixed)
    gen = torch.Generator().manual_seed(seed)
    latent = torch.randn(n, 4, generator=gen)
    queries = latent @ mix_q + 0.1 * torch.randn(n, 8, generator=gen)
    items = latent @ mix_d + 0.1 * torch.randn(n, 8, generator=gen)
    return TensorData((queries, items), torch.zeros(n))


def test_an_in_batch_contrastive_training_step_trains_through_the_engine() -> None:
    torch.manual_seed(0)
    module = TwoTower()
    result = Engine(module, None, _training(epochs=6, learning_rate=0.01)).fit(_pairs(512), _pairs(128, seed=1))
    train, val = result.history["train_loss"], result.history["val_loss"]
    assert set(result.history) == {"train_loss", "val_loss", "val_top1"}
    assert train[-1] < 0.6 * train[0] and val[-1] < val[0]
    # 128 candidates in one validation batch: chance is 1/128
    top1 = result.history["val_top1"]
    assert top1[-1] > max(0.3, top1[0])
    assert module.calls == 6 * 16


class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def _at(self, engine: Engine) -> tuple[int, int, int]:
        return engine.state.epoch, engine.state.micro, engine.state.global_step

    def on_fit_start(self, engine: Engine) -> None:
        self.events.append(("fit_start",))

    def on_epoch_start(self, engine: Engine, epoch: int) -> None:
        self.events.append(("epoch_start", epoch, *self._at(engine)))

    def on_train_batch_end(self, engine: Engine, loss: Tensor) -> None:
        assert loss.requires_grad is False and loss.ndim == 0
        self.events.append(("batch", *self._at(engine)))

    def on_validation_end(self, engine: Engine, epoch: int, metrics: Mapping[str, float]) -> None:
        self.events.append(("validation_end", epoch, sorted(metrics)))

    def on_train_epoch_end(self, engine: Engine, epoch: int, metrics: Mapping[str, float]) -> None:
        self.events.append(("train_epoch_end", epoch, *self._at(engine)))

    def on_checkpoint(self, engine: Engine, path: Any) -> None:
        assert Path(path).name == "last.pt" and Path(path).exists()
        self.events.append(("checkpoint", *self._at(engine)))

    def on_epoch_end(self, engine: Engine, epoch: int, metrics: Mapping[str, float]) -> None:
        self.events.append(("epoch_end", epoch, engine.state.epoch))

    def on_fit_end(self, engine: Engine, result: EngineResult) -> None:
        self.events.append(("fit_end", result.n_epochs, result.best_epoch))


def test_callbacks_see_every_event_in_order_with_epoch_and_step(tmp_path: Path) -> None:
    """100 rows in batches of 32: micro-batches of 32, 32, 32, 4; two per optimizer step (grad_accum_steps=2);
    a periodic checkpoint after every optimizer step except the epoch's last, which the epoch checkpoint covers."""
    torch.manual_seed(0)
    recorder = Recorder()
    engine = Engine(TwoTower(), None, _training(epochs=2, grad_accum_steps=2, checkpoint_every=1),
                    callbacks=[recorder], checkpoint_dir=tmp_path)
    reported: list[tuple[int, int]] = []
    result = engine.fit(_pairs(100), _pairs(40, seed=1), lambda e, total, m: reported.append((e, total)))
    epoch = []
    for e in (1, 2):
        s = 2 * (e - 1)  # optimizer steps before this epoch (0-based position e - 1)
        epoch += [("epoch_start", e, e - 1, 0, s),
                  ("batch", e - 1, 1, s), ("batch", e - 1, 2, s + 1), ("checkpoint", e - 1, 2, s + 1),
                  ("batch", e - 1, 3, s + 1), ("batch", e - 1, 4, s + 2),
                  ("validation_end", e, ["train_loss", "val_loss", "val_top1"]),
                  ("train_epoch_end", e, e - 1, 4, s + 2),
                  ("checkpoint", e, 0, s + 2),  # the epoch's checkpoint: the position is the next epoch's start
                  ("epoch_end", e, e)]
    assert recorder.events == [("fit_start",), *epoch, ("fit_end", 2, result.best_epoch)]
    assert reported == [(1, 2), (2, 2)]  # fit(on_epoch=...) is a MetricReporter after the others


def test_per_step_reporting_reads_the_mean_loss_every_n_steps() -> None:
    torch.manual_seed(0)
    steps: list[tuple[int, float]] = []
    losses: list[float] = []

    class Losses(Callback):
        def on_train_batch_end(self, engine: Engine, loss: Tensor) -> None:
            losses.append(float(loss))

    engine = Engine(TwoTower(), None, _training(epochs=1, batch_size=64),
                    callbacks=[MetricReporter(on_step=lambda s, v: steps.append((s, v)), every_n_steps=3), Losses()])
    engine.fit(_pairs(640))  # 10 optimizer steps
    assert [s for s, _ in steps] == [3, 6, 9]
    for i, (_, mean) in enumerate(steps):
        assert mean == pytest.approx(np.mean(losses[3 * i:3 * i + 3]), rel=1e-6)


def _noise_fit(patience: int, callbacks: list[Callback] | None = None) -> EngineResult:
    rng = np.random.default_rng(0)
    X = torch.from_numpy(rng.normal(size=(300, 5)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 2, size=300).astype(np.float32)).reshape(-1, 1)  # noise: overfits
    torch.manual_seed(1)
    net = TabularMLP(MLPSpec(n_inputs=5, out_dim=1, hidden_dims=(64, 64), dropout=0.0))
    training = _training(epochs=40, learning_rate=0.02, seed=5, early_stopping_patience=patience)
    engine = Engine(net, objective_for("binary"), training, callbacks=callbacks or [])
    return engine.fit(TensorData((X[:200],), y[:200]), TensorData((X[200:],), y[200:]))


# (epochs run, best epoch) that the engine gave before early stopping became a callback (commit 728bb71)
@pytest.mark.parametrize(("patience", "epochs", "best"), [(1, 3, 2), (2, 4, 2), (4, 6, 2)])
def test_early_stopping_callback_stops_at_the_same_epoch_as_before(patience: int, epochs: int, best: int) -> None:
    result = _noise_fit(patience)
    assert (result.n_epochs, result.best_epoch, result.stopped_early) == (epochs, best, True)
    assert result.history["val_loss"][:3] == pytest.approx([0.703673, 0.694498, 0.703868], abs=1e-6)


def test_a_given_early_stopping_replaces_the_default_one() -> None:
    stopper = EarlyStopping(patience=1, monitor="val_accuracy", mode="max")
    result = _noise_fit(patience=30, callbacks=[stopper])
    accuracy = result.history["val_accuracy"]
    assert result.stopped_early and result.n_epochs < 30
    assert accuracy[-1] <= max(accuracy[:-1]) and result.best_epoch == int(np.argmax(accuracy)) + 1
    with pytest.raises(ValueError, match="EarlyStopping mode: expected 'min' or 'max', got 'up'"):
        EarlyStopping(patience=1, mode="up")


def test_resume_mid_epoch_with_a_custom_training_step_is_bitwise_identical(tmp_path: Path) -> None:
    def fit(folder: Path, resume: bool, stop_at: int | None) -> tuple[dict[str, Any], EngineResult, TwoTower]:
        torch.manual_seed(0)
        module = TwoTower(dropout=0.3)  # dropout: the resumed run must also restore the RNG
        module.stop_at = stop_at
        training = _training(epochs=3, batch_size=48, grad_accum_steps=2, checkpoint_every=2, scheduler="cosine",
                             optimizer="adam")
        engine = Engine(module, None, training, checkpoint_dir=folder, resume=resume,
                        callbacks=[MetricReporter(on_step=lambda s, v: None, every_n_steps=3)])
        result = engine.fit(_pairs(300), _pairs(60, seed=1))
        return module.state_dict(), result, module

    reference, ref_result, _ = fit(tmp_path / "ref", False, None)
    with pytest.raises(TrainingInterrupted, match="interrupted by signal SIGTERM; checkpoint written to"):
        fit(tmp_path / "cut", False, 17)  # 7 micro-batches an epoch: in the middle of epoch 3
    saved = ckpt.load(tmp_path / "cut" / "last.pt")
    assert saved["position"]["epoch"] == 2 and saved["position"]["micro"] > 0
    assert set(saved["callbacks"]) == {"early_stopping", "MetricReporter"}
    resumed, result, module = fit(tmp_path / "cut", True, None)
    assert result.resumed_from is not None and module.calls < 21 - 14
    assert reference.keys() == resumed.keys()
    for key in reference:
        assert torch.equal(reference[key], resumed[key]), f"{key} differs after resume"
    assert result.history == ref_result.history and result.best_epoch == ref_result.best_epoch


def test_a_plain_module_with_an_objective_trains_and_checkpoints_its_own_keys(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    X = torch.randn(200, 4)
    y = (X[:, :1] > 0).float()
    result = Engine(net, objective_for("binary"), _training(epochs=5, learning_rate=0.05), checkpoint_dir=tmp_path).fit(
        TensorData((X,), y), TensorData((X,), y))
    assert result.history["val_accuracy"][-1] > 0.8
    assert set(ckpt.load(tmp_path / "last.pt")["model"]) == set(net.state_dict())  # no wrapper prefix


def test_a_module_without_a_loss_or_with_wrong_keys_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="Sequential is a plain nn.Module: pass an Objective to the Engine"):
        Engine(nn.Sequential(nn.Linear(2, 1)), None, _training())

    class NoObjective(TrainpipeModule):
        def forward(self, x: Tensor) -> Tensor:
            return x

    with pytest.raises(TypeError, match="NoObjective has no objective: pass one to the Engine"):
        NoObjective().training_step(((torch.zeros(1, 1),), torch.zeros(1, 1)))

    class WrongKeys(TwoTower):
        def validation_step(self, batch: Any) -> Mapping[str, Tensor]:
            return {"loss": torch.tensor(1.0)}

    torch.manual_seed(0)
    with pytest.raises(TypeError, match=r"WrongKeys.validation_step returned the keys \['loss'\], but its "
                                        r"validation_keys are \['loss', 'hits', 'count'\]"):
        Engine(WrongKeys(), None, _training(epochs=1)).fit(_pairs(64), _pairs(16))


def test_a_checkpoint_written_before_callbacks_still_resumes(tmp_path: Path) -> None:
    """Format 1 kept early stopping's fields at the top level of last.pt; a resume maps them to the callback."""
    def fit(folder: Path, resume: bool, stop_at: int | None) -> tuple[dict[str, Any], EngineResult]:
        torch.manual_seed(0)
        module = TwoTower()
        module.stop_at = stop_at
        engine = Engine(module, None, _training(epochs=3, batch_size=64, checkpoint_every=2), checkpoint_dir=folder,
                        resume=resume)
        return module.state_dict(), engine.fit(_pairs(256), _pairs(64, seed=1))

    reference, ref_result = fit(tmp_path / "ref", False, None)
    with pytest.raises(TrainingInterrupted):
        fit(tmp_path / "cut", False, 7)  # epoch 2 of 3 (4 steps an epoch)
    last = tmp_path / "cut" / "last.pt"
    state = ckpt.load(last)
    stopping = state.pop("callbacks")["early_stopping"]
    assert stopping["best_epoch"] == 1
    ckpt.atomic_save({**state, **stopping, "format": 1}, last)
    resumed, result = fit(tmp_path / "cut", True, None)
    assert result.resumed_from is not None
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
    assert result.best_epoch == ref_result.best_epoch and result.history == ref_result.history
