"""The evaluation plots drawn by a worker process started with the run (issue 19 item 10): the same files as
drawn in-process, a dead worker falls back with a note, and no worker outlives its run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_frame, write_pipeline
from trainpipe import RecordingHooks
from trainpipe.config import load_config
from trainpipe.evaluation._plot_worker import PlotWorker, PlotWorkerError
from trainpipe.evaluation._plots import draw_plots
from trainpipe.pipeline import PipelineRunner
from trainpipe.tracking import InMemoryTracker


def _arrays(k: int = 2, n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, k, n)
    proba = rng.dirichlet(np.ones(k), n)
    return y, proba.argmax(axis=1), proba


def test_the_worker_draws_what_the_step_would_draw_itself(tmp_path: Path) -> None:
    y, pred, proba = _arrays(3)
    labels, names, importances = ["a", "b", "<c>"], ["f1", "f2"], np.array([0.7, 0.3])
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    expected = draw_plots(("confusion_matrix", "roc_pr"), y, pred, proba, labels, names, importances, here)
    worker = PlotWorker()
    try:
        worker.submit(("confusion_matrix", "roc_pr"), y, pred, proba, labels, names, importances, there)
        written = worker.collect(timeout=120)
        assert worker.alive  # it serves the next job of the run too
    finally:
        worker.close()
    assert written == expected == ["confusion_matrix.png", "roc_curve.png", "pr_curve.png",
                                   "feature_importance.png"]
    for name in written:
        assert (there / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (there / name).stat().st_size > 5000  # a drawn figure, not an empty canvas
    assert worker.proc is None


def test_a_job_the_worker_cannot_draw_is_reported_not_hung(tmp_path: Path) -> None:
    y, pred, _ = _arrays(2)
    worker = PlotWorker()
    try:
        # out_dir that cannot be written: the worker answers with the error, the caller draws in-process
        worker.submit(("confusion_matrix",), y, pred, None, ["0", "1"], [], None, tmp_path / "missing" / "dir")
        with pytest.raises(PlotWorkerError, match=r"the plot worker failed: FileNotFoundError"):
            worker.collect(timeout=120)
    finally:
        worker.close()


def test_a_dead_worker_is_said_at_submit(tmp_path: Path) -> None:
    worker = PlotWorker()
    assert worker.proc is not None
    worker.proc.kill()
    worker.proc.wait()
    y, pred, _ = _arrays(2)
    with pytest.raises(PlotWorkerError, match=r"the plot worker exited with code -9"):
        worker.submit(("confusion_matrix",), y, pred, None, ["0", "1"], [], None, tmp_path)
    worker.close()


@pytest.mark.slow
def test_a_run_draws_its_plots_in_the_worker_and_falls_back_when_it_died(workdir: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import trainpipe.evaluation._plot_worker as pw

    make_frame(300).to_csv(workdir / "data.csv", index=False)
    path = write_pipeline(workdir, "name: plots\ndata: {source: data.csv, target: label}\n"
                                   "model: {type: sklearn.linear_model.LogisticRegression}\n"
                                   "evaluation: {latency: false}\n")
    started: list[PlotWorker] = []
    original = pw.PlotWorker.__init__

    def record(self: PlotWorker) -> None:
        original(self)
        started.append(self)

    monkeypatch.setattr(pw.PlotWorker, "__init__", record)
    result = PipelineRunner(load_config(path), workdir=workdir, tracker=InMemoryTracker()).run()
    folder = result.run_dir / "steps" / "evaluate"
    assert {"confusion_matrix.png", "roc_curve.png", "pr_curve.png"} <= {p.name for p in folder.iterdir()}
    assert len(started) == 1 and started[0].proc is None  # closed when the run ended
    assert not list(folder.glob("*.npz"))  # the hand-over file is not an output of the step

    # a worker that died before evaluate: the plots are still drawn, and the run says why
    def dead(self: PlotWorker) -> None:
        original(self)
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    monkeypatch.setattr(pw.PlotWorker, "__init__", dead)
    hooks = RecordingHooks()
    again = PipelineRunner(load_config(path, overrides=["model.params.C=0.5"]), workdir=workdir,
                           tracker=InMemoryTracker(), hooks=hooks).run()
    assert again.step("evaluate").status == "ran"
    folder = again.run_dir / "steps" / "evaluate"
    assert {"confusion_matrix.png", "roc_curve.png", "pr_curve.png"} <= {p.name for p in folder.iterdir()}
    messages = [str(args[0]) for kind, args in hooks.events if kind == "message"]
    assert any("plots drawn in the step's own process: the plot worker exited" in m for m in messages), messages


def test_no_worker_when_plots_are_off(workdir: Path) -> None:
    from trainpipe.evaluation._plot_worker import start_plot_worker

    make_frame(50).to_csv(workdir / "data.csv", index=False)
    path = write_pipeline(workdir, "name: np\ndata: {source: data.csv, target: label}\n"
                                   "model: {type: sklearn.linear_model.LogisticRegression}\n"
                                   "evaluation: {plots: false}\n")
    assert start_plot_worker(load_config(path)) is None


def test_a_worker_that_never_got_a_job_is_killed_at_close_not_waited_for(tmp_path: Path) -> None:
    import signal

    idle = PlotWorker()
    proc = idle.proc
    assert proc is not None
    idle.close()  # at once: it may still be importing matplotlib
    assert proc.returncode == -signal.SIGKILL
    busy = PlotWorker()
    busy.submit(("confusion_matrix",), np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), None, ["0", "1"], [],
                None, tmp_path)
    assert busy.collect() == ["confusion_matrix.png"]
    proc = busy.proc
    busy.close()
    assert proc is not None and proc.returncode == 0  # a worker that drew a job ends on end of input
