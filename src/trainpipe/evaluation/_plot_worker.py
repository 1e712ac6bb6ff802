"""The evaluation plots drawn in a second process, while the evaluate step goes on with its metrics.

Drawing the four default plots costs about 1 s of one core, most of it importing matplotlib (0.4 s) and
rendering the PNGs, and the evaluate step spent it on the run's critical path. A :class:`PlotWorker` is started
when the run starts (``Step.prepare``); it imports matplotlib and scikit-learn's metrics on the other core while
the run reads, validates and splits the data (one core busy), then waits, idle, on its stdin. The evaluate step
hands it the arrays (an ``.npz`` file, read back with ``allow_pickle=False``), computes its metrics, slices and
latency meanwhile, and collects the PNGs before it finishes: the step's outputs are complete when it ends, as
for every step, so the cache and the run folder never see a half-drawn plot.

When the worker cannot start, dies or answers with an error, the plots are drawn in the step's own process
(:func:`~trainpipe.evaluation._plots.draw_plots`, the same code) and a warning says why. The worker is a plain
``python -m`` child with pipes: it exits when its stdin closes (the run ended, or its parent was killed).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

READY = "ready"


class PlotWorkerError(RuntimeError):
    """The worker could not draw (it died, timed out or raised): the caller draws in-process."""


class PlotWorker:
    """A child process that draws evaluation plots on request; one per run."""

    def __init__(self) -> None:
        env = dict(os.environ)
        env.update({"MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                    "MKL_NUM_THREADS": "1"})
        self.proc: subprocess.Popen[str] | None = subprocess.Popen(
            [sys.executable, "-m", "trainpipe.evaluation._plot_worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
        self._lock = threading.Lock()
        self._scratch: Path | None = None
        self._pending: dict[str, Any] | None = None
        self._had_job = False  # a worker that never got a job is killed at close, not waited for

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def submit(self, plots: tuple[str, ...], y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None,
               labels: list[str], feature_names: list[str], importances: np.ndarray | None,
               out_dir: Path) -> None:
        """Hand over one job; :meth:`collect` waits for it. Raises :class:`PlotWorkerError` at once when the
        worker is gone (the caller then draws in-process)."""
        import numpy as np

        if not self.alive or self.proc is None or self.proc.stdin is None:
            raise PlotWorkerError(self._why_dead())
        self._scratch = Path(tempfile.mkdtemp(prefix="trainpipe-plots-"))
        arrays: dict[str, np.ndarray] = {"y": np.asarray(y), "pred": np.asarray(pred)}
        if proba is not None:
            arrays["proba"] = np.asarray(proba)
        if importances is not None:
            arrays["importances"] = np.asarray(importances, dtype=float)
        data = self._scratch / "plot_data.npz"
        np.savez(data, **arrays)  # type: ignore[arg-type]  # numpy's stub reads the first keyword as allow_pickle
        job = {"data": str(data), "out_dir": str(out_dir), "plots": list(plots), "labels": labels,
               "feature_names": feature_names}
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
        except OSError as exc:
            self._cleanup()
            raise PlotWorkerError(f"the plot worker did not take the job ({exc})") from exc
        self._pending = job
        self._had_job = True

    def collect(self, timeout: float = 120.0) -> list[str]:
        """The file names the worker wrote for the submitted job."""
        if self._pending is None or self.proc is None or self.proc.stdout is None:
            raise PlotWorkerError("no plot job was submitted")
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()  # type: ignore[union-attr]
                                                             ), daemon=True)
        reader.start()
        reader.join(timeout)
        self._pending = None
        self._cleanup()
        if not line or not line[0]:
            self.close()
            raise PlotWorkerError("the plot worker did not answer in time" if reader.is_alive()
                                  else self._why_dead())
        answer = json.loads(line[0])
        if answer.get("error"):
            raise PlotWorkerError(f"the plot worker failed: {answer['error']}")
        return [str(name) for name in answer.get("written", [])]

    def close(self) -> None:
        """End the worker: one that drew a job exits on end of input (killed if it does not within 5 s); one
        that never got a job (the run failed or stopped before evaluate) is killed at once, since it has
        nothing to finish and would otherwise be waited for while it still imports matplotlib (~2 s)."""
        proc, self.proc = self.proc, None
        self._cleanup()
        if proc is None:
            return
        if not self._had_job:
            with contextlib.suppress(OSError):
                proc.kill()
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def _why_dead(self) -> str:
        if self.proc is None:
            return "the plot worker was closed"
        code = self.proc.poll()
        err = ""
        if code is not None and self.proc.stderr is not None:
            with contextlib.suppress(OSError, ValueError):
                err = self.proc.stderr.read()[-300:].strip()
        return f"the plot worker exited with code {code}" + (f": {err}" if err else "")

    def _cleanup(self) -> None:
        if self._scratch is not None:
            import shutil

            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


def start_plot_worker(loaded: Any) -> PlotWorker | None:
    """``Step.prepare`` of the evaluate step: a worker when the run draws plots (``evaluation.plots``), unless
    ``TRAINPIPE_PLOT_WORKER=0``."""
    if not loaded.config.evaluation.plots or os.environ.get("TRAINPIPE_PLOT_WORKER", "1") == "0":
        return None
    try:
        return PlotWorker()
    except OSError:  # no process could be started: the step draws in-process
        return None


def _serve() -> None:
    """The worker's loop: import the drawing libraries now, then draw each job read from stdin."""
    import numpy as np

    from trainpipe.evaluation._plots import draw_plots, import_drawing_libraries

    import_drawing_libraries()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            job = json.loads(line)
            with np.load(job["data"], allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            written = draw_plots(tuple(job["plots"]), arrays["y"], arrays["pred"], arrays.get("proba"),
                                 list(job["labels"]), list(job["feature_names"]), arrays.get("importances"),
                                 Path(job["out_dir"]))
            answer: dict[str, Any] = {"written": written}
        except Exception as exc:  # reported to the step, which draws in-process instead
            answer = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve()
