"""Alias moves on an embedded store are serialised: a promote waits while another command holds the store's
lock, so two commands never interleave their read-then-move of the aliases; no-op moves are not audited."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from trainpipe._locks import sqlite_file_lock
from trainpipe.registry import history, promote
from trainpipe.registry._registry import client_for, move_alias
from trainpipe.tracking._new_store import copy_migrated_template


def test_promote_waits_for_the_store_lock_and_no_op_moves_are_not_audited(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    # the store as a run makes it (a copy of the migrated template): client_for creating one itself runs MLflow's
    # ~60 migrations with a sync each (5-6 s on a busy disk), which is not what this test is about
    assert copy_migrated_template(uri)
    client = client_for(uri)
    client.create_registered_model("m")
    (tmp_path / "model").mkdir()
    for _ in range(2):
        client.create_model_version("m", str(tmp_path / "model"), tags={"trainpipe.registration": "complete"})
    promote(client, "m", "1", "production", reason="first")
    done = threading.Event()

    def second() -> None:
        promote(client_for(uri), "m", "2", "production", reason="second")
        done.set()

    with sqlite_file_lock(uri):  # another command is moving aliases
        worker = threading.Thread(target=second)
        worker.start()
        time.sleep(1.0)
        assert not done.is_set()
        assert str(client.get_model_version_by_alias("m", "production").version) == "1"
    worker.join(60)
    assert done.is_set()
    assert str(client.get_model_version_by_alias("m", "production").version) == "2"
    assert str(client.get_model_version_by_alias("m", "previous-production").version) == "1"
    before = len(history(client, "m"))
    move_alias(client, "m", "production", "2", reason="nothing to do")
    assert len(history(client, "m")) == before
