"""The study's trial queue, through Optuna's public API only: claims, heartbeats, dead workers, retries.

Optuna keeps the storage a study uses private (and wraps an RDB storage in a cache), so :class:`QueueStudy`
keeps the storage trainpipe opened for it (:func:`~trainpipe.tuning.open_storage`) and the study's id there;
every claim, heartbeat and state change goes through that object's public ``BaseStorage`` methods
(``get_all_trials``, ``get_trial_id_from_study_id_trial_number``, ``set_trial_state_values``,
``record_heartbeat``, ``get_trial``), and dead trials are failed with ``optuna.storages.fail_stale_trials``
and queued again with Optuna's retry callback.

This module imports Optuna at its top: import it only inside functions (``trainpipe.tuning`` stays cheap).
"""

from __future__ import annotations

import contextlib
import copy
import os
import socket
import threading
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from trainpipe._locks import sqlite_file_lock
from trainpipe._procs import pid_alive
from trainpipe.tuning._selection import DEFAULTS_ATTR
from trainpipe.tuning._storage import StorageSpec, retry_callback

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

WORKER_ATTR = "trainpipe.worker"


class QueueStudy(optuna.Study):
    """An Optuna study that keeps the storage trainpipe opened for it, its spec, and the study's id there."""

    def __init__(self, study_name: str, storage: BaseStorage, spec: StorageSpec, sampler: Any = None,
                 pruner: Any = None) -> None:
        super().__init__(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
        self.queue_storage = storage
        self.storage_spec = spec
        self.study_id = int(storage.get_study_id_from_name(study_name))

    def for_trial(self, sampler: Any) -> optuna.Study:
        """A fresh study object on the same storage for one trial: its sampler sees every worker's latest
        trials (a study object caches the trial list it samples from within a trial)."""
        study = optuna.load_study(study_name=self.study_name, storage=self.queue_storage, sampler=sampler,
                                  pruner=self.pruner)
        # Optuna wraps an RDB storage in a cache that records a trial's parameters only for trials it has read:
        # TPE reads them all before it samples, the random and grid samplers read none (KeyError: trial id)
        study.get_trials(deepcopy=False)
        return study

    def trial_id(self, number: int) -> int:
        return int(self.queue_storage.get_trial_id_from_study_id_trial_number(self.study_id, number))


def as_queue_study(study: Any) -> QueueStudy:
    if not isinstance(study, QueueStudy):
        raise TypeError(f"run_study(study=...): expected the study open_study returned, got {type(study).__name__}.")
    return study


def _beating(study: QueueStudy) -> optuna.storages.RDBStorage | None:
    """The study's storage when it records heartbeats (an RDB storage with an interval), else None."""
    storage = study.queue_storage
    if isinstance(storage, optuna.storages.RDBStorage) and storage.get_heartbeat_interval() is not None:
        return storage
    return None


def heartbeat_enabled(study: QueueStudy) -> bool:
    return _beating(study) is not None


def claim(study: QueueStudy, only_defaults: bool = False) -> int | None:
    """Take one WAITING trial for this worker (only the defaults' trial: ``only_defaults``); its id, or None."""
    storage = study.queue_storage
    beating = _beating(study)
    # Optuna checks "still WAITING?" with a SELECT and then UPDATEs; PostgreSQL holds the row (FOR UPDATE)
    # in between, but SQLite ignores FOR UPDATE and Python's sqlite3 runs the SELECT outside the write
    # transaction, so two workers could both see WAITING and both run the trial: claims on SQLite are serial.
    with sqlite_file_lock(study.storage_spec.url if study.storage_spec.kind == "rdb" else ""):
        for frozen in storage.get_all_trials(study.study_id, deepcopy=False, states=(TrialState.WAITING,)):
            if only_defaults and not frozen.user_attrs.get(DEFAULTS_ATTR):
                continue
            trial_id = study.trial_id(frozen.number)
            try:
                if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                    if beating is not None:  # at once: a RUNNING trial without a beat can never go stale
                        beating.record_heartbeat(trial_id)
                    return trial_id
            except UpdateFinishedTrialError:
                continue
    return None


@contextlib.contextmanager
def heartbeat(study: QueueStudy, trial_id: int) -> Iterator[None]:
    """Record the trial's heartbeat every interval while the block runs (RDB storages)."""
    storage = _beating(study)
    if storage is None:
        yield
        return
    interval = float(storage.get_heartbeat_interval() or 10)
    stop = threading.Event()

    def beat() -> None:
        while True:
            with contextlib.suppress(Exception):  # a lost beat is retried at the next interval
                storage.record_heartbeat(trial_id)
            if stop.wait(interval):
                return

    storage.record_heartbeat(trial_id)
    thread = threading.Thread(target=beat, name=f"optuna-heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def retry(study: QueueStudy, trial_id: int) -> None:
    """Queue the (failed) trial again with its parameters, unless it was retried already."""
    retry_callback()(study, copy.deepcopy(study.queue_storage.get_trial(trial_id)))


def recover_dead_trials(study: QueueStudy) -> None:
    """Fail (and retry once) RUNNING trials whose worker is gone: heartbeat on RDB storages; on others, a
    worker process on this host that no longer exists."""
    if heartbeat_enabled(study):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        return
    host = socket.gethostname()
    storage = study.queue_storage
    for frozen in storage.get_all_trials(study.study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        owner = str(frozen.user_attrs.get(WORKER_ATTR, ""))
        owner_host, _, pid = owner.rpartition(":")
        if owner_host != host or not pid.isdigit() or int(pid) == os.getpid() or pid_alive(int(pid)):
            continue
        trial_id = study.trial_id(frozen.number)
        try:
            storage.set_trial_user_attr(trial_id, "error", f"worker {owner} died")
            if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                retry(study, trial_id)
        except UpdateFinishedTrialError:
            continue
