"""In-process hand-off of step artifacts (pipeline/_handoff.py): hits only for the very same, unchanged file."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainpipe.pipeline import _handoff


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    _handoff.clear()
    yield
    _handoff.clear()


def _no_disk_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("read from disk although the hand-off holds this file")

    monkeypatch.setattr(pd, "read_parquet", refuse)
    monkeypatch.setattr(np, "load", refuse)


def test_a_frame_is_decoded_once_and_readers_cannot_change_it(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "train.parquet"
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", None]}).to_parquet(path, index=False)
    first = _handoff.read_frame(path)
    expected = pd.read_parquet(path)
    pd.testing.assert_frame_equal(first, expected)
    first.loc[0, "x"] = 99.0  # a step changing its copy in place
    first["new"] = 1
    with monkeypatch.context() as m:
        _no_disk_reads(m)
        second = _handoff.read_frame(path)
    pd.testing.assert_frame_equal(second, expected)


def test_a_rewritten_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "test.parquet"
    pd.DataFrame({"x": [1, 2]}).to_parquet(path, index=False)
    assert _handoff.read_frame(path)["x"].tolist() == [1, 2]
    tmp = tmp_path / "next.parquet"
    pd.DataFrame({"x": [7, 8, 9]}).to_parquet(tmp, index=False)
    tmp.replace(path)  # what a re-run of the step does: a new file under the same name
    assert _handoff.read_frame(path)["x"].tolist() == [7, 8, 9]


def test_a_saved_array_is_handed_over_once_and_follows_renames(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    array = np.arange(12, dtype=np.float64).reshape(3, 4)
    path = tmp_path / "X_train.npy"
    _handoff.save_array(array, path)
    np.testing.assert_array_equal(np.load(path), array)  # the file is written all the same
    moved = tmp_path / "cache" / "X_train.npy"
    moved.parent.mkdir()
    path.rename(moved)  # the runner publishes outputs by rename and hard links: same file identity
    linked = tmp_path / "run" / "X_train.npy"
    linked.parent.mkdir()
    os.link(moved, linked)
    with monkeypatch.context() as m:
        _no_disk_reads(m)
        got = _handoff.load_array(linked)
    np.testing.assert_array_equal(got, array)
    got -= got.mean(axis=0)  # the caller owns it: an estimator may centre X in place
    again = _handoff.load_array(moved)  # a second reader loads the file, unchanged by the first one
    np.testing.assert_array_equal(again, np.arange(12, dtype=np.float64).reshape(3, 4))
    np.save(moved, array + 1)  # rewritten in place: read from disk
    _handoff.save_array(array, tmp_path / "other.npy")
    np.testing.assert_array_equal(_handoff.load_array(moved), array + 1)


def test_a_pipeline_run_leaves_nothing_behind(tmp_path: Path) -> None:
    from trainpipe.config import load_config
    from trainpipe.pipeline import PipelineRunner
    from trainpipe.tracking import InMemoryTracker

    rng = np.random.default_rng(0)
    pd.DataFrame({"x": rng.normal(size=200), "c": rng.choice(["a", "b"], 200),
                  "label": rng.integers(0, 2, 200)}).to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "pipeline.yaml").write_text(
        "name: handoff\ndata: {source: data.csv, target: label}\n"
        "model: {type: sklearn.linear_model.LogisticRegression}\n"
        "evaluation: {latency: false, plots: false}\nvalidation: {min_rows: 10}\n")
    PipelineRunner(load_config(tmp_path / "pipeline.yaml"), workdir=tmp_path, tracker=InMemoryTracker()).run()
    assert not _handoff._entries


def test_the_size_limit_drops_the_oldest_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINPIPE_HANDOFF_MB", "0")
    path = tmp_path / "X.npy"
    _handoff.save_array(np.ones(10), path)
    assert not _handoff._entries  # nothing kept
    monkeypatch.setenv("TRAINPIPE_HANDOFF_MB", "1")
    big = tmp_path / "big.npy"
    _handoff.save_array(np.ones(200_000), big)  # 1.6 MB, over the 1 MB limit
    assert not _handoff._entries
    small = [tmp_path / f"s{i}.npy" for i in range(3)]
    for p in small:
        _handoff.save_array(np.ones(50_000), p)  # 0.4 MB each: the oldest is dropped for the third
    assert len(_handoff._entries) == 2
    kept = _handoff.load_array(small[2])
    assert len(_handoff._entries) == 1 and kept.flags.writeable


def test_background_writes_are_complete_and_handed_over_when_the_block_ends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    threads: list[str] = []
    real_save = np.save

    def slow_save(path: Path, array: np.ndarray) -> None:
        threads.append(threading.current_thread().name)
        time.sleep(0.2)  # still writing while the block goes on
        real_save(path, array)

    monkeypatch.setattr(np, "save", slow_save)
    array = np.arange(6, dtype=np.float64)
    with _handoff.background_writes() as write:
        write(_handoff.save_array, array, tmp_path / "X_train.npy")
        write(np.save, tmp_path / "y_train.npy", np.ones(3))
        assert not (tmp_path / "y_train.npy").exists()  # this thread did not wait for them
    assert threads and all(name.startswith("trainpipe-write") for name in threads)
    monkeypatch.setattr(np, "save", real_save)
    np.testing.assert_array_equal(np.load(tmp_path / "y_train.npy"), np.ones(3))
    with monkeypatch.context() as m:
        _no_disk_reads(m)
        np.testing.assert_array_equal(_handoff.load_array(tmp_path / "X_train.npy"), array)


def test_a_failed_background_write_is_raised_in_the_step(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no-such-folder"), _handoff.background_writes() as write:
        write(np.save, tmp_path / "no-such-folder" / "X.npy", np.ones(3))
        write(np.save, tmp_path / "y.npy", np.ones(3))
    assert (tmp_path / "y.npy").exists()  # the other writes still ran


def test_an_error_of_the_step_wins_and_waits_for_the_writes(tmp_path: Path) -> None:
    done = []

    def slow() -> None:
        time.sleep(0.2)
        done.append(True)

    with pytest.raises(ValueError, match="the step failed"), _handoff.background_writes() as write:
        write(slow)
        write(np.save, tmp_path / "no-such-folder" / "X.npy", np.ones(3))  # fails too: the step's error wins
        raise ValueError("the step failed")
    assert done  # nothing is left writing into the folder the runner removes after a failure


def _tiny_pipeline(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    pd.DataFrame({"x": rng.normal(size=200), "c": rng.choice(["a", "b"], 200),
                  "label": rng.integers(0, 2, 200)}).to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "pipeline.yaml").write_text(
        "name: handoff\ndata: {source: data.csv, target: label}\n"
        "model: {type: sklearn.linear_model.LogisticRegression}\n"
        "evaluation: {latency: false, plots: false}\nvalidation: {min_rows: 10}\n")
    return tmp_path / "pipeline.yaml"


def test_split_and_preprocess_write_on_the_worker_and_their_files_are_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from trainpipe.config import load_config
    from trainpipe.models import TrainedModel
    from trainpipe.pipeline import PipelineRunner, _steps
    from trainpipe.tracking import InMemoryTracker

    where: dict[str, str] = {}
    real_matrix, real_parquet = _steps._save_matrix, _steps.write_parquet

    def save_matrix(X: object, stem: Path) -> None:
        where[stem.name] = threading.current_thread().name
        real_matrix(X, stem)

    def write_parquet(df: pd.DataFrame, path: Path) -> None:
        where[path.name] = threading.current_thread().name
        real_parquet(df, path)

    monkeypatch.setattr(_steps, "_save_matrix", save_matrix)
    monkeypatch.setattr(_steps, "write_parquet", write_parquet)
    result = PipelineRunner(load_config(_tiny_pipeline(tmp_path)), workdir=tmp_path, tracker=InMemoryTracker()).run()
    assert result.status == "finished"
    for name in ("X_train", "X_val", "train.parquet", "val.parquet", "test.parquet"):
        assert where[name].startswith("trainpipe-write"), (name, where[name])
    assert where["data.parquet"] == threading.main_thread().name  # ingest writes in the step's thread
    steps = result.run_dir / "steps"
    model = TrainedModel.load(steps / "train" / "model")
    for split in ("train", "val"):
        frame = pd.read_parquet(steps / "split" / f"{split}.parquet")
        np.testing.assert_array_equal(np.load(steps / "preprocess" / f"X_{split}.npy"), model.transform(frame))
        np.testing.assert_array_equal(np.load(steps / "preprocess" / f"y_{split}.npy"),
                                      model.task.encode(frame["label"]))
    sizes = json.loads((steps / "split" / "split.json").read_text())["sizes"]
    assert {k: len(pd.read_parquet(steps / "split" / f"{k}.parquet")) for k in sizes} == sizes


def test_a_full_disk_while_writing_in_the_background_is_exit_2(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from trainpipe._exceptions import StorageFull
    from trainpipe.config import load_config
    from trainpipe.pipeline import PipelineRunner, _steps
    from trainpipe.tracking import InMemoryTracker

    def full(X: object, stem: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(stem.with_suffix(".npy")))

    monkeypatch.setattr(_steps, "_save_matrix", full)
    runner = PipelineRunner(load_config(_tiny_pipeline(tmp_path)), workdir=tmp_path, tracker=InMemoryTracker())
    with pytest.raises(StorageFull, match=r"no space left on the device writing .*X_train\.npy"):
        runner.run()
    assert not list((tmp_path / ".trainpipe" / "cache" / "preprocess").glob(".tmp-*"))  # no half-written entry
