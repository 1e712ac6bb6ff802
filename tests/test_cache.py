from __future__ import annotations

from pathlib import Path

import pytest

from trainpipe.pipeline import StepCache, explain_change
from trainpipe.pipeline._cache import key_of


def _components(**over: object) -> dict[str, object]:
    base: dict[str, object] = {"step": "train", "trainpipe": "0.1.0", "config": {"model": {"type": "xgboost",
                               "params": {}}}, "inputs": {"preprocess": "abc"}, "external": {},
                               "libraries": {"xgboost": "3.2.0"}}
    base.update(over)
    return base


def _seal(cache: StepCache, key: str, text: str) -> None:
    tmp = cache.new_tmp("train")
    (tmp / "model.txt").write_text(text)
    cache.commit("train", key, tmp, _components())


def test_lookup_trusts_only_intact_entries(tmp_path: Path) -> None:
    cache = StepCache(tmp_path)
    assert cache.lookup("train", "k1") == (None, "no cache entry")
    _seal(cache, "k1", "trees")
    entry, why = cache.lookup("train", "k1")
    assert entry is not None and why == "" and set(entry.files) == {"model.txt"}
    (entry.path / "model.txt").write_text("tampered")
    assert cache.lookup("train", "k1") == (None, "cached artifact changed: model.txt")
    (entry.path / "model.txt").unlink()
    assert cache.lookup("train", "k1") == (None, "cached artifact missing: model.txt")


def test_second_seal_of_same_key_keeps_first_and_cleans_up(tmp_path: Path) -> None:
    cache = StepCache(tmp_path)
    _seal(cache, "k1", "first")
    _seal(cache, "k1", "second")
    entry, _ = cache.lookup("train", "k1")
    assert entry is not None and (entry.path / "model.txt").read_text() == "first"
    assert not [p for p in (tmp_path / "train").iterdir() if p.name.startswith(".tmp-")]


def test_explain_change_names_the_deepest_changed_keys() -> None:
    old = _components()
    new = _components(config={"model": {"type": "xgboost", "params": {"max_depth": 3}}})
    assert explain_change(old, new) == "config changed: model.params.max_depth"
    assert explain_change(None, new) == "first run"
    lib = _components(libraries={"xgboost": "3.3.0"}, inputs={"preprocess": "def"})
    assert explain_change(old, lib) == "input changed: preprocess; library changed: xgboost"
    assert explain_change(old, _components(trainpipe="0.2.0")) == "trainpipe version changed: 0.1.0 -> 0.2.0"
    assert key_of(old) != key_of(new) and key_of(old) == key_of(_components())


def test_leftovers_of_killed_processes_are_swept(tmp_path: Path) -> None:
    import subprocess

    cache = StepCache(tmp_path)
    proc = subprocess.Popen(["true"])
    proc.wait()
    stale = tmp_path / "train" / f".tmp-{proc.pid}-deadbeef"
    stale.mkdir(parents=True)
    (stale / "half.bin").write_bytes(b"x")
    mine = cache.new_tmp("train")
    assert not stale.exists() and mine.exists()


def test_finished_training_prunes_checkpoint_folders_of_old_configs(tmp_path: Path) -> None:
    import os

    from trainpipe.pipeline._steps import prune_checkpoint_sets

    folders = []
    for i, name in enumerate(["k0", "k1", "k2", "k3", "k4"]):
        folder = tmp_path / "checkpoints" / "p" / "train" / name
        folder.mkdir(parents=True)
        (folder / "last.pt").write_bytes(b"x")
        os.utime(folder / "last.pt", (1000.0 + i, 1000.0 + i))  # k4 written last
        folders.append(folder)
    current = folders[0]  # the oldest files, but the training that just finished: always kept
    doomed = prune_checkpoint_sets(current, keep=3)
    assert sorted(p.name for p in doomed) == ["k1", "k2"]
    assert sorted(p.name for p in current.parent.iterdir()) == ["k0", "k3", "k4"]
    assert prune_checkpoint_sets(current, keep=3) == []


def test_a_step_run_on_purpose_replaces_the_entry_of_its_key(tmp_path: Path) -> None:
    cache = StepCache(tmp_path)
    first = cache.new_tmp("gate")
    (first / "report.json").write_text('{"champion": 1}')
    cache.commit("gate", "k" * 64, first, {})
    again = cache.new_tmp("gate")
    (again / "report.json").write_text('{"champion": 2}')
    kept = cache.commit("gate", "k" * 64, again, {})  # a concurrent identical miss: the first entry stays
    assert (kept.path / "report.json").read_text() == '{"champion": 1}'
    forced = cache.new_tmp("gate")
    (forced / "report.json").write_text('{"champion": 2}')
    entry = cache.commit("gate", "k" * 64, forced, {}, replace=True)  # --force, --no-cache, always-run steps
    assert (entry.path / "report.json").read_text() == '{"champion": 2}'
    found, _ = cache.lookup("gate", "k" * 64)
    assert found is not None and (found.path / "report.json").read_text() == '{"champion": 2}'


@pytest.mark.parametrize("manifest", ["{}", "[]", '{"files": {"a": 1}, "components": {}}', '{"files": {}}'])
def test_a_manifest_of_the_wrong_shape_is_a_miss_not_a_crash(tmp_path: Path, manifest: str) -> None:
    cache = StepCache(tmp_path)
    tmp = cache.new_tmp("ingest")
    (tmp / "a").write_text("x")
    entry = cache.commit("ingest", "k" * 64, tmp, {})
    (entry.path / "_manifest.json").write_text(manifest)
    found, why = cache.lookup("ingest", "k" * 64)
    assert found is None and why == "cache manifest damaged"
