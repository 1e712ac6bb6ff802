"""Runs whose process died without a word (SIGKILL, the OOM killer, a power cut) are marked KILLED.

Every run directory gets ``owner.json`` when the run starts: the process id, the host name and the process's
start time (so a recycled pid is not taken for the run's own process). A run still ``running`` in its
``run.json`` whose host is this one and whose process is gone is marked ``killed`` there, and KILLED in the
tracking store (its pipeline run and the step runs it left open) when the store is at hand; otherwise the
journal keeps the KILLED for ``trainpipe runs sync``.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

OWNER_FILE = "owner.json"


def process_start(pid: int) -> str:
    """The kernel's start time of ``pid`` (clock ticks since boot, from /proc), or "" where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


def write_owner(run_dir: Path) -> None:
    pid = os.getpid()
    owner = {"pid": pid, "host": socket.gethostname(), "process_start": process_start(pid),
             "started_at": time.time()}
    tmp = run_dir / f".{OWNER_FILE}.tmp"
    tmp.write_text(json.dumps(owner))
    tmp.replace(run_dir / OWNER_FILE)


def alive(pid: int, started: str) -> bool:
    """Is ``pid`` still the process that wrote ``started`` (its start time)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    now = process_start(pid)
    return not (started and now and now != started)


def dead_here(run_dir: Path) -> bool:
    """True when the run's recorded owner ran on this host and is gone."""
    try:
        owner = json.loads((run_dir / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return False
    if owner.get("host") != socket.gethostname():
        return False
    return not alive(int(owner.get("pid", 0)), str(owner.get("process_start", "")))


def _open_runs(run_dir: Path, parent: str) -> list[str]:
    """Tracked runs of this run (its pipeline run first) that were started and never ended, per the journal."""
    from trainpipe.tracking._journal import read_journal

    ops, _, _ = read_journal(run_dir)
    started = [str(op["run"]) for op in ops if op.get("op") == "start_run"]
    ended = {str(op["run"]) for op in ops if op.get("op") == "end_run"}
    ordered = [parent] + [r for r in started if r != parent]
    return [r for r in dict.fromkeys(ordered) if r not in ended and (r in started or r == parent)]


def mark_killed_runs(state_dir: Path, store: Any = None) -> list[str]:
    """Mark this host's runs under ``state_dir/runs`` whose process is dead as killed; returns their ids.

    ``store``: a tracker (its ``uri`` is the redacted URI run.json records, its ``inner`` or itself has
    ``end_run``) or an ``MlflowClient``; its runs are ended KILLED when the URI is the run's. Best effort:
    nothing here stops the command that called it.
    """
    from trainpipe.pipeline._records import PipelineResult
    from trainpipe.tracking._journal import OFFLINE_PREFIX, append, read_journal

    marked: list[str] = []
    runs = state_dir / "runs"
    if not runs.is_dir():
        return marked
    for run_file in sorted(runs.glob("*/run.json")):
        run_dir = run_file.parent
        try:
            result = PipelineResult.read(run_file)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if result.status != "running" or not dead_here(run_dir):
            continue
        result.status = "killed"
        result.error = ("the process running it ended without a word (SIGKILL, the out-of-memory killer or a "
                        "machine stop); found by a later trainpipe command on this host")
        try:
            result.write(run_file)
        except OSError:
            continue
        marked.append(result.run_id)
        if not result.tracking_uri:
            continue
        ops, _, _ = read_journal(run_dir)
        seq = max((int(op.get("seq", 0)) for op in ops), default=0)
        end = _ender(store, result.tracking_uri)
        for run_id in _open_runs(run_dir, result.run_id):
            seq += 1
            append(run_dir, [{"op": "end_run", "run": run_id, "status": "KILLED", "seq": seq, "at": time.time()}])
            if end is None or run_id.startswith(OFFLINE_PREFIX):
                continue
            try:
                end(run_id)
            except Exception:  # unreachable or gone: the journal keeps it for runs sync
                continue
            append(run_dir, [{"ack": seq}])
    return marked


def _ender(store: Any, recorded_uri: str) -> Callable[[str], None] | None:
    if store is None:
        return None
    from trainpipe.config._secrets import redact_uri
    from trainpipe.tracking._journal import _quick_http

    uri = getattr(store, "uri", None) or getattr(store, "tracking_uri", None) or getattr(store, "_tracking_uri", "")
    if redact_uri(str(uri)) != recorded_uri:
        return None
    inner = getattr(store, "inner", store)

    def end(run_id: str) -> None:
        with _quick_http():
            if hasattr(inner, "end_run"):
                inner.end_run(run_id, "KILLED")
            else:
                inner.set_terminated(run_id, status="KILLED")

    return end


__all__ = ["OWNER_FILE", "dead_here", "mark_killed_runs", "process_start", "write_owner"]
