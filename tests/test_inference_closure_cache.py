"""The import closure of trainpipe's inference code is kept across processes while no source changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainpipe.registry import _package


def _boom() -> dict[str, object]:
    raise AssertionError("the closure was computed, not read from the cache")


def test_cached_closure_equals_the_computed_one_and_is_read_back(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    computed = _package._closure()
    assert _package._cached_closure(tmp_path) == computed
    stored = json.loads((tmp_path / _package._CLOSURE_CACHE).read_text())
    assert set(stored["modules"]) == set(computed)
    monkeypatch.setattr(_package, "_closure", _boom)
    assert _package._cached_closure(tmp_path) == computed  # read back, paths and import lines alike


def test_a_changed_source_key_recomputes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _package._cached_closure(tmp_path)
    monkeypatch.setattr(_package, "_sources_key", lambda root: "another trainpipe")
    monkeypatch.setattr(_package, "_closure", _boom)
    with pytest.raises(AssertionError, match="computed, not read"):
        _package._cached_closure(tmp_path)


def test_sources_key_follows_size_and_mtime(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "a.cpython-311.pyc").write_text("ignored")
    key = _package._sources_key(tmp_path)
    (tmp_path / "__pycache__" / _package._CLOSURE_CACHE).write_text("{}")
    assert _package._sources_key(tmp_path) == key  # the cache folder is not part of the key
    (tmp_path / "a.py").write_text("x = 12\n")
    assert _package._sources_key(tmp_path) != key
    key = _package._sources_key(tmp_path)
    (tmp_path / "b.py").write_text("")
    assert _package._sources_key(tmp_path) != key


def test_a_corrupt_or_unwritable_cache_is_skipped(tmp_path: Path) -> None:
    computed = _package._closure()
    (tmp_path / _package._CLOSURE_CACHE).write_text("{not json")
    assert _package._cached_closure(tmp_path) == computed
    assert json.loads((tmp_path / _package._CLOSURE_CACHE).read_text())["modules"]  # rewritten
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert _package._cached_closure(blocked) == computed  # cannot write below a file: computed, no error
    assert not list(tmp_path.glob(".*closure*"))  # no temporary file left behind


def test_a_cache_naming_a_file_that_is_not_a_trainpipe_module_is_recomputed(tmp_path: Path) -> None:
    computed = _package._closure()
    _package._cached_closure(tmp_path)
    cache = tmp_path / _package._CLOSURE_CACHE
    stored = json.loads(cache.read_text())
    module = next(m for m, (rel, _lines) in stored["modules"].items() if rel is not None)
    for rel in ("../../../../../../etc/passwd", "models/_xgboost.py", "/etc/hostname"):
        stored["modules"][module][0] = rel  # another file's contents would be bundled into every model folder
        cache.write_text(json.dumps(stored))
        assert _package._cached_closure(tmp_path) == computed
        stored = json.loads(cache.read_text())  # rewritten from the computed closure
