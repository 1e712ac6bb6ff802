"""Exceptions raised by trainpipe.

The tree::

    TrainpipeError                 root of everything trainpipe raises on purpose
    ├── ConfigError                bad pipeline file, override or CLI input        (exit 2)
    ├── DataError                  data that cannot be read or used as given       (exit 2)
    ├── MissingExtraError          an optional dependency is not installed         (exit 2)
    ├── DataValidationError        declared or inferred data checks failed         (exit 3)
    ├── GateRefused                the quality gate refused the model              (exit 4)
    ├── TrainingDiverged           the training loss became NaN or infinite        (exit 2)
    ├── TrackingUnavailable        the tracking server stopped answering mid-run   (exit 2)
    ├── StoreError                 a store refused a write (run records, ...)      (exit 2)
    ├── TuningFailed               a study ended with no completed trial           (exit 2)
    ├── StorageFull                no space left on a device the run writes to     (exit 2)
    └── TrainingInterrupted        SIGTERM/SIGINT while a step was running         (exit 130/143)

Every message says what was found, what was expected and what to do about it.
"""

from __future__ import annotations

from typing import Any


class TrainpipeError(Exception):
    """Root of every error trainpipe raises on purpose."""

    exit_code: int = 1


class ConfigError(TrainpipeError):
    """The pipeline file, a profile, an override or a CLI argument is invalid."""

    exit_code = 2


class DataError(TrainpipeError):
    """The data cannot be read, or cannot be used the way the config asks."""

    exit_code = 2


class MissingExtraError(TrainpipeError):
    """An optional dependency is needed but not installed."""

    exit_code = 2

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(
            f"{purpose} needs the '{module}' package, which is not installed. "
            f'Install it with: pip install "trainpipe[{extra}]"'
        )


class DataValidationError(TrainpipeError):
    """Data checks failed; ``report`` holds the failed checks."""

    exit_code = 3

    def __init__(self, message: str, report: Any = None) -> None:
        self.report = report
        super().__init__(message)


class GateRefused(TrainpipeError):
    """The quality gate refused the model; nothing was registered."""

    exit_code = 4


class TrainingDiverged(TrainpipeError):
    """The training loss became NaN or infinite; the message names the step and the last good checkpoint."""

    exit_code = 2


class TrackingUnavailable(TrainpipeError):
    """The tracking server could not be reached (bounded retries spent). Nothing is lost: the run directory
    holds the step outputs and a journal of what was not sent; ``trainpipe runs sync RUN_ID`` uploads it."""

    exit_code = 2


class StoreError(TrainpipeError):
    """A tracking or registry store was reached but refused a write (permissions, a read-only or locked
    database, a full artifact folder); the message names the store and what to check. Not a config problem."""

    exit_code = 2


class TuningFailed(TrainpipeError):
    """A study ended without one completed trial; the message counts failed and pruned trials, quotes the first
    trial errors and names what to change (``tuning.space``, ``model.params``, the budget)."""

    exit_code = 2


class StorageFull(TrainpipeError):
    """A write failed for lack of space (ENOSPC) or quota (EDQUOT); the message names the path."""

    exit_code = 2


class TrainingInterrupted(TrainpipeError):
    """A signal stopped the run; ``exit_code`` is 128 + the signal number."""

    def __init__(self, signum: int, message: str) -> None:
        self.exit_code = 128 + signum
        super().__init__(message)


__all__ = [
    "ConfigError",
    "DataError",
    "DataValidationError",
    "GateRefused",
    "MissingExtraError",
    "StorageFull",
    "StoreError",
    "TrackingUnavailable",
    "TrainingDiverged",
    "TrainingInterrupted",
    "TrainpipeError",
    "TuningFailed",
]
