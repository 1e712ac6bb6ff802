"""Progress hooks: a base class of no-op methods; the CLI overrides them to draw progress.

Many listeners: :class:`HookList` fans every event out to each of them; an exception in one listener is
reported once (as a message to the others) and never breaks the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any


class Hooks:
    """Override what you need; every method does nothing by default."""

    def on_pipeline_start(self, name: str, steps: list[str]) -> None:
        """Called once before the first step."""

    def on_pipeline_end(self, name: str, status: str, seconds: float) -> None:
        """Called once after the last step; ``status`` is ``finished``, ``failed`` or ``interrupted``."""

    def on_step_start(self, step: str) -> None:
        """A step is about to run (or be taken from cache)."""

    def on_step_end(self, step: str, status: str, reason: str, seconds: float) -> None:
        """``status`` is ``ran``, ``cached`` or ``failed``; ``reason`` says why it ran (or the error)."""

    def on_step_error(self, step: str, error: BaseException) -> None:
        """A step raised ``error`` (called before its ``on_step_end`` with status ``failed``)."""

    def on_round(self, step: str, iteration: int, total: int, metrics: Mapping[str, float]) -> None:
        """A boosting round or an epoch ended (1-based ``iteration`` of ``total``)."""

    def on_message(self, text: str) -> None:
        """Something the user should read (an inferred default, a dropped column)."""


_EVENTS = ("on_pipeline_start", "on_pipeline_end", "on_step_start", "on_step_end", "on_step_error", "on_round",
           "on_message")


class HookList(Hooks):
    """Several listeners as one: each event goes to every listener in order. A listener that raises is
    reported once per listener and event (through ``on_message`` of the others) and the run goes on;
    KeyboardInterrupt and other BaseExceptions still propagate."""

    def __init__(self, listeners: Iterable[Hooks] = ()) -> None:
        self.listeners: list[Hooks] = []
        for hooks in listeners:
            self.add(hooks)
        self.errors: list[tuple[str, str, Exception]] = []  # (listener class, event, error)
        self._reported: set[tuple[int, str]] = set()

    def add(self, hooks: Hooks) -> None:
        if isinstance(hooks, HookList):
            self.listeners.extend(hooks.listeners)
        else:
            self.listeners.append(hooks)

    def _fan_out(self, event: str, *args: Any) -> None:
        for hooks in list(self.listeners):
            method: Callable[..., None] = getattr(hooks, event)
            try:
                method(*args)
            except Exception as exc:
                self._report(hooks, event, exc)

    def _report(self, hooks: Hooks, event: str, exc: Exception) -> None:
        self.errors.append((type(hooks).__name__, event, exc))
        key = (id(hooks), event)
        if key in self._reported:
            return
        self._reported.add(key)
        text = (f"hooks: {type(hooks).__name__}.{event} raised {type(exc).__name__}: "
                f"{(str(exc).strip().splitlines() or [''])[0][:200]} (ignored; the run goes on)")
        for other in self.listeners:
            if other is hooks:
                continue
            try:
                other.on_message(text)
            except Exception as again:
                self.errors.append((type(other).__name__, "on_message", again))

    def on_pipeline_start(self, name: str, steps: list[str]) -> None:
        self._fan_out("on_pipeline_start", name, steps)

    def on_pipeline_end(self, name: str, status: str, seconds: float) -> None:
        self._fan_out("on_pipeline_end", name, status, seconds)

    def on_step_start(self, step: str) -> None:
        self._fan_out("on_step_start", step)

    def on_step_end(self, step: str, status: str, reason: str, seconds: float) -> None:
        self._fan_out("on_step_end", step, status, reason, seconds)

    def on_step_error(self, step: str, error: BaseException) -> None:
        self._fan_out("on_step_error", step, error)

    def on_round(self, step: str, iteration: int, total: int, metrics: Mapping[str, float]) -> None:
        self._fan_out("on_round", step, iteration, total, metrics)

    def on_message(self, text: str) -> None:
        self._fan_out("on_message", text)


def as_hooks(hooks: Hooks | Iterable[Hooks] | None) -> HookList:
    """One :class:`HookList` from nothing, one listener or several."""
    if hooks is None:
        return HookList()
    if isinstance(hooks, Hooks):
        return hooks if isinstance(hooks, HookList) else HookList([hooks])
    return HookList(hooks)


class RecordingHooks(Hooks):
    """Keeps every event; for tests and notebooks."""

    def __init__(self) -> None:
        self.events: list[tuple[str, tuple[object, ...]]] = []

    def on_pipeline_start(self, name: str, steps: list[str]) -> None:
        self.events.append(("pipeline_start", (name, steps)))

    def on_pipeline_end(self, name: str, status: str, seconds: float) -> None:
        self.events.append(("pipeline_end", (name, status)))

    def on_step_start(self, step: str) -> None:
        self.events.append(("step_start", (step,)))

    def on_step_end(self, step: str, status: str, reason: str, seconds: float) -> None:
        self.events.append(("step_end", (step, status, reason)))

    def on_step_error(self, step: str, error: BaseException) -> None:
        self.events.append(("step_error", (step, type(error).__name__)))

    def on_round(self, step: str, iteration: int, total: int, metrics: Mapping[str, float]) -> None:
        self.events.append(("round", (step, iteration, total)))

    def on_message(self, text: str) -> None:
        self.events.append(("message", (text,)))

    def names(self, kind: str) -> list[object]:
        """The first argument of every event of ``kind`` (e.g. the step names of ``step_start``)."""
        return [args[0] for k, args in self.events if k == kind]


__all__ = ["HookList", "Hooks", "RecordingHooks", "as_hooks"]
