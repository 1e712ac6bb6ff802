"""Rich rendering for the CLI: step progress, boosting-round progress, step and run tables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from trainpipe._format import format_number, format_value
from trainpipe._hooks import Hooks
from trainpipe.config._secrets import scrub

if TYPE_CHECKING:
    from trainpipe.pipeline import PipelineResult


class RichHooks(Hooks):
    """Draws one line per step and a bar for boosting rounds / epochs on stderr."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                                 console=console, transient=True)
        self._steps: Any = None
        self._rounds: Any = None

    def __enter__(self) -> RichHooks:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_pipeline_start(self, name: str, steps: list[str]) -> None:
        self._steps = self.progress.add_task(f"pipeline {name}", total=len(steps), info="")

    def on_step_start(self, step: str) -> None:
        if self._steps is not None:
            self.progress.update(self._steps, info=step)

    def on_step_end(self, step: str, status: str, reason: str, seconds: float) -> None:
        colour = {"ran": "green", "cached": "cyan", "failed": "red"}.get(status, "white")
        shown = "" if status == "failed" else escape(reason)  # the error itself is printed once, by the CLI
        self.console.print(f"  [{colour}]{status:>6}[/] {step:<11} {seconds:7.2f}s  [dim]{shown}[/]")
        if self._steps is not None:
            self.progress.advance(self._steps)
        if self._rounds is not None:
            self.progress.remove_task(self._rounds)
            self._rounds = None

    def on_round(self, step: str, iteration: int, total: int, metrics: Mapping[str, float]) -> None:
        if self._rounds is None:
            self._rounds = self.progress.add_task(f"{step} rounds", total=total, info="")
        info = "  ".join(f"{k}={format_number(v)}" for k, v in list(metrics.items())[:2])
        self.progress.update(self._rounds, completed=iteration, total=total, info=info)

    def on_message(self, text: str) -> None:
        # a note may quote an exception or a value from the data: masked like every error the CLI prints
        self.console.print(f"  [yellow]note[/] {escape(scrub(text))}")


def step_table(result: PipelineResult) -> Table:
    table = Table(title=f"run {result.run_id} — {result.status}")
    for col in ("step", "status", "seconds", "cpu s", "reason"):
        table.add_column(col, justify="right" if col in ("seconds", "cpu s") else "left")
    for s in result.steps:
        colour = {"ran": "green", "cached": "cyan", "failed": "red"}.get(s.status, "white")
        table.add_row(s.name, f"[{colour}]{s.status}[/]", f"{s.seconds:.2f}", f"{s.cpu_seconds:.2f}", escape(s.reason))
    return table


def metrics_table(metrics: Mapping[str, float], title: str = "metrics") -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, format_value(v))
    return table
