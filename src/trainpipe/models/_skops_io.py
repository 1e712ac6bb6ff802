"""Save and load sklearn objects with skops (no pickle): only the exact types trainpipe writes are loaded.

Everything a model file holds is data. :func:`types_in` lists every type a skops file names (each
``__module__``/``__class__`` pair in its schema, plus whatever skops' own audit reports, e.g. a random
generator's bit generator); :func:`load` refuses the file unless all of them are in
:func:`trainpipe.models._allowlist.trusted_types`, a fixed list in the code. Nothing read from the model
folder (``spec.json`` included) widens it. :func:`dump` checks what it wrote against the same list, so
trainpipe never writes a model it would refuse to load.

A user who must load a file holding other types (a hand-made pipeline with a ``FunctionTransformer``)
names each one, exactly, in ``TRAINPIPE_UNSAFE_TRUST_TYPES`` (comma-separated) or passes
``unsafe_trust_types`` to :func:`load`. Such a type can run code when the model is loaded or used.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trainpipe._exceptions import DataError

UNSAFE_TRUST_ENV = "TRAINPIPE_UNSAFE_TRUST_TYPES"


def _skops() -> Any:
    """Import ``skops.io`` without its 2 s start-up walk over scikit-learn.

    At import, skops builds its *default* list of trusted types by calling sklearn's
    ``all_estimators()``, which imports every sklearn module (and torch, through sklearn's array-API
    shims, when torch is installed): ~2 s in every process that saves or loads a model. trainpipe never
    relies on that default list: :func:`load` passes the exact trusted types, checked against
    the fixed list in ``_allowlist``. So the walk is skipped for the duration of the import. The only effect on other
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
    """Write ``obj`` with skops, byte-for-byte reproducible (so the step cache sees equal outputs as equal).

    Refuses (DataError, nothing written) when ``obj`` holds a type outside the fixed allow-list: a model
    trainpipe would refuse to load is never written.
    """
    sio = _skops()

    data = sio.dumps(obj)
    refused = sorted(types_in(data) - _trusted())
    if refused:
        raise DataError(
            f"{path}: refusing to write {type(obj).__name__}: it holds types outside the ones a trainpipe model "
            f"may contain ({_listed(refused)}), and trainpipe would refuse to load the file. Functions and "
            "function-holding types (FunctionTransformer) are never written."
        )
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(_canonical(data))
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


def types_in(source: bytes | Path) -> set[str]:
    """Every type name the skops file (or its bytes) holds, read without importing or constructing anything."""
    import io
    import json
    import zipfile

    sio = _skops()
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema = json.loads(archive.read("schema.json"))
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__module__" in item or "__class__" in item:
                found.add(f"{item.get('__module__')}.{item.get('__class__')}")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found | set(sio.get_untrusted_types(data=data))


def unsafe_trust_from_env() -> tuple[str, ...]:
    """The type names listed in ``TRAINPIPE_UNSAFE_TRUST_TYPES`` (empty when unset)."""
    return tuple(t.strip() for t in os.environ.get(UNSAFE_TRUST_ENV, "").split(",") if t.strip())


def load(path: Path, unsafe_trust_types: Iterable[str] = ()) -> Any:
    """Load ``path``; a DataError (exit 2) naming the file and the types when it holds a type outside the fixed
    allow-list and the exact names in ``unsafe_trust_types`` / ``TRAINPIPE_UNSAFE_TRUST_TYPES``."""
    import zipfile

    sio = _skops()

    try:
        data = Path(path).read_bytes()  # checked and loaded from the same bytes: no swap in between
        found = types_in(data)
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as exc:  # not a zip, bad schema
        raise DataError(f"{path}: not a readable skops model file ({type(exc).__name__}: {exc}). The file is "
                        "damaged or was replaced; train the model again.") from exc
    opted_in = {*unsafe_trust_types, *unsafe_trust_from_env()}
    refused = sorted(found - _trusted() - opted_in)
    if refused:
        raise DataError(
            f"{path}: refusing to load types a trainpipe model never holds: {_listed(refused)}. The file was "
            "not written by trainpipe, or was tampered with; loading it could run code. Train the model "
            "again. Only if you trust whoever wrote this file, name each type in the environment variable "
            f"{UNSAFE_TRUST_ENV} (comma-separated, exact names): each can run code."
        )
    return sio.loads(data, trusted=sorted(found))


def _trusted() -> frozenset[str]:
    from trainpipe.models._allowlist import trusted_types

    return trusted_types()


def _listed(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
