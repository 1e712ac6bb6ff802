"""How SIGTERM and Ctrl-C reach a running command, and the places where they have to wait.

The command-line handler raises :class:`SignalInterrupt`, a ``KeyboardInterrupt``: a ``BaseException``, so
an ``except Exception`` (trainpipe's own error handling around the registry, MLflow's wrapping of every
store call) cannot turn a preemption into "gate refused", "bad config" or an unexpected error. The CLI
turns it into :class:`~trainpipe.TrainingInterrupted` (exit 128 + signal number) at the top.

:func:`deferred` holds both signals back over a section that must not be cut in the middle (registering a
model and sealing that step; the run's last records) or where Python must not raise at all (native
libraries calling back into Python through ctypes: an exception there is dropped by ctypes and the C++
side goes on with broken state, up to a ``free(): invalid size`` abort). A held signal is raised when the
section ends, or earlier at a safe point that calls :meth:`Deferred.raise_pending`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)


class SignalInterrupt(KeyboardInterrupt):
    """SIGTERM (or a held Ctrl-C) arrived; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by signal {signal.Signals(signum).name}")


def raise_interrupt(signum: int, frame: FrameType | None = None) -> None:
    """The handler the CLI installs for SIGTERM."""
    raise SignalInterrupt(signum)


class Deferred:
    def __init__(self) -> None:
        self.pending: int | None = None

    def _hold(self, signum: int, frame: FrameType | None) -> None:
        if self.pending is None or signum == signal.SIGTERM:
            self.pending = signum

    def raise_pending(self) -> None:
        """At a safe point inside the section: stop now if a signal is held."""
        if self.pending is not None:
            signum, self.pending = self.pending, None
            raise SignalInterrupt(signum)


@contextlib.contextmanager
def deferred() -> Iterator[Deferred]:
    """Hold SIGINT and SIGTERM until the block ends (main thread only; elsewhere signals cannot arrive)."""
    held = Deferred()
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    previous: dict[int, Any] = {}
    for sig in HANDLED:
        previous[sig] = signal.signal(sig, held._hold)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    try:
        yield held
    except BaseException as exc:
        restore()
        if held.pending is not None and not isinstance(exc, KeyboardInterrupt):
            raise SignalInterrupt(held.pending) from exc  # the signal, not what it broke, is the story
        raise
    restore()
    held.raise_pending()


__all__ = ["Deferred", "SignalInterrupt", "deferred", "raise_interrupt"]
