"""Save and load sklearn objects with skops (no pickle): only types from allowed modules are loaded."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trainpipe._exceptions import DataError

SAFE_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")


def _skops() -> Any:
    """Import ``skops.io`` without its 2 s start-up walk over scikit-learn.

    At import, skops builds its *default* list of trusted types by calling sklearn's
    ``all_estimators()``, which imports every sklearn module (and torch, through sklearn's array-API
    shims, when torch is installed): ~2 s in every process that saves or loads a model. trainpipe never
    relies on that default list: :func:`load` passes the exact trusted types, checked against
    ``SAFE_PREFIXES``. So the walk is skipped for the duration of the import. The only effect on other
    skops users in the same process is a shorter default list, i.e. stricter, never looser, loading.
    """
    import sys

    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    import sklearn.utils

    original = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = _no_estimators
    try:
        import skops.io as sio
    finally:
        sklearn.utils.all_estimators = original
    return sio


def import_early() -> None:
    """Import skops (and scikit-learn with it) now, before MLflow is imported.

    At import, skops names the module of each scipy ufunc by scanning ``sys.modules`` in import order
    (``_utils.whichmodule``). When scikit-learn and scipy come before MLflow's ~1,000 modules the scan
    stops early: 0.2 s instead of 0.5 s. Commands that run pipeline steps call this before opening the
    tracking store; the libraries are imported by the steps anyway.
    """
    _skops()


def _no_estimators(*args: Any, **kwargs: Any) -> list[Any]:
    return []


def dump(obj: Any, path: Path) -> None:
    """Write ``obj`` with skops, byte-for-byte reproducible (so the step cache sees equal outputs as equal)."""
    sio = _skops()

    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(_canonical(sio.dumps(obj)))
    tmp.replace(path)


def _canonical(data: bytes) -> bytes:
    """skops names arrays by ``id()`` and stamps the zip with the time; renumber ids, fix the times."""
    import io
    import re
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as src:
        entries = {name: src.read(name) for name in src.namelist()}
    schema = entries["schema.json"].decode()
    ids = {n.split(".")[0] for n in entries if n.split(".")[0].isdigit()}
    ids |= set(re.findall(r'"__id__":\s*(\d+)', schema))
    order: dict[str, str] = {}
    for match in re.finditer(r"\d+", schema):
        token = match.group(0)
        if token in ids and token not in order:
            order[token] = str(len(order) + 1)
    for token in sorted(ids - set(order)):
        order[token] = str(len(order) + 1)
    alternatives = "|".join(sorted(order, key=len, reverse=True))
    pattern = re.compile(r"(?<![\d.])(" + alternatives + r")(?![\d])") if order else None

    def renumber(text: str) -> str:
        return pattern.sub(lambda m: order[m.group(1)], text) if pattern else text

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name in sorted(entries, key=renumber):
            info = zipfile.ZipInfo(renumber(name), date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            body = renumber(schema).encode() if name == "schema.json" else entries[name]
            dst.writestr(info, body)
    return out.getvalue()


def load(path: Path, extra_prefixes: Iterable[str] = ()) -> Any:
    """Load ``path``; refuse when it holds a type outside ``SAFE_PREFIXES`` + ``extra_prefixes``."""
    sio = _skops()

    prefixes = (*SAFE_PREFIXES, *extra_prefixes)
    untrusted = sio.get_untrusted_types(file=str(path))
    refused = [t for t in untrusted if not t.startswith(prefixes)]
    if refused:
        raise DataError(
            f"{path}: refusing to load types from outside {', '.join(p.rstrip('.') for p in prefixes)}: "
            f"{refused[:5]}. The file was not written by this trainpipe model, or was tampered with."
        )
    return sio.load(str(path), trusted=list(untrusted))
