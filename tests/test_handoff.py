"""In-process hand-off of step artifacts (pipeline/_handoff.py): hits only for the very same, unchanged file."""

from __future__ import annotations

import os
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
