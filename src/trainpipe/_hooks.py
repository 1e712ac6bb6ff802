"""Progress hooks: a base class of no-op methods; the CLI overrides them to draw progress."""

from __future__ import annotations

from collections.abc import Mapping


class Hooks:
    """Override what you need; every method does nothing by default."""

    def on_pipeline_start(self, name: str, steps: list[str]) -> None:
        """Called once before the first step."""

    def on_step_start(self, step: str) -> None:
        """A step is about to run (or be taken from cache)."""

    def on_step_end(self, step: str, status: str, reason: str, seconds: float) -> None:
        """``status`` is ``ran`` or ``cached``; ``reason`` says why it ran."""

    def on_round(self, step: str, iteration: int, total: int, metrics: Mapping[str, float]) -> None:
        """A boosting round or an epoch ended (1-based ``iteration`` of ``total``)."""

    def on_message(self, text: str) -> None:
        """Something the user should read (an inferred default, a dropped column)."""


class RecordingHooks(Hooks):
    """Keeps every event; for tests and notebooks."""

    def __init__(self) -> None:
        self.events: list[tuple[str, tuple[object, ...]]] = []

    def on_pipeline_start(self, name: str, steps: list[str]) -> None:
        self.events.append(("pipeline_start", (name, steps)))

    def on_step_start(self, step: str) -> None:
        self.events.append(("step_start", (step,)))

    def on_step_end(self, step: str, status: str, reason: str, seconds: float) -> None:
        self.events.append(("step_end", (step, status, reason)))

    def on_round(self, step: str, iteration: int, total: int, metrics: Mapping[str, float]) -> None:
        self.events.append(("round", (step, iteration, total)))

    def on_message(self, text: str) -> None:
        self.events.append(("message", (text,)))
